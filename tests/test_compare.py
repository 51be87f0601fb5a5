"""The comparison: structure errors in one grammar, the fault located, the tolerance model sound."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch.nn.utils.rnn import PackedSequence

from fuzz_birnn import Case, CheckFailure, Config, Inputs, check, fused, reference
from fuzz_birnn.core.layout import reverse_within_lengths
from fuzz_birnn.strategies import cases

LSTM_CASE = Case(Config(mode="LSTM", input_size=2, hidden_size=3, num_layers=2, bias=True),
                 Inputs(seq_len=4, batch_size=2, packed=True, lengths=(4, 2), initial_state=True))


def _failure(candidate, case=LSTM_CASE):
    with pytest.raises(CheckFailure) as raised:
        check(candidate, case)
    return raised.value


def test_reverse_within_lengths_keeps_padding_in_place():
    x = torch.arange(8.0).reshape(4, 2, 1)  # sequence 0: 0 2 4 6; sequence 1: 1 3 5 7
    out = reverse_within_lengths(x, torch.tensor([4, 2]))
    assert out[:, 0, 0].tolist() == [6, 4, 2, 0]
    assert out[:, 1, 0].tolist() == [3, 1, 5, 7]
    assert torch.equal(reverse_within_lengths(out, torch.tensor([4, 2])), x)


@pytest.mark.parametrize(("candidate", "message"), [
    (lambda m, x, hx=None: m(x, hx)[0], "result is a PackedSequence, but should be a pair (output, hidden)"),
    (lambda m, x, hx=None: (torch.nn.utils.rnn.pad_packed_sequence(x)[0], m(x, hx)[1]),
     "output is a tensor of shape (4, 2, 2), but should be a PackedSequence"),
    (lambda m, x, hx=None: (m(x, hx)[0], m(x, hx)[1][0]),
     "hidden is a tensor of shape (4, 2, 3), but should be a pair (h_n, c_n)"),
    (lambda m, x, hx=None: (m(x, hx)[0], (m(x, hx)[1][0][:2], m(x, hx)[1][1])),
     "h_n.shape=(2, 2, 3), but should be (4, 2, 3)"),
    (lambda m, x, hx=None: (m(x, hx)[0], (m(x, hx)[1][0].float(), m(x, hx)[1][1])),
     "h_n.dtype=torch.float32, but should be torch.float64"),
    (lambda m, x, hx=None: 1 / 0, "candidate raised ZeroDivisionError: division by zero"),
])
def test_structure_errors_say_what_and_what_should_be(candidate, message):
    failure = _failure(candidate)
    assert str(failure).startswith(message)
    assert LSTM_CASE.describe() in str(failure)
    assert "Reproduce with:" in "".join(failure.__notes__)


def test_unsorted_pack_restored_in_the_wrong_order_is_a_structure_error():
    case = Case(Config(hidden_size=2), Inputs(seq_len=3, batch_size=3, packed=True, lengths=(1, 3, 2),
                                              enforce_sorted=False))

    def forgets_indices(m, x, hx=None):
        out, h = m(x, hx)
        return PackedSequence(out.data, out.batch_sizes), h

    assert "output.sorted_indices=None, but should be [1, 2, 0]" in str(_failure(forgets_indices, case))


def _nudge(row, step=None, batch=0, amount=1e-3):
    """A candidate equal to torch's module except one value moved by ``amount``."""
    def candidate(m, x, hx=None):
        out, (h, c) = m(x, hx)
        if step is None:
            h = h.clone()
            h[row, batch, 0] += amount
        else:
            padded, lengths = torch.nn.utils.rnn.pad_packed_sequence(out)
            padded[step, batch, row * 3] += amount
            out = torch.nn.utils.rnn.pack_padded_sequence(padded, lengths)
        return out, (h, c)
    return candidate


@pytest.mark.parametrize(("nudge", "where"), [
    (_nudge(row=3, batch=1), ("h_n", 1, "reverse", None, 1)),
    (_nudge(row=0, step=2), ("output", 1, "forward", 2, 0)),
    (_nudge(row=1, step=0), ("output", 1, "reverse", 0, 0)),
])
def test_a_tiny_error_is_caught_and_located(nudge, where):
    mismatch = _failure(nudge).mismatch
    assert (mismatch.tensor, mismatch.layer, mismatch.direction, mismatch.time_step, mismatch.batch_index) == where
    assert mismatch.max_abs_error == pytest.approx(1e-3) and mismatch.tolerance < 1e-10


def test_location_prefers_the_earliest_layer():
    def off_everywhere(m, x, hx=None):
        out, (h, c) = m(x, hx)
        return out, (h + torch.tensor([0, 0, 1.0, 1.0]).view(4, 1, 1), c)

    assert _failure(off_everywhere).mismatch.layer == 1


