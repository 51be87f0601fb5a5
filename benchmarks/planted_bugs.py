"""How many generated cases each property needs to catch each planted bug.

For every planted bug (``tests/planted.py``, ``tests/contract_bugs.py``, the seed example) and the
property meant to catch it, Hypothesis generates cases (no shrinking, no database) under several
seeds until the first failure; the script prints the median and worst number of cases needed, and
the same for plain agreement with torch (``check``) where that is a different property, to show
what each extra property adds. Usage: ``python benchmarks/planted_bugs.py [SEEDS] [BUDGET]``.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.seed_decomposition import seed_decomposition
from fuzz_birnn import CheckFailure, check
from fuzz_birnn.properties import PROPERTIES
from fuzz_birnn.properties.gradients import check_gradients
from fuzz_birnn.properties.relations import check_relation
from fuzz_birnn.strategies import cases
from tests import contract_bugs, planted
from tests.searching import RELATION_BUGS


def agreement(bug):
    return lambda case: check(bug, case)


def relation(name, bug):
    return lambda case: check_relation(name, bug, case)


def narrowing(name):
    return PROPERTIES[f"relation:{name}"].narrowing


SEED_ONLY = {"modes": ["RNN_TANH", "RNN_RELU"], "forms": ["padded"]}
BUGS = [
    ("seed: missing re-reversal (example)", agreement(seed_decomposition), SEED_ONLY, None),
    ("seed: missing re-reversal (planted)", agreement(planted.seed_missing_re_reversal), {}, None),
    ("h0 read direction-major", agreement(planted.h0_direction_major), {}, None),
    ("packed reverse from padded end", agreement(planted.packed_reverse_from_padded_end), {}, None),
    ("GRU b_hn outside reset gate", agreement(planted.gru_bias_outside_reset), {}, None),
    ("h_n left in sorted order", agreement(contract_bugs.h_n_left_in_sorted_order), {}, None),
    ("output directions swapped", agreement(contract_bugs.output_directions_swapped), {}, None),
    ("reverse h_n from last output step", agreement(contract_bugs.reverse_h_n_from_last_output_step), {}, None),
    ("initial state ignored", agreement(contract_bugs.initial_state_ignored), {}, None),
    ("c_n direction-major", agreement(contract_bugs.c_n_direction_major), {}, None),
    *[(f"relation:{name} <- {bug.__name__ if hasattr(bug, '__name__') else type(bug).__name__}",
       relation(name, bug), narrowing(name), agreement(bug))
      for name, bug in RELATION_BUGS],
    ("gradients <- reverse output detached", lambda case: check_gradients(planted.reverse_output_detached, case),
     {"dtypes": ["float64", "float32"]}, agreement(planted.reverse_output_detached)),
]


def cases_to_first_failure(prop, kwargs, seed_value: int, budget: int) -> int | None:
    calls = 0

    @settings(max_examples=budget, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @seed(seed_value)
    @given(cases(**kwargs))
    def search(case):
        nonlocal calls
        calls += 1
        prop(case)

    try:
        search()
    except CheckFailure:
        return calls
    return None


def describe(counts: list[int | None]) -> str:
    found = [c for c in counts if c is not None]
    if not found:
        return "not found"
    missed = len(counts) - len(found)
    return f"median {statistics.median(found):>5.0f}, worst {max(found):>5}" + (f", missed {missed}" if missed else "")


def main(seeds: int, budget: int) -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}; {seeds} seeds; budget {budget} cases a search")
    print(f"{'planted bug':<62}{'its property':<32}{'plain agreement'}")
    for label, prop, kwargs, baseline in BUGS:
        started = time.perf_counter()
        counts = [cases_to_first_failure(prop, kwargs, s, budget) for s in range(seeds)]
        line = f"{label:<62}{describe(counts):<32}"
        if baseline is not None:
            line += describe([cases_to_first_failure(baseline, kwargs, s, budget) for s in range(seeds)])
        print(line + f"   ({time.perf_counter() - started:.1f}s)", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5, int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
