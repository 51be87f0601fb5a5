"""The harness has teeth: each planted bug is found, shrunk to its smallest case, and reported
at the right place; the correct implementations pass that same case (no false alarm)."""

from __future__ import annotations

import pytest
from hypothesis import find

from fuzz_birnn import CheckFailure, check, decomposed, reference
from fuzz_birnn.strategies import cases

from . import planted
from .searching import SEARCH, fails


def _fails(candidate):
    return fails(lambda case: check(candidate, case))


def _shrunk(candidate, **narrowing):
    """The smallest case Hypothesis finds on which ``candidate`` fails, and its failure."""
    case = find(cases(**narrowing), _fails(candidate), settings=SEARCH)
    with pytest.raises(CheckFailure) as failure:
        check(candidate, case)
    check(decomposed, case)  # the correct implementations pass the very same case
    check(reference, case)
    return case, failure.value.mismatch


def test_seed_missing_re_reversal_shrinks_to_two_layers():
    case, mismatch = _shrunk(planted.seed_missing_re_reversal)
    c, i = case.config, case.inputs
    assert (c.mode, c.num_layers, c.input_size, c.hidden_size, c.bias) == ("RNN_TANH", 2, 1, 1, False)
    assert (i.form, i.seq_len, i.batch_size, i.dtype, i.initial_state) == ("padded", 2, 1, "float64", False)
    # The second layer's forward direction is the first to read the wrongly ordered input.
    assert (mismatch.layer, mismatch.direction) == (1, "forward")


def test_h0_read_direction_major_shrinks_to_two_layers_with_given_h0():
    case, mismatch = _shrunk(planted.h0_direction_major)
    c, i = case.config, case.inputs
    assert (c.mode, c.num_layers, c.input_size, c.hidden_size) == ("RNN_TANH", 2, 1, 1)
    assert (i.initial_state, i.seq_len, i.batch_size, i.form) == (True, 1, 1, "padded")
    # Row 1 (layer 0, reverse) is the first row read from the wrong place.
    assert (mismatch.layer, mismatch.direction) == (0, "reverse")


def test_packed_reverse_from_padded_end_shrinks_to_two_unequal_sequences():
    case, mismatch = _shrunk(planted.packed_reverse_from_padded_end)
    c, i = case.config, case.inputs
    assert (c.mode, c.num_layers, c.input_size, c.hidden_size) == ("RNN_TANH", 1, 1, 1)
    assert i.packed and i.batch_size == 2 and i.seq_len == 2 and sorted(i.lengths) == [1, 2]
    assert (mismatch.layer, mismatch.direction) == (0, "reverse")


def test_gru_bias_outside_reset_gate_shrinks_to_one_gru_step():
    case, mismatch = _shrunk(planted.gru_bias_outside_reset)
    c, i = case.config, case.inputs
    assert (c.mode, c.bias, c.num_layers, c.input_size, c.hidden_size) == ("GRU", True, 1, 1, 1)
    assert (i.seq_len, i.batch_size, i.form, i.dtype) == (1, 1, "padded", "float64")
    assert mismatch.layer == 0
