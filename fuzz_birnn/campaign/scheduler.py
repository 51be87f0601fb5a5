"""Which search runs next: fair shares of a run's time, in short slices.

A run is one search per (property, mode). Run one after another, a run cut short (Ctrl-C, a CI
time limit, ``--time-budget``) would have covered only the first ones; so each search runs in
*slices* (a Hypothesis run of :data:`SLICE_EXAMPLES` examples, a second or so, each slice with its
own seed), and the next slice always goes to the search that has had the least worker time so
far. At any moment, every search has had its fair share of the time, give or take one slice; a
slow search (gradients, a slow candidate) gets fewer examples in the same time, and a search
whose cases crash or hang is charged for the time they cost.

A worker never waits while a search has cases left: when every search with cases left already
has a slice running (a run narrowed to one search, or the last searches of a run), the idle
worker takes another slice of one of them, its next slice number and so its own seed. Slice sizes
are planned from the quota alone (:data:`FIRST_SLICE`, then :data:`SLICE_EXAMPLES` until the
quota is planned), so which slices run does not depend on which ended first; examples a slice
did not use (it stopped early) go to make-up slices, planned only once every slice of the search
has ended.

Slice sizes and seeds depend only on the run's seed and the slice's number within its search,
never on timing, so ``--seed`` repeats a run's cases exactly, whatever the machine's load, unless
a slice runs past :data:`SLICE_CAP_SECONDS` of CPU time (a slow candidate; the engine counts CPU
time, which load does not change, with a wall-clock backstop for a candidate that waits) or the
time budget ends it.

Crash and hang reductions (:mod:`fuzz_birnn.campaign.reducer`) go before any slice: a fault found is worth
more than the next slice. ``--max-examples`` is split evenly into per-search quotas; a search
ends when its quota is used, and the run when every search has ended or the budget is spent.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fuzz_birnn.campaign.slow import OTHERS_WEIGHT, SMALL_SLICES, is_slow
from fuzz_birnn.campaign.slow import shrink_seconds as slow_shrink_seconds
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.properties import PROPERTIES

__all__ = ["FIRST_SLICE", "SLICE_CAP_SECONDS", "SLICE_EXAMPLES", "Reduce", "Scheduler", "Search", "SearchSpec",
           "Slice", "learner_of", "most_slices", "quota_of", "shard_of"]

#: Examples in a search's first slice (small, so that every search starts early) and in the others.
FIRST_SLICE = 20
SLICE_EXAMPLES = 200
#: A slice still running after this long stops at its next case (a slow candidate). Under a time
#: budget the cap is a quarter of each search's share of it (at least MIN_CAP_SECONDS), so that a
#: candidate taking seconds a case still reaches every search early in the run.
SLICE_CAP_SECONDS = 8.0
MIN_CAP_SECONDS = 0.5
#: Once a search has hung, a later case of it counts as that hang again once it runs this many times
#: longer than its slowest passing case so far (and at least HANG_FLOOR seconds), instead of paying
#: the whole --timeout each time (AFL's adaptive hang limit). What the run learns of a candidate
#: carries across its searches: once it has hung anywhere, another search's case that runs past the
#: same limit (from the candidate's slowest passing case anywhere) counts as that hang too, with no
#: report and no reduction of its own, and the limit doubles at each such case (up to --timeout), so
#: a slow but correct candidate is not silenced; a search whose case runs past --timeout itself this
#: way ends, saying so. A candidate that has hung and never returned anywhere gets HANG_FLOOR in its
#: other searches, each of which ends (saying so) at its first case past it: that candidate pays the
#: --timeout once a worker, not once a search. Torch-only properties (the torch run's
#: ``fused``) learn per property: one of torch's hangs does not stand for another's.
HANG_FACTOR = 10.0
HANG_FLOOR = 0.5
#: A hang's reduction tries each smaller case for this many times the candidate's slowest passing
#: case (at least REDUCE_HANG_FLOOR seconds, at most --timeout): smaller cases are faster.
REDUCE_HANG_FLOOR = 2.0
#: The signature of every hang (:func:`fuzz_birnn.campaign.signature.crash_signature`).
HANG = "timeout"


@dataclass(frozen=True)
class SearchSpec:
    """What a worker needs to run slices of one search."""

    index: int
    prop: str
    candidate: str
    mode: str
    space: CaseSpace
    seed: int
    reports: str
    timeout: float
    database: str | None = None
    target: bool = True
    #: what a cluster's node must have to run it (:func:`fuzz_birnn.campaign.cluster.needs_of`)
    needs: tuple[str, ...] = ()
    #: the instruction-set level its worker runs at (:mod:`fuzz_birnn.core.isa`; ``None``: the machine's own)
    isa: str | None = None
    #: its number in the full plan, the same on every machine (``--shard`` splits by it); -1: ``index``
    plan_index: int = -1

    @property
    def name(self) -> str:
        return f"{self.prop} ({self.mode})" + (f" at {self.isa}" if self.isa else "")


@dataclass(frozen=True)
class Slice:
    """Run ``max_examples`` examples of a search (fewer if the slice or the run runs out of time)."""

    search: SearchSpec
    number: int
    max_examples: int
    seed: int
    known: tuple[str, ...]
    isolate: bool
    hang_limit: float
    deadline: float | None  # time.time() at which the run's budget ends
    cap_seconds: float
    reuse: bool  # replay the database first (only a search's first slice: see engine)
    #: how long shrinking may go on in this slice (``None``: to its end); under a time budget, so
    #: that one slow shrink cannot take every other search's share
    shrink_seconds: float | None = None
    #: the hang was learned from another search: each case past ``hang_limit`` doubles it (up to
    #: the search's timeout), and one past the timeout itself ends the search; where the candidate
    #: has never returned at all, the first case past ``hang_limit`` ends it
    escalate: bool = False
    #: the candidate has hung and never returned anywhere yet
    never_returned: bool = False
    #: ``(dimension, value)`` pairs the candidate refuses on every case: not drawn (:mod:`.steering`)
    refused: tuple[tuple[str, str], ...] = ()
    #: signature -> what each fault found with it needs in order to show (:mod:`.needs`): a failure
    #: of a known signature that lacks what every one of them needs is a new fault
    needs: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()
    #: the candidate is slow (:mod:`.slow`): skip cases that have what a known fault needs
    slow: bool = False
    #: draw from :func:`~fuzz_birnn.campaign.slow.small_space` (a slow search's first slices)
    small: bool = False


@dataclass(frozen=True)
class Reduce:
    """Shrink a case that crashed or hung (``kind``), then write its report."""

    search: SearchSpec
    kind: str
    how: str
    in_flight: dict[str, Any]
    output: str
    signature: str
    deadline: float | None
    budget_seconds: float
    #: how long one attempt may run before it counts as hanging again
    attempt_limit: float = 60.0


@dataclass
class Search:
    spec: SearchSpec
    quota: int
    examples: int = 0
    seconds: float = 0.0
    slices: int = 0
    running: int = 0  # slices in flight
    planned: int = 0  # examples given to its slices so far
    known: set[str] = field(default_factory=set)
    isolate: bool = False
    slowest: float = 0.0
    ended: str | None = None
    #: what its later slices no longer draw (:mod:`fuzz_birnn.campaign.steering`)
    refused: set[tuple[str, str]] = field(default_factory=set)
    #: signature -> the needs of each fault found with it (:mod:`fuzz_birnn.campaign.needs`)
    needs: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.ended is not None or self.examples >= self.quota

    @property
    def left(self) -> int:
        """Examples its next slice may have: the quota not yet planned; once it all is, what its
        ended slices left unused, but only when none is running (so that sizes never depend on timing)."""
        if self.ended is not None:
            return 0
        if self.planned < self.quota:
            return self.quota - self.planned
        return self.quota - self.examples if self.running == 0 else 0


class Scheduler:
    """Owns the searches' state; hands out jobs and takes their results."""

    def __init__(self, searches: list[Search], *, deadline: float | None, reduce_seconds: float,
                 workers: int = 1) -> None:
        self.searches = searches
        self.deadline = deadline
        self.reduce_seconds = reduce_seconds
        self.reductions: deque[Reduce] = deque()
        #: jobs whose worker vanished (a node left the cluster): each runs again, as it was
        self.retries: deque[Slice | Reduce] = deque()
        #: candidate -> its slowest passing case in any search; the candidates seen to hang
        self.slowest: dict[str, float] = {}
        self.hung: set[str] = set()
        self.cap_seconds = SLICE_CAP_SECONDS
        self.shrink_seconds: float | None = None
        self.share = 0.0
        #: learner -> seconds and cases checked in its ended slices (:func:`~fuzz_birnn.campaign.slow.is_slow`)
        self.case_time: dict[str, tuple[float, int]] = {}
        if deadline is not None:  # a slow candidate: every search must get its turn well within the budget
            budget = max(0.0, deadline - time.time())
            self.share = share = budget * min(workers, len(searches)) / len(searches)
            self.cap_seconds = max(MIN_CAP_SECONDS, min(SLICE_CAP_SECONDS, share / 4))
            self.shrink_seconds = max(2 * self.cap_seconds, share / 2)

    def slow(self, spec: SearchSpec) -> bool:
        """Whether the search's candidate is slow (:mod:`.slow`: under a time budget only)."""
        return self.deadline is not None and is_slow(*self.case_time.get(learner_of(spec), (0.0, 0)))

    def _turn(self, search: Search) -> float:
        """A search's time as its turn counts it: a slow candidate's agreement searches come first."""
        if search.spec.prop != "agreement" and self.slow(search.spec):
            return search.seconds * OTHERS_WEIGHT
        return search.seconds

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    def next_job(self, fits: Callable[[SearchSpec], bool] = lambda spec: True) -> Slice | Reduce | None:
        """The next job for a worker that can run the searches ``fits`` accepts (a cluster's
        node has the devices and resources a search needs), or ``None``: nothing for it now."""
        if self.out_of_time():
            return None
        for job in [*self.retries, *self.reductions]:
            if fits(job.search):
                (self.retries if job in self.retries else self.reductions).remove(job)  # type: ignore[arg-type]
                return job
        ready = [s for s in self.searches if s.left > 0 and fits(s.spec)]
        if not ready:
            return None
        # a search with no slice running first; then the one that has had the least time
        search = min(ready, key=lambda s: (s.running > 0, self._turn(s), s.spec.index))
        planned = FIRST_SLICE if search.slices == 0 else SLICE_EXAMPLES
        size = min(planned, search.left)
        search.running += 1
        search.planned += size
        search.slices += 1
        key = learner_of(search.spec)
        borrowed = key in self.hung and HANG not in search.known  # it hung in another search
        known = search.known | {HANG} if borrowed else search.known
        slowest = max(search.slowest, self.slowest.get(key, 0.0)) if borrowed else search.slowest
        limit = max(HANG_FLOOR, HANG_FACTOR * slowest)
        slow = self.slow(search.spec)
        shrink = self.shrink_seconds
        needs = {signature: list(listed) for signature, listed in search.needs.items()}
        if slow and self.deadline is not None:
            shrink = slow_shrink_seconds(max(0.0, self.deadline - time.time()), self.share)
            for other in self._siblings(search):  # a fault found in another layer type is not shrunk again
                known = known | other.known
                for signature, listed in other.needs.items():
                    mine = needs.setdefault(signature, [])
                    mine += [n for n in listed if n not in mine]
        return Slice(search.spec, search.slices, size, _slice_seed(search.spec.seed, search.slices),
                     tuple(sorted(known)), search.isolate or borrowed, limit, self.deadline, self.cap_seconds,
                     reuse=search.slices == 1, shrink_seconds=shrink, escalate=borrowed,
                     never_returned=borrowed and not slowest, refused=tuple(sorted(search.refused)),
                     needs=tuple((signature, tuple(listed)) for signature, listed in sorted(needs.items())),
                     slow=slow, small=slow and search.slices <= SMALL_SLICES + 1)

    def _siblings(self, search: Search) -> list[Search]:
        """The searches of the same property, candidate and level in the run's other layer types."""
        spec = search.spec
        return [other for other in self.searches if other is not search
                and (other.spec.prop, other.spec.candidate, other.spec.isa) == (spec.prop, spec.candidate, spec.isa)]

    def slice_ended(self, job: Slice, *, examples: int, seconds: float, slowest: float = 0.0,
                    signatures: Iterable[str] = (), needs: Iterable[tuple[str, tuple[str, ...]]] = (),
                    checked: tuple[int, float] = (0, 0.0), error: str | None = None) -> None:
        """A slice's end; ``signatures``: of the faults it found, and ``needs``: ``(signature, needs)``
        of those whose needs were measured; ``checked``: cases it checked to a verdict and their
        seconds (:func:`~fuzz_birnn.campaign.slow.is_slow`); ``error`` (a harness error, or why the
        search cannot go on) ends its search."""
        spec = job.search
        search = self.searches[spec.index]
        search.running -= 1
        search.examples += examples
        search.seconds += seconds
        search.slowest = max(search.slowest, slowest)
        key = learner_of(spec)
        self.slowest[key] = max(self.slowest.get(key, 0.0), slowest)
        spent, cases = self.case_time.get(key, (0.0, 0))
        self.case_time[key] = (spent + checked[1], cases + checked[0])
        search.known.update(signatures)
        for signature, needed in needs:
            if needed not in search.needs.setdefault(signature, []):
                search.needs[signature].append(needed)
        if error is not None:
            search.ended = error

    def fault_in_process(self, spec: SearchSpec, kind: str, how: str, signature: str, in_flight: dict[str, Any],
                         output: str) -> bool:
        """A case crashed its worker or hung: from now on the search isolates its cases. Queues a
        reduction unless the search has met this fault already (a hang: unless its candidate has
        hung in any search); returns whether it is new."""
        search = self.searches[spec.index]
        search.isolate = True
        key = learner_of(spec)
        if signature in search.known or (signature == HANG and key in self.hung):
            search.known.add(signature)
            return False
        search.known.add(signature)
        if signature == HANG:
            self.hung.add(key)
        slowest = self.slowest.get(key, 0.0)  # none known: each attempt gets the whole --timeout
        limit = min(spec.timeout, max(REDUCE_HANG_FLOOR, HANG_FACTOR * slowest)) if slowest else spec.timeout
        self.reductions.append(Reduce(spec, kind, how, in_flight, output, signature, self.deadline,
                                      self.reduce_seconds, limit if signature == HANG else spec.timeout))
        return True

    def retry(self, job: Slice | Reduce) -> None:
        """Run ``job`` again, as it was, on the next worker that can: its worker vanished with
        nothing known of it (a slice keeps its number and seed, so the run's cases stay the same)."""
        self.retries.append(job)

    def queued(self, spec: SearchSpec) -> bool:
        """Whether a job of the search waits (a reduction, or a job to run again)."""
        return any(job.search.index == spec.index for job in [*self.retries, *self.reductions])

    def end_search(self, spec: SearchSpec, why: str) -> list[Reduce]:
        """End a search that no worker left can run; returns its reductions that will not run now."""
        search = self.searches[spec.index]
        search.ended = search.ended or why
        mine = [job for job in [*self.retries, *self.reductions] if job.search.index == spec.index]
        self.retries = deque(job for job in self.retries if job.search.index != spec.index)
        self.reductions = deque(job for job in self.reductions if job.search.index != spec.index)
        return [job for job in mine if isinstance(job, Reduce)]

    def charge(self, spec: SearchSpec, seconds: float) -> None:
        """Time spent for a search outside its slices (a reduction) counts towards its share."""
        self.searches[spec.index].seconds += seconds

    def finished(self, busy: bool) -> bool:
        if busy:
            return False
        if self.out_of_time():
            return True
        return not self.reductions and not self.retries and all(s.done for s in self.searches)


def learner_of(spec: SearchSpec) -> str:
    """Whose hangs and speed a search learns from: its candidate's, or for a torch-only property
    (``fused`` stands in for torch there) that property's alone."""
    return f"{spec.candidate} {spec.prop}" if PROPERTIES[spec.prop].torch_only else spec.candidate


def most_slices(searches: int, max_examples: int) -> int:
    """How many slices a run of ``searches`` searches can have running at once at most: more
    workers than that would only wait."""
    quota = quota_of(searches, max_examples)
    return searches * (1 + -(-max(0, quota - FIRST_SLICE) // SLICE_EXAMPLES))


def quota_of(searches: int, max_examples: int) -> int:
    """Each search's share of ``--max-examples`` (rounded up: every search gets at least one)."""
    return max(1, -(-max_examples // max(1, searches)))


def shard_of(index: int, shards: int) -> int:
    """The shard (1..N) that runs search ``index`` of the run's deterministic list."""
    return index % shards + 1


def _slice_seed(seed: int, number: int) -> int:
    return (seed * 1_000_003 + number) % 2**63
