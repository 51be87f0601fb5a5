"""Diagnosis names the mistake a planted bug makes, on its shrunk case, and names nothing for a correct
result or for a mistake the catalogue does not hold."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, find, given, settings
from hypothesis import strategies as st

from examples.seed_decomposition import seed_decomposition
from fuzz_birnn import Case, CheckFailure, Config, Inputs, check, decomposed, fused, reference
from fuzz_birnn.core.evaluation import evaluate
from fuzz_birnn.diagnosis.diagnose import _Runner, diagnose, diagnose_relation
from fuzz_birnn.diagnosis.mistakes import KINDS, catalogue
from fuzz_birnn.properties.relations import check_relation
from fuzz_birnn.strategies import cases

from . import contract_bugs, misplaced, planted
from .searching import SEARCH, fails

#: Each planted bug of a catalogued kind, the cases that can show it, and the name it must get.
NAMED = [
    ("seed (the thread's own code)", seed_decomposition, {"modes": ["RNN_TANH", "RNN_RELU"], "forms": ["padded"]},
     "seed-missing-re-reversal"),
    ("seed (planted)", planted.seed_missing_re_reversal, {}, "seed-missing-re-reversal"),
    ("h0 direction-major", planted.h0_direction_major, {}, "h0-rows-direction-major"),
    ("packed reverse from the padded end", planted.packed_reverse_from_padded_end, {},
     "packed-reverse-from-padded-end"),
    ("GRU b_hn outside the reset gate", planted.gru_bias_outside_reset, {"modes": ["GRU"]}, "gru-b_hn-outside-reset"),
    ("h_n in sorted order", contract_bugs.h_n_left_in_sorted_order, {}, "h_n-left-in-sorted-order"),
    ("output halves swapped", contract_bugs.output_directions_swapped, {}, "output-halves-swapped"),
    ("reverse h_n from the last step", contract_bugs.reverse_h_n_from_last_output_step, {},
     "reverse-h_n-from-last-step"),
    ("initial state ignored", contract_bugs.initial_state_ignored, {}, "initial-state-ignored"),
    ("c_n direction-major", contract_bugs.c_n_direction_major, {"modes": ["LSTM"]}, "c_n-rows-direction-major"),
    ("reverse reads the forward h0", planted.reverse_reads_forward_h0, {}, "reverse-starts-from-forward-h0"),
    # the same kinds at places the first catalogue did not hold
    ("never re-reversed, output included", misplaced.never_re_reversed,
     {"forms": ["padded"], "min_layers": 2, "modes": ["RNN_TANH", "GRU"]}, "not-re-reversed@every-layer"),
    ("TensorFlow gate order in the reverse direction only", misplaced.reverse_lstm_gates_in_tensorflow_order,
     {"modes": ["LSTM"]}, "gate-order[i,g,f,o]@every-layer+reverse"),
    ("b_hh left out in layer 1 only", misplaced.hidden_bias_left_out_in_layer_1,
     {"modes": ["GRU"], "min_layers": 2, "max_layers": 2}, "bias-left-out[hh]@last-layer"),
    ("c0 ignored, h0 not", misplaced.c0_ignored, {"modes": ["LSTM"], "initial_state": True},
     "h0-ignored[c]@every-layer"),
]


def _diagnosed(candidate, case):
    with pytest.raises(CheckFailure) as raised:
        check(candidate, case)
    return diagnose(case, raised.value.actual, raised.value.allowed, candidate)


@pytest.mark.parametrize(("bug", "narrowing", "name"), [row[1:] for row in NAMED], ids=[row[0] for row in NAMED])
def test_a_planted_bug_is_named_on_its_shrunk_case(bug, narrowing, name):
    case = find(cases(**narrowing), fails(lambda c: check(bug, c)), settings=SEARCH)
    diagnosis = _diagnosed(bug, case)
    assert name in diagnosis.names, (case.describe(), diagnosis)
    assert diagnosis.confirmed_on > 0  # ... and it held on more failing cases than the one shrunk to


def test_two_mistakes_made_at_once_are_named_as_a_pair():
    bug = misplaced.output_swapped_and_h_n_direction_major
    case = Case(Config(mode="GRU", input_size=2, hidden_size=3, num_layers=2), Inputs(seq_len=3, batch_size=2))
    diagnosis = _diagnosed(bug, case)
    assert diagnosis.pair and diagnosis.names == ("output-halves-swapped + h_n-rows-direction-major",), diagnosis
    assert "two mistakes at once" in diagnosis.describe()
    assert {s.kind for s in diagnosis.mistakes[0].slips} == {"halves-swapped", "h_n-rows-direction-major"}


def test_a_mistake_is_named_at_its_own_place_not_a_wider_one():
    """Made in the reverse direction only, it is not named "in both directions" (which does not
    reproduce it), nor at every layer when it is made in one."""
    case = Case(Config(mode="LSTM", input_size=2, hidden_size=3, num_layers=2, bias=True), Inputs(seq_len=3))
    diagnosis = _diagnosed(misplaced.reverse_lstm_gates_in_tensorflow_order, case)
    assert diagnosis.names == ("gate-order[i,g,f,o]@every-layer+reverse",), diagnosis
    assert "in the reverse direction only" in diagnosis.describe()


def _shifted_reverse(module, input, hx=None):
    """Not in the catalogue: the reverse half of the output one time step late."""
    output, hidden = module(input, hx)
    if output.dim() != 3 or not module.bidirectional or module.batch_first:
        return output, hidden
    half = output.shape[-1] // 2
    late = torch.cat([output[:1, :, half:], output[:-1, :, half:]])
    return torch.cat([output[..., :half], late], dim=-1), hidden


def _scaled(module, input, hx=None):
    """Not in the catalogue: every value 1% too large (a wrong constant)."""
    output, hidden = module(input, hx)
    return output * 1.01, tuple(h * 1.01 for h in hidden) if isinstance(hidden, tuple) else hidden * 1.01


@pytest.mark.parametrize("bug", [_shifted_reverse, _scaled], ids=["reverse half one step late", "scaled by 1.01"])
def test_a_mistake_outside_the_catalogue_is_named_nothing(bug):
    case = find(cases(forms=["padded"], batch_first=False), fails(lambda c: check(bug, c)), settings=SEARCH)
    diagnosis = _diagnosed(bug, case)
    assert diagnosis.names == () and "none of the" in diagnosis.describe()


#: A correct candidate computed in a lower precision than its case's, and the name it must get.
LOWERED = [
    ("LSTM", "float64", torch.float32, "computed-in-float32"),
    ("GRU", "float32", torch.bfloat16, "computed-in-bfloat16"),
    ("LSTM", "float32", torch.bfloat16, "computed-in-bfloat16"),  # oneDNN's: float32 inside, less error
    ("RNN_TANH", "float32", torch.float16, "computed-in-float16"),
    ("GRU", "float64", torch.bfloat16, "computed-in-bfloat16"),
]


@pytest.mark.parametrize(("mode", "dtype", "low", "name"), LOWERED, ids=[f"{row[2]} in {row[1]} {row[0]}"
                                                                         for row in LOWERED])
def test_a_result_computed_in_a_lower_precision_is_named_by_it(mode, dtype, low, name):
    bug = planted.computed_in(low)
    case = find(cases(modes=[mode], dtypes=[dtype]), fails(lambda c: check(bug, c)), settings=SEARCH)
    diagnosis = _diagnosed(bug, case)
    assert diagnosis.names == (name,), (case.describe(), diagnosis)
    assert diagnosis.confirmed_on > 0 and f"size of {low} rounding".replace("torch.", "") in diagnosis.describe()


@pytest.mark.parametrize("relation", ["batch_independence", "time_reversal"])
def test_a_relation_that_fails_by_a_lower_precision_is_named_by_it(relation):
    """Its two results are a rounding apart, and the candidate's own result is computed-in-DTYPE:
    one cause, so one finding with the agreement's (the run groups findings by name)."""
    bug = planted.computed_in(torch.bfloat16)
    case = find(cases(modes=["GRU"], dtypes=["float32"]), fails(lambda c: check_relation(relation, bug, c)),
                settings=SEARCH)
    with pytest.raises(CheckFailure) as raised:
        check_relation(relation, bug, case)
    diagnosis = diagnose_relation(case, raised.value.mismatch.max_abs_error, bug)
    assert diagnosis is not None and diagnosis.names == ("computed-in-bfloat16",), case.describe()
    assert diagnosis.describe().startswith("follows from a lower precision: the relation's two results are")


