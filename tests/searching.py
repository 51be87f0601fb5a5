"""What the tests that search for a planted bug share: their settings, the predicate they search
with, and which planted bug each metamorphic relation exists to catch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, settings

from fuzz_birnn import Case, CheckFailure

from . import contract_bugs, planted

#: Enough examples to find a planted bug on any profile, no example database (each run must find
#: the bug on its own), and the full shrink.
SEARCH = settings(max_examples=1000, database=None, derandomize=True, deadline=None,
                  phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))

#: Each relation, and the planted bug of the kind it exists for.
RELATION_BUGS: list[tuple[str, Callable[..., Any]]] = [
    ("batch_independence", planted.lengths_ignored),
    ("unbatched", planted.unbatched_time_as_batch),
    ("layout", planted.batch_first_output_left_time_major),
    ("sorting", contract_bugs.h_n_left_in_sorted_order),
    ("time_reversal", planted.reverse_reads_forward_h0),
    ("dropout_eval", planted.dropout_in_eval),
    ("zero_state", planted.missing_state_is_ones),
]


def fails(check_one: Callable[[Case], object]) -> Callable[[Case], bool]:
    """The predicate "``check_one(case)`` raises :class:`~fuzz_birnn.CheckFailure`", for ``find``."""
    def condition(case: Case) -> bool:
        try:
            check_one(case)
        except CheckFailure:
            return True
        return False
    return condition
