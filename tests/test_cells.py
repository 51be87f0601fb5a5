"""Torch's cells (nn.RNNCell, nn.GRUCell, nn.LSTMCell) stacked as people stack them: the ``cells``
candidate agrees with torch's fused module and the float64 reference on every case it can hold,
and the ``cells`` property catches a wrong cell, including one wrong only in the way it is called
(an unbatched input, a missing state)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from torch import nn

from fuzz_birnn import CheckFailure
from fuzz_birnn.core.case import Case, Config, Inputs
from fuzz_birnn.core.cells import cells
from fuzz_birnn.core.check import check
from fuzz_birnn.properties import PROPERTIES, default_properties
from fuzz_birnn.strategies import cases


def _cells_property(case):
    return PROPERTIES["cells"].run(cells, case, "cells", {})


@given(cases(bidirectional=None))
def test_the_stack_of_cells_agrees_with_torch_wherever_it_can_hold_the_module(case):
    outcome = check(cells, case, name="cells")
    if case.config.proj_size:
        assert outcome.skipped == "unsupported: nn.LSTMCell has no proj_size: a stack of cells cannot hold a " \
                                  "projected LSTM"
    else:
        assert outcome.skipped is None or "range" in outcome.skipped, outcome.skipped


def test_the_cells_property_is_in_a_run_of_torch_and_never_draws_a_projection():
    assert "cells" in default_properties(None, grad=False)
    assert "cells" not in default_properties("decomposed", grad=False)  # it checks torch, not the candidate
    assert PROPERTIES["cells"].candidate("decomposed") == "cells"


def _perturbed(cell, when):
    """``cell``'s forward, its new state off by one part in a thousand whenever ``when(input, hx)``."""
    forward = cell.forward

    def wrong(self, input, hx=None):
        new = forward(self, input, hx)
        if not when(input, hx):
            return new
        return tuple(t * 1.001 for t in new) if isinstance(new, tuple) else new * 1.001
    return wrong


GRU = Case(Config(mode="GRU", input_size=3, hidden_size=4, num_layers=2), Inputs(seq_len=3, batch_size=2,
                                                                                dtype="float64", initial_state=True))


def test_a_wrong_cell_is_caught(monkeypatch):
    _cells_property(GRU)
    monkeypatch.setattr(nn.GRUCell, "forward", _perturbed(nn.GRUCell, lambda input, hx: True))
    with pytest.raises(CheckFailure):
        _cells_property(GRU)


@pytest.mark.parametrize("mode", ["RNN_TANH", "LSTM"])
def test_a_cell_wrong_only_on_unbatched_input_is_caught_on_unbatched_cases_only(monkeypatch, mode):
    cell = nn.LSTMCell if mode == "LSTM" else nn.RNNCell
    monkeypatch.setattr(cell, "forward", _perturbed(cell, lambda input, hx: input.dim() == 1))
    config = Config(mode=mode, input_size=2, hidden_size=3, num_layers=1)
    _cells_property(Case(config, Inputs(seq_len=3, batch_size=2, dtype="float64")))  # batched: right
    with pytest.raises(CheckFailure):
        _cells_property(Case(config, Inputs(seq_len=3, batch_size=None, unbatched=True, dtype="float64")))


def test_a_cell_whose_missing_state_is_not_zeros_is_caught_on_cases_without_h0(monkeypatch):
    forward = nn.LSTMCell.forward

    def ones_by_default(self, input, hx=None):
        if hx is None:
            shape = (*input.shape[:-1], self.hidden_size)
            hx = (torch.ones(shape, dtype=input.dtype), torch.zeros(shape, dtype=input.dtype))
        return forward(self, input, hx)

    monkeypatch.setattr(nn.LSTMCell, "forward", ones_by_default)
    config = Config(mode="LSTM", input_size=2, hidden_size=3, num_layers=1)
    _cells_property(Case(config, Inputs(seq_len=2, batch_size=2, dtype="float64", initial_state=True)))
    with pytest.raises(CheckFailure):
        _cells_property(Case(config, Inputs(seq_len=2, batch_size=2, dtype="float64", initial_state=False)))


def test_a_packed_batch_of_unequal_lengths_keeps_each_sequences_state_past_its_end():
    case = Case(Config(mode="GRU", input_size=2, hidden_size=3, num_layers=2, batch_first=True),
                Inputs(seq_len=4, batch_size=3, packed=True, lengths=(4, 1, 2), enforce_sorted=False,
                       dtype="float64", initial_state=True))
    assert check(cells, case, name="cells").skipped is None
