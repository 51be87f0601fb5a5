"""Draw cases from ``strategies.cases()`` on its defaults and print how often each value of each
dimension came up, with the draw rate. Usage: ``python benchmarks/strategy_coverage.py [N]``."""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz_birnn.strategies import cases


def dimensions(case):
    c, i = case.config, case.inputs
    return {
        "mode": c.mode, "proj_size>0": c.proj_size > 0, "bias": c.bias, "batch_first": c.batch_first,
        "bidirectional": c.bidirectional, "num_layers": c.num_layers, "input_size": c.input_size,
        "hidden_size": c.hidden_size, "seq_len": i.seq_len, "batch": i.batch_size, "form": i.form,
        "packed & batch_first": i.packed and c.batch_first, "initial_state": i.initial_state,
        "dropout>0": c.dropout > 0, "dtype": i.dtype, "device": i.device, "oneDNN": i.onednn,
        "contiguous": i.contiguous, "scale": i.scale,
    }


def main(examples: int) -> None:
    seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    started = time.perf_counter()

    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cases(bidirectional=None))
    def draw(case):
        for name, value in dimensions(case).items():
            seen[name][value] += 1

    draw()
    elapsed = time.perf_counter() - started
    print(f"{examples} cases drawn in {elapsed:.1f}s ({examples / elapsed:.0f}/s), cases(bidirectional=None)")
    for name, counts in seen.items():
        values = "  ".join(f"{value}: {n}" for value, n in sorted(counts.items(), key=lambda kv: str(kv[0])))
        print(f"{name:<22}{values}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
