"""``fuzz-birnn baseline record | check | compare``: the command-line side of :mod:`fuzz_birnn.baseline.baselines`.

Exit status: 0 when nothing changed beyond tolerance (``--strict``: nothing changed at all), 1
when something did, 2 for a usage error or a baseline that cannot be trusted (one line).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from fuzz_birnn.baseline.baselines import (
    FAILING,
    STRICT_FAILING,
    VERDICTS,
    BaselineError,
    Comparison,
    compare,
    corpus,
    corpus_digest,
    dimensions,
    environment,
    load_baseline,
    record,
    write_baseline,
)
from fuzz_birnn.cli.arguments import positive
from fuzz_birnn.core.case import Case
from fuzz_birnn.output.reports import ReportError, load_report, write_drift

__all__ = ["add_parsers"]

#: the folder that holds the fuzz_birnn package, put on the other interpreter's path
_ROOT = Path(__file__).resolve().parents[2]


def add_parsers(commands: Any, usage_error: type[Exception]) -> None:
    baseline = commands.add_parser("baseline", help="record torch's results on a fixed corpus; find what changed")
    actions = baseline.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(baseline))

    rec = actions.add_parser("record", help="run the corpus under the installed torch and store the results")
    rec.add_argument("dir", metavar="DIR")
    rec.add_argument("--size", type=positive, default=200, metavar="N", help="forward cases (default 200)")
    rec.add_argument("--seed", type=int, default=0, metavar="N", help="the corpus's seed (default 0)")
    rec.add_argument("--from-reports", nargs="+", default=[], metavar="REPORTS",
                     help="add every case of these reports folders to the corpus")
    rec.add_argument("--corpus", help=argparse.SUPPRESS)  # entries from `compare`
    rec.set_defaults(command=lambda args: _record(args, usage_error))

    chk = actions.add_parser("check", help="run a baseline's corpus again under the installed torch")
    chk.add_argument("dir", metavar="DIR")
    chk.add_argument("--strict", action="store_true", help="also fail on drift within tolerance and changed messages")
    chk.add_argument("--reports", default="baseline-drift", metavar="DIR",
                     help="where changed cases are written as reports (default ./baseline-drift)")
    chk.add_argument("--any-platform", action="store_true", help="compare a baseline recorded on another platform")
    chk.set_defaults(command=lambda args: _check(args, usage_error))

    cmp = actions.add_parser("compare", help="run the corpus under two interpreters and compare")
    cmp.add_argument("--python", action="append", required=True, metavar="PYTHON",
                     help="an interpreter with torch (give it twice: the old one first)")
    cmp.add_argument("--size", type=positive, default=200, metavar="N")
    cmp.add_argument("--seed", type=int, default=0, metavar="N")
    cmp.add_argument("--strict", action="store_true")
    cmp.add_argument("--reports", default="baseline-drift", metavar="DIR")
    cmp.set_defaults(command=lambda args: _compare(args, usage_error))


def _record(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    if args.corpus:
        entries = json.loads(Path(args.corpus).read_text())
    else:
        entries = corpus(args.size, args.seed, _report_entries(args.from_reports, usage_error))
    results, tensors = record(entries)
    write_baseline(Path(args.dir), results, tensors,
                   {"size": args.size, "seed": args.seed, "from_reports": args.from_reports})
    env = environment()
    raised = sum("raised" in e["outcome"] for e in results)
    print(f"recorded {len(results)} cases ({raised} refused by torch) on torch {env['torch']} "
          f"({env['system']} {env['machine']}) in {args.dir}")
    return 0


def _check(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    try:
        old = load_baseline(Path(args.dir), any_platform=args.any_platform)
    except BaselineError as error:
        raise usage_error(str(error)) from None
    entries = [{k: v for k, v in e.items() if k not in ("outcome", "allowed")} for e in old[0]["entries"]]
    results, tensors = record(entries)
    manifest: dict[str, Any] = {"environment": environment(), "corpus": {"digest": corpus_digest(results)},
                                "entries": results}
    new = (manifest, tensors)
    return _report(old[0]["environment"], new[0]["environment"], compare(old, new), args)


def _compare(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    if len(args.python) != 2:
        raise usage_error("give --python twice: the old interpreter, then the new one")
    entries = corpus(args.size, args.seed)
    with tempfile.TemporaryDirectory(prefix="fuzz-birnn-compare-") as scratch:
        corpus_file = Path(scratch) / "corpus.json"
        corpus_file.write_text(json.dumps(entries))
        loaded = []
        for number, python in enumerate(args.python):
            folder = Path(scratch) / f"side-{number}"
            path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))
            env = {**os.environ, "PYTHONPATH": path}  # this very fuzz-birnn, whatever the other side has
            try:
                done = subprocess.run([python, "-m", "fuzz_birnn", "baseline", "record", str(folder), "--corpus",
                                       str(corpus_file), "--size", str(args.size), "--seed", str(args.seed)],
                                      capture_output=True, text=True, env=env)
            except OSError as error:
                raise usage_error(f"--python {python}: cannot run it ({error.strerror or error})") from None
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise usage_error(f"--python {python}: recording failed ({last})")
            print(f"{python}: {done.stdout.strip()}")
            try:
                loaded.append(load_baseline(folder))
            except BaselineError as error:
                raise usage_error(str(error)) from None
        comparisons = compare(loaded[0], loaded[1])
        return _report(loaded[0][0]["environment"], loaded[1][0]["environment"], comparisons, args)


def _report(before: dict[str, Any], after: dict[str, Any], comparisons: list[Comparison],
            args: argparse.Namespace) -> int:
    """Print the comparison, write changed cases as reports; the exit status."""
    print(f"baseline: torch {before['torch']} ({before['system']} {before['machine']}); "
          f"now: torch {after['torch']} ({after['system']} {after['machine']})")
    totals = collections.Counter(c.verdict for c in comparisons)
    for verdict in VERDICTS:
        if totals[verdict]:
            print(f"  {totals[verdict]:>5}  {verdict}")
    table: dict[str, dict[str, collections.Counter]] = collections.defaultdict(lambda: collections.defaultdict(
        collections.Counter))
    for comparison in comparisons:
        for dimension, value in dimensions(comparison.entry).items():
            table[dimension][value][comparison.verdict] += 1
        for tensor, verdict in comparison.tensors.items():
            table["tensor"][re.sub(r"_l\d+(_reverse)?$", "", tensor)][verdict] += 1
    lines = [f"  {dimension:<8} {value:<28} " + ", ".join(f"{n} {v}" for v, n in other.items())
             for dimension, rows in table.items() for value, counts in sorted(rows.items())
             if (other := {v: n for v, n in counts.items() if v != "identical"})]
    if lines:
        print("by dimension (cases that are not identical):", *lines, sep="\n")
    changed = [c for c in comparisons if c.verdict != "identical"]
    if changed:
        print("changed cases:")
    written = _write_reports(changed, Path(args.reports), before, after)
    for comparison, folder in zip(changed, written, strict=True):
        print(f"  {comparison.verdict:<26} {comparison.entry['id']} {folder or ''}\n      {comparison.detail}")
    failing = STRICT_FAILING if args.strict else FAILING
    bad = sum(totals[v] for v in failing)
    print(f"{len(comparisons)} cases: {totals['identical']} identical, {len(changed)} changed, "
          f"{bad} failing{' (strict)' if args.strict else ''}")
    return 1 if bad else 0


def _write_reports(changed: list[Comparison], directory: Path, before: dict[str, Any],
                   after: dict[str, Any]) -> list[str | None]:
    folders: list[str | None] = []
    for comparison in changed:
        entry = comparison.entry
        case = Case.from_dict(entry["case"], allow_large=True)
        message = (f"{comparison.verdict} between torch {before['torch']} and torch {after['torch']}: "
                   f"{comparison.detail}")
        details = {"corruption": entry["corruption"]} if entry["kind"] == "invalid" else {}
        folder = write_drift(case, message, directory, details=details,
                             tensor=next(iter(comparison.tensors), "result"))
        folders.append(str(folder))
    return folders


def _report_entries(folders: list[str], usage_error: type[Exception]) -> list[dict[str, Any]]:
    entries = []
    for folder in map(Path, folders):
        found = sorted(p.parent for p in folder.glob("*/case.json") if not p.parent.name.startswith("."))
        if not folder.is_dir():
            raise usage_error(f"--from-reports {folder}: no such folder")
        for report in found:
            try:
                document = load_report(report)
            except ReportError as error:
                raise usage_error(str(error)) from None
            corruption = document.details.get("corruption")
            entry = {"kind": "invalid" if corruption else "forward", "case": document.case.to_dict()}
            if corruption:
                entry["corruption"] = corruption
            entries.append(entry)
    return entries
