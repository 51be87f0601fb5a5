"""The strategies themselves: every value of every dimension is reachable, the simplest case is
what the docstring promises, narrowing works, and bad arguments are refused when drawing."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from fuzz_birnn import DTYPES, MODES, Case, Config, Inputs
from fuzz_birnn.strategies import FORMS, SCALES, cases

_FIND = settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck))

REACHABLE = [
    *[(f"mode={m}", lambda c, m=m: c.config.mode == m) for m in MODES],
    *[(f"dtype={d}", lambda c, d=d: c.inputs.dtype == d) for d in DTYPES],
    *[(f"form={f}", lambda c, f=f: c.inputs.form == f) for f in FORMS],
    *[(f"scale={s}", lambda c, s=s: c.inputs.scale == s) for s in SCALES],
    ("proj_size>0", lambda c: c.config.proj_size > 0),
    ("bias", lambda c: c.config.bias),
    ("batch_first", lambda c: c.config.batch_first),
    ("batch_first packed", lambda c: c.config.batch_first and c.inputs.packed),
    ("4 layers", lambda c: c.config.num_layers == 4),
    ("dropout in eval", lambda c: c.config.dropout > 0),
    ("given h0", lambda c: c.inputs.initial_state),
    ("given h0 and c0", lambda c: c.inputs.initial_state and c.config.mode == "LSTM"),
    ("oneDNN off", lambda c: not c.inputs.onednn),
    ("non-contiguous", lambda c: not c.inputs.contiguous),
    ("unsorted lengths", lambda c: c.inputs.lengths is not None
     and list(c.inputs.lengths) != sorted(c.inputs.lengths, reverse=True)),
    ("a length shorter than seq_len", lambda c: c.inputs.packed and min(c.inputs.lengths) < c.inputs.seq_len),
    ("sizes 8", lambda c: c.config.input_size == 8 and c.config.hidden_size == 8),
    ("seq_len 8, batch 8", lambda c: c.inputs.seq_len == 8 and c.inputs.batch_size == 8),
]


@pytest.mark.parametrize(("name", "condition"), REACHABLE, ids=[name for name, _ in REACHABLE])
def test_every_value_is_generated(name, condition):
    assert condition(find(cases(), condition, settings=_FIND))


def test_unidirectional_is_generated_on_request():
    case = find(cases(bidirectional=None), lambda c: not c.config.bidirectional, settings=_FIND)
    assert not case.config.bidirectional


def test_shrinks_to_the_simplest_case():
    assert find(cases(), lambda c: True, settings=_FIND) == Case(Config(), Inputs())


@settings(max_examples=50, suppress_health_check=list(HealthCheck))
@given(cases(modes=["LSTM"], forms=["packed_unsorted"], dtypes=["float32"], bias=True, batch_first=True,
             proj=True, initial_state=True, dropout=False, onednn=False, contiguous=False,
             min_layers=2, max_layers=3, max_input_size=3, max_hidden_size=3, max_seq_len=2, max_batch=3,
             scales=[0.25]))
def test_narrowing_fixes_each_dimension(case):
    c, i = case.config, case.inputs
    assert (c.mode, c.bias, c.batch_first, c.dropout) == ("LSTM", True, True, 0.0)
    assert 1 <= c.proj_size < c.hidden_size <= 3 and 2 <= c.num_layers <= 3 and c.input_size <= 3
    assert (i.form, i.dtype, i.initial_state, i.onednn, i.contiguous, i.scale) == (
        "packed_unsorted", "float32", True, False, False, 0.25)
    assert i.seq_len <= 2 and 1 <= i.batch_size <= 3 and all(1 <= n <= i.seq_len for n in i.lengths)


@settings(max_examples=50, suppress_health_check=list(HealthCheck))
@given(cases(min_input_size=3, max_input_size=4, min_hidden_size=5, max_hidden_size=6, min_seq_len=7,
             max_seq_len=8, min_batch=2, max_batch=2, forms=["padded"]))
def test_every_size_has_a_lower_and_an_upper_bound(case):
    c, i = case.config, case.inputs
    assert 3 <= c.input_size <= 4 and 5 <= c.hidden_size <= 6 and 7 <= i.seq_len <= 8 and i.batch_size == 2


@settings(max_examples=30, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_a_strategy_is_accepted_wherever_a_choice_is(data):
    dtype = data.draw(st.sampled_from(["float32", "bfloat16"]))
    case = data.draw(cases(dtypes=st.just(dtype), modes=st.sampled_from(["GRU"]), forms=st.just("unbatched"),
                           devices=st.just("cpu"), scales=st.just(0.25)))
    assert (case.inputs.dtype, case.config.mode, case.inputs.form, case.inputs.scale) == (dtype, "GRU", "unbatched",
                                                                                           0.25)


def test_a_strategy_that_draws_an_unknown_choice_is_refused():
    with pytest.raises(InvalidArgument, match=re.escape("modes drew 'TRANSFORMER', which is not one of")):
        find(cases(modes=st.just("TRANSFORMER")), lambda c: True, settings=_FIND)


@settings(max_examples=50, suppress_health_check=list(HealthCheck))
@given(cases())
def test_every_drawn_case_builds_and_round_trips(case):
    assert Case.from_dict(case.to_dict()) == case
    built = case.build()
    assert built.module.training is False


BAD_ARGUMENTS = [
    ({"min_layers": 3, "max_layers": 2}, "min_layers=3 is larger than max_layers=2"),
    ({"min_batch": 4, "max_batch": 3}, "min_batch=4 is larger than max_batch=3"),
    ({"max_layers": 0}, "max_layers=0"),
    ({"max_input_size": 1.5}, "max_input_size=1.5"),
    ({"min_seq_len": 4, "max_seq_len": 3}, "min_seq_len=4 is larger than max_seq_len=3"),
    ({"modes": ["LSTM", "TRANSFORMER"]}, "modes="),
    ({"modes": "LSTM"}, "modes='LSTM'"),
    ({"modes": []}, "modes=[]"),
    ({"dtypes": ["int32"]}, "dtypes="),
    ({"forms": ["jagged"]}, "forms="),
    ({"devices": ["tpu"]}, "devices="),
    ({"scales": [0]}, "scales="),
    ({"bias": "yes"}, "bias='yes'"),
    ({"proj": True, "modes": ["GRU"]}, "proj=True applies to LSTM only"),
    ({"proj": True, "max_hidden_size": 1}, "proj=True needs hidden_size >= 2"),
    ({"devices": ["mps"], "dtypes": ["float64"]}, "no float64 on MPS"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS, ids=[str(k) for k, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_refused_when_drawing(kwargs, message):
    strategy = cases(**kwargs)  # nothing is validated at construction...
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        find(strategy, lambda c: True, settings=_FIND)  # ...but the first draw says what is wrong
