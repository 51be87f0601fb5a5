"""``DIR/run.json``: what a run covered and what it found, for machines; the console summary is
printed from the same record, so the two always say the same.

Schema (``"schema": "fuzz-birnn-run"``, ``"schema_version": 1``); fields are only ever added
within a version:
``environment``
    ``fuzz_birnn``, ``torch``, ``hypothesis``, ``python``, ``platform``, ``devices`` (those
    this machine has), ``no_gpu_note``, and ``target_packages``: the packages the candidate brought
    into the workers, with their versions (:mod:`fuzz_birnn.core.packages`; empty for torch alone).
``options``
    ``candidate`` (``null``: torch itself), ``properties``, ``modes``, ``seed``, ``max_examples``,
    ``time_budget`` (seconds or ``null``), ``timeout``, ``workers``, ``database``, ``shard``
    (``"K/N"`` or ``null``), ``reports``, ``cluster`` (the Ray address, or ``null``), ``merged``
    (the folders ``fuzz-birnn merge`` made it from, or ``null``), ``isa`` (the instruction-set
    levels searched: ``native`` and the capped ones).
``started`` (UTC, ISO 8601), ``seconds``, ``interrupted``.
``cases``
    ``total``; ``by_search``: one entry per (``property``, ``mode``, ``isa``) search this run owned, with
    ``cases``, ``passed``, ``failed`` (failing calls, shrinking included), ``known`` (a fault the
    search had found already, seen again), ``unsupported``, ``not_compared`` and ``seconds`` (its
    worker time); ``by_dimension``: cases per value of each of :data:`DIMENSIONS` (property, mode,
    dtype, form, device, backend, isa, layers, bias, layout, h0, proj): what was actually checked;
    ``isa`` is the instruction-set level the case ran at (``native``: the machine's own).
``not_compared``
    reason -> cases (a candidate's ``unsupported: ...`` refusals included).
``support``
    dimension (mode, dtype, form, device, backend, isa, layers, bias, layout, h0, proj) -> value ->
    ``checked`` (compared, passing or not), ``unsupported`` (refused by the candidate), ``failing``:
    what the candidate takes and does right, measured in this run.
``findings``
    one per distinct fault (:mod:`fuzz_birnn.campaign.signature`): ``signature``; ``smallest`` (the report
    whose case is smallest, its ``summary``, how its ``shrink`` ended, its ``diagnosis``: which
    catalogued mistake reproduces it, or why none is named, ``null`` where values were not
    compared, and the ``mistakes`` named); ``reports`` (every
    report id of this fault, one per search that found it); ``seen_in`` (``property``, ``mode``,
    ``report``, ``new``: false when that report existed before this run); ``also`` (the fault's
    other signatures: findings whose smallest cases are diagnosed as the same mistake are one);
    ``needs`` (the features the smallest case cannot do without, :mod:`fuzz_birnn.campaign.needs`:
    two faults of one signature that need different features are two findings; ``null``: not
    measured, as for a crash); ``follows`` (a finding of a relation, autocast or gradients: the
    signature of the agreement fault its case, or a relation's case family, shows; where the run
    found that fault, this finding is part of it).
``nodes``
    the machines the run's workers ran on (one for a run on this machine; every node of a Ray
    cluster with ``--cluster``): ``id``, ``hostname``, ``devices``, ``isa`` (the instruction-set
    level torch's own kernels use there), ``resources`` (what the node advertises to Ray),
    ``workers``, ``cases`` (checked there), ``searches`` (that ran a slice or a reduction there),
    ``lost`` (whether it left the run before the end).
``errors``, ``notes``
    searches that stopped with an error of the harness; anything else the reader should know.
``exit_code``
    0 nothing found, 1 findings, 2 an error and no findings, 130 interrupted.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import platform
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import hypothesis
import torch

from fuzz_birnn import __version__
from fuzz_birnn.core.case import Case
from fuzz_birnn.core.devices import available_devices, cuda_without_gpu
from fuzz_birnn.core.isa import NATIVE
from fuzz_birnn.core.words import shortened
from fuzz_birnn.output.files import write_whole

__all__ = ["DIMENSIONS", "RUN_FILE", "SCHEMA_VERSION", "CaseCounts", "CountKey", "Finding", "FindingGroup",
           "Node", "RunOptions", "RunRecord", "SearchCount", "SearchTime", "Seen", "Smallest", "Support",
           "build_record", "by_cause", "count_key", "onto_agreement", "print_summary", "root_of", "telling_support",
           "write_record"]

RUN_FILE = "run.json"
SCHEMA_VERSION = 1


class CountKey(NamedTuple):
    """What a checked case is counted under: its search, its dimensions, and what came of it."""

    property: str
    mode: str
    dtype: str
    form: str
    device: str
    backend: str
    #: the instruction-set level of the worker (``native``: the machine's own; see :mod:`fuzz_birnn.core.isa`)
    isa: str
    layers: str
    bias: str
    layout: str
    h0: str
    proj: str
    #: ``passed``, ``failed`` (a failing call, shrinking included), ``known`` (a fault the search had
    #: already found, seen again), ``unsupported`` (the candidate refused it; ``reason`` says what) or
    #: ``skipped`` (not compared; ``reason`` says why)
    verdict: str
    reason: str | None


#: What cases are counted by (every field of :class:`CountKey` but the verdict and its reason).
DIMENSIONS: tuple[str, ...] = CountKey._fields[:-2]
#: The dimensions printed in the console's coverage lines (all are in run.json).
SHOWN = ("property", "mode", "dtype", "form", "device", "backend", "isa")


def count_key(prop: str, mode: str, case: Case, verdict: str, reason: str | None = None,
              isa: str | None = None) -> CountKey:
    """The key a case of search ``(prop, mode)`` at level ``isa`` (``None``: the machine's own) is counted under."""
    c, i = case.config, case.inputs
    return CountKey(prop, mode, i.dtype, i.form, i.device, "oneDNN on" if i.onednn else "oneDNN off", isa or NATIVE,
                    f"{c.num_layers} layer(s)", "bias" if c.bias else "no bias",
                    "batch_first" if c.batch_first else "time-major",
                    "h0 given" if i.initial_state else "h0 default", "proj" if c.proj_size else "no proj",
                    verdict, reason)


@dataclass(frozen=True)
class Finding:
    """A report written for one fault of one search (the engine's; :func:`build_record` groups them)."""

    signature: str
    prop: str
    mode: str
    folder: str
    new: bool
    summary: str
    shrink: str
    cost: int
    #: which catalogued mistake the result is (:class:`fuzz_birnn.diagnosis.Diagnosis` as a dict)
    diagnosis: dict[str, Any] | None = None
    #: the instruction-set level of the search that found it
    isa: str = NATIVE
    #: where the candidate raised, when it did (:func:`last_frame` of the report's traceback)
    raised_at: str | None = None
    #: what the fault needs in order to show (:mod:`fuzz_birnn.campaign.needs`); ``None``: not measured
    needs: tuple[str, ...] | None = None
    #: a fault of another property (a relation, autocast, gradients): the signature of the agreement
    #: fault its case (a relation's: its case family) shows
    follows: str | None = None


@dataclass(frozen=True)
class SearchTime:
    """A search of the run and the worker time it had."""

    prop: str
    mode: str
    seconds: float
    isa: str = NATIVE


@dataclass(frozen=True)
class RunOptions:
    """What the run was asked to do, as it ran (the seed it chose, the workers it started)."""

    candidate: str | None
    properties: list[str]
    modes: list[str]
    seed: int
    max_examples: int
    time_budget: float | None
    timeout: float
    workers: int
    database: str
    shard: str | None
    reports: str
    cluster: str | None = None
    merged: list[str] | None = None
    isa: list[str] | None = None


@dataclass(frozen=True)
class SearchCount:
    property: str
    mode: str
    cases: int
    passed: int
    failed: int
    known: int
    unsupported: int
    not_compared: int
    seconds: float
    isa: str = NATIVE


@dataclass(frozen=True)
class CaseCounts:
    total: int
    by_search: list[SearchCount]
    #: dimension -> value -> cases
    by_dimension: dict[str, dict[str, int]]


@dataclass(frozen=True)
class Support:
    #: compared (passing or not)
    checked: int
    #: refused by the candidate
    unsupported: int
    failing: int


@dataclass(frozen=True)
class Smallest:
    report: str
    summary: str
    shrink: str
    diagnosis: str | None
    mistakes: list[str]
    raised_at: str | None = None

    @property
    def complete(self) -> bool:
        """Whether its shrinking ran to its end: a finding shows the smallest of its reports that did,
        and a cut-short one only where none did (a cut-short case may be small in its sizes and
        still carry flags the fault does not need)."""
        return complete(self.shrink)


@dataclass(frozen=True)
class Seen:
    property: str
    mode: str
    report: str
    #: false when the report existed before this run
    new: bool
    isa: str = NATIVE


@dataclass(frozen=True)
class FindingGroup:
    """One distinct fault: every report of it, and the smallest."""

    signature: str
    smallest: Smallest
    reports: list[str]
    seen_in: list[Seen]
    #: the other signatures of this fault: findings whose smallest cases the diagnosis names as
    #: one and the same mistake (a wrong output and a wrong final state of one slip) are one finding
    also: list[str] = dataclasses.field(default_factory=list)
    #: what the smallest case needs in order to show the fault (``None``: not measured)
    needs: list[str] | None = None
    #: a fault of another property: the agreement fault it follows from (merged into it where the run has it)
    follows: str | None = None


@dataclass(frozen=True)
class Node:
    """A machine the run's workers ran on, and what they did there."""

    id: str
    hostname: str
    devices: list[str]
    isa: str
    resources: dict[str, float]
    workers: int
    cases: int = 0
    searches: list[str] = dataclasses.field(default_factory=list)
    lost: bool = False


@dataclass(frozen=True)
class RunRecord:
    """What ``run.json`` holds (the module docstring has the schema), typed."""

    environment: dict[str, Any]
    options: RunOptions
    started: str
    seconds: float
    interrupted: bool
    cases: CaseCounts
    not_compared: dict[str, int]
    support: dict[str, dict[str, Support]]
    findings: list[FindingGroup]
    errors: list[str]
    notes: list[str]
    exit_code: int
    nodes: list[Node] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"schema": "fuzz-birnn-run", "schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}


def build_record(*, searches: Sequence[SearchTime], counts: Mapping[CountKey, int], findings: Sequence[Finding],
                 errors: Sequence[str], notes: Sequence[str], seconds: float, options: RunOptions,
                 started: datetime.datetime, interrupted: bool, nodes: Sequence[Node] = (),
                 packages: Mapping[str, str] | None = None) -> RunRecord:
    """The record of a run (finished or interrupted) from what its campaign counted and found;
    ``packages``: the target's, with their versions, as its workers loaded them."""
    by_search = []
    for search in searches:
        verdicts: collections.Counter[str] = collections.Counter()
        for key, n in counts.items():
            if (key.property, key.mode, key.isa) == (search.prop, search.mode, search.isa):
                verdicts[key.verdict] += n
        by_search.append(SearchCount(search.prop, search.mode, sum(verdicts.values()), verdicts["passed"],
                                     verdicts["failed"], verdicts["known"], verdicts["unsupported"],
                                     verdicts["skipped"], round(search.seconds, 3), search.isa))
    by_dimension: dict[str, collections.Counter[str]] = {name: collections.Counter() for name in DIMENSIONS}
    not_compared: collections.Counter[str] = collections.Counter()
    support: dict[str, dict[str, collections.Counter[str]]] = {
        name: collections.defaultdict(collections.Counter) for name in DIMENSIONS[1:]}
    for key, n in counts.items():
        for name in DIMENSIONS:
            value = getattr(key, name)
            by_dimension[name][value] += n
            if name != "property":
                column = {"passed": "checked", "failed": "failing", "known": "failing"}.get(key.verdict, key.verdict)
                support[name][value][column] += n
        if key.verdict in ("skipped", "unsupported"):
            not_compared[str(key.reason)] += n
    grouped = _group(findings)
    return RunRecord(
        environment={"fuzz_birnn": __version__, "torch": torch.__version__, "hypothesis": hypothesis.__version__,
                     "python": platform.python_version(), "platform": platform.platform(),
                     "devices": available_devices(), "no_gpu_note": cuda_without_gpu(),
                     "target_packages": dict(sorted((packages or {}).items()))},
        options=options,
        started=started.isoformat(timespec="seconds"), seconds=round(seconds, 3), interrupted=interrupted,
        cases=CaseCounts(sum(counts.values()), by_search,
                         {name: dict(sorted(c.items())) for name, c in by_dimension.items()}),
        not_compared=dict(not_compared.most_common()),
        support={name: {value: Support(c["checked"] + c["failing"], c["unsupported"], c["failing"])
                        for value, c in sorted(rows.items())} for name, rows in support.items()},
        findings=grouped, errors=list(errors), notes=list(notes),
        exit_code=130 if interrupted else 1 if grouped else 2 if errors else 0,
        nodes=list(nodes),
    )


def _group(findings: Sequence[Finding]) -> list[FindingGroup]:
    """One entry per fault, in the order faults were first found; the smallest case first. A
    fault is a signature (two faults of one signature that one search told apart by what they
    need stay two: :func:`by_cause`), or several whose smallest cases are diagnosed as one mistake."""
    grouped = []
    costs = {}
    for members in by_cause(findings, lambda f: (f.signature, f.needs, {(f.prop, f.mode, f.isa)},
                                                 root_of(f.signature, f.follows, {f.prop}))):
        smallest = min(members, key=lambda f: (not complete(f.shrink), f.cost, f.folder))
        diagnosis = smallest.diagnosis or {}
        costs[Path(smallest.folder).name] = smallest.cost
        grouped.append(FindingGroup(
            smallest.signature,
            Smallest(Path(smallest.folder).name, smallest.summary, smallest.shrink, diagnosis.get("summary"),
                     list(diagnosis.get("names", [])), smallest.raised_at),
            sorted({Path(f.folder).name for f in members}),
            [Seen(f.prop, f.mode, Path(f.folder).name, f.new, f.isa) for f in members],
            needs=None if smallest.needs is None else list(smallest.needs),
            follows=next((f.follows for f in members if f.follows), None),
        ))
    return one_per_mistake(onto_agreement(grouped), lambda smallest: (not smallest.complete, costs[smallest.report]))


def onto_agreement(groups: Sequence[FindingGroup]) -> list[FindingGroup]:
    """Each finding of another property (a relation, autocast, gradients) that follows from an
    agreement finding of the run (its case, or a relation's case family, shows that fault:
    :func:`fuzz_birnn.campaign.needs.family`) made part of it: its signature in ``also``, its
    reports and searches added; the agreement finding's smallest case stays."""
    agreement: dict[str, FindingGroup] = {}
    for group in groups:
        if any(seen.property == "agreement" for seen in group.seen_in):
            agreement.setdefault(group.signature, group)
    absorbed: dict[int, list[FindingGroup]] = {}
    kept = []
    for group in groups:
        home = agreement.get(group.follows or "")
        if home is None or home is group:
            kept.append(group)
        else:
            absorbed.setdefault(id(home), []).append(group)
    result = []
    for group in kept:
        for other in absorbed.get(id(group), []):
            group = dataclasses.replace(
                group, reports=sorted({*group.reports, *other.reports}), seen_in=[*group.seen_in, *other.seen_in],
                also=[s for s in dict.fromkeys([*group.also, other.signature, *other.also]) if s != group.signature])
        result.append(group)
    return result


_T = TypeVar("_T")


def by_cause(items: Iterable[_T],
             key: Callable[[_T], tuple[str, Sequence[str] | None, set[Any], str | None]]) -> list[list[_T]]:
    """``items`` (findings, or groups of them) in causes, in the order first seen; ``key(item)`` is
    its signature, its needs, the searches it was found in and its :func:`root_of`. Items of one
    signature, the same needs and no other root are one cause; then causes of one signature are
    joined where no search found them apart (a fault may need other features in another layer
    type) and their roots agree, those whose needs overlap most first. Two faults of one
    signature that one search found apart stay apart, and so do two that follow different
    agreement faults (two causes that happen to share their words)."""
    causes: list[_Cause[_T]] = []
    for item in items:
        signature, needs, searches, root = key(item)
        mine = None if needs is None else tuple(needs)
        home = next((c for c in causes if (c.signature, c.needs) == (signature, mine) and c.open_to(searches, mine)
                     and c.rooted_with(root)), None)
        if home is None:
            home = _Cause(signature, mine)
            causes.append(home)
        home.add(item, searches, mine, root)
    joined: list[_Cause[_T]] = []
    for cause in causes:
        into = [c for c in joined if c.signature == cause.signature and c.compatible(cause)]
        home = max(into, key=lambda c: len(set(c.needs or ()) & set(cause.needs or ())), default=None)
        if home is None:
            joined.append(cause)
        else:
            home.absorb(cause)
    return [cause.items for cause in joined]


def root_of(signature: str, follows: str | None, properties: Iterable[str]) -> str | None:
    """The agreement fault a finding comes from, as far as the run measured it: its own signature
    for an agreement finding, the one it follows for another, ``None`` where nothing says (its
    case showed no agreement fault, or there was no time to check)."""
    return follows or (signature if "agreement" in set(properties) else None)


def _apart(one: tuple[str, ...] | None, other: tuple[str, ...] | None) -> bool:
    """Whether one search's two faults of one signature were told apart by these needs: neither
    holds the other (a case with what one fault needs was taken for it, so a second fault found
    in the same search lacks some of it; two slices of one search that each found the same fault
    first may measure a need more or less). Unmeasured needs tell nothing apart."""
    return one is not None and other is not None and not (set(one) <= set(other) or set(other) <= set(one))


@dataclass
class _Cause(Generic[_T]):
    """Items taken for one fault, and the needs each of their searches saw it with."""

    signature: str
    needs: tuple[str, ...] | None
    by_search: dict[Any, set[tuple[str, ...] | None]] = dataclasses.field(default_factory=dict)
    items: list[_T] = dataclasses.field(default_factory=list)

    #: the agreement faults its items come from (:func:`root_of`), where known
    roots: set[str] = dataclasses.field(default_factory=set)

    def open_to(self, searches: set[Any], needs: tuple[str, ...] | None) -> bool:
        return not any(_apart(seen, needs) for search in searches for seen in self.by_search.get(search, ()))

    def rooted_with(self, root: str | None) -> bool:
        return root is None or not self.roots or root in self.roots

    def compatible(self, other: _Cause[_T]) -> bool:
        if self.roots and other.roots and self.roots.isdisjoint(other.roots):
            return False
        return all(not _apart(mine, theirs) for search, seen in other.by_search.items() for theirs in seen
                   for mine in self.by_search.get(search, ()))

    def add(self, item: _T, searches: set[Any], needs: tuple[str, ...] | None, root: str | None) -> None:
        for search in searches:
            self.by_search.setdefault(search, set()).add(needs)
        if root is not None:
            self.roots.add(root)
        self.items.append(item)

    def absorb(self, other: _Cause[_T]) -> None:
        for search, seen in other.by_search.items():
            self.by_search.setdefault(search, set()).update(seen)
        self.roots |= other.roots
        self.items.extend(other.items)


def complete(shrink: str) -> bool:
    """Whether a report's shrinking (its ``shrink``) ran to its end."""
    return shrink.startswith("complete")


def last_frame(traceback: str | None) -> str | None:
    """The innermost ``File "...", line N, in f`` of a report's traceback, with its code, as one line."""
    if not traceback:
        return None
    lines = traceback.splitlines()
    where = [k for k, line in enumerate(lines) if line.lstrip().startswith('File "')]
    if not where:
        return None
    frame = lines[where[-1]].strip()
    code = lines[where[-1] + 1].strip() if where[-1] + 1 < len(lines) and lines[where[-1] + 1].startswith("    ") \
        else ""
    return frame + (f": {code}" if code else "")


def heading(finding: FindingGroup) -> str:
    """What a reader sees for a finding: its signature, or, where the signature stands ``#`` for the
    numbers its reports differ in, the smallest report's own message (without its case)."""
    if "#" not in finding.signature:
        return finding.signature
    message = finding.smallest.summary.splitlines()[0] if finding.smallest.summary else finding.signature
    return shortened(message.rsplit(" [", 1)[0], 160)


def one_per_mistake(groups: Sequence[FindingGroup], cost: Callable[[Smallest], Any]) -> list[FindingGroup]:
    """Groups whose smallest cases the diagnosis names as the same mistake (or mistakes) made
    one: the first one's signature, the others' in ``also``, the smallest (by ``cost``) of their
    smallest cases, every report. Groups with no name, or other names, stay apart: two causes
    are never merged on a guess."""
    merged: dict[Any, list[FindingGroup]] = {}
    for number, group in enumerate(groups):
        key = tuple(group.smallest.mistakes) or number
        merged.setdefault(key, []).append(group)
    result = []
    for members in merged.values():
        first = members[0]
        if len(members) == 1:
            result.append(first)
            continue
        also = [s for m in members for s in (m.signature, *m.also) if s != first.signature]
        smallest = min(members, key=lambda m: cost(m.smallest))
        result.append(FindingGroup(first.signature, smallest.smallest, sorted({r for m in members for r in m.reports}),
                                   [s for m in members for s in m.seen_in], list(dict.fromkeys(also)),
                                   smallest.needs, first.follows))
    return result


#: How to leave a dimension's value out of a run: the flag, or ``None`` where there is none.
_NARROWING = {"mode": "--modes", "dtype": "--dtypes", "form": "--no-packed / --no-unbatched", "device": "--devices",
              "backend": "--no-onednn-off", "layout": "--no-batch-first", "h0": "--no-initial-state",
              "proj": "--no-proj"}


def narrowing_hints(record: RunRecord) -> list[str]:
    """A line for each value of a dimension on which every compared case failed while others
    pass: most often an input the candidate does not take, which buries its other faults among
    reports of that one; the line says how to leave it out, or to refuse it as ``Unsupported``."""
    lines = []
    for name, rows in record.support.items():
        passing = [value for value, v in rows.items() if v.checked > v.failing]
        for value, v in rows.items():
            if v.checked and v.failing == v.checked and passing and name in _NARROWING:
                lines.append(f"every compared case with {name} {value} failed ({v.failing}), while "
                             f"{', '.join(passing[:3])} pass: if the candidate does not take it, leave it out "
                             f"({_NARROWING[name]}) or raise fuzz_birnn.Unsupported for it, and its other "
                             "faults stand out")
    return lines


def telling_support(record: RunRecord) -> list[str]:
    """The dimensions whose support rows say something at a glance: a value the candidate refused
    on every case, or failed on every compared case, while another value of that dimension was
    compared and passed at least once (a candidate wrong everywhere, or refusing everything, has
    no value that stands apart). The whole table is always in ``run.json``."""
    telling = []
    for name, rows in record.support.items():
        passing = any(v.checked > v.failing for v in rows.values())
        apart = any((v.unsupported and not v.checked) or (v.checked and v.failing == v.checked)
                    for v in rows.values())
        if passing and apart:
            telling.append(name)
    return telling


def _compared_text(cases: CaseCounts) -> str:
    """``: 812 compared, 188 refused by the candidate, 3 not compared``, where not all were compared."""
    refused = sum(search.unsupported for search in cases.by_search)
    other = sum(search.not_compared for search in cases.by_search)
    if not refused and not other:
        return ""
    return (f": {cases.total - refused - other} compared"
            + (f", {refused} refused by the candidate" if refused else "")
            + (f", {other} not compared" if other else ""))


def packages_text(found: Mapping[str, str]) -> str:
    """``{"onnx": "1.19.0", ...}`` as ``onnx 1.19.0, ...``."""
    return ", ".join(f"{name} {version}" for name, version in found.items())


def write_record(directory: Path, record: RunRecord) -> Path:
    """Write ``run.json`` whole or not at all (a temporary file renamed into place)."""
    return write_whole(directory / RUN_FILE, json.dumps(record.to_json(), indent=2) + "\n")


def print_summary(record: RunRecord, reports: Path) -> None:
    """The console summary, from the record."""
    cases = record.cases
    rate = cases.total / record.seconds if record.seconds else 0.0
    print(f"\n{cases.total} cases checked (generation and shrinking) in {record.seconds:.1f}s ({rate:.1f}/s)"
          + _compared_text(cases))
    print("coverage:")
    for name in SHOWN:
        counts = cases.by_dimension.get(name, {})
        print(f"  {name:<9}" + "  ".join(f"{value} {n}" for value, n in counts.items()))
    if record.environment.get("no_gpu_note"):
        print(f"  note: {record.environment['no_gpu_note']}")
    if record.environment.get("target_packages"):
        print(f"  target's packages: {packages_text(record.environment['target_packages'])}")
    idle = [f"{s.property} ({s.mode})" + ("" if s.isa == NATIVE else f" at {s.isa}")
            for s in cases.by_search if not s.cases]
    if idle:
        print(f"  searches that checked no case: {', '.join(idle)}")
    if record.not_compared:
        print(f"not compared ({sum(record.not_compared.values())}):")
        for reason, n in record.not_compared.items():
            print(f"  {n:>5}  {reason}")
    telling = telling_support(record)
    if telling:
        print("support (cases checked / unsupported / failing), where a value stands apart from the others:")
        for name in telling:
            print(f"  {name:<11}" + "  ".join(f"{value} {v.checked}/{v.unsupported}/{v.failing}"
                                             for value, v in record.support[name].items()))
    for note in record.notes:
        print(f"note: {note}")
    for error in record.errors:
        print(f"\n{error}", flush=True)
    findings = record.findings
    if not findings:
        print("\nno failures" if not record.errors else "\nno failures found, but a search stopped with an error")
    else:
        total = sum(len(f.reports) for f in findings)
        print(f"\n{len(findings)} distinct fault(s), {total} report(s):")
        for number, finding in enumerate(findings, 1):
            smallest = finding.smallest
            print(f"  {number}. {heading(finding)}")
            for signature in finding.also:
                print(f"     also seen as: {signature}")
            print(f"     smallest: {reports / smallest.report}"
                  + ("" if any(s.new for s in finding.seen_in) else " (already reported)"))
            print(f"       {smallest.summary}")
            if finding.needs:
                print(f"     shows only with: {', '.join(finding.needs)}")
            if smallest.raised_at:
                print(f"     raised at: {smallest.raised_at}")
            if smallest.diagnosis:
                print(f"     diagnosis: {smallest.diagnosis}")
            if not smallest.complete:
                print(f"       ({smallest.shrink})")
            places = collections.defaultdict(list)
            for seen in finding.seen_in:
                places[seen.property].append(seen.mode + ("" if seen.isa == NATIVE else f" at {seen.isa}"))
            print("     seen in: " + "; ".join(f"{prop} ({', '.join(dict.fromkeys(modes))})"
                                           for prop, modes in places.items()))
    for line in narrowing_hints(record):
        print(f"hint: {line}")
    print(f"run record: {reports / RUN_FILE}")
