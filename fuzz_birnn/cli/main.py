"""``fuzz-birnn run`` and ``fuzz-birnn replay`` (``baseline``, ``show`` and ``explain`` are added by
:mod:`~fuzz_birnn.cli.baseline` and :mod:`~fuzz_birnn.cli.pages`).

Exit status: 0 when nothing failed, 1 when a failure was found (run) or still fails (replay),
2 for a usage or configuration error (one line on stderr, no traceback), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import torch

from fuzz_birnn import __version__
from fuzz_birnn.campaign.api import RunError, run
from fuzz_birnn.cli import baseline, pages
from fuzz_birnn.cli.arguments import choices, non_negative, positive, seconds, shard
from fuzz_birnn.cli.pages import write_run_pages
from fuzz_birnn.core.candidates import BUILTIN
from fuzz_birnn.core.case import DTYPES, MODES
from fuzz_birnn.core.devices import DEVICE_TYPES, available_devices, device_available
from fuzz_birnn.core.isa import caps, levels_here, native_level
from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.output.junit import write_junit
from fuzz_birnn.output.merge import MergeError, merge_runs
from fuzz_birnn.output.reports import ReportError, load_report
from fuzz_birnn.output.run_record import print_summary
from fuzz_birnn.portable.report_files import ReportRefused, candidate_origin
from fuzz_birnn.processes.forked import exit_reason
from fuzz_birnn.processes.time_limit import CaseTimeout, time_limit
from fuzz_birnn.properties import PROPERTIES
from fuzz_birnn.targets import TARGETS
from fuzz_birnn.targets.naming import CandidateError, load_candidate, validate_spec

__all__ = ["main"]

#: ``--modes`` names, lower case, as torch's ``mode`` strings read.
_MODES = {mode.lower(): mode for mode in MODES}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """Errors as one line that says where help is; flags spelled out in full (an abbreviation
    such as ``--max-example`` is refused, as pytest refuses it, not taken silently)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def main(argv: list[str] | None = None) -> int:
    # torch without NumPy says so, on import or lazily later; this process reports to a person.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        return args.command(args)
    except UsageError as error:
        print(f"fuzz-birnn: error: {_pointed(str(error), parser, argv)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nfuzz-birnn: interrupted", file=sys.stderr)
        return 130


def _pointed(message: str, parser: argparse.ArgumentParser, argv: list[str]) -> str:
    """A usage error that names the command's own help, and the flag meant where one is misspelled
    (``--max-example``: did you mean ``--max-examples``?)."""
    commands = next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in commands:
        return message
    message = message.replace("(see fuzz-birnn --help)", f"(see fuzz-birnn {command} --help)")
    if message.startswith("unrecognized arguments:"):
        flags = list(commands[command]._option_string_actions)
        meant = [close[0] for word in message.split(" (see")[0].split()[2:] if word.startswith("--")
                 if (close := difflib.get_close_matches(word.split("=")[0], flags, n=1))]
        if meant:
            message = message.replace(" (see", f"; did you mean {', '.join(meant)}? (see", 1)
    return message


def _no_command(args: argparse.Namespace) -> int:
    raise UsageError("name a command: run, replay, merge, baseline, show or explain; "
                     "`fuzz-birnn run` checks torch on the defaults (see fuzz-birnn --help)")


# -- run -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    # A shell that starts a command in the background without job control hands it SIGINT
    # ignored; Ctrl-C (or kill -INT) must stop a run however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    progress = _Progress()
    try:
        record = run(args.candidate, properties=args.properties, modes=args.modes, space=_space(args),
                     max_examples=args.max_examples, time_budget=args.time_budget, timeout=args.timeout,
                     workers=args.workers, seed=args.seed, database=args.database, reports=args.reports,
                     shard=args.shard, grad=args.grad, cluster=args.cluster, needs=args.needs or (), isa=args.isa,
                     echo=print, on_progress=progress.update)
    except RunError as error:
        raise UsageError(str(error)) from None
    progress.done()
    if record.interrupted:
        print("interrupted: the summary covers what ran; every report written is whole")
    reports = Path(args.reports)
    if args.junit_xml:
        write_junit(Path(args.junit_xml), record, reports)
    print_summary(record, reports)
    if args.html or (reports / "index.html").exists():
        # a run page from an earlier run is brought up to date, not left to tell an old story
        print(f"run page: {write_run_pages(record, reports)}")
    return record.exit_code


