"""A candidate that computes a dtype's cases in a lower precision by design, and says so
(``computes_in``), is held to that precision's tolerance, and to nothing looser: a fault on top
of the lower precision is still caught, and a candidate that does not declare it still fails."""

from __future__ import annotations

import pytest
import torch

from fuzz_birnn import Case, CheckFailure, Config, Inputs, check
from fuzz_birnn.core.evaluation import computes_in
from fuzz_birnn.properties.relations import check_relation
from tests import contract_bugs
from tests.planted import computed_in

CASES = [
    Case(Config("GRU", 3, 4, 2, True, True, True), Inputs(5, 2, initial_state=True, dtype="float32", seed=1)),
    Case(Config("LSTM", 2, 3, 1, True, False, True), Inputs(4, 3, True, (4, 1, 3), False, dtype="float32", seed=4)),
    Case(Config("RNN_TANH", 2, 3, 2, False, False, True), Inputs(3, 2, initial_state=True, dtype="float64", seed=2)),
]


def declared(candidate, **lower):
    def wrapper(module, input, hx=None):
        return candidate(module, input, hx)
    wrapper.computes_in = lower
    return wrapper


def scaled(module, input, hx=None):
    """bfloat16 arithmetic, and a final state 25% off on top of it (1% is the size of bfloat16 rounding)."""
    output, hidden = computed_in(torch.bfloat16)(module, input, hx)
    return output, (tuple(h * 1.25 for h in hidden) if isinstance(hidden, tuple) else hidden * 1.25)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.describe())
def test_a_candidate_computing_in_its_declared_precision_passes_and_without_the_declaration_fails(case):
    in_bfloat16 = computed_in(torch.bfloat16)
    check(declared(in_bfloat16, float32="bfloat16", float64="bfloat16"), case)
    with pytest.raises(CheckFailure):
        check(in_bfloat16, case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.describe())
def test_a_fault_beyond_the_declared_precision_is_caught_and_says_what_it_was_held_to(case):
    with pytest.raises(CheckFailure, match="h_n differs") as raised:
        check(declared(scaled, float32="bfloat16", float64="bfloat16"), case)
    assert any("held to bfloat16's tolerance" in note for note in raised.value.__notes__)
    with pytest.raises(CheckFailure):  # a declaration for other dtypes loosens nothing here
        check(declared(computed_in(torch.bfloat16), float16="bfloat16"), case)
    with pytest.raises(CheckFailure):  # nor does one naming a precision that is not lower
        check(declared(contract_bugs.output_directions_swapped, float32="float64", float64="float64"), case)


def test_a_relation_allows_a_declared_precision_too():
    case = CASES[0]
    plain = check_relation("layout", computed_in(torch.bfloat16), case)
    held = check_relation("layout", declared(computed_in(torch.bfloat16), float32="bfloat16"), case)
    assert all(held.allowed[name] > 10 * plain.allowed[name] for name in plain.allowed)


def test_only_a_known_lower_dtype_is_a_declaration():
    assert computes_in(declared(None, float32="bfloat16"), "float32") == "bfloat16"
    assert computes_in(declared(None, float32="float32"), "float32") is None
    assert computes_in(declared(None, float32="int8"), "float32") is None
    assert computes_in(lambda m, i, h=None: None, "float32") is None
