"""``DIR/run.json``: what a run covered and what it found, for machines; the console summary is
printed from the same record, so the two always say the same.

Schema (``"schema": "fuzz-birnn-run"``, ``"schema_version": 1``); fields are only ever added
within a version:
``environment``
    ``fuzz_birnn``, ``torch``, ``hypothesis``, ``python``, ``platform``, and ``devices`` (those
    this machine has).
``options``
    ``candidate`` (``null``: torch itself), ``properties``, ``modes``, ``seed``, ``max_examples``,
    ``time_budget`` (seconds or ``null``), ``timeout``, ``workers``, ``database``, ``shard``
    (``"K/N"`` or ``null``), ``reports``.
``started`` (UTC, ISO 8601), ``seconds``, ``interrupted``.
``cases``
    ``total``; ``by_search``: one entry per (``property``, ``mode``) search this run owned, with
    ``cases``, ``passed``, ``failed`` (failing calls, shrinking included), ``known`` (a fault the
    search had found already, seen again), ``unsupported``, ``not_compared`` and ``seconds`` (its
    worker time); ``by_dimension``: cases per value of each of :data:`DIMENSIONS` (property, mode,
    dtype, form, device, backend, layers, bias, layout, h0, proj): what was actually checked.
``not_compared``
    reason -> cases (a candidate's ``unsupported: ...`` refusals included).
``support``
    dimension (mode, dtype, form, device, backend, layers, bias, layout, h0, proj) -> value ->
    ``checked`` (compared, passing or not), ``unsupported`` (refused by the candidate), ``failing``:
    what the candidate takes and does right, measured in this run.
``findings``
    one per distinct fault (:mod:`fuzz_birnn.campaign.signature`): ``signature``; ``smallest`` (the report
    whose case is smallest, its ``summary``, how its ``shrink`` ended, its ``diagnosis``: which
    catalogued mistake reproduces it, or why none is named, ``null`` where values were not
    compared, and the ``mistakes`` named); ``reports`` (every
    report id of this fault, one per search that found it); ``seen_in`` (``property``, ``mode``,
    ``report``, ``new``: false when that report existed before this run).
``errors``, ``notes``
    searches that stopped with an error of the harness; anything else the reader should know.
``exit_code``
    0 nothing found, 1 findings, 2 an error and no findings, 130 interrupted.
"""

from __future__ import annotations

import collections
import datetime
import json
import platform
from pathlib import Path
from typing import Any

import hypothesis
import torch

from fuzz_birnn import __version__
from fuzz_birnn.core.devices import available_devices, cuda_without_gpu
from fuzz_birnn.output.files import write_whole

__all__ = ["RUN_FILE", "SCHEMA_VERSION", "build_record", "print_summary", "write_record"]

RUN_FILE = "run.json"
#: What cases are counted by, in the order of the engine's count keys.
DIMENSIONS = ("property", "mode", "dtype", "form", "device", "backend", "layers", "bias", "layout", "h0", "proj")
#: The dimensions printed in the console's coverage lines (all are in run.json).
SHOWN = ("property", "mode", "dtype", "form", "device", "backend")
SCHEMA_VERSION = 1


def build_record(campaign: Any, *, options: dict[str, Any], started: datetime.datetime,
                 interrupted: bool) -> dict[str, Any]:
    """The run record of a :class:`~fuzz_birnn.campaign.engine.Campaign` (finished or interrupted)."""
    by_search = []
    for spec in campaign.specs:
        mine = {key: n for key, n in campaign.counts.items() if key[:2] == (spec.prop, spec.mode)}
        verdicts: collections.Counter = collections.Counter()
        for key, n in mine.items():
            verdicts[key[-2]] += n
        by_search.append({"property": spec.prop, "mode": spec.mode, "cases": sum(verdicts.values()),
                          "passed": verdicts["passed"], "failed": verdicts["failed"], "known": verdicts["known"],
                          "unsupported": verdicts["unsupported"], "not_compared": verdicts["skipped"],
                          "seconds": round(campaign.scheduler.searches[spec.index].seconds, 3)})
    by_dimension: dict[str, collections.Counter] = {name: collections.Counter() for name in DIMENSIONS}
    not_compared: collections.Counter = collections.Counter()
    support: dict[str, dict[str, collections.Counter]] = {name: collections.defaultdict(collections.Counter)
                                                          for name in DIMENSIONS[1:]}
    for key, n in campaign.counts.items():
        *values, verdict, reason = key
        for name, value in zip(DIMENSIONS, values, strict=True):
            by_dimension[name][value] += n
            if name != "property":
                column = {"passed": "checked", "failed": "failing", "known": "failing"}.get(verdict, verdict)
                support[name][value][column] += n
        if verdict in ("skipped", "unsupported"):
            not_compared[reason] += n
    findings = _group(campaign.findings)
    exit_code = 130 if interrupted else 1 if findings else 2 if campaign.errors else 0
    return {
        "schema": "fuzz-birnn-run", "schema_version": SCHEMA_VERSION,
        "environment": {"fuzz_birnn": __version__, "torch": torch.__version__, "hypothesis": hypothesis.__version__,
                        "python": platform.python_version(), "platform": platform.platform(),
                        "devices": available_devices(), "no_gpu_note": cuda_without_gpu()},
        "options": options,
        "started": started.isoformat(timespec="seconds"), "seconds": round(campaign.seconds, 3),
        "interrupted": interrupted,
        "cases": {"total": sum(campaign.counts.values()), "by_search": by_search,
                  "by_dimension": {name: dict(sorted(c.items())) for name, c in by_dimension.items()}},
        "not_compared": dict(not_compared.most_common()),
        "support": {name: {value: {"checked": c["checked"] + c["failing"], "unsupported": c["unsupported"],
                                   "failing": c["failing"]} for value, c in sorted(rows.items())}
                    for name, rows in support.items()},
        "findings": findings, "errors": list(campaign.errors), "notes": list(campaign.notes),
        "exit_code": exit_code,
    }