def _space(args: argparse.Namespace) -> CaseSpace:
    forms = ["padded"]
    if args.unbatched:
        forms.append("unbatched")
    if args.packed:
        forms += ["packed_sorted", "packed_unsorted"]
    return CaseSpace(dtypes=tuple(args.dtypes), devices=tuple(args.devices), forms=tuple(forms),
                     max_layers=args.max_layers, max_input_size=args.max_size, max_hidden_size=args.max_size,
                     max_seq_len=args.max_seq_len, max_batch=args.max_batch,
                     proj=None if args.proj else False,
                     bidirectional={"yes": True, "no": False, "both": None}[args.bidirectional],
                     batch_first=None if args.batch_first else False,
                     initial_state=None if args.initial_state else False,
                     onednn=None if args.onednn_off else True)


class _Progress:
    """Keeps one status line up to date while a run goes on: cases checked, how far through the
    budget (cases, or time when a time budget ends first), time spent and an estimate of what is left."""

    def __init__(self) -> None:
        self._last = 0.0
        self._started = time.monotonic()
        self._tty = sys.stdout.isatty()

    def update(self, campaign: Any) -> None:
        now = time.monotonic()
        if now - self._last < (0.2 if self._tty else 10.0):
            return
        self._last = now
        checked = sum(campaign.counts.values())
        faults = len({f.signature for f in campaign.findings})
        line = f"  {checked} cases checked, {faults} distinct fault(s) so far" + self._when(checked, campaign, now)
        print(f"\r{line}" if self._tty else line, end="" if self._tty else "\n", flush=True)

    def _when(self, checked: int, campaign: Any, now: float) -> str:
        """``; 40% done, 1:02 elapsed, about 1:33 left`` (shrinking's cases count too, so it says
        99% until the end; no estimate before there is anything to base one on)."""
        elapsed = now - self._started
        done = checked / max(1, campaign.max_examples)
        if campaign.time_budget:
            done = max(done, elapsed / campaign.time_budget)
        done = min(done, 0.99)
        left = f", about {_minutes(elapsed * (1 - done) / done)} left" if done >= 0.02 and elapsed >= 5 else ""
        return f"; {done:.0%} done, {_minutes(elapsed)} elapsed{left}"

    def done(self) -> None:
        if self._tty:
            print()


def _minutes(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _merge(args: argparse.Namespace) -> int:
    """Merge the shards' reports folders into ``--out``: reports, ``run.json``, ``index.html``."""
    out = Path(args.out)
    try:
        record = merge_runs([Path(folder) for folder in args.folders], out)
    except MergeError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"--out {out}: cannot write there ({error.strerror or error})") from None
    print(f"merged {len(args.folders)} run(s) into {out}")
    print_summary(record, out)
    print(f"run page: {write_run_pages(record, out)}")
    return record.exit_code


def _replay(args: argparse.Namespace) -> int:
    """Check every named report first (readable, within limits, a device this machine has, a
    candidate the user trusts), then run them; nothing runs if any is refused."""

    planned = []  # (folder, whether the user named this report itself)
    for path in map(Path, args.paths):
        if path.is_dir() and not (path / "case.json").exists():
            # Hidden folders are reports still being written (or whose writer was killed).
            found = sorted(p.parent for p in path.glob("*/case.json") if not p.parent.name.startswith("."))
            if not found:
                print(f"{path}: no reports here: nothing to replay")
            planned += [(folder, False) for folder in found]
        elif path.exists():
            planned.append((path, True))
        else:
            raise UsageError(f"{path}: no such report or folder")
    try:
        override = validate_spec(args.candidate) if args.candidate else None
    except CandidateError as error:
        raise UsageError(str(error)) from None
    runnable, elsewhere, other_cpu = [], 0, 0
    for folder, named in planned:
        try:
            report = load_report(folder, allow_large=args.allow_large)
            spec = override or report.candidate
            if spec not in BUILTIN:
                where = candidate_origin(spec, Path.cwd(), named_by_user=override is not None)
                print(f"{folder}: candidate {spec} from {where}")
        except (ReportError, ReportRefused) as error:
            raise UsageError(str(error)) from None
        level = report.details.get("isa")
        if level is not None and level != native_level() and level not in levels_here():
            print(f"NOT HERE     {folder}: the case ran at instruction-set level {level}, which this CPU cannot "
                  f"reach (it runs at {native_level() or 'a non-x86 level'})")
            other_cpu += 1
            continue
        device = report.case.inputs.device
        if not device_available(device):
            if named:
                raise UsageError(f"{folder}: the case runs on {device}, which this machine does not have "
                                 f"(it has {', '.join(available_devices())})")
            print(f"NOT HERE     {folder}: the case runs on {device}, which this machine does not have")
            elsewhere += 1
            continue
        runnable.append((folder, report, spec))
    still_failing = 0
    for folder, report, spec in runnable:
        try:
            candidate = load_candidate(spec)
        except CandidateError as error:
            raise UsageError(str(error)) from None
        level = report.details.get("isa")
        if not args.in_process and level is not None and level != native_level():
            print(f"(replaying {folder.name} in a process started at instruction-set level {level}: "
                  f"{' '.join(f'{k}={v}' for k, v in caps(level).items())})")
            verdict = _replay_isolated(folder, args, caps(level))
            still_failing += verdict is not None
            print(f"STILL FAILS  {folder}: {verdict}" if verdict else f"FIXED        {folder}")
            continue
        if report.kind in ("crash", "timeout") and not args.in_process:
            verdict = _replay_isolated(folder, args)
            still_failing += verdict is not None
            print(f"STILL FAILS  {folder}: {verdict}" if verdict else f"FIXED        {folder}")
            continue
        prop = PROPERTIES[report.prop]
        try:
            with time_limit(args.timeout):
                outcome = prop.run(candidate, report.case, spec, report.details)
        except CheckFailure as failure:
            still_failing += 1
            print(f"STILL FAILS  {folder}: {str(failure).splitlines()[0]}")
        except CaseTimeout:
            still_failing += 1
            print(f"STILL FAILS  {folder}: still runs past the {args.timeout}s limit")
        else:
            print(f"FIXED        {folder}" + (f" ({outcome.skipped})" if outcome.skipped else ""))

    print(f"{len(runnable)} report(s) replayed on torch {torch.__version__}: {still_failing} still failing, "
          f"{len(runnable) - still_failing} fixed" + (f"; {elsewhere} need a device this machine lacks"
                                                      if elsewhere else "")
          + (f"; {other_cpu} need a CPU that reaches their instruction-set level" if other_cpu else ""))
    return 1 if still_failing else 0


