"""Where a fuzz-birnn check spends its time, next to the torch work it checks.

One run measures, side by side on the default configuration space (``cases()``):

* ``fuzz-birnn run`` on its defaults (every property, every mode) with 1 and with 2 workers:
  cases per second as the run itself reports them;
* for the same drawn cases, the *floor*: the fused forward and the decomposed candidate's
  forward alone on prebuilt modules and inputs (no Hypothesis, no building, no references, no
  bookkeeping), against the whole ``check(decomposed, case)``, Hypothesis' draw included; and
  the same for torch itself (``check_fused`` against the fused forward);
* the float64 reference (``CellReference().compute``) against the fused float64 forward on the
  same cases in float64;
* seconds from a cold start (a new ``fuzz-birnn`` process) to the seed thread's bug found and
  shrunk (``examples/seed_decomposition.py``).

Every figure is a median over ``--repeats``; ratios taken within one run are the ones to quote.
Usage: ``python benchmarks/throughput.py [--cases N] [--run-examples N] [--repeats K] [--json]``.
One torch thread per process, as ``fuzz-birnn run`` and the test suite use.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from fuzz_birnn import Case, CellReference, check, check_fused, decomposed  # noqa: E402

try:  # where this project installs its strategies now, or the old top-level name
    from fuzz_birnn.strategies import cases
except ImportError:
    from strategies import cases  # type: ignore[no-redef]


def draw_cases(count: int, at: int = 0) -> tuple[list[Case], float]:
    """``count`` cases from ``cases()`` under a fixed seed, and the seconds Hypothesis took per draw."""
    drawn: list[Case] = []

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @seed(at)
    @given(cases())
    def collect(case: Case) -> None:
        drawn.append(case)

    started = time.perf_counter()
    collect()
    return drawn, (time.perf_counter() - started) / max(1, len(drawn))


def seconds_per_case(cases_: list, work: Callable[[object], object]) -> float:
    started = time.perf_counter()
    for item in cases_:
        with contextlib.suppress(Exception):  # a case torch refuses still took its time
            work(item)
    return (time.perf_counter() - started) / len(cases_)


def forward_floor(cases_: list[Case], repeats: int) -> dict[str, float]:
    """The fused forward, the candidate's forward, the whole checks, and the reference."""
    built = [(case, case.build()) for case in cases_]
    as64 = [dataclasses.replace(c, inputs=dataclasses.replace(c.inputs, dtype="float64")).build() for c in cases_]
    reference = CellReference(torch.float64)

    def fused(item):
        case, b = item
        with torch.no_grad():
            torch.backends.mkldnn.enabled = case.inputs.onednn
            return b.module(b.input, b.hx)

    def candidate(item):
        case, b = item
        with torch.no_grad():
            torch.backends.mkldnn.enabled = case.inputs.onednn
            return decomposed(b.module, b.input, b.hx)

    figures: dict[str, list[float]] = {k: [] for k in ("fused", "candidate", "check", "check_fused",
                                                        "fused64", "reference64")}
    for _ in range(repeats):
        figures["fused"].append(seconds_per_case(built, fused))
        figures["candidate"].append(seconds_per_case(built, candidate))
        figures["check"].append(seconds_per_case(cases_, lambda c: check(decomposed, c)))
        figures["check_fused"].append(seconds_per_case(cases_, check_fused))
        with torch.no_grad():
            figures["fused64"].append(seconds_per_case(as64, lambda b: b.module(b.input, b.hx)))
            figures["reference64"].append(seconds_per_case(as64, lambda b: reference.compute(b.module, b.input, b.hx)))
    torch.backends.mkldnn.enabled = True
    return {k: statistics.median(v) for k, v in figures.items()}


def run_rate(workers: int, examples: int, repeats: int) -> float:
    """Cases per second that ``fuzz-birnn run`` reports on its defaults."""
    rates = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as reports:
            done = subprocess.run([sys.executable, "-m", "fuzz_birnn", "run", "--seed", "0", "--workers", str(workers),
                                   "--max-examples", str(examples), "--reports", reports],
                                  cwd=ROOT, capture_output=True, text=True)
        found = re.search(r"cases checked .* \(([\d.]+)/s\)", done.stdout)
        if not found:
            raise SystemExit(f"fuzz-birnn run did not report a rate:\n{done.stdout}{done.stderr}")
        rates.append(float(found.group(1)))
    return statistics.median(rates)


def seed_bug_seconds(repeats: int) -> float:
    """Wall seconds of a fresh ``fuzz-birnn run`` that finds, shrinks and writes the seed's bug."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as reports:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "fuzz_birnn", "run", "--candidate",
                                   "examples.seed_decomposition:seed_decomposition", "--modes", "rnn_tanh",
                                   "--no-packed", "--no-unbatched", "--properties", "agreement", "--seed", "3",
                                   "--workers", "1", "--reports", reports], cwd=ROOT, capture_output=True, text=True)
            times.append(time.perf_counter() - started)
            if done.returncode != 1:
                raise SystemExit(f"the seed bug was not found:\n{done.stdout}{done.stderr}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="cases for the floor measurements (default 300)")
    parser.add_argument("--run-examples", type=int, default=3000, help="--max-examples of each run (default 3000)")
    parser.add_argument("--repeats", type=int, default=3, help="median of this many repeats (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    torch.set_num_threads(1)

    drawn, draw_seconds = draw_cases(args.cases)
    floor = forward_floor(drawn, args.repeats)
    one = run_rate(1, args.run_examples, args.repeats)
    two = run_rate(2, args.run_examples, args.repeats)
    seed_bug = seed_bug_seconds(args.repeats)

    ms = {k: 1000 * v for k, v in floor.items()}
    ms["draw"] = 1000 * draw_seconds
    whole = ms["draw"] + ms["check"]
    whole_fused = ms["draw"] + ms["check_fused"]
    result = {
        "torch": torch.__version__, "cases": len(drawn), "repeats": args.repeats,
        "ms_per_case": {k: round(v, 3) for k, v in ms.items()},
        "check_over_floor": round(whole / (ms["fused"] + ms["candidate"]), 2),
        "check_fused_over_floor": round(whole_fused / ms["fused"], 2),
        "reference_over_fused64": round(ms["reference64"] / ms["fused64"], 2),
        "run_cases_per_s": {"1": one, "2": two},
        "two_workers_over_one": round(two / one, 2),
        "seed_bug_seconds": round(seed_bug, 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"torch {result['torch']}, {len(drawn)} cases from cases(), median of {args.repeats}\n")
    rows = [
        ("Hypothesis draw", f"{ms['draw']:.2f} ms"),
        ("fused forward (floor)", f"{ms['fused']:.2f} ms"),
        ("decomposed forward (floor)", f"{ms['candidate']:.2f} ms"),
        ("draw + check(decomposed, case)", f"{whole:.2f} ms = {result['check_over_floor']}x fused + candidate"),
        ("draw + check_fused(case)", f"{whole_fused:.2f} ms = {result['check_fused_over_floor']}x fused"),
        ("fused forward, float64", f"{ms['fused64']:.2f} ms"),
        ("reference, float64", f"{ms['reference64']:.2f} ms = {result['reference_over_fused64']}x fused float64"),
        ("fuzz-birnn run, 1 worker", f"{one:.0f} cases/s"),
        ("fuzz-birnn run, 2 workers", f"{two:.0f} cases/s = {result['two_workers_over_one']}x one"),
        ("seed bug found and shrunk, cold", f"{seed_bug:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
