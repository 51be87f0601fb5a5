"""Fault signatures: one fault gives one signature across sizes and modes; different faults differ."""

from __future__ import annotations

import pytest
import torch

from fuzz_birnn import Case, CheckFailure, Config, Inputs, check
from fuzz_birnn.campaign.signature import crash_signature, fault_signature, normalise, signature_of
from fuzz_birnn.core.compare import Mismatch
from tests import contract_bugs, planted

SEED_BUG = "final state wrong"
OUTPUT_BUG = "output wrong, final state right, both directions"


def twin_mismatch(candidate):
    def run(twin):
        try:
            check(candidate, twin)
        except CheckFailure as failure:
            return failure.mismatch
        return None
    return run


def signature(candidate, case):
    with pytest.raises(CheckFailure) as raised:
        check(candidate, case)
    return signature_of(raised.value, twin_mismatch(candidate))


def signatures_where_it_fails(candidate, cases):
    found = set()
    for each in cases:
        try:
            check(candidate, each)
        except CheckFailure as failure:
            found.add((each.inputs.dtype, signature_of(failure, twin_mismatch(candidate))))
    return found


def case(mode="RNN_TANH", layers=2, *, batch_first=False, dtype="float64", seq_len=4, initial_state=False):
    return Case(Config(mode, 3, 4, layers, True, batch_first, True),
                Inputs(seq_len, 2, initial_state=initial_state, dtype=dtype, seed=7))


def test_the_seeds_missing_re_reversal_has_one_signature_at_every_depth_and_mode():
    found = signatures_where_it_fails(planted.seed_missing_re_reversal, [
        case(mode, layers, dtype=dtype) for mode in ("RNN_TANH", "GRU", "LSTM") for layers in (2, 3, 4)
        for dtype in ("float64", "bfloat16")])
    assert found == {("float64", SEED_BUG), ("bfloat16", SEED_BUG)}


def test_an_output_fault_has_one_signature_whatever_the_depth():
    found = {signature(contract_bugs.output_directions_swapped, case(layers=layers, dtype=dtype))
             for layers in (1, 2, 4) for dtype in ("float64", "float16")}
    assert found == {OUTPUT_BUG}


def test_a_fault_in_the_last_layer_or_the_initial_state_has_one_signature_whatever_the_case():
    ignored = signatures_where_it_fails(contract_bugs.initial_state_ignored, [
        Case(Config("RNN_TANH", 1, 1, layers, False, False, True),
             Inputs(steps, 1, initial_state=True, seed=seed, scale=scale))
        for layers in (1, 2) for steps in (1, 2, 4) for seed in range(3) for scale in (1.0, 4.0)])
    assert {signature for _, signature in ignored} == {SEED_BUG}
    found = {signature(contract_bugs.reverse_h_n_from_last_output_step, case("LSTM", layers=layers, dtype=dtype))
             for layers in (1, 2, 3) for dtype in ("float64", "bfloat16")}
    assert found == {SEED_BUG}


def test_a_fault_of_low_precision_alone_is_named_by_its_dtype():
    def bfloat16_rounded_twice(module, input, hx=None):
        output, hidden = module(input, hx)
        if output.dtype == torch.bfloat16:
            output = output * 1.25
        return output, hidden
    assert signature(bfloat16_rounded_twice, case(dtype="bfloat16")) == "values wrong in bfloat16 only"


def test_different_faults_have_different_signatures():
    signatures = {
        signature(planted.seed_missing_re_reversal, case()),
        signature(contract_bugs.output_directions_swapped, case()),
        signature(contract_bugs.returns_wrong_dtype, case(dtype="float32")),
        signature(contract_bugs.raises, case()),
        signature(contract_bugs.returns_a_tensor, case()),
        signature(contract_bugs.returns_padded_for_packed, Case(Config(), Inputs(2, 2, True, (2, 1)))),
    }
    assert len(signatures) == 6


def test_a_wrong_structure_is_named_by_what_is_wrong_not_by_the_values():
    assert signature(contract_bugs.returns_wrong_dtype, case(dtype="float32")) == \
        signature(contract_bugs.returns_wrong_dtype, case(dtype="bfloat16")) == "output.dtype is wrong"
    packed = Case(Config(), Inputs(2, 2, True, (2, 1)))
    assert signature(contract_bugs.returns_a_tensor, case()) == signature(contract_bugs.returns_a_tensor, packed) \
        == "result should be a pair (output, hidden)"


def test_a_case_with_two_faults_is_taken_for_the_one_that_starts_earlier():
    both = signature(contract_bugs.two_faults, case(layers=2, batch_first=True))
    assert both == signature(contract_bugs.two_faults, case(layers=2)) == SEED_BUG  # h_n's directions swapped
    assert signature(contract_bugs.two_faults, case(layers=1, batch_first=True)) == OUTPUT_BUG


