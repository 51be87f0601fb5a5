"""Print how close correct implementations come to the tolerance model's allowance.

For each drawn case, the worst ratio ``error / allowed`` over output, h_n and c_n is printed per
implementation and dtype: torch's fused module (against its allowance), the decomposition, and
two higher-precision candidates (float64 reference cast back; torch in float32 cast back for
bfloat16/float16). A correct implementation must stay below 1; the margin shows how much
headroom ``RATIO`` leaves. Usage: ``python benchmarks/calibrate_tolerance.py [N]``.
"""

from __future__ import annotations

import collections
import sys
import time
import warnings

import torch
from hypothesis import HealthCheck, given, settings

from fuzz_birnn import CheckFailure, check, check_fused, decomposed, reference
from fuzz_birnn.core.evaluation import Evaluation
from fuzz_birnn.strategies import cases

# What is calibrated is the measured model, so measure it on every case (a run measures it only
# for results beyond its cheaper bound, which would make every ratio here read against the bound).
Evaluation.judge = lambda self, compare: (compare(self.tolerances), self.tolerances)  # type: ignore[method-assign]


def fused_in_float32(module, input, hx=None):
    """Torch's own module run in float32 and cast back: a correct higher-precision candidate."""
    from torch.nn.utils.rnn import PackedSequence

    dtype = next(module.parameters()).dtype
    wide = module.float()
    cast = lambda t: t.float() if t is not None else None  # noqa: E731
    x = input._replace(data=input.data.float()) if isinstance(input, PackedSequence) else input.float()
    h = tuple(map(cast, hx)) if isinstance(hx, tuple) else cast(hx)
    out, hidden = wide(x, h)
    out = out._replace(data=out.data.to(dtype)) if isinstance(out, PackedSequence) else out.to(dtype)
    hidden = tuple(t.to(dtype) for t in hidden) if isinstance(hidden, tuple) else hidden.to(dtype)
    module.to(dtype)
    return out, hidden


def main(examples: int) -> None:
    warnings.simplefilter("ignore")
    worst: dict[tuple[str, str], float] = collections.defaultdict(float)
    count: collections.Counter = collections.Counter()
    failures: list[str] = []
    started = time.perf_counter()

    @settings(max_examples=examples, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def measure(case):
        checks = {"fused": lambda: check_fused(case), "decomposed": lambda: check(decomposed, case),
                  "reference": lambda: check(reference, case)}
        if case.inputs.dtype in ("bfloat16", "float16"):
            checks["fused_in_float32"] = lambda: check(fused_in_float32, case)
        backend = "" if case.inputs.onednn else "/no-oneDNN"
        for name, run in checks.items():
            try:
                outcome = run()
            except CheckFailure as failure:
                ratio = failure.mismatch.max_abs_error / failure.mismatch.tolerance
                failures.append(f"{name} {ratio:.2f}x: {failure.case.describe()}")
            else:
                if outcome.skipped:
                    count[("skipped", case.inputs.dtype)] += 1
                    continue
                ratio = max(outcome.errors[k] / outcome.allowed[k] if outcome.allowed[k] else 0.0
                            for k in outcome.errors)
            key = (name, case.inputs.dtype + backend)
            worst[key] = max(worst[key], ratio)
            count[key] += 1

    measure()
    elapsed = time.perf_counter() - started
    print(f"{examples} examples in {elapsed:.1f}s ({examples / elapsed:.1f}/s); torch {torch.__version__}")
    print(f"{'implementation':<18}{'dtype':<20}{'n':>6}  worst error/allowed")
    for (name, dtype), ratio in sorted(worst.items()):
        print(f"{name:<18}{dtype:<20}{count[(name, dtype)]:>6}  {ratio:.3f}")
    for line in failures:
        print("FALSE ALARM", line)
    for key, n in sorted(count.items()):
        if key[0] == "skipped":
            print(f"skipped (out of dtype range): {key[1]} x{n}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
