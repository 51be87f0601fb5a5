"""A candidate's wrong result is a finding in every property that takes a candidate, never an
error of the harness: whatever comes back (the wrong type, a tuple of the wrong length, the wrong
rank or dtype, a PackedSequence where a tensor is due and the reverse, ``None``, a generator, an
object whose ``shape`` raises), the property raises :class:`CheckFailure`, with one signature a kind."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from fuzz_birnn import RELATIONS, Case, CheckFailure, Config, Inputs
from fuzz_birnn.campaign.signature import fault_signature
from fuzz_birnn.properties import PROPERTIES


class ShapeRaises:
    """Looks like a tensor until its shape is asked for."""

    dtype = torch.float64

    @property
    def shape(self):
        raise RuntimeError("no shape here")


def _output(result):
    return result[0]


def _padded(output):
    return pad_packed_sequence(output)[0] if isinstance(output, PackedSequence) else output


#: kind -> what the candidate returns, given torch's own (output, hidden) and the input it was called with
WRONG = {
    "an int": lambda result, input: 42,
    "None": lambda result, input: None,
    "a tuple of one": lambda result, input: (result[0],),
    "a tuple of three": lambda result, input: (*result, result[1]),
    "the output alone": lambda result, input: _padded(result[0]),
    "a generator": lambda result, input: (part for part in result),
    "output of a higher rank": lambda result, input: (_padded(result[0]).unsqueeze(0), result[1]),
    "h_n of a lower rank": lambda result, input: (result[0], _each(result[1], lambda h: h[0])),
    "another dtype": lambda result, input: (_padded(result[0]).to(torch.float32), result[1]),
    "an object whose shape raises": lambda result, input: (ShapeRaises(), result[1]),
    "hidden of the wrong kind": lambda result, input: (result[0], [result[1]] * 3),
    "a padded tensor for packed input": lambda result, input: (_padded(result[0]), result[1]),
    "a PackedSequence for padded input": lambda result, input: (
        result[0] if isinstance(input, PackedSequence) else
        pack_padded_sequence(result[0], torch.full((result[0].shape[1],), result[0].shape[0])), result[1]),
}


def _each(hidden, fn):
    return tuple(fn(h) for h in hidden) if isinstance(hidden, tuple) else fn(hidden)


def candidate_returning(kind):
    def candidate(module, input, hx=None):
        return WRONG[kind](module(input, hx), input)
    candidate.__qualname__ = f"returns {kind}"
    return candidate


#: a case on which each property applies (and on which the kind of wrong result can happen)
BASE = Case(Config(mode="LSTM", input_size=2, hidden_size=2, num_layers=2),
            Inputs(seq_len=3, batch_size=2, initial_state=True))
CASES = {
    "agreement": BASE,
    "gradients": BASE,
    "relation:batch_independence": BASE,
    "relation:unbatched": dataclasses.replace(BASE, inputs=Inputs(seq_len=3, batch_size=None, unbatched=True)),
    "relation:layout": BASE,
    "relation:sorting": dataclasses.replace(BASE, inputs=Inputs(seq_len=3, batch_size=2, packed=True,
                                                                 lengths=(2, 3), enforce_sorted=False)),
    "relation:time_reversal": BASE,
    "relation:dropout_eval": dataclasses.replace(BASE, config=dataclasses.replace(BASE.config, dropout=0.5)),
    "relation:zero_state": dataclasses.replace(BASE, inputs=Inputs(seq_len=3, batch_size=2)),
}
PACKED_ONLY, PADDED_ONLY = {"a padded tensor for packed input"}, {"a PackedSequence for padded input"}


def _case(prop, kind):
    """The property's case, packed or padded as the kind needs; ``None`` when the property does
    not apply to such a case (the layout relation is for padded input, sorting for packed)."""
    case = CASES[prop]
    if kind in PACKED_ONLY and not case.inputs.packed:
        if case.inputs.unbatched:
            return None
        case = dataclasses.replace(case, inputs=dataclasses.replace(
            case.inputs, packed=True, lengths=(2, 3), enforce_sorted=False))
    if kind in PADDED_ONLY and case.inputs.packed:
        case = dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, packed=False, lengths=None))
    family, _, relation = prop.partition(":")
    return case if family != "relation" or RELATIONS[relation][0](case) else None


@pytest.mark.parametrize("prop", CASES)
@pytest.mark.parametrize("kind", WRONG)
def test_a_wrong_result_is_a_finding_in_every_property(prop, kind):
    case = _case(prop, kind)
    if case is None:
        pytest.skip(f"{prop} does not apply to a case that can show {kind}")
    with pytest.raises(CheckFailure) as raised:
        PROPERTIES[prop].run(candidate_returning(kind), case, f"returns {kind}", {})
    assert raised.value.prop == prop
    assert fault_signature(raised.value.mismatch)


@pytest.mark.parametrize("kind", WRONG)
def test_a_wrong_result_has_one_signature_whatever_the_case(kind):
    """The same kind of wrong result on two different cases (other sizes, depth, batch) is one fault."""
    other = Case(Config(mode="LSTM", input_size=3, hidden_size=1, num_layers=1, proj_size=0),
                 Inputs(seq_len=2, batch_size=3, initial_state=True))
    if kind in PACKED_ONLY:
        first, other = CASES["relation:sorting"], dataclasses.replace(
            other, inputs=Inputs(seq_len=2, batch_size=3, packed=True, lengths=(2, 1, 2), enforce_sorted=False))
    else:
        first = BASE
    signatures = set()
    for case in (first, other):
        with pytest.raises(CheckFailure) as raised:
            PROPERTIES["agreement"].run(candidate_returning(kind), case, f"returns {kind}", {})
        signatures.add(fault_signature(raised.value.mismatch))
    assert len(signatures) == 1, signatures


def test_a_correct_candidate_passes_every_property_on_these_cases():
    """No false alarm: torch's own result, passed through, passes everywhere above."""
    def passes_through(module, input, hx=None):
        return module(input, hx)
    for prop, case in CASES.items():
        outcome = PROPERTIES[prop].run(passes_through, case, "passes_through", {})
        assert outcome.skipped is None, (prop, outcome.skipped)