def _group(findings: list[Any]) -> list[dict[str, Any]]:
    """One entry per signature, in the order faults were first found; the smallest case first."""
    groups: dict[str, list[Any]] = {}
    for finding in findings:
        groups.setdefault(finding.signature, []).append(finding)
    grouped = []
    for signature, members in groups.items():
        smallest = min(members, key=lambda f: (f.cost, f.folder))
        grouped.append({
            "signature": signature,
            "smallest": {"report": Path(smallest.folder).name, "summary": smallest.summary, "shrink": smallest.shrink,
                         "diagnosis": (smallest.diagnosis or {}).get("summary"),
                         "mistakes": (smallest.diagnosis or {}).get("names", [])},
            "reports": sorted({Path(f.folder).name for f in members}),
            "seen_in": [{"property": f.prop, "mode": f.mode, "report": Path(f.folder).name, "new": f.new}
                        for f in members],
        })
    return grouped


def same_mistake(findings: list[dict[str, Any]]) -> list[str]:
    """A line for each set of findings that the diagnosis says make one mistake: faults with
    different signatures (a relu that hides half the pattern) that are likely one bug."""
    by_mistakes: dict[tuple[str, ...], list[int]] = {}
    for number, finding in enumerate(findings, 1):
        names = tuple(finding["smallest"].get("mistakes") or ())
        if names:
            by_mistakes.setdefault(names, []).append(number)
    lines = []
    for names, numbers in by_mistakes.items():
        if len(numbers) > 1:
            which = f"all {len(numbers)} findings" if len(numbers) == len(findings) else \
                "findings " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"
            lines.append(f"{which} behave like the same catalogued mistake ({' or '.join(names)}): likely one bug")
    return lines


def write_record(directory: Path, record: dict[str, Any]) -> Path:
    """Write ``run.json`` whole or not at all (a temporary file renamed into place)."""
    return write_whole(directory / RUN_FILE, json.dumps(record, indent=2) + "\n")


def print_summary(record: dict[str, Any], reports: Path) -> None:
    """The console summary, from the record."""
    cases = record["cases"]
    rate = cases["total"] / record["seconds"] if record["seconds"] else 0.0
    print(f"\n{cases['total']} cases checked (generation and shrinking) in {record['seconds']:.1f}s ({rate:.1f}/s)")
    print("coverage:")
    for name in SHOWN:
        counts = cases["by_dimension"].get(name, {})
        print(f"  {name:<9}" + "  ".join(f"{value} {n}" for value, n in counts.items()))
    if record["environment"].get("no_gpu_note"):
        print(f"  note: {record['environment']['no_gpu_note']}")
    idle = [f"{s['property']} ({s['mode']})" for s in cases["by_search"] if not s["cases"]]
    if idle:
        print(f"  searches that checked no case: {', '.join(idle)}")
    if record["not_compared"]:
        print(f"not compared ({sum(record['not_compared'].values())}):")
        for reason, n in record["not_compared"].items():
            print(f"  {n:>5}  {reason}")
    if any(v["unsupported"] for rows in record["support"].values() for v in rows.values()):
        print("support (cases checked / unsupported / failing, by the value of each dimension):")
        for name, rows in record["support"].items():
            print(f"  {name:<11}" + "  ".join(f"{value} {v['checked']}/{v['unsupported']}/{v['failing']}"
                                             for value, v in rows.items()))
    for note in record["notes"]:
        print(f"note: {note}")
    for error in record["errors"]:
        print(f"\n{error}", flush=True)
    findings = record["findings"]
    if not findings:
        print("\nno failures" if not record["errors"] else "\nno failures found, but a search stopped with an error")
    else:
        total = sum(len(f["reports"]) for f in findings)
        print(f"\n{len(findings)} distinct fault(s), {total} report(s):")
        for number, finding in enumerate(findings, 1):
            smallest = finding["smallest"]
            print(f"  {number}. {finding['signature']}")
            print(f"     smallest: {reports / smallest['report']}"
                  + ("" if any(s["new"] for s in finding["seen_in"]) else " (already reported)"))
            print(f"       {smallest['summary']}")
            if smallest.get("diagnosis"):
                print(f"     diagnosis: {smallest['diagnosis']}")
            if not smallest["shrink"].startswith("complete"):
                print(f"       ({smallest['shrink']})")
            places = collections.defaultdict(list)
            for seen in finding["seen_in"]:
                places[seen["property"]].append(seen["mode"])
            print("     seen in: " + "; ".join(f"{prop} ({', '.join(modes)})" for prop, modes in places.items()))
        for line in same_mistake(findings):
            print(line)
    print(f"run record: {reports / RUN_FILE}")
