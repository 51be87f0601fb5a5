"""Autocast: torch's fused module under ``torch.autocast`` agrees with the float64 reference within
the autocast dtype's tolerance, raises nothing on a valid call, and returns the same dtypes with
oneDNN on and off; each check catches a planted bug of its kind."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given
from torch import nn

from fuzz_birnn import CheckFailure
from fuzz_birnn.core.case import Case, Config, Inputs
from fuzz_birnn.core.cells import cells
from fuzz_birnn.core.decomposition import decomposed
from fuzz_birnn.properties import PROPERTIES, default_properties
from fuzz_birnn.properties.autocast import check_autocast
from fuzz_birnn.strategies import cases


@given(cases(dtypes=["float32"], bidirectional=None))
def test_torch_under_autocast_passes_or_is_a_known_issue(case):
    outcome = check_autocast(case)
    assert outcome.skipped is None or outcome.skipped.startswith("known torch issue: nn.LSTM under CPU autocast")


def test_autocast_draws_float32_cases_only_and_checks_a_candidate_by_default():
    assert PROPERTIES["autocast"].narrowing == {"dtypes": ["float32"]}
    assert "autocast" in default_properties("mypkg:stack", grad=False)


@given(cases(dtypes=["float32"], bidirectional=None))
def test_the_decomposition_and_the_stack_of_cells_under_autocast_pass(case):
    for name, candidate in (("decomposed", decomposed), ("cells", cells)):
        outcome = check_autocast(case, candidate, name)
        assert outcome.skipped is None or outcome.skipped.startswith(("known torch issue", "unsupported")), \
            (name, outcome.skipped)


def test_a_candidate_that_ignores_autocasts_dtype_rule_is_caught():
    def in_half(module, input, hx=None):
        output, hidden = decomposed(module, input, hx)
        return output.half() if torch.is_autocast_enabled("cpu") else output, hidden

    with pytest.raises(CheckFailure, match="candidate in_half returned output in float16"):
        check_autocast(GRU, in_half, "in_half")


GRU = Case(Config(mode="GRU", input_size=3, hidden_size=4, num_layers=2), Inputs(seq_len=3, batch_size=2,
                                                                                dtype="float32", initial_state=True))


def _under_autocast(kind, change):
    """``kind.forward`` with ``change(module, input, hx, forward)`` in its place while autocast is on."""
    forward = kind.forward

    def patched(self, input, hx=None):
        if torch.is_autocast_enabled("cpu"):
            return change(self, input, hx, forward)
        return forward(self, input, hx)
    return patched


def test_a_module_that_ignores_h0_under_autocast_is_caught(monkeypatch):
    check_autocast(GRU)
    monkeypatch.setattr(nn.GRU, "forward", _under_autocast(nn.GRU, lambda m, x, hx, forward: forward(m, x)))
    with pytest.raises(CheckFailure, match=r"under torch.autocast\('cpu', bfloat16\) with oneDNN on: .* differs"):
        check_autocast(GRU)


def _raises(m, x, hx, forward):
    raise RuntimeError("no kernel for this")


def _bfloat16_with_onednn(m, x, hx, forward):
    output, h_n = forward(m, x, hx)
    return (output.bfloat16() if torch.backends.mkldnn.enabled else output.float()), h_n


def _output_in_half(m, x, hx, forward):
    output, h_n = forward(m, x, hx)
    return output.half(), h_n


@pytest.mark.parametrize(("planted", "says"), [
    (_raises, "torch's fused module raised RuntimeError: no kernel for this"),
    (_bfloat16_with_onednn, "the dtype of output depends on oneDNN: bfloat16 with it on, float32"),
    (_output_in_half, "returned output in float16, neither float32 nor bfloat16"),
], ids=["raises", "dtype-depends-on-onednn", "float16-output"])
def test_a_module_that_breaks_autocasts_rules_is_caught(monkeypatch, planted, says):
    check_autocast(GRU)
    monkeypatch.setattr(nn.GRU, "forward", _under_autocast(nn.GRU, planted))
    with pytest.raises(CheckFailure, match=says):
        check_autocast(GRU)


@pytest.mark.skipif(torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="oneDNN has a bfloat16 LSTM on this CPU")
def test_the_known_lstm_issue_is_still_present():
    """When this fails, torch has fixed it: remove it from KNOWN_TORCH_ISSUES in properties/autocast.py."""
    case = Case(Config(mode="LSTM", input_size=2, hidden_size=3), Inputs(seq_len=2, batch_size=1, dtype="float32"))
    with pytest.raises(CheckFailure, match="could not create a primitive descriptor"):
        check_autocast(case, strict=True)
    assert check_autocast(case).skipped.startswith("known torch issue: nn.LSTM under CPU autocast")


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="oneDNN has no bfloat16 LSTM here")
def test_the_lstms_dtype_by_onednn_is_known_and_its_values_still_checked(monkeypatch):
    """When the strict check passes, torch returns one dtype either way: remove the entry from
    KNOWN_DTYPE_DIFFERENCES in properties/autocast.py."""
    case = Case(Config(mode="LSTM", input_size=2, hidden_size=3), Inputs(seq_len=2, batch_size=1, dtype="float32"))
    with pytest.raises(CheckFailure, match="the dtype of output depends on oneDNN: bfloat16 with it on, float32"):
        check_autocast(case, strict=True)
    assert check_autocast(case).skipped is None
    monkeypatch.setattr(nn.LSTM, "forward", _under_autocast(nn.LSTM, lambda m, x, hx, forward: forward(m, x)))
    with pytest.raises(CheckFailure, match="differs"):  # a wrong value is still caught
        check_autocast(dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, initial_state=True)))


def test_only_torchs_own_dtype_difference_is_excused(monkeypatch):
    """An LSTM whose dtype depends on oneDNN the other way round from torch's is caught."""
    case = Case(Config(mode="LSTM", input_size=2, hidden_size=3), Inputs(seq_len=2, batch_size=1, dtype="float32"))

    def bfloat16_without_onednn(m, x, hx, forward):
        output, hidden = forward(m, x, hx)
        return (output.float() if torch.backends.mkldnn.enabled else output.bfloat16()), hidden
    monkeypatch.setattr(nn.LSTM, "forward", _under_autocast(nn.LSTM, bfloat16_without_onednn))
    with pytest.raises(CheckFailure, match="depends on oneDNN: float32 with it on, bfloat16 with it off"):
        check_autocast(case)