@pytest.mark.parametrize("bug", [planted.lengths_ignored, planted.computed_in(torch.bfloat16, planted.lengths_ignored)],
                         ids=["lengths ignored", "lengths ignored, computed in bfloat16"])
def test_a_relation_that_fails_by_its_own_mistake_is_not_put_down_to_precision(bug):
    """Lengths ignored fails batch independence by far more than a rounding, whatever precision the
    candidate computes in: it stays a finding of its own."""
    case = find(cases(modes=["GRU"], dtypes=["float32"]),
                fails(lambda c: check_relation("batch_independence", bug, c)), settings=SEARCH)
    with pytest.raises(CheckFailure) as raised:
        check_relation("batch_independence", bug, case)
    assert diagnose_relation(case, raised.value.mismatch.max_abs_error, bug) is None, case.describe()


@pytest.mark.parametrize(("dtype", "low"), [("float64", torch.float32), ("float32", torch.bfloat16)])
def test_an_error_the_size_of_a_rounding_in_values_of_the_right_dtype_is_a_hint_not_a_name(dtype, low):
    """Weights stored in a lower precision: the error is its rounding's size, the values are not its
    numbers; a 1% wrong constant can be as large. The summary says so; no name is given."""
    bug = planted.weights_rounded_to(low)
    case = find(cases(modes=["GRU"], dtypes=[dtype]), fails(lambda c: check(bug, c)), settings=SEARCH)
    diagnosis = _diagnosed(bug, case)
    assert diagnosis.names == () and diagnosis.precision is not None, (case.describe(), diagnosis)
    low_name = str(low).replace("torch.", "")
    assert f"its error is the size of {low_name} rounding" in diagnosis.describe()
    assert diagnosis.to_dict()["precision"]["exact"] is False


