"""``--candidate quantizable-lstm``: torch.ao.nn.quantizable.LSTM agrees with nn.LSTM where it can
read the call, refuses other modes as Unsupported, and the check catches the seed's mistake planted
in its bidirectional layer."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from torch.ao.nn.quantizable.modules import rnn as quantizable_rnn

from fuzz_birnn import CheckFailure
from fuzz_birnn.core.case import Case, Config, Inputs
from fuzz_birnn.core.check import check
from fuzz_birnn.strategies import cases
from fuzz_birnn.targets import load_target

quantizable_lstm = load_target("quantizable-lstm")


@given(cases(modes=["LSTM"], dtypes=["float32"], forms=["padded"], proj=False, bidirectional=None))
def test_it_agrees_with_nn_lstm_on_float32_padded_input(case):
    assert check(quantizable_lstm, case, name="quantizable-lstm").skipped is None


def test_a_gru_is_not_compared_saying_why():
    case = Case(Config(mode="GRU"), Inputs(dtype="float32"))
    assert check(quantizable_lstm, case).skipped == "unsupported: torch.ao.nn.quantizable has LSTM only, not GRU"


def test_a_reverse_output_left_in_processing_order_is_caught(monkeypatch):
    forward = quantizable_rnn._LSTMLayer.forward
    flip = torch.Tensor.flip

    def without_the_second_flip(self, x, hidden=None):
        flips = itertools.count()  # the first flip reverses the input; the second should put the output back
        monkeypatch.setattr(torch.Tensor, "flip", lambda t, dims: flip(t, dims) if next(flips) == 0 else t)
        try:
            return forward(self, x, hidden)
        finally:
            monkeypatch.setattr(torch.Tensor, "flip", flip)

    case = Case(Config(mode="LSTM", input_size=2, hidden_size=3, num_layers=2), Inputs(seq_len=3, batch_size=2,
                                                                                      dtype="float32"))
    check(quantizable_lstm, case)
    monkeypatch.setattr(quantizable_rnn._LSTMLayer, "forward", without_the_second_flip)
    with pytest.raises(CheckFailure, match="differs"):
        check(quantizable_lstm, case)
