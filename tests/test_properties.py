"""The core properties: torch's fused modules equal the decomposition and the float64 reference.

The example count comes from the Hypothesis profile (see ``conftest.py``); each mode is its own
test so that a failure in one does not hide a failure in another, and so xdist spreads them.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fuzz_birnn import MODES, check, check_fused, decomposed
from fuzz_birnn.strategies import cases

pytestmark = pytest.mark.parametrize("mode", MODES)


@given(data=st.data())
def test_fused_equals_decomposed_stack(mode, data):
    case = data.draw(cases(modes=[mode]), label="case")
    outcome = check(decomposed, case)
    assume(outcome.skipped is None)


@given(data=st.data())
def test_fused_equals_float64_reference(mode, data):
    case = data.draw(cases(modes=[mode]), label="case")
    outcome = check_fused(case)
    assume(outcome.skipped is None)


@given(data=st.data())
def test_unidirectional_stacks_too(mode, data):
    case = data.draw(cases(modes=[mode], bidirectional=False), label="case")
    assume(check(decomposed, case).skipped is None)
    check_fused(case)