def _replay_isolated(folder: Path, args: argparse.Namespace, environment: dict[str, str] | None = None) -> str | None:
    """Replay a report in a child process (one that crashed or hung its worker; one found at an
    instruction-set level, under that level's caps in ``environment``); ``None`` once fixed."""

    flags = ["--candidate", args.candidate] if args.candidate else []
    flags += ["--allow-large"] if args.allow_large else []
    command = [sys.executable, "-m", "fuzz_birnn", "replay", "--in-process", *flags, str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout,
                              env={**os.environ, **(environment or {})})
    except subprocess.TimeoutExpired:
        return f"still runs past the {args.timeout}s limit"
    if done.returncode == 0:
        return None
    if done.returncode == 1:
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("STILL FAILS")), "STILL FAILS")
        return line.split(": ", 1)[-1]
    return f"the replaying process died ({exit_reason(done.returncode)})"


# -- arguments -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fuzz-birnn", description="Property-based fuzzing of torch's recurrent layers.")
    parser.add_argument("--version", action="version", version=f"fuzz-birnn {__version__} (torch {torch.__version__})")
    parser.set_defaults(command=_no_command)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="search for cases where a candidate (or torch) is wrong")
    run.set_defaults(command=_run)
    run.add_argument("--candidate", metavar="MODULE:ATTR",
                     help="callable candidate(module, input, hx=None) to check against torch's fused module; "
                          f"built-ins: {', '.join(b for b in BUILTIN if b != 'fused')}; targets: "
                          + "; ".join(f"{name} ({target.about}" + (f"; pip install 'fuzz-birnn[{target.extra}]'"
                                                                   if target.extra else "") + ")"
                                      for name, target in TARGETS.items())
                          + ". Default: check torch itself")
    run.add_argument("--max-examples", type=positive, default=25000, metavar="N",
                     help="cases to generate in all, split over the searches (default 25000)")
    run.add_argument("--time-budget", type=seconds, metavar="SECONDS",
                     help="stop after this long, shrinking included (with --max-examples, whichever ends "
                          "first); every search gets a fair share of the time")
    run.add_argument("--database", metavar="DIR|redis://HOST:PORT|none",
                     help="Hypothesis example database: a rerun first replays what failed before "
                          "(default REPORTS/.hypothesis; a Redis URL shares it between machines)")
    run.add_argument("--html", action="store_true",
                     help="also write REPORTS/index.html (what the run covered, every finding) and a page per report")
    run.add_argument("--junit-xml", metavar="PATH",
                     help="also write the run as JUnit XML: a test case per search, a failure per fault")
    run.add_argument("--shard", type=shard, metavar="K/N",
                     help="run only the K-th of N deterministic shares of the searches (one per machine)")
    run.add_argument("--cluster", metavar="ADDRESS",
                     help="run the workers on a Ray cluster's nodes (auto, HOST:PORT or ray://HOST:PORT; "
                          "pip install 'fuzz-birnn[ray]'); one reports folder and run.json here")
    run.add_argument("--needs", type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
                     metavar="LIST", help="with --cluster: run the candidate's searches only on nodes that "
                                          "advertise these Ray resources (ray start --resources)")
    run.add_argument("--isa", type=lambda text: [t.strip().lower() for t in text.split(",") if t.strip()],
                     metavar="LIST", help="instruction-set levels for the properties that check torch's own kernels: "
                                          "native, avx512, avx2, default (default: native and every lower level this "
                                          "CPU reaches, each in workers started with ATEN_CPU_CAPABILITY and "
                                          "ONEDNN_MAX_CPU_ISA caps)")
    run.add_argument("--seed", type=non_negative, metavar="N", help="make the run repeatable")
    run.add_argument("--properties", type=lambda text: [t.strip() for t in text.split(",") if t.strip()],
                     metavar="LIST", help=f"comma-separated subset of: {', '.join(PROPERTIES)} "
                                          "(default: all that apply)")
    run.add_argument("--timeout", type=positive, metavar="SECONDS",
                     help="time limit for checking one case (default 60, or the built-in target's: "
                          + ", ".join(f"{target.timeout:g} for {name}" for name, target in TARGETS.items())
                          + "); an overrun is a timeout report")
    run.add_argument("--grad", action="store_true",
                     help="also check gradients through the candidate (it must be differentiable)")
    run.add_argument("--reports", default="reports", metavar="DIR", help="where failures go (default ./reports)")
    run.add_argument("--workers", type=positive, metavar="N", help="processes (default: one per CPU)")
    run.add_argument("--modes", type=choices(_MODES), default=list(MODES),
                     metavar="LIST", help=f"comma-separated: {','.join(_MODES)}")
    run.add_argument("--dtypes", type=choices({d: d for d in DTYPES}), default=list(DTYPES),
                     metavar="LIST", help=f"comma-separated: {','.join(DTYPES)}")
    run.add_argument("--devices", type=choices({d: d for d in DEVICE_TYPES}), default=["cpu"],
                     metavar="LIST", help=f"comma-separated: {','.join(DEVICE_TYPES)} (default cpu)")
    run.add_argument("--max-layers", type=positive, default=4, metavar="N")
    run.add_argument("--max-size", type=positive, default=8, metavar="N", help="input_size/hidden_size bound")
    run.add_argument("--max-seq-len", type=positive, default=8, metavar="N")
    run.add_argument("--max-batch", type=positive, default=8, metavar="N")
    run.add_argument("--bidirectional", choices=("yes", "no", "both"), default="yes")
    for flag, what in (("packed", "PackedSequence input"), ("unbatched", "unbatched 2-D input"),
                       ("proj", "LSTM proj_size > 0"), ("batch-first", "batch_first=True"),
                       ("initial-state", "given h0/c0")):
        run.add_argument(f"--no-{flag}", dest=flag.replace("-", "_"), action="store_false", help=f"never use {what}")
    run.add_argument("--no-onednn-off", dest="onednn_off", action="store_false",
                     help="keep oneDNN at torch's default instead of also running with it disabled")

    merge = commands.add_parser("merge", help="merge the reports folders of a campaign's shards (--shard K/N) "
                                              "into one: reports, run.json, index.html")
    merge.set_defaults(command=_merge)
    merge.add_argument("folders", nargs="+", metavar="DIR", help="a reports folder of fuzz-birnn run")
    merge.add_argument("--out", required=True, metavar="DIR", help="the merged folder (created; may be one of DIR)")

    replay = commands.add_parser("replay", help="re-run reports on the torch installed now")
    replay.set_defaults(command=_replay)
    replay.add_argument("paths", nargs="+", metavar="PATH",
                        help="a report folder, its case.json, or a folder of reports")
    replay.add_argument("--timeout", type=positive, default=60, metavar="SECONDS",
                        help="time limit for replaying a crash or timeout report (default 60)")
    replay.add_argument("--candidate", metavar="MODULE:ATTR",
                        help="replay against this candidate instead of the one each report names (your fix, or a "
                             "candidate from outside this project that you trust)")
    replay.add_argument("--allow-large", action="store_true",
                        help="lift the size limits on a report's case (sizes, steps, batch, layers, total cost)")
    replay.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)


    baseline.add_parsers(commands, UsageError)
    pages.add_parsers(commands, UsageError)
    return parser


if __name__ == "__main__":
    sys.exit(main())
