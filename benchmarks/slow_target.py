"""A user's adapter over a slow target: what a time budget buys, per cause.

The target sleeps ``SLEEP`` seconds a call (a remote runtime, a simulator, a compile per case) and
then runs torch's module with two mistakes of its own, each needing its own part of the space: the
caller's ``h0``/``c0`` dropped (shows only with a given state), and the output's two directions
swapped for ``batch_first`` input. The benchmark runs ``fuzz-birnn run`` on it under a time budget
and prints, per finding, its heading, what it needs, how its shrinking ended and its smallest case:
the goal is one finding per cause, each shrunk to the simplest case that shows it (one layer, one
step, sizes 1, nothing the mistake does not need), not cut short.

Usage: ``python benchmarks/slow_target.py [BUDGET_SECONDS] [--sleep S] [--properties P,...]``
(default 300 s, 1 s a call, every property that applies); run it in a worktree of an older commit
for the figures before a change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SLEEP = float(os.environ.get("SLOW_TARGET_SLEEP", "1.0"))


def slow_target(module, input, hx=None):
    """``SLEEP`` seconds a call; drops the given state; swaps the output's directions for batch_first."""
    time.sleep(SLEEP)
    output, hidden = module(input)  # the given state never reaches the module
    if module.batch_first and isinstance(output, torch.Tensor):
        forward, reverse = output.chunk(2, dim=-1)
        output = torch.cat([reverse, forward], dim=-1)
    return output, hidden


def main() -> None:
    numbers = [a for a in sys.argv[1:] if a.replace(".", "").isdigit()]
    budget = numbers[0] if numbers else "300"
    sleep = sys.argv[sys.argv.index("--sleep") + 1] if "--sleep" in sys.argv else "1.0"
    properties = sys.argv[sys.argv.index("--properties") + 1] if "--properties" in sys.argv else None
    with tempfile.TemporaryDirectory() as reports:
        command = [sys.executable, "-m", "fuzz_birnn", "run", "--candidate", "benchmarks.slow_target:slow_target",
                   "--time-budget", budget, "--seed", "0", "--database", "none", "--reports", reports,
                   *(["--properties", properties] if properties else [])]
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "SLOW_TARGET_SLEEP": sleep, "PYTHONPATH": str(ROOT)})
        seconds = time.monotonic() - started
        record = json.loads((Path(reports) / "run.json").read_text())
    cases = record["cases"]
    compared = sum(s["passed"] + s["failed"] + s["known"] for s in cases["by_search"])
    searched = sum(1 for s in cases["by_search"] if s["cases"])
    print(f"budget {budget}s, {sleep}s a call: {cases['total']} cases ({compared} compared) over {searched} of "
          f"{len(cases['by_search'])} searches in {seconds:.0f}s; exit {done.returncode}; "
          f"{len(record['findings'])} finding(s) for 2 causes")
    for finding in record["findings"]:
        smallest = finding["smallest"]
        print(f"- {finding['signature'][:90]}\n  needs: {finding.get('needs')}; seen in "
              f"{len(finding['seen_in'])} search(es); shrink: {smallest['shrink'][:70]}\n"
              f"  smallest: {smallest['summary'].rsplit(' [', 1)[-1][:200]}")
    for note in record["notes"]:
        print(f"note: {note[:200]}")


if __name__ == "__main__":
    main()