@pytest.mark.parametrize(("one", "other"), [
    ("output.shape=(5, 2, 6), but should be (5, 2, 8)", "output.shape=(1, 1, 2), but should be (1, 1, 4)"),
    ("gradient of weight_ih_l0_reverse differs: max abs error 0.3 > tolerance 1e-05",
     "gradient of weight_ih_l3_reverse differs: max abs error 12 > tolerance 2.5e-07"),
    ("candidate raised RuntimeError: Expected 3, got 4 at 0x7f00aa",
     "candidate raised RuntimeError: Expected 1, got 2 at 0x1"),
    ("output.sorted_indices=[2, 0, 1], but should be [0, 1, 2]", "output.sorted_indices=[1, 0], but should be [0, 1]"),
    ("Type 'tensor(bfloat16)' of input parameter (input) of operator (LSTM) in node (/LSTM) is invalid.",
     "Type 'tensor(bfloat16)' of input parameter (/Transpose_output_0) of operator (LSTM) in node (/LSTM_1) "
     "is invalid."),
])
def test_sizes_numbers_and_addresses_do_not_tell_faults_apart(one, other):
    assert normalise(one) == normalise(other)


@pytest.mark.parametrize(("one", "other"), [
    ("output.shape=(5, 2, 6), but should be (5, 2, 8)", "output.dtype=torch.float64, but should be torch.float32"),
    ("gradient of weight_ih_l0 differs", "gradient of weight_hh_l0 differs"),
    ("candidate raised RuntimeError: shapes differ", "candidate raised ValueError: shapes differ"),
])
def test_what_differs_and_how_does(one, other):
    assert normalise(one) != normalise(other)


def test_names_keep_their_digits_and_a_long_message_is_cut_at_a_word():
    """A dtype's digits are what the message is about; only indices in names (``_l0``) go."""
    said = normalise("candidate raised TypeError: ml_dtypes.bfloat16 is not one of float16, complex64 in weight_hh_l3")
    assert said == "candidate raised TypeError: ml_dtypes.bfloat16 is not one of float16, complex64 in weight_hh_l#"
    long = normalise("candidate raised ValueError: " + "a rather long sentence " * 20)
    assert len(long) <= 160 and long.endswith("…") and long[:-1].split()[-1] in {"a", "rather", "long", "sentence"}


def test_an_error_on_a_relations_follow_up_call_is_the_same_fault_as_on_the_first():
    first = Mismatch("result", "candidate raised InvalidGraph: Type 'tensor(bfloat16)' of input parameter (input)")
    follow_up = Mismatch("result", "on a follow-up call, candidate raised InvalidGraph: Type 'tensor(bfloat16)' "
                                   "of input parameter (/Transpose_output_0)")
    assert fault_signature(first) == fault_signature(follow_up)


def test_crashes_by_signal_and_hangs():
    assert crash_signature("crash", "died (killed by SIGSEGV)") != crash_signature("crash", "died (killed by SIGABRT)")
    assert crash_signature("timeout", "ran past the 2s limit") == crash_signature("timeout", "ran past the 60s limit")
    assert fault_signature(Mismatch("result", "candidate raised KeyError: 3")) == "candidate raised KeyError: #"


def test_a_relations_failures_share_one_signature_whichever_tensor_and_variant():
    messages = ["layout: output differs for batch_first=True on the transposed input: Mismatched elements: 2 / 2",
                "layout: h_n differs for batch_first=False on the transposed input: Greatest absolute difference",
                "on a follow-up call, layout: c_n differs for batch_first=True on the transposed input"]
    assert {fault_signature(Mismatch("output", m)) for m in messages} == {"layout: results differ"}
    assert fault_signature(Mismatch("output", "unbatched: output differs for the 2-D input")) == \
        "unbatched: results differ"


def test_an_autocast_failure_is_one_signature_with_onednn_on_and_off():
    on = "under torch.autocast('cpu', torch.bfloat16) with oneDNN on, candidate raised KeyError: 3"
    off = "under torch.autocast('cpu', torch.bfloat16) with oneDNN off, candidate raised KeyError: 3"
    assert fault_signature(Mismatch("result", on)) == fault_signature(Mismatch("result", off))
    assert "oneDNN" not in fault_signature(Mismatch("result", on))


def test_a_shape_written_with_an_x_is_numbers_not_a_name():
    # seen in a run of quantizable-lstm: one fault was 17 findings, one per pair of shapes
    first = normalise("mat1 and mat2 shapes cannot be multiplied (2x7 and 8x32)")
    assert first == normalise("mat1 and mat2 shapes cannot be multiplied (1x5 and 4x20)")
    assert first == "mat1 and mat2 shapes cannot be multiplied (# and #)"
    assert normalise("ml_dtypes.bfloat16 and float8_e4m3") == "ml_dtypes.bfloat16 and float8_e4m3"
