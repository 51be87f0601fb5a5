"""How often a result falls outside the tolerance's cheap bound, so that the float32 (and native)
reference runs are needed (``Evaluation.judge``): for the same drawn cases, the decomposition and
torch, and candidates placed ``ulps`` of their dtype off. Usage:
``python benchmarks/tolerance_bound.py [CASES]``."""

from __future__ import annotations

import collections
import contextlib
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
warnings.filterwarnings("ignore")

from throughput import draw_cases  # noqa: E402

from fuzz_birnn import CheckFailure, check, decomposed  # noqa: E402
from fuzz_birnn.core import evaluation  # noqa: E402
from tests.test_compare import _jittered  # noqa: E402


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    tally: collections.Counter[str] = collections.Counter()
    judge = evaluation.Evaluation.judge

    def counted(self, compare):
        verdict, tolerances = judge(self, compare)
        tally["within the bound" if tolerances is self.bound else
              "measured: within the model" if verdict is None else "measured: beyond the model"] += 1
        return verdict, tolerances

    evaluation.Evaluation.judge = counted  # type: ignore[method-assign]
    cases, _ = draw_cases(count, at=5)
    for label, candidate in [("decomposed (and torch)", decomposed),
                             *((f"{ulps} ulps off", _jittered(ulps)) for ulps in (16, 96, 400))]:
        tally.clear()
        for case in cases:
            with contextlib.suppress(CheckFailure):
                check(candidate, case)
        print(f"{label:<24}", ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())))


if __name__ == "__main__":
    main()
