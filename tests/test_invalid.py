"""Invalid calls: torch, the decomposition and the reference all refuse them clearly."""

from __future__ import annotations

import pytest
from hypothesis import assume, find, given

from fuzz_birnn import CheckFailure, decomposed
from fuzz_birnn.properties.invalid import CORRUPTIONS, KNOWN_TORCH_ISSUES, check_invalid
from fuzz_birnn.strategies import cases, invalid_calls

from .searching import SEARCH, fails


@given(invalid_calls(bidirectional=None))
def test_invalid_calls_are_refused_clearly_by_everyone(call):
    case, corruption = call
    assume(check_invalid(case, corruption).skipped is None)


def _fails(corruption, **kwargs):
    return fails(lambda case: check_invalid(case, corruption, **kwargs))


@pytest.mark.parametrize("corruption", sorted(KNOWN_TORCH_ISSUES))
def test_known_torch_issues_are_still_present(corruption):
    """When this fails, torch has fixed the issue: remove it from KNOWN_TORCH_ISSUES."""
    _, applies, _ = CORRUPTIONS[corruption]
    still_mishandled = _fails(corruption, strict=True)
    case = find(cases(bidirectional=None, initial_state=True), lambda c: applies(c) and still_mishandled(c),
                settings=SEARCH)
    assert applies(case)


def test_an_implementation_that_accepts_a_wrong_state_is_caught(monkeypatch):
    """A decomposition that ignores the caller's h0 never notices that it has the wrong shape."""
    monkeypatch.setattr("fuzz_birnn.properties.invalid.decomposed",
                        lambda module, input, hx=None: decomposed(module, input))
    case = find(cases(), _fails("h0_rows"), settings=SEARCH)
    with pytest.raises(CheckFailure, match="h0_rows: torch refuses it, but decomposed accepted the call"):
        check_invalid(case, "h0_rows")
    assert (case.config.num_layers, case.inputs.seq_len, case.inputs.initial_state) == (1, 1, True)