@settings(max_examples=40, deadline=None)
@given(case=cases(bidirectional=None), candidate=st.sampled_from([fused, decomposed, reference]))
def test_a_correct_result_is_named_nothing(case, candidate):
    evaluation = evaluate(case)
    assume(evaluation.skipped is None)
    built = case.build()
    from fuzz_birnn.core.case import backend
    from fuzz_birnn.core.compare import tensors_of

    with backend(case.inputs), torch.no_grad():
        actual = tensors_of(candidate(built.module, built.input, built.hx), case)
    assert diagnose(case, actual, evaluation.tolerances.candidate).names == ()


def test_every_kind_of_mistake_changes_some_case():
    """A kind that never shows would be dead weight, and untested."""
    big = Case(Config(mode="LSTM", input_size=3, hidden_size=4, num_layers=3, bias=True, proj_size=2),
               Inputs(seq_len=5, batch_size=3, packed=True, lengths=(5, 2, 4), enforce_sorted=False,
                      initial_state=True))
    variants = [big, Case(Config(mode="LSTM", input_size=3, hidden_size=4, num_layers=3, bias=True),
                          big.inputs),
                Case(Config(mode="GRU", input_size=3, hidden_size=4, num_layers=3, bias=True), big.inputs),
                Case(Config(mode="RNN_RELU", input_size=3, hidden_size=4, num_layers=3, bias=True), big.inputs)]
    from fuzz_birnn.diagnosis.diagnose import _close

    shown = set()
    for case in variants:
        run = _Runner(case)
        right, allowed = run(()), evaluate(case).tolerances.candidate
        shown |= {m.kind for m in catalogue(case) if (r := run(m.slips)) is not None and not _close(right, r, allowed)}
    assert shown == {kind.name for kind in KINDS}


