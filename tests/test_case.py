"""Case: validation, serialisation and deterministic building."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence

from fuzz_birnn import Case, Config, Inputs


def _case(**inputs):
    return Case(Config(mode="LSTM", input_size=3, hidden_size=4, num_layers=2, bias=True, proj_size=2),
                Inputs(**{"seq_len": 5, "batch_size": 3, "seed": 11, **inputs}))


def test_to_dict_is_json_with_the_documented_keys():
    data = json.loads(json.dumps(_case(packed=True, lengths=(5, 2, 4), enforce_sorted=False).to_dict()))
    assert set(data) == {"config", "inputs"}
    assert set(data["config"]) == {"mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first",
                                   "bidirectional", "proj_size", "dropout"}
    assert {"seq_len", "batch_size", "packed", "lengths", "enforce_sorted", "unbatched", "initial_state",
            "dtype", "device", "onednn", "contiguous", "seed"} <= set(data["inputs"])
    assert Case.from_dict(data) == _case(packed=True, lengths=(5, 2, 4), enforce_sorted=False)


def test_build_is_deterministic_and_exact():
    first, second = _case(initial_state=True).build(), _case(initial_state=True).build()
    for a, b in zip(first.module.parameters(), second.module.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(first.input, second.input)
    assert all(torch.equal(a, b) for a, b in zip(first.hx, second.hx, strict=True))
    assert first.module(first.input, first.hx)[0].shape == (5, 3, 4)


#: Cases across modes, dtypes, forms and layouts, and the SHA-256 of every tensor they build.
GOLDEN_CASES = [
    Case(Config(mode="LSTM", input_size=3, hidden_size=4, num_layers=2, bias=True, proj_size=2, batch_first=True),
         Inputs(seq_len=5, batch_size=3, packed=True, lengths=(2, 5, 3), enforce_sorted=False, initial_state=True,
                dtype="bfloat16", seed=11, scale=4.0)),
    Case(Config(mode="GRU", input_size=2, hidden_size=3, num_layers=3, bias=True),
         Inputs(seq_len=4, batch_size=None, unbatched=True, initial_state=True, dtype="float16", contiguous=False,
                seed=2**32 - 1)),
    Case(Config(mode="RNN_RELU", input_size=5, hidden_size=2, batch_first=True, bidirectional=False),
         Inputs(seq_len=3, batch_size=2, dtype="float32", seed=7, scale=0.25)),
    Case(Config(mode="RNN_TANH", num_layers=4), Inputs(seq_len=2, batch_size=1, initial_state=True, seed=3)),
]
#: Measured with fuzz-birnn 0.1.0 on torch 2.13.0 (modules built on ``meta``) and unchanged since:
#: a case builds the same bits whatever torch version or build path builds it.
GOLDEN_DIGEST = "8bcdd26425a54329ff48d180205862eab80a1dba4512272c04b671b496024272"


def test_a_case_builds_the_same_bits_as_it_always_has():
    digest = hashlib.sha256()
    for case in GOLDEN_CASES:
        built = case.build()
        tensors = [*built.module.state_dict().values(),
                   built.input.data if isinstance(built.input, PackedSequence) else built.input]
        tensors += list(built.hx) if isinstance(built.hx, tuple) else [] if built.hx is None else [built.hx]
        for tensor in tensors:
            flat = tensor.detach().cpu().clone(memory_format=torch.contiguous_format).reshape(-1)
            digest.update(str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
            digest.update(bytes(flat.view(torch.uint8).tolist()))
    assert digest.hexdigest() == GOLDEN_DIGEST


def test_build_does_not_touch_the_global_rng():
    state = torch.get_rng_state()
    _case().build()
    assert torch.equal(state, torch.get_rng_state())


def test_dtype_rounding_happens_before_building_so_all_dtypes_share_values():
    low = _case(dtype="bfloat16").build()
    high = _case(dtype="float64").build()
    assert torch.equal(low.input.double(), high.input.to(torch.bfloat16).double())


def test_input_forms():
    assert isinstance(_case(packed=True, lengths=(5, 4, 1)).build().input, PackedSequence)
    assert _case(unbatched=True, batch_size=None).build().input.shape == (5, 3)
    batch_first = Case(Config(batch_first=True, input_size=2), Inputs(seq_len=4, batch_size=3)).build()
    assert batch_first.input.shape == (3, 4, 2)
    strided = _case(contiguous=False, initial_state=True).build()
    assert not strided.input.is_contiguous() and not strided.hx[0].is_contiguous()


BAD = [
    ({"config": {"mode": "TRANSFORMER"}}, "mode='TRANSFORMER'"),
    ({"config": {"mode": "GRU", "proj_size": 1, "hidden_size": 2}}, "proj_size=1 is only valid for LSTM"),
    ({"config": {"mode": "LSTM", "proj_size": 3, "hidden_size": 3}}, "proj_size=3 must be smaller"),
    ({"config": {"num_layers": 0}}, "num_layers=0"),
    ({"config": {"bias": "yes"}}, "bias='yes'"),
    ({"config": {"colour": 1}}, "unknown field"),
    ({"inputs": {"dtype": "int8"}}, "dtype='int8'"),
    ({"inputs": {"packed": True, "batch_size": 2, "lengths": [1]}}, "one length per sequence"),
    ({"inputs": {"packed": True, "batch_size": 2, "lengths": [1, 2], "seq_len": 2}}, "sorted longest first"),
    ({"inputs": {"packed": True, "batch_size": 1, "lengths": [3], "seq_len": 2}}, "must each be in 1..seq_len=2"),
    ({"inputs": {"unbatched": True}}, "batch_size=None"),
    ({"inputs": {"seed": -1}}, "seed=-1"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_from_dict_names_the_bad_field(change, message):
    data = Case().to_dict()
    for section, values in change.items():
        data[section].update(values)
    with pytest.raises(ValueError, match=re.escape(message)):
        Case.from_dict(data)


@pytest.mark.parametrize("data", [[], {"config": {}}, {"config": {}, "inputs": 3}])
def test_from_dict_refuses_malformed_documents(data):
    with pytest.raises(ValueError, match="case"):
        Case.from_dict(data)


def test_other_draws_of_values_keep_the_configuration_and_shapes():
    case = Case(Config("LSTM", 3, 4, 2, True, True, True, 2), Inputs(5, 3, True, (5, 2, 4), False, initial_state=True,
                                                                      dtype="float32", seed=12))
    assert case.with_values(0) is case
    others = [case.with_values(n) for n in range(1, 6)]
    assert len({o.inputs.seed for o in others} | {case.inputs.seed}) == 6
    for other in others:
        assert other.config == case.config
        assert dataclasses.replace(other.inputs, seed=case.inputs.seed) == case.inputs
        Case.from_dict(other.to_dict())  # valid