@given(cases(dtypes=["float64", "float32"]))
def test_a_small_systematic_drift_is_caught(case):
    """0.1% of the largest value added to every output is far outside the float32/64 tolerance."""
    def drifting(m, x, hx=None):
        out, h = m(x, hx)
        values = out.data if isinstance(out, PackedSequence) else out
        drifted = values + 1e-3 * max(1.0, float(values.abs().max()))
        return (out._replace(data=drifted) if isinstance(out, PackedSequence) else drifted), h

    try:
        outcome = check(drifting, case)
    except CheckFailure:
        return
    assume(outcome.skipped is not None)  # only a case beyond the dtype's range may go unchecked
    raise AssertionError(f"a 0.1% drift passed unnoticed on {case.describe()}")


@given(cases())
def test_a_candidate_computing_in_float64_passes_at_every_dtype(case):
    """``reference`` computes in float64 and casts back: more exact than torch, never a false alarm."""
    check(reference, case)


# -- the bound that saves the extra reference runs ----------------------------------------------


def _evaluation_of(case):
    from fuzz_birnn.core.evaluation import evaluate

    return evaluate(case)


@given(cases())
def test_the_bound_is_never_larger_than_the_measured_tolerances(case):
    """The bound may only ever decide "within": it must be no larger than the model, fused and candidate."""
    evaluation = _evaluation_of(case)
    assume(evaluation.skipped is None)
    bound, measured = evaluation.bound, evaluation.tolerances
    for name in measured.fused:
        assert bound.fused[name] <= measured.fused[name]
        assert bound.candidate[name] <= measured.candidate[name]


def _jittered(ulps):
    """A candidate off by ``ulps`` units of its dtype's eps times the largest output value: near the
    allowance, where the bound and the measured model can disagree."""
    def jitter(m, x, hx=None):
        out, h = m(x, hx)
        values = out.data if isinstance(out, PackedSequence) else out
        eps = torch.finfo(values.dtype).eps
        moved = values + ulps * eps * max(1.0, float(values.abs().max()))
        return (out._replace(data=moved) if isinstance(out, PackedSequence) else moved), h
    return jitter


def _verdict(candidate, case):
    try:
        outcome = check(candidate, case)
    except CheckFailure as failure:
        return ("failed", failure.prop, failure.mismatch.message)
    return ("passed", outcome.skipped)


@given(cases(), st.sampled_from([1, 4, 16, 48, 96, 200, 400, 1000, 4000]))
def test_deciding_under_the_bound_first_gives_the_measured_verdict(case, ulps):
    """Bound first, then measured, says what measuring every case says, on candidates close to the
    allowance on either side and on torch itself."""
    from fuzz_birnn.core import evaluation as evaluation_module

    jitter = _jittered(ulps)
    lazy = [_verdict(jitter, case), _verdict(fused, case)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluation_module.Evaluation, "judge",
                      lambda self, compare: (compare(self.tolerances), self.tolerances))
        measured = [_verdict(jitter, case), _verdict(fused, case)]
    assert lazy == measured


def test_a_case_within_the_bound_runs_no_extra_reference_and_one_beyond_it_does():
    from fuzz_birnn.core.check import check_fused

    evaluation = _evaluation_of(LSTM_CASE)
    check_fused(LSTM_CASE, evaluation)
    assert not evaluation.measured
    with pytest.raises(CheckFailure) as raised:
        check(_jittered(1e6), LSTM_CASE)
    assert raised.value.allowed == _evaluation_of(LSTM_CASE).tolerances.candidate  # held to the measured model


def test_a_final_state_is_allowed_what_the_same_number_is_allowed_in_the_output():
    """A default run's false alarm: torch's own float16 cells, 4% past h_n's allowance on the last
    layer's h_n, which is the output at its first step, 8x within the output's allowance there."""
    from fuzz_birnn.core.cells import cells
    from fuzz_birnn.core.evaluation import evaluate

    case = Case(Config(mode="GRU", input_size=3, hidden_size=5, num_layers=3, bias=True, bidirectional=True),
                Inputs(seq_len=4, batch_size=1, initial_state=True, dtype="float16", seed=232015, scale=4.0))
    check(cells, case)
    tolerances = evaluate(case).tolerances
    for allowed in (tolerances.fused, tolerances.candidate):
        assert allowed["h_n"] >= allowed["output"]

    def off_in_h_n(module, input, hx=None):  # a final state off by twice what it is now allowed
        output, h_n = module(input, hx)
        return output, h_n + 2 * tolerances.candidate["h_n"]

    with pytest.raises(CheckFailure, match="h_n differs"):
        check(off_in_h_n, case)