@pytest.mark.parametrize("mode", ["RNN_TANH", "RNN_RELU", "GRU", "LSTM"])
@pytest.mark.parametrize("form", ["padded", "packed", "unbatched"])
def test_the_stack_without_a_slip_is_the_reference(mode, form):
    """Every mistake is a change of this computation: unchanged, it is the cell equations."""
    for layers, proj in ((1, 0), (3, 0), (2, 2 if mode == "LSTM" else 0)):
        packed = form == "packed"
        case = Case(Config(mode=mode, input_size=3, hidden_size=4, num_layers=layers, bias=True, proj_size=proj),
                    Inputs(seq_len=5, batch_size=None if form == "unbatched" else 3, unbatched=form == "unbatched",
                           packed=packed, lengths=(5, 2, 4) if packed else None, enforce_sorted=False,
                           initial_state=True))
        built = case.build()
        from fuzz_birnn.core.compare import tensors_of

        with torch.no_grad():
            expected = tensors_of(reference(built.module.double(), _double(built.input), _double(built.hx)), case)
        mine = _Runner(case)(())
        assert mine is not None
        assert max(float((mine[k] - expected[k]).abs().max()) for k in expected) < 1e-12


def _double(x):
    from fuzz_birnn.core.layout import each_state

    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        return x._replace(data=x.data.double())
    return x.double() if isinstance(x, torch.Tensor) else each_state(x, lambda h: h.double())


def test_findings_diagnosed_as_one_mistake_are_one_finding():
    """A wrong output and a wrong final state of one slip have two signatures and one cause: one
    finding, its smallest case the smaller, its other signature listed. Other names, or none,
    stay apart."""
    from fuzz_birnn.output.run_record import Finding, _group

    def finding(signature, cost, *names):
        return Finding(signature, "agreement", "GRU", f"reports/{signature}-{cost}", True, "summary", "complete",
                       cost, {"names": list(names), "summary": "behaves like ..."} if names else None)

    grouped = _group([finding("output wrong", 40, "seed-missing-re-reversal"), finding("state wrong", 12, "x"),
                      finding("final state wrong", 30, "seed-missing-re-reversal"), finding("unnamed", 5),
                      finding("unnamed too", 6)])
    assert [g.signature for g in grouped] == ["output wrong", "state wrong", "unnamed", "unnamed too"]
    assert grouped[0].also == ["final state wrong"]
    assert grouped[0].smallest.report == "final state wrong-30"
    assert grouped[0].reports == ["final state wrong-30", "output wrong-40"]
    assert [g.also for g in grouped[1:]] == [[], [], []]


def test_a_candidate_that_crashes_on_the_confirming_cases_does_not_take_the_caller_down():
    """Confirming cases run in forked children: a crash there costs the child, and the name from
    the failing case itself stands, confirmed on no more."""
    import os
    import signal

    calls = []

    def crashes_after_the_first_call(module, input, hx=None):
        calls.append(1)
        if len(calls) > 1:
            os.kill(os.getpid(), signal.SIGSEGV)
        return seed_decomposition(module, input, hx)

    diagnosis = _diagnosed(crashes_after_the_first_call, Case(Config(num_layers=2), Inputs(seq_len=3)))
    assert diagnosis.names == ("seed-missing-re-reversal",) and diagnosis.confirmed_on == 0


def test_a_name_that_does_not_hold_on_more_cases_is_dropped():
    """The first call makes the seed's mistake, every later call another one: the name that fits
    the failing case alone is not given, since the confirming cases contradict it."""
    calls = []

    def changes_its_mistake(module, input, hx=None):
        calls.append(1)
        if len(calls) == 1:
            return seed_decomposition(module, input, hx)
        return contract_bugs.output_directions_swapped(module, input, hx)

    case = Case(Config(num_layers=2), Inputs(seq_len=3))
    with pytest.raises(CheckFailure) as raised:
        check(changes_its_mistake, case)
    allowed = raised.value.allowed
    assert allowed == evaluate(case).tolerances.candidate  # the failure says what it was held to
    # from the failing case alone, the seed's mistake fits...
    assert diagnose(case, raised.value.actual, allowed).names == ("seed-missing-re-reversal",)
    # ...but the confirming cases (the candidate's later calls) contradict it
    assert diagnose(case, raised.value.actual, allowed, changes_its_mistake).names == ()
