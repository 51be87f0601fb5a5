"""Does ``hypothesis.target()`` on error / allowance find bugs in fewer cases?

``fuzz-birnn run`` reports each passing case's worst error relative to its allowance to
``hypothesis.target``. This script measures what that buys, the way the run searches: slices of
``SLICE`` examples, each a Hypothesis run with its own seed, until the first failure, with and
without targeting, over several seeds. Bugs: the planted layout bugs of
``benchmarks/planted_bugs.py`` (agreement and relations), and two near misses made for this
script, whose error grows smoothly with a dimension and crosses the allowance only at its far end,
which is where targeting should help if anywhere.

Usage: ``python benchmarks/targeting.py [SEEDS] [BUDGET] [SLICE]`` (defaults 10, 3000, 200).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import torch
from hypothesis import HealthCheck, Phase, given, seed, settings, target

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.planted_bugs import BUGS, describe
from fuzz_birnn import CheckFailure, check
from fuzz_birnn.strategies import cases


def error_grows_with_time(module, input, hx=None):
    """Adds 1.5e-7 * t**2 (relative) to output step t: beyond float32's allowance from t = 8 on."""
    output, hidden = module(input, hx)
    steps = output.shape[1 if module.batch_first else 0]
    t = torch.arange(steps, dtype=output.dtype).view(*([1, -1, 1] if module.batch_first else [-1, 1, 1]))
    return output * (1 + 1.5e-7 * t**2), hidden


def error_grows_with_depth(module, input, hx=None):
    """h_n scaled by 1 + 2e-6 * 4**layer (relative): beyond float32's allowance only in layers 3 and up."""
    output, hidden = module(input, hx)
    directions = 2 if module.bidirectional else 1
    layer = torch.arange(module.num_layers).repeat_interleave(directions).view(-1, 1, 1)

    def scaled(state):
        return state * (1 + 2e-6 * 4.0**layer).to(state.dtype)
    return output, (tuple(scaled(s) for s in hidden) if isinstance(hidden, tuple) else scaled(hidden))


NEAR_MISSES = [
    ("near miss: error grows with time step", lambda case: check(error_grows_with_time, case),
     {"dtypes": ["float32"], "forms": ["padded"], "max_seq_len": 12}, None),
    ("near miss: error grows with depth", lambda case: check(error_grows_with_depth, case),
     {"dtypes": ["float32"], "forms": ["padded"], "max_layers": 5}, None),
]


def cases_to_first_failure(prop, kwargs, seed_value: int, budget: int, slice_size: int, targeted: bool) -> int | None:
    """Cases checked until the first failure, in slices as ``run`` does (``None``: not found)."""
    calls = 0
    for number in range(-(-budget // slice_size)):
        @settings(max_examples=slice_size, database=None, deadline=None,
                  phases=[Phase.generate, Phase.target], suppress_health_check=list(HealthCheck))
        @seed(seed_value * 100_003 + number)
        @given(cases(**kwargs))
        def search(case):
            nonlocal calls
            calls += 1
            outcome = prop(case)
            ratios = [outcome.errors[k] / outcome.allowed[k] for k in outcome.errors if outcome.allowed.get(k)]
            if targeted and ratios:
                target(min(max(ratios), 1e6), label="error / allowance")

        try:
            search()
        except CheckFailure:
            return calls
        if calls >= budget:
            break
    return None


def main(seeds: int, budget: int, slice_size: int) -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}; {seeds} seeds; budget {budget} cases; slices of {slice_size}")
    print(f"{'bug':<62}{'with target()':<34}{'without'}")
    for label, prop, kwargs, _ in [*NEAR_MISSES, *BUGS]:
        started = time.perf_counter()
        line = f"{label:<62}"
        for targeted in (True, False):
            counts = [cases_to_first_failure(prop, kwargs, s, budget, slice_size, targeted) for s in range(seeds)]
            line += f"{describe(counts):<34}"
        print(line + f" ({time.perf_counter() - started:.1f}s)", flush=True)


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:4]]
    main(*(arguments + [10, 3000, 200][len(arguments):]))
