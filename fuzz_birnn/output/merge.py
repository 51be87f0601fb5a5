"""``fuzz-birnn merge DIR... --out DIR``: the shards of one campaign as one run.

A CI matrix runs ``fuzz-birnn run --shard K/N`` on N machines, each into its own reports folder.
Merging them gives one folder as one run would have written it: every report folder copied whole
(a report already there, the same case found twice, is kept once), one ``run.json`` whose counts
are the shards' sums, whose findings are grouped by signature across shards (the smallest case of
a fault, wherever it was found, first), whose ``nodes`` list every shard's machines, and whose
``options.merged`` names the folders it came from; ``index.html`` is written from it.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from fuzz_birnn.output.files import staging_folder
from fuzz_birnn.output.run_record import (
    RUN_FILE,
    SCHEMA_VERSION,
    CaseCounts,
    FindingGroup,
    Node,
    RunOptions,
    RunRecord,
    SearchCount,
    Seen,
    Smallest,
    Support,
    by_cause,
    one_per_mistake,
    onto_agreement,
    root_of,
    write_record,
)
from fuzz_birnn.portable.report_files import ReportRefused, case_cost, read_json

__all__ = ["MergeError", "merge_records", "merge_runs", "read_record"]


class MergeError(ValueError):
    """A folder that cannot be merged: one line saying which and why."""


def read_record(folder: Path) -> RunRecord:
    """The run record in ``folder`` (its ``run.json``)."""
    path = folder / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeError(f"{folder}: no {RUN_FILE} here (is it a reports folder of fuzz-birnn run?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MergeError(f"{path}: cannot be read ({error})") from None
    if not isinstance(data, dict) or data.get("schema") != "fuzz-birnn-run":
        raise MergeError(f"{path}: not a run record of fuzz-birnn")
    if not isinstance(data.get("schema_version"), int) or data["schema_version"] > SCHEMA_VERSION:
        raise MergeError(f"{path}: schema version {data.get('schema_version')} is newer than this fuzz-birnn "
                         f"reads ({SCHEMA_VERSION}); merge with the fuzz-birnn that wrote it")
    try:
        return _record(data)
    except (KeyError, TypeError, ValueError) as error:
        raise MergeError(f"{path}: malformed ({type(error).__name__}: {error})") from None


def merge_runs(folders: list[Path], out: Path) -> RunRecord:
    """Merge the reports folders ``folders`` into ``out`` (created; may be one of them); returns the record written."""
    records = [read_record(folder) for folder in folders]  # every folder is read before anything is written
    out.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        for report in sorted(p.parent for p in folder.glob("*/case.json") if not p.parent.name.startswith(".")):
            _copy_whole(report, out / report.name)
    merged = merge_records(records, [str(folder) for folder in folders], out)
    write_record(out, merged)
    return merged


def merge_records(records: list[RunRecord], names: list[str], reports: Path) -> RunRecord:
    """One record of the runs ``records`` (named ``names``), whose reports are all in ``reports``."""
    first = records[0]
    by_search: dict[tuple[str, str, str], list[SearchCount]] = collections.defaultdict(list)
    dimensions: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    not_compared: collections.Counter[str] = collections.Counter()
    support: dict[str, dict[str, list[Support]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for record in records:
        for search in record.cases.by_search:
            by_search[(search.property, search.mode, search.isa)].append(search)
        for name, values in record.cases.by_dimension.items():
            dimensions[name].update(values)
        not_compared.update(record.not_compared)
        for name, rows in record.support.items():
            for value, row in rows.items():
                support[name][value].append(row)
    notes = [f"[{name}] {note}" for name, record in zip(names, records, strict=True) for note in record.notes]
    versions = sorted({str(record.environment.get("torch")) for record in records})
    if len(versions) > 1:
        notes.insert(0, f"the merged runs ran on different torch releases: {', '.join(versions)}")
    findings = _findings([group for record in records for group in record.findings], reports)
    errors = [f"[{name}] {error}" for name, record in zip(names, records, strict=True) for error in record.errors]
    interrupted = any(record.interrupted for record in records)
    return RunRecord(
        environment={**first.environment, "target_packages": dict(sorted(
            {name: version for record in records
             for name, version in (record.environment.get("target_packages") or {}).items()}.items()))},
        options=dataclasses.replace(first.options, shard=None, merged=names, reports=str(reports),
                                    workers=sum(record.options.workers for record in records)),
        started=min(record.started for record in records),
        seconds=max(record.seconds for record in records),
        interrupted=interrupted,
        cases=CaseCounts(sum(record.cases.total for record in records),
                         [SearchCount(prop, mode, isa=isa, **{f: sum(getattr(s, f) for s in rows) for f in _SUMMED})
                          for (prop, mode, isa), rows in by_search.items()],
                         {name: dict(sorted(values.items())) for name, values in dimensions.items()}),
        not_compared=dict(not_compared.most_common()),
        support={name: {value: Support(*(sum(getattr(r, f) for r in rows) for f in ("checked", "unsupported",
                                                                                       "failing")))
                        for value, rows in sorted(values.items())} for name, values in support.items()},
        findings=findings, errors=errors, notes=notes,
        exit_code=130 if interrupted else 1 if findings else 2 if errors else 0,
        nodes=[node for record in records for node in record.nodes],
    )


_SUMMED = ("cases", "passed", "failed", "known", "unsupported", "not_compared", "seconds")


def _findings(groups: list[FindingGroup], reports: Path) -> list[FindingGroup]:
    """One group per fault (:func:`~fuzz_birnn.output.run_record.by_cause`: a signature, but two
    that one search told apart stay two), in the order first seen; its smallest report the
    smallest case of any shard."""
    merged = []
    for members in by_cause(groups, lambda g: (g.signature, g.needs, {(s.property, s.mode, s.isa) for s in g.seen_in},
                                               root_of(g.signature, g.follows, {s.property for s in g.seen_in}))):
        smallest = min(members, key=lambda m: (not m.smallest.complete, _cost(reports / m.smallest.report),
                                               m.smallest.report))
        seen: list[Seen] = [s for m in members for s in m.seen_in]
        also = list(dict.fromkeys(s for m in members for s in m.also))
        reports_of = sorted({r for m in members for r in m.reports})
        merged.append(FindingGroup(members[0].signature, smallest.smallest, reports_of, seen, also, smallest.needs,
                                   next((m.follows for m in members if m.follows), None)))
    return one_per_mistake(onto_agreement(merged), lambda s: (not s.complete, _cost(reports / s.report), s.report))


def _cost(report: Path) -> float:
    try:
        case = read_json(report / "case.json")["case"]
        return case_cost(case["config"], case["inputs"])["elements"]
    except (ReportRefused, KeyError, TypeError, ValueError):
        return float("inf")


def _copy_whole(source: Path, final: Path) -> None:
    """Copy a report folder into place whole (a hidden copy renamed); one already there stays."""
    if final.exists() or source.resolve() == final.resolve():
        return
    staging = staging_folder(final.parent, f".{final.name}-")
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        try:
            staging.rename(final)
        except OSError:
            if not final.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _record(data: dict[str, Any]) -> RunRecord:
    cases = data["cases"]
    return RunRecord(
        environment=dict(data["environment"]),
        options=RunOptions(**data["options"]),
        started=str(data["started"]), seconds=float(data["seconds"]), interrupted=bool(data["interrupted"]),
        cases=CaseCounts(int(cases["total"]), [SearchCount(**row) for row in cases["by_search"]],
                         {name: dict(values) for name, values in cases["by_dimension"].items()}),
        not_compared=dict(data["not_compared"]),
        support={name: {value: Support(**row) for value, row in rows.items()}
                 for name, rows in data["support"].items()},
        findings=[FindingGroup(f["signature"], Smallest(**f["smallest"]), list(f["reports"]),
                               [Seen(**seen) for seen in f["seen_in"]], list(f.get("also", [])), f.get("needs"),
                               f.get("follows"))
                  for f in data["findings"]],
        errors=list(data["errors"]), notes=list(data["notes"]), exit_code=int(data["exit_code"]),
        nodes=[Node(**node) for node in data.get("nodes", [])],
    )
