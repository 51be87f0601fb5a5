"""The search behind ``fuzz-birnn run``: every (property, mode) search, in fair slices, in parallel.

The parent (:class:`Campaign`) hands jobs from the :mod:`~fuzz_birnn.campaign.scheduler` to worker
processes: slices of a search, and reductions of a case that crashed or hung. A worker is a
spawned process (a fresh interpreter, one torch thread) that assumes the code under test may
kill it at any moment. Where the workers are is the campaign's :class:`Pool`: processes on this
machine (:mod:`~fuzz_birnn.campaign.pool`, the default) or on a Ray cluster's nodes
(:mod:`~fuzz_birnn.campaign.cluster`); either way they talk in the same events
(:mod:`~fuzz_birnn.campaign.events`).

**A slice** is one Hypothesis run of the search's strategy with its own seed. It goes on past
the faults the search already knows: a failure whose :func:`~fuzz_birnn.campaign.signature.signature_of`
is known, on a case with what that fault needs in order to show (:mod:`~fuzz_birnn.campaign.needs`),
counts as seen again and the search moves on; a new one is shrunk by Hypothesis (each new
signature is its own Hypothesis bug, so two new faults in one slice are both shrunk), written
as a report, and what it needs measured (a slow candidate's new fault is reduced field by field
instead, in far fewer calls: :mod:`~fuzz_birnn.campaign.slow`). Each passing case reports its
error relative to its allowance to ``hypothesis.target``, which steers generation towards
near-misses. A slice stops at its next case once it overruns its share, or the run's
``--time-budget`` is spent; a failure whose shrinking is cut short by the budget is still
written, with the smallest case found so far. What a slice learns of a new fault beyond its case
(its needs, the agreement fault it follows, a slow candidate's reduction) comes from
:mod:`~fuzz_birnn.campaign.probes`.

**Crashes and hangs.** Before each case a worker writes it *ahead* (:mod:`fuzz_birnn.campaign.writeahead`)
and empties its output file (:mod:`fuzz_birnn.processes.capture`). If the worker dies, the parent reads the
case back and queues a reduction (:mod:`fuzz_birnn.campaign.reducer`), which a worker runs by forking a
child per attempt (:mod:`fuzz_birnn.processes.forked`); the report holds the smallest case that still
crashes the same way. A case past ``--timeout`` is stopped in-process by ``SIGALRM`` where it
can be, and by the parent killing the worker where it cannot (a time limit swallowed by a
destructor, C code holding the GIL): either way it becomes a ``timeout`` that is reduced the same
way and never ends its search. From its first crash or hang on, a search runs its cases in a
forked child that stays warm from case to case (:mod:`fuzz_birnn.processes.fork_server`), so the
next crash costs a child, not a worker, and the cases between crashes keep the search's pace.

**Stopping.** Workers ignore Ctrl-C: the parent stops them, so an interrupted run ends at once,
every report already renamed into place stays whole, and a half-written one stays hidden. A
parent killed outright takes its workers with it (:mod:`fuzz_birnn.processes.lifeline`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import functools
import os
import signal
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from hypothesis import HealthCheck, Phase, Verbosity, assume, given, seed, settings, target
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy

from fuzz_birnn.campaign.database import SearchDatabase, open_database, search_key
from fuzz_birnn.campaign.events import (
    Counts,
    Died,
    Event,
    Fault,
    Lost,
    Progress,
    ReductionEnded,
    SliceEnded,
    SliceResult,
)
from fuzz_birnn.campaign.needs import features, is_known
from fuzz_birnn.campaign.pool import LocalPool, in_flight_file, output_file
from fuzz_birnn.campaign.probes import FaultProbes, as_fault
from fuzz_birnn.campaign.reducer import reduce_case, within_space
from fuzz_birnn.campaign.scheduler import HANG, Reduce, Scheduler, Search, SearchSpec, Slice, learner_of, quota_of
from fuzz_birnn.campaign.signature import crash_signature, fault_signature, signature_of
from fuzz_birnn.campaign.slow import SKIPPED_AS_KNOWN, SLOW_CASE_SECONDS, is_slow, small_space
from fuzz_birnn.campaign.steering import refused_values, without
from fuzz_birnn.campaign.writeahead import WriteAhead
from fuzz_birnn.core import packages
from fuzz_birnn.core.case import Case
from fuzz_birnn.core.isa import LEVELS, NATIVE, native_level
from fuzz_birnn.core.outcomes import Candidate, CheckFailure, Outcome
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.output.files import write_whole
from fuzz_birnn.output.reports import check_failures, write_crash, write_report
from fuzz_birnn.output.run_record import (
    Finding,
    Node,
    RunOptions,
    RunRecord,
    SearchTime,
    build_record,
    count_key,
    last_frame,
)
from fuzz_birnn.portable.report_files import ReportRefused, case_cost, read_json
from fuzz_birnn.processes.capture import OutputCapture
from fuzz_birnn.processes.fork_server import ForkServer
from fuzz_birnn.processes.forked import can_fork, forbid_forking, run_forked, why_not_forked
from fuzz_birnn.processes.lifeline import die_with_parent
from fuzz_birnn.processes.time_limit import CaseTimeout, time_limit
from fuzz_birnn.properties import PROPERTIES
from fuzz_birnn.strategies import cases, invalid_calls
from fuzz_birnn.targets.naming import load_candidate

__all__ = ["Campaign", "CaseTimeout", "Counts", "Event", "Fault", "Pool", "Progress", "ReductionEnded",
           "SliceEnded", "SliceResult", "plan_searches", "run_reduction", "run_slice", "time_limit", "worker_main"]

#: A slice that waits rather than computes is stopped after this many times its CPU-time cap.
WALL_BACKSTOP = 4.0
#: A worker whose instruction-set level is ahead of an unserved level's by this many seconds of worker
#: time switches to it (a worker started again costs a second or two).
LEVEL_SWITCH_SECONDS = 20.0
#: How many times a job may lose its worker (a node leaving a cluster) and run again.
MAX_LOSSES = 3
#: Crash and hang reductions each get at most this much time (and never past the budget).
REDUCE_SECONDS = 120.0



def plan_searches(candidate: str | None, properties: list[str], modes: list[str], space: CaseSpace,
                  *, seed: int, reports: Path, timeout: float, database: str | None,
                  target: bool = True, levels: Sequence[str | None] = (None,),
                  candidate_levels: bool = False) -> tuple[list[SearchSpec], list[str]]:
    """The run's searches in a fixed order (the same on every machine, for ``--shard``), and the
    properties the user's flags leave no cases for. A property that checks torch's own kernels
    (``isa_levels``), and with ``candidate_levels`` every property that checks the candidate, is
    searched at each of ``levels`` (``None``: the machine's own level, uncapped); the others at the
    machine's own level only."""

    planned, impossible = [], []
    for name in properties:
        prop = PROPERTIES[name]
        narrow = space.narrowed(prop.narrowing)
        if narrow is None:
            impossible.append(name)
            continue
        checks_torch = candidate is None or prop.torch_only
        on_cpu = narrow.narrowed({"devices": ["cpu"]})  # a level is the CPU's: its searches draw CPU cases
        leveled = (prop.isa_levels and checks_torch) or (candidate_levels and not checks_torch)
        # every level has its place in the plan, reached here or not, so that a search's number (its
        # seed, its shard) is the same on every machine, whatever its CPU
        at_levels = leveled and on_cpu is not None
        for level in (None, *LEVELS) if at_levels else (None,):
            planned += [(name, prop.candidate(candidate), mode, on_cpu if level and on_cpu else narrow, level,
                         level in levels or not at_levels) for mode in modes]
    specs = [SearchSpec(index, name, who, mode, narrow, seed + index, str(reports), timeout, database, target,
                        isa=level, plan_index=index)
             for index, (name, who, mode, narrow, level, here) in enumerate(planned) if here]
    return [dataclasses.replace(spec, index=index) for index, spec in enumerate(specs)], impossible


# -- parent side -------------------------------------------------------------------------------


@dataclass
class _Busy:
    """A job in the hands of a worker."""

    job: Slice | Reduce
    started: float = field(default_factory=time.monotonic)
    generated: int = 0  # examples its slice has reported generating so far


class Pool(Protocol):
    """Where a campaign's jobs run: worker processes here (:class:`~fuzz_birnn.campaign.pool.LocalPool`)
    or on a Ray cluster's nodes (:class:`~fuzz_birnn.campaign.cluster.RayPool`)."""

    def start(self) -> None: ...
    def idle(self) -> list[int]: ...
    def fits(self, worker_id: int, spec: SearchSpec) -> bool: ...
    def cannot_run(self, spec: SearchSpec) -> str | None: ...
    #: whether :meth:`switch` can start a worker again at another instruction-set level
    switches: bool
    def level(self, worker_id: int) -> str | None: ...
    def workers(self) -> list[int]: ...
    def switch(self, worker_id: int, isa: str | None) -> None: ...
    def reaches(self, worker_id: int, isa: str | None) -> bool: ...
    def nodes(self) -> list[Node]: ...
    def node_of(self, worker_id: int) -> str: ...
    def give(self, worker_id: int, job: Slice | Reduce) -> None: ...
    def events(self, timeout: float) -> list[Event]: ...
    def stop(self) -> None: ...


@dataclass
class Campaign:
    """One run: its searches, what they have checked so far, and what they found."""

    specs: list[SearchSpec]
    max_examples: int
    workers: int
    time_budget: float | None = None
    on_progress: Callable[[Campaign], None] = lambda campaign: None
    counts: Counts = field(default_factory=Counts)
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the target's packages its workers loaded, with their versions
    packages: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: where its jobs run (default: ``workers`` processes on this machine)
    pool: Pool | None = None

    def __post_init__(self) -> None:
        quota = quota_of(len(self.specs), self.max_examples)
        deadline = None if self.time_budget is None else time.time() + self.time_budget
        self.scheduler = Scheduler([Search(spec, quota) for spec in self.specs], deadline=deadline,
                                   reduce_seconds=REDUCE_SECONDS, workers=max(1, self.workers))
        self._slow_said: set[str] = set()
        self._busy: dict[int, _Busy] = {}
        #: worker -> cases it checked, and the searches it ran (run.json's ``nodes``)
        self.cases_by_worker: collections.Counter[int] = collections.Counter()
        self.searches_by_worker: dict[int, set[str]] = collections.defaultdict(set)
        self._losses: collections.Counter[tuple[int, int | str]] = collections.Counter()

    def run(self) -> None:
        """Run to the end of the budget (Ctrl-C raises KeyboardInterrupt; the state stays readable)."""
        started = time.monotonic()
        if self.pool is None:
            self.pool = LocalPool(max(1, self.workers), worker_main)
        pool = self.pool
        try:
            pool.start()
            while not self.scheduler.finished(busy=bool(self._busy)):
                self._assign(pool)
                for event in pool.events(timeout=0.2):
                    self._handle(event)
        finally:
            self.seconds = time.monotonic() - started
            pool.stop()
            self._orphaned_reductions()

    def run_record(self, options: RunOptions, *, started: datetime.datetime, interrupted: bool) -> RunRecord:
        """What the run covered and found (finished or interrupted): ``run.json``'s content."""
        searches = [SearchTime(spec.prop, spec.mode, self.scheduler.searches[spec.index].seconds, spec.isa or NATIVE)
                    for spec in self.specs]
        return build_record(searches=searches, counts=self.counts, findings=self.findings, errors=self.errors,
                            notes=self.notes, seconds=self.seconds, options=options, started=started,
                            interrupted=interrupted, nodes=self.node_records(), packages=self.packages)

    def node_records(self) -> list[Node]:
        """Each machine the run's workers ran on, with the cases checked and searches run there."""
        if self.pool is None:
            return []
        cases: collections.Counter[str] = collections.Counter()
        searches: dict[str, set[str]] = collections.defaultdict(set)
        for worker_id, n in self.cases_by_worker.items():
            cases[self.pool.node_of(worker_id)] += n
        for worker_id, names in self.searches_by_worker.items():
            searches[self.pool.node_of(worker_id)] |= names
        return [dataclasses.replace(node, cases=cases[node.id], searches=sorted(searches[node.id]))
                for node in self.pool.nodes()]

    # one turn of the loop

    def _assign(self, pool: Pool) -> None:
        for worker_id in pool.idle():
            if pool.switches:
                level = self._level_for(pool, worker_id)
                if level != pool.level(worker_id):
                    pool.switch(worker_id, level)
            job = self.scheduler.next_job(fits=functools.partial(_fits, pool, worker_id))
            if job is None:
                continue
            self._busy[worker_id] = _Busy(job)
            self.searches_by_worker[worker_id].add(job.search.name)
            pool.give(worker_id, job)

    def _level_for(self, pool: Pool, worker_id: int) -> str | None:
        """The instruction-set level an idle worker should run at. Its own, while that level has work,
        unless a waiting level has no worker and either this level has another or that level's
        least-served search is :data:`LEVEL_SWITCH_SECONDS` of worker time behind this level's (so
        that with fewer workers than levels every level still gets its turn within a time budget,
        at the price of a worker started again now and then); a worker whose level has run out goes
        to the waiting level with the fewest workers. A level that has its worker keeps it: moving
        workers between served levels for finer fairness costs more restarts than it buys."""
        searches = [s for s in self.scheduler.searches if (s.left > 0 or self.scheduler.queued(s.spec))
                    and pool.reaches(worker_id, s.spec.isa)]
        spent: dict[str | None, list[float]] = collections.defaultdict(list)
        for search in searches:
            spent[search.spec.isa].append(search.seconds)
        # a level's share so far: the worker time its searches had, on average
        share = {level: sum(seconds) / len(seconds) for level, seconds in spent.items()}
        mine = pool.level(worker_id)
        others = [pool.level(other) for other in pool.workers() if other != worker_id]
        unserved = [level for level in share if level not in others and level != mine]
        if mine in share:
            shared = others.count(mine) > 0

            def owed(level: str | None) -> float:  # worker time the level needs to catch up with this one
                return (share[mine] - share[level]) * len(spent[level])

            behind = [level for level in unserved if shared or owed(level) > self._switch_seconds(len(share))]
            return min(behind, key=share.__getitem__) if behind else mine
        if unserved:
            return min(unserved, key=share.__getitem__)
        return min(share, key=others.count) if share else mine

    def _switch_seconds(self, levels: int) -> float:
        """How far (in worker time) a level without a worker may fall behind before a worker
        leaves its own level for it: :data:`LEVEL_SWITCH_SECONDS`, or less under a short time
        budget, so that every level has its turn within it."""
        if self.time_budget is None:
            return LEVEL_SWITCH_SECONDS
        return min(LEVEL_SWITCH_SECONDS, self.time_budget / (2 * max(1, levels)))

    def _handle(self, event: Event) -> None:
        if isinstance(event, Progress):
            self._count(event.worker_id, event.counts)
            self._busy[event.worker_id].generated += event.generated
            self.on_progress(self)
            return
        busy = self._busy.pop(event.worker_id, None)
        assert busy is not None, "a worker reported the end of a job it was not given"
        job, elapsed = busy.job, time.monotonic() - busy.started
        if isinstance(event, SliceEnded):
            assert isinstance(job, Slice)
            result = event.result
            self._count(event.worker_id, result.counts)
            self.findings += result.findings
            self.packages.update(result.packages)
            # a slow candidate's fault whose shrinking was cut short stays unknown to its search, so a
            # later slice finds it again and shrinks it with the time slow mode gives (see .slow)
            slow = self.scheduler.deadline is not None and (
                self.scheduler.slow(job.search) or is_slow(result.checked_seconds, result.checked))
            again = slow and not self.scheduler.out_of_time()
            settled = [f for f in result.findings if not (again and f.shrink.startswith("shrinking cut short"))]
            self.scheduler.slice_ended(job, examples=busy.generated + result.generated, seconds=elapsed,
                                       slowest=result.slowest, signatures=[f.signature for f in settled],
                                       needs=[(f.signature, f.needs or ()) for f in settled],
                                       checked=(result.checked, result.checked_seconds),
                                       error=(result.error and "stopped by an error") or result.ended)
            self._steer(job.search)
            self._say_if_slow(job.search)
            if result.error:
                self.errors.append(f"{job.search.name} stopped early: {result.error}")
            if result.ended:
                self.notes.append(result.ended)
            if result.fault is not None:
                self._fault(job.search, result.fault)
        elif isinstance(event, ReductionEnded):
            assert isinstance(job, Reduce)
            self.scheduler.charge(job.search, elapsed)
            if event.finding is not None:
                self.findings.append(event.finding)
            else:
                self.errors.append(f"{job.search.name}: reducing a {job.kind} failed: {event.error}")
                self._write_unreduced(job, "not shrunk: the reduction failed")
        elif isinstance(event, Died):
            self._died(job, event, busy)
        else:
            self._lost(job, event)
        self.on_progress(self)

    def _steer(self, spec: SearchSpec) -> None:
        """Leave out of the search's later slices what its candidate refuses on every case."""
        search = self.scheduler.searches[spec.index]
        for refused in refused_values(self.counts, spec.prop, spec.mode, spec.isa or NATIVE):
            if (refused.dimension, refused.value) not in search.refused:
                search.refused.add((refused.dimension, refused.value))
                self.notes.append(refused.describe(spec.name))

    def _say_if_slow(self, spec: SearchSpec) -> None:
        """A note, once a candidate, when its slowness changes how the budget is spent (:mod:`.slow`)."""
        key = learner_of(spec)
        if key in self._slow_said or not self.scheduler.slow(spec):
            return
        self._slow_said.add(key)
        seconds, cases = self.scheduler.case_time[key]
        self.notes.append(f"{spec.candidate}: {seconds / cases:.2g}s a case checked (slow: at least "
                          f"{SLOW_CASE_SECONDS:g}s): agreement searches first, small cases first, a new fault's "
                          "shrinking before more cases, and cases with what a known fault needs not checked")

    def _count(self, worker_id: int, counts: Counts) -> None:
        self.counts.update(counts)
        self.cases_by_worker[worker_id] += sum(counts.values())

    def _died(self, job: Slice | Reduce, died: Died, busy: _Busy) -> None:
        elapsed = time.monotonic() - busy.started
        if isinstance(job, Slice):  # the case it died on counts towards its search's quota
            self.scheduler.slice_ended(job, examples=busy.generated + 1, seconds=elapsed)
        else:
            self.scheduler.charge(job.search, elapsed)
        if died.late:
            self.notes.append(f"{job.search.name}: a case in flight when the time budget ran out was stopped")
            if isinstance(job, Reduce):
                self._write_unreduced(job, "shrinking cut short: the time budget ran out")
        elif isinstance(job, Reduce):
            self._write_unreduced(job, f"not shrunk: the reducing worker {died.how}")
        else:
            how = (f"ran past the {job.search.timeout:g}s limit and was killed by the parent" if died.hung
                   else died.how)
            self._fault(job.search, Fault("timeout" if died.hung else "crash", how, died.in_flight, died.output))

    def _lost(self, job: Slice | Reduce, lost: Lost) -> None:
        """A job whose worker vanished runs again on another (a worker sends a job's counts only
        with its end, so none of its cases is counted twice), at most :data:`MAX_LOSSES` times."""
        what = "slice" if isinstance(job, Slice) else "reduction"
        key = (job.search.index, job.number if isinstance(job, Slice) else job.signature)
        self._losses[key] += 1
        if self._losses[key] > MAX_LOSSES:
            given_up = f"its worker was lost {MAX_LOSSES + 1} times ({lost.why})"
            if isinstance(job, Slice):
                self.scheduler.slice_ended(job, examples=0, seconds=0.0, error="stopped by an error")
                self.errors.append(f"{job.search.name} stopped early: a {what} whose {given_up}")
            else:
                self._write_unreduced(job, f"not shrunk: {given_up}")
        else:
            self.scheduler.retry(job)
            self.notes.append(f"{job.search.name}: {lost.why}; its {what} ran again on another worker")
        assert self.pool is not None
        for search in self.scheduler.searches:  # what no worker left can run ends (its reductions written)
            why = self.pool.cannot_run(search.spec)
            if why is None or (search.done and not self.scheduler.queued(search.spec)):
                continue
            self.notes.append(f"{search.spec.name}: not compared further: {why}")
            for reduce in self.scheduler.end_search(search.spec, f"not compared further: {why}"):
                self._write_unreduced(reduce, f"not shrunk: {why}")

    def _fault(self, spec: SearchSpec, fault: Fault) -> None:
        if fault.in_flight is None:
            self.errors.append(f"{spec.name}: the worker {fault.how} before its first case was written ahead")
            return
        signature = crash_signature(fault.kind, fault.how)
        new = self.scheduler.fault_in_process(spec, fault.kind, fault.how, signature, fault.in_flight, fault.output)
        case = Case.from_dict(fault.in_flight["case"])
        self.counts[count_key(spec.prop, spec.mode, case, "failed" if new else "known", isa=spec.isa)] += 1

    def _orphaned_reductions(self) -> None:
        """Crashes and hangs whose reduction never started (the budget ran out, or Ctrl-C): still
        reported, unshrunk, so that nothing found is lost."""
        for job in [*self.scheduler.retries, *self.scheduler.reductions]:
            if isinstance(job, Reduce):
                self._write_unreduced(job, "not shrunk: the run ended before its turn")
        self.scheduler.retries.clear()
        self.scheduler.reductions.clear()

    def _write_unreduced(self, job: Reduce, shrink: str) -> None:
        with contextlib.suppress(Exception):  # a report we cannot write must not hide the others
            self.findings.append(write_crash_finding(job, job.in_flight, shrink, job.output))


def _fits(pool: Pool, worker_id: int, spec: SearchSpec) -> bool:
    return pool.fits(worker_id, spec)


def write_crash_finding(job: Reduce, in_flight: dict[str, Any], shrink: str, output: str) -> Finding:
    """Write the crash or timeout report of ``in_flight`` and describe it as a finding."""

    message = (f"checking this case took longer than the {job.search.timeout:g}s limit" if job.kind == "timeout"
               else f"the worker process {job.how} while checking this case")
    folder, new, _ = write_crash(in_flight, message, Path(job.search.reports), kind=job.kind,
                                 extra={"signature": job.signature, "shrink": shrink}, output=output)
    case = Case.from_dict(in_flight["case"])
    cost = case_cost(in_flight["case"]["config"], in_flight["case"]["inputs"])["elements"]
    return Finding(job.signature, job.search.prop, job.search.mode, str(folder), new,
                   f"{job.kind}: {message} [{case.describe()}]", shrink, cost, isa=job.search.isa or NATIVE)


# -- worker side -------------------------------------------------------------------------------


class _EndSearch(BaseException):
    """Ends a slice and its search (the message says why, for the run's notes)."""


class _Stop(BaseException):
    """Ends a slice at once: its share, or the run's budget, is spent, or a slow candidate's new
    fault is to be reduced (:data:`_REDUCE`)."""


#: Why a slow candidate's slice stops once it has a new fault: to reduce it
#: (:meth:`~fuzz_birnn.campaign.probes.FaultProbes.reduced`).
_REDUCE = "reduce field by field"


class _InProcessFault(BaseException):
    """Ends a slice: a case hung (or crashed a forked child) in a way the search has not met."""

    def __init__(self, kind: str, how: str, in_flight: dict[str, Any], output: str) -> None:
        super().__init__(kind, how)
        self.fault = Fault(kind, how, in_flight, output)


def worker_main(worker_id: int, inbox: Any, outbox: Any, parent_pid: int) -> None:
    """A worker process: run each job its inbox brings (``None``: stop), send its events to ``outbox``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    die_with_parent(parent_pid)  # ... and if it cannot (it was killed), its death stops us


    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    torch.set_num_threads(1)  # cases are tiny: intra-op threads only fight the other workers

    capture = None
    while True:
        job = inbox.get()
        if job is None:
            return
        reports = Path(job.search.reports)
        if capture is None:  # a candidate's prints go to a file, never to the run's console
            capture = OutputCapture(output_file(reports, worker_id))
        with WriteAhead(in_flight_file(reports, worker_id)) as ahead:
            if isinstance(job, Slice):
                result = run_slice(job, capture, ahead,
                                   lambda counts, generated: outbox.put(Progress(worker_id, counts, generated)))
                outbox.put(SliceEnded(worker_id, result))
            else:
                outbox.put(_reduce_or_say_why(worker_id, job, capture, ahead))


@dataclass
class _SliceClock:
    """A running slice's tallies between flushes, and the times its stopping rules read."""

    generated: int = 0  # cases generated since the last flush
    slowest: float = 0.0  # seconds of its slowest passing case
    flushed: float = field(default_factory=time.monotonic)
    first_failure: float = 0.0  # when shrinking began
    limit_scale: float = 1.0  # how often a learned hang limit has doubled
    checked: int = 0  # cases checked to a verdict, and their seconds
    checked_seconds: float = 0.0
    skipped_as_known: int = 0  # a slow target's cases that had what a known fault needs
    reducing: bool = False  # its new faults are reduced field by field (a slow candidate), not shrunk


def run_slice(job: Slice, capture: OutputCapture, ahead: WriteAhead,
              flush: Callable[[Counts, int], None]) -> SliceResult:
    """Run one slice of a search; write a report for each new fault (see the module docstring)."""
    spec = job.search
    if spec.isa and native_level() != spec.isa:  # never count a case under a level it did not run at
        return SliceResult(Counts(), 0, 0.0, [], error=f"this worker runs at instruction-set level {native_level()}, "
                                                       f"not {spec.isa}: the caps did not take effect")
    candidate = _loaded(spec.candidate)
    prop = PROPERTIES[spec.prop]
    counts: Counts = Counts()
    failing: dict[str, CheckFailure] = {}
    clock = _SliceClock()
    per_shape = cases_per_shape(candidate) if not prop.torch_only else 1
    # isolated cases run in one warm forked child, a new one only after a crash or a hang
    server = ForkServer(lambda request: _essentials(prop.run(candidate, request[0], spec.candidate, request[1])))
    started, cpu_started = time.monotonic(), _cpu_seconds()
    database = open_database(spec.database)
    if database is not None:
        database = SearchDatabase(database, search_key(spec.prop, spec.mode, spec.candidate, spec.space, spec.isa))
    phases = [p for p in Phase if p is not Phase.explain and (job.reuse or p is not Phase.reuse)]
    known_needs = dict(job.needs)

    def has_known_needs(case: Case) -> bool:
        """Whether ``case`` has every feature some known fault of the search needs (measured, not none)."""
        have = features(case)
        return any(needs and set(needs) <= have for listed in known_needs.values() for needs in listed)

    def known(signature: str, case: Case) -> bool:
        """A failure of a fault found before: its signature, and what that fault needs (:mod:`.needs`)."""
        return signature in job.known and is_known(case, known_needs.get(signature, ()))

    probes = FaultProbes(job, candidate, prop, capture, ahead, known)

    def written(fault: CheckFailure, shrink: str) -> Finding:
        """The fault's report, with what it needs and what it follows from (the report's diagnosis
        runs the candidate too: its case is written ahead again first)."""
        needed, source = probes.needs(fault), probes.follows(fault)
        probes.probing(fault.case, spec.prop, fault.details)
        return _write(fault, spec, shrink, needed, source)

    def reducing() -> bool:
        """Whether a new fault is reduced field by field instead of shrunk by Hypothesis: a slow
        candidate under a time budget (:mod:`.slow`), known to be so or measured so by this slice."""
        return job.deadline is not None and (job.slow or is_slow(clock.checked_seconds, clock.checked))

    def count(case: Case, verdict: str, reason: str | None = None, began: float | None = None) -> None:
        counts[count_key(spec.prop, spec.mode, case, verdict, reason, spec.isa)] += 1
        if began is not None:
            clock.checked += 1
            clock.checked_seconds += time.monotonic() - began
        now = time.monotonic()
        if now - clock.flushed > 1.0:  # the parent's progress line, and what a dead worker had done
            flush(Counts(counts), clock.generated)
            counts.clear()
            clock.generated, clock.flushed = 0, now

    def check_one(case: Case, details: dict[str, Any]) -> tuple[str, float | None]:
        """Check one case; count it; raise its new fault. Its verdict and its score for ``target``."""
        in_flight = {"candidate": spec.candidate, "property": spec.prop, "case": case.to_dict(), "details": details}
        ahead.write(in_flight)
        capture.reset()
        if not failing:
            clock.generated += 1
        failure: CheckFailure | None = None
        essentials: tuple[str | None, float | None] | None = None
        began = time.monotonic()
        if job.isolate and can_fork():
            limit = min(spec.timeout, job.hang_limit * clock.limit_scale) if HANG in job.known else spec.timeout
            forked = server.run((case, details), limit)
            if forked.kind == "crashed":
                if crash_signature("crash", f"died ({forked.detail})") in job.known:
                    count(case, "known")
                    return "known", None
                raise _InProcessFault("crash", f"died ({forked.detail})", in_flight, capture.read())
            if forked.kind == "hung":
                if HANG in job.known:
                    count(case, "skipped", "ran past the adaptive limit after this candidate's known hang")
                    if job.escalate and (limit >= spec.timeout or job.never_returned):
                        raise _EndSearch(f"{spec.name}: not searched further: its case ran past {limit:g}s, and "
                                         "the candidate hung in another search (search this one alone, with "
                                         "--properties and --modes, to give each case the whole --timeout)")
                    clock.limit_scale *= 2 if job.escalate else 1
                    return "known", None
                raise _InProcessFault("timeout", f"ran past the {spec.timeout:g}s limit", in_flight, capture.read())
            if forked.kind == "passed":
                essentials = forked.value
        if essentials is None:  # in-process (or again in-process, to get a forked child's failure itself)
            try:
                with time_limit(spec.timeout):
                    essentials = _essentials(prop.run(candidate, case, spec.candidate, details))
            except CheckFailure as raised:
                failure = raised
            except CaseTimeout:
                raise _InProcessFault("timeout", f"ran past the {spec.timeout:g}s limit", in_flight,
                                      capture.read()) from None
        if failure is not None:
            signature = signature_of(failure, probes.twin(details))
            if known(signature, case):
                count(case, "known", began=began)
                return "known", None
            count(case, "failed", began=began)
            fault = as_fault(failure, signature, details, capture.read())
            if not failing:  # how this slice's faults are shrunk is decided once, here
                clock.first_failure, clock.reducing = time.monotonic(), reducing()
            failing[signature] = fault
            raise fault
        assert essentials is not None
        skipped, score = essentials
        verdict = "passed" if not skipped else "unsupported" if skipped.startswith("unsupported:") else "skipped"
        count(case, verdict, _reason(skipped), began=began)
        clock.slowest = max(clock.slowest, time.monotonic() - began)
        return verdict, score

    @settings(max_examples=-(-job.max_examples // per_shape), database=database, phases=phases, deadline=None,
              verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck), report_multiple_bugs=True)
    @seed(job.seed)
    @given(_strategy(spec, job.refused, small=job.small))
    def search(drawn: Any) -> None:
        if job.deadline is not None and time.time() >= job.deadline:
            raise _Stop("shrinking cut short: the time budget ran out")
        if not failing and _overran(job, started, cpu_started, server):
            raise _Stop
        if failing and clock.reducing:
            raise _Stop(_REDUCE)
        if failing and job.shrink_seconds is not None and time.monotonic() - clock.first_failure > \
                job.shrink_seconds:
            raise _Stop("shrinking cut short: its search's share of the time budget ran out")
        case, details = (drawn[0], {"corruption": drawn[1]}) if prop.invalid else (drawn, {})
        # a slow target: not worth a case (see .slow), but never more skipped than checked, so that a
        # known fault that needs little (more than one step) cannot leave a slice drawing nothing else
        if job.slow and not failing and clock.skipped_as_known <= clock.checked and has_known_needs(case):
            clock.skipped_as_known += 1
            count(case, "skipped", SKIPPED_AS_KNOWN)
            assume(False)
        if spec.isa:  # in the report (its id, and what replay re-creates) and in the case written ahead
            details = {**details, "isa": spec.isa}
        # a candidate whose setup is per shape checks more values on the same shapes (its cases_per_shape),
        # while the slice has time for them
        judged = [check_one(case, details)]
        for number in range(1, per_shape):
            if not failing and _overran(job, started, cpu_started, server):
                break
            judged.append(check_one(case.with_values(number), details))
        assume(any(verdict not in ("skipped", "unsupported") for verdict, _ in judged))
        scores = [score for verdict, score in judged if verdict == "passed" and score is not None]
        if spec.target and scores:
            target(max(scores), label="error / allowance")

    result = SliceResult(counts, 0, 0.0, [])
    try:
        with server:
            _stopped_once(search)
    except _Stop as stop:
        why = stop.args[0] if stop.args else "shrinking cut short: the time budget ran out"
        if why == _REDUCE:  # a slow candidate's new faults, reduced field by field
            _write_all(result, list(failing.values()),
                       lambda failure: written(*probes.reduced(failure, clock.first_failure)))
        else:
            _write_all(result, list(failing.values()), lambda failure: written(failure, why))
    except _InProcessFault as fault:
        result.fault = fault.fault
    except _EndSearch as end:
        result.ended = str(end)
    except Unsatisfiable:
        pass  # every case was skipped: the counts say why
    except Exception as raised:
        found, others = check_failures(raised)
        _write_all(result, found, lambda failure: written(failure, "complete"))
        if others:
            result.error = harness_error(others[0], spec, job.number)
    result.generated, result.slowest = clock.generated, clock.slowest
    result.checked, result.checked_seconds = clock.checked, clock.checked_seconds
    result.packages = packages.of_target()
    return result


def _stopped_once(search: Callable[[], None]) -> None:
    """``search()``, where Hypothesis' final replay of two faults, each stopped by :class:`_Stop`,
    raises them as a group: the slice stops once, for the first one's reason."""
    try:
        search()
    except BaseExceptionGroup as group:
        stops, others = group.split(_Stop)
        if stops is None or others is not None:
            raise
        first: BaseException = stops
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


def _loaded(name: str) -> Candidate:
    """The candidate ``name``; one that says it does not survive a fork (``fork_safe = False``)
    makes this worker run every case, probe and confirmation in-process from then on."""
    candidate = load_candidate(name)
    if getattr(candidate, "fork_safe", True) is False:
        forbid_forking(f"the candidate {name} cannot run in a forked child (fork_safe = False)")
    return candidate


def cases_per_shape(candidate: Candidate) -> int:
    """How many draws of values (weights, inputs, states) a search checks on each drawn
    configuration and shapes: the candidate's ``cases_per_shape`` (a target whose setup is per
    shape, an export or a compilation, sets it to spread that cost), else 1."""
    number = getattr(candidate, "cases_per_shape", 1)
    return number if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= 1000 else 1


def harness_error(error: BaseException, spec: SearchSpec, number: int) -> str:
    """One line for the run's summary: what raised, and where its whole traceback was saved
    (``REPORTS/.errors/``, beside the reports; a file that cannot be written leaves the line alone)."""
    line = f"{type(error).__name__}: {error}".splitlines()[0]
    path = Path(spec.reports) / ".errors" / f"{spec.prop.replace(':', '-')}-{spec.mode}-slice{number}.txt"
    try:
        path.parent.mkdir(exist_ok=True)
        write_whole(path, "".join(traceback.format_exception(error)))
    except OSError:
        return line
    return f"{line} (traceback: {path})"


def _write_all(result: SliceResult, failures: list[CheckFailure], write: Callable[[CheckFailure], Finding]) -> None:
    """``write`` each failure's report into the result; one that cannot be written is the slice's
    error (said in the run's summary), not the death of its worker."""
    for failure in failures:
        try:
            result.findings.append(write(failure))
        except Exception as error:
            result.error = f"writing the report of a failure failed: {type(error).__name__}: {error}"


def _essentials(outcome: Outcome) -> tuple[str | None, float | None]:
    """What a slice needs of an Outcome (small enough to come back from a forked child): why it
    was not compared, and its worst error relative to its allowance."""
    ratios = [outcome.errors[k] / outcome.allowed[k] for k in outcome.errors
              if outcome.allowed.get(k)]
    return outcome.skipped, (min(max(ratios), 1e6) if ratios else None)


def _write(failure: CheckFailure, spec: SearchSpec, shrink: str, needs: tuple[str, ...] | None = None,
           follows: str | None = None) -> Finding:
    signature = getattr(failure, "signature", None)
    if signature is None:
        signature = fault_signature(failure.mismatch)
    folder, new = write_report(failure, Path(spec.reports), origin="fuzz-birnn run",
                               extra={"signature": signature, "shrink": shrink,
                                      "needs": None if needs is None else list(needs), "follows": follows},
                               output=getattr(failure, "output", ""))
    case = failure.case.to_dict()
    try:
        written = read_json(folder / "case.json")
    except ReportRefused:  # a report from elsewhere in the folder: its finding stands without one
        written = {}
    return Finding(signature, spec.prop, spec.mode, str(folder), new, str(failure).splitlines()[0], shrink,
                   case_cost(case["config"], case["inputs"])["elements"], written.get("diagnosis"),
                   spec.isa or NATIVE, last_frame(written.get("traceback")), needs, follows)


def _cpu_seconds(server: ForkServer | None = None) -> float:
    """CPU time of this worker, of the forked children it has waited for, and of ``server``'s live child."""
    return sum(os.times()[:4]) + (server.cpu_seconds if server is not None else 0.0)


def _overran(job: Slice, started: float, cpu_started: float, server: ForkServer) -> bool:
    """Whether a slice has had its time. Under a time budget, its cap on the wall clock (every
    search must get its share of the budget). Without one, its cap in CPU time, which load does not
    change, so ``--seed`` repeats a run on a busy machine, with :data:`WALL_BACKSTOP` times the cap
    on the wall clock for a candidate that waits rather than computes."""
    wall = time.monotonic() - started
    if job.deadline is not None:
        return wall > job.cap_seconds
    return _cpu_seconds(server) - cpu_started > job.cap_seconds or wall > WALL_BACKSTOP * job.cap_seconds


def _reduce_or_say_why(worker_id: int, job: Reduce, capture: OutputCapture, ahead: WriteAhead) -> ReductionEnded:
    try:
        return ReductionEnded(worker_id, run_reduction(job, capture, ahead))
    except Exception as error:
        return ReductionEnded(worker_id, None, f"{type(error).__name__}: {error}")


def run_reduction(job: Reduce, capture: OutputCapture, ahead: WriteAhead) -> Finding:
    """Shrink a crashing or hanging case in forked children (:mod:`fuzz_birnn.campaign.reducer`), then
    write its report with the smallest case that still fails the same way."""

    spec = job.search
    prop = PROPERTIES[spec.prop]
    original = Case.from_dict(job.in_flight["case"])
    details = job.in_flight.get("details", {})
    if not can_fork():
        return write_crash_finding(job, job.in_flight, f"not shrunk: {why_not_forked()}", job.output)
    candidate = _loaded(spec.candidate)
    if not can_fork():
        return write_crash_finding(job, job.in_flight, f"not shrunk: {why_not_forked()}", job.output)
    outputs: dict[Case, str] = {original: job.output}

    def reproduces(case: Case) -> bool:
        ahead.write({**job.in_flight, "case": case.to_dict(), "reducing": True})
        capture.reset()
        ended = run_forked(lambda: _essentials(prop.run(candidate, case, spec.candidate, details)),
                           job.attempt_limit)
        same = ended.kind == "hung" if job.kind == "timeout" else (
            ended.kind == "crashed" and f"died ({ended.detail})" == job.how)
        if same:
            outputs[case] = capture.read()
        return same

    budget_end = time.monotonic() + job.budget_seconds
    if job.deadline is not None:
        budget_end = min(budget_end, time.monotonic() + max(0.0, job.deadline - time.time()))
    reduction = reduce_case(original, reproduces, within=within_space(spec.space), deadline=budget_end)
    how = "complete" if reduction.complete else "shrinking cut short: its budget ran out"
    if reduction.case == original and time.monotonic() < budget_end and not reproduces(original):
        # nothing smaller fails that way, and neither does the case itself, alone in a fresh child
        how = (f"not reproduced: alone in a fresh child the case did not {'hang' if job.kind == 'timeout' else 'crash'}"
               " again (the fault may come from an earlier case in the same process, or be intermittent)")
    shrink = f"{how} ({reduction.attempts} attempts in forked children, {reduction.seconds:.1f}s)"
    in_flight = {**job.in_flight, "case": reduction.case.to_dict()}
    return write_crash_finding(job, in_flight, shrink, outputs[reduction.case])


def _strategy(spec: SearchSpec, refused: tuple[tuple[str, str], ...] = (), *,
              small: bool = False) -> SearchStrategy[Any]:
    """What a slice draws: its search's space, less what the candidate refuses (:mod:`.steering`),
    its small corner where ``small`` (a slow candidate's first slices: :mod:`.slow`)."""
    space = without(spec.space, refused)
    space = small_space(space) if small else space
    return (invalid_calls if PROPERTIES[spec.prop].invalid else cases)(modes=[spec.mode], **space.arguments())


def _reason(skipped: str | None) -> str | None:
    """A skip reason without case-specific numbers, so that reasons can be counted."""
    if skipped is None:
        return None
    return "values beyond the dtype's range" if "range" in skipped else skipped
