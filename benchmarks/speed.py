"""Issue 21's four speed figures, side by side, for this tree and (``--before REF``) another commit.

1. **Check overhead**: for the same drawn cases, Hypothesis' draw plus ``check(decomposed, case)``
   against the two forwards it compares (torch's fused module and the decomposed candidate,
   prebuilt, nothing else). Goal: at most 1.5x. Also printed: the same without the draw, and the
   ratio the draw alone leaves (draw + the two forwards, over the two forwards): the lowest any
   check of a drawn case can reach.
2. **One search on 1 and 2 workers**: ``fuzz-birnn run --modes gru --properties agreement``, the
   cases per second the run reports. Goal: 2 workers at least 1.6x one.
3. **A crashing candidate against a correct one** on the same cases' budget and flags:
   ``benchmarks/crashing_kernel.py`` (a segfault on about one GRU case in ten) against the
   built-in ``decomposed``, wall seconds of the whole run. Goal: at most 1.5x.
4. **ONNX targets**: cases per second of ``fuzz-birnn run --candidate T`` under one time budget, on
   its defaults (the shrinking of the real faults it finds included: an ONNX Runtime crash's
   reduction alone can take a minute), and checking alone (agreement on tanh/relu RNNs in float32,
   where every target was right in every run seen here). Goal: at least 5 cases/s on this machine.

Each figure of a run is measured with the same command in both trees, one after the other, so
ratios between them are the ones to quote; absolute rates move with the machine's load.
Usage: ``python benchmarks/speed.py [--before REF] [--examples N] [--onnx-seconds S] [--skip ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONNX_TARGETS = ("onnxruntime-torchscript", "onnxruntime", "onnx-reference")
#: Where every ONNX target agreed with torch in every run seen here: a run there is checking alone.
RIGHT_SPACE = ("--properties", "agreement", "--modes", "rnn_tanh,rnn_relu", "--dtypes", "float32")


def fuzz(tree: Path, *args: object) -> tuple[float, float, str]:
    """Run ``fuzz-birnn`` from ``tree``: wall seconds, the rate it reports, and its output."""
    with tempfile.TemporaryDirectory() as reports:
        started = time.perf_counter()
        # the crashing kernel is importable from either tree (as ``crashing_kernel``)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "benchmarks"),
                                                                         os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-m", "fuzz_birnn", *map(str, args), "--database", "none",
                               "--reports", reports], cwd=tree, capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - started
    found = re.search(r"cases checked .* \(([\d.]+)/s\)", done.stdout)
    if done.returncode not in (0, 1) or not found:
        raise SystemExit(f"fuzz-birnn {' '.join(map(str, args))} in {tree} failed:\n{done.stdout}{done.stderr}")
    return seconds, float(found.group(1)), done.stdout


def overhead(tree: Path, cases: int) -> dict[str, float]:
    """Figure 1, measured by ``benchmarks/throughput.py``'s own functions in a process of ``tree``."""
    code = f"""
import json, sys, torch
sys.path.insert(0, {str(tree)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r})
torch.set_num_threads(1)
from throughput import draw_cases, forward_floor
drawn, draw = draw_cases({cases})
floor = forward_floor(drawn, 1)
print(json.dumps({{"draw": draw, **floor}}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the overhead measurement failed in {tree}:\n{done.stderr}")
    ms = {k: 1000 * v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    floor = ms["fused"] + ms["candidate"]
    ms["ratio"] = (ms["draw"] + ms["check"]) / floor
    ms["draw_alone"] = (ms["draw"] + floor) / floor  # the ratio if the check cost nothing but the two forwards
    ms["without_draw"] = ms["check"] / floor
    return ms


@contextlib.contextmanager
def worktree(ref: str | None) -> Iterator[Path | None]:
    if ref is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as parent:
        path = Path(parent) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), ref], cwd=ROOT, check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def measure(tree: Path, args: argparse.Namespace) -> dict[str, object]:
    figures: dict[str, object] = {}
    if "overhead" not in args.skip:
        figures["overhead"] = overhead(tree, args.cases)
    one_search = ("run", "--modes", "gru", "--properties", "agreement", "--max-examples", args.examples,
                  "--seed", 0)
    if "workers" not in args.skip:
        figures["workers"] = {w: fuzz(tree, *one_search, "--workers", w)[1] for w in (1, 2)}
    if "crash" not in args.skip:
        correct = fuzz(tree, *one_search, "--workers", 2, "--candidate", "decomposed")[0]
        crashing, _, said = fuzz(tree, *one_search, "--workers", 2, "--candidate",
                                 "crashing_kernel:odd_batch_segfault")
        if "crash: died (killed by SIGSEGV)" not in said:
            raise SystemExit(f"the crashing candidate did not crash:\n{said}")
        figures["crash"] = {"correct": correct, "crashing": crashing}
    if "onnx" not in args.skip:
        # on its defaults, shrinking of what it finds included; and checking alone, where it is right
        figures["onnx"] = {target: fuzz(tree, "run", "--candidate", target, "--time-budget", args.onnx_seconds,
                                        "--seed", 0, "--workers", 2)[1] for target in ONNX_TARGETS}
        figures["onnx_checking"] = {target: fuzz(tree, "run", "--candidate", target, "--time-budget", args.onnx_seconds,
                                                 "--seed", 0, "--workers", 2, *RIGHT_SPACE)[1]
                                    for target in ONNX_TARGETS}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REF", help="also measure this commit, in a temporary worktree")
    parser.add_argument("--examples", type=int, default=1500, help="--max-examples of figures 2 and 3")
    parser.add_argument("--cases", type=int, default=300, help="drawn cases of figure 1")
    parser.add_argument("--onnx-seconds", type=int, default=90, help="--time-budget of each ONNX run")
    parser.add_argument("--skip", nargs="*", default=[], choices=["overhead", "workers", "crash", "onnx"])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    trees = {"this tree": ROOT}
    with worktree(args.before) as before:
        if before is not None:
            trees = {f"before ({args.before})": before, "this tree": ROOT}
        results = {label: measure(tree, args) for label, tree in trees.items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    rows: list[tuple[str, list[str]]] = []
    pick = list(results.values())
    if "overhead" not in args.skip:
        rows.append(("check overhead (goal <= 1.5x)", [
            f"{f['overhead']['ratio']:.2f}x ({f['overhead']['draw'] + f['overhead']['check']:.1f} ms / "
            f"{f['overhead']['fused'] + f['overhead']['candidate']:.1f} ms)" for f in pick]))
        rows.append(("  the same without Hypothesis' draw", [f"{f['overhead']['without_draw']:.2f}x" for f in pick]))
        rows.append(("  the draw and the two forwards alone", [
            f"{f['overhead']['draw_alone']:.2f}x (draw {f['overhead']['draw']:.1f} ms)" for f in pick]))
    if "workers" not in args.skip:
        rows.append(("one search, 1 worker", [f"{f['workers'][1]:.1f} cases/s" for f in pick]))
        rows.append(("one search, 2 workers (goal >= 1.6x)", [
            f"{f['workers'][2]:.1f} cases/s = {f['workers'][2] / f['workers'][1]:.2f}x" for f in pick]))
    if "crash" not in args.skip:
        rows.append((f"correct candidate, {args.examples} cases", [f"{f['crash']['correct']:.1f} s" for f in pick]))
        rows.append(("crashing candidate, same (goal <= 1.5x)", [
            f"{f['crash']['crashing']:.1f} s = {f['crash']['crashing'] / f['crash']['correct']:.2f}x" for f in pick]))
    if "onnx" not in args.skip:
        for target in ONNX_TARGETS:
            rows.append((f"{target}, defaults (goal >= 5 cases/s)", [f"{f['onnx'][target]:.1f} cases/s" for f in pick]))
            rows.append((f"{target}, checking alone", [f"{f['onnx_checking'][target]:.1f} cases/s" for f in pick]))
    width = max(len(name) for name, _ in rows)
    columns = [max(len(label), *(len(values[i]) for _, values in rows)) for i, label in enumerate(results)]
    print(f"{'':<{width}}  " + "  ".join(f"{label:<{w}}" for label, w in zip(results, columns, strict=True)))
    for name, values in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{v:<{w}}" for v, w in zip(values, columns, strict=True)))


if __name__ == "__main__":
    main()
