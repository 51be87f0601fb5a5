"""The OpenVINO targets: each case's weights, states, layouts and packed input reach the converted
model; the accurate setting is held to float32 (float64 cases too: the CPU plugin has no float64
primitives), the default one to the precision the plugin reports; a wrong model is caught; the
frontend's failure on a projected LSTM is a finding, not a refusal."""

from __future__ import annotations

import pytest
import torch

from fuzz_birnn import Case, CheckFailure, Config, Inputs, check
from fuzz_birnn.core.evaluation import computes_in
from fuzz_birnn.targets import load_target
from tests.test_targets import FIXED, SAME_SHAPES_NEW_WEIGHTS

pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install 'fuzz-birnn[openvino]')")
openvino_cpu = pytest.importorskip("fuzz_birnn.targets.openvino_cpu")

OTHER_DTYPES = [Case(Config("LSTM", 2, 3, 2, True, False, True), Inputs(4, 2, initial_state=True, dtype=dtype, seed=1))
                for dtype in ("float64", "bfloat16", "float16")]


@pytest.mark.parametrize("name", ["openvino", "openvino-default"])
def test_each_case_reaches_the_converted_model_whole(name):
    candidate = load_target(name)
    for case in [*FIXED, SAME_SHAPES_NEW_WEIGHTS, *OTHER_DTYPES]:
        assert check(candidate, case, name=name).skipped is None, case.describe()


def test_each_target_declares_the_precision_it_computes_in():
    assert computes_in(load_target("openvino"), "float64") == "float32"
    assert computes_in(load_target("openvino"), "float32") is None  # the accurate setting: float32 itself
    default = openvino_cpu.default_precision()
    assert default in ("float32", "bfloat16", "float16")
    assert computes_in(load_target("openvino-default"), "float32") == (None if default == "float32" else default)


def test_a_wrong_model_is_caught(monkeypatch):
    real = openvino_cpu._tensor
    monkeypatch.setattr(openvino_cpu, "_tensor", lambda value: real(value) * 1.001)  # 0.1% off: 1000s of ulps
    with pytest.raises(CheckFailure, match="differs"):
        check(load_target("openvino"), FIXED[0], name="openvino")


def test_the_frontends_failure_on_a_projected_lstm_is_a_finding_not_a_refusal():
    # OpenVINO 2026.4's aten::lstm translator fails a check on the weights of a projected LSTM
    # ("all_weights.size() == num_layers * weights_per_layer * mult"): its bug, not a documented refusal
    proj = Case(Config("LSTM", 2, 4, 1, True, False, True, 2), Inputs(3, 2, dtype="float32", seed=2))
    with pytest.raises(CheckFailure, match="candidate raised"):
        check(load_target("openvino"), proj, name="openvino")


def test_bfloat16_crosses_as_its_bits():
    tensor = torch.tensor([1.0, -2.5, 3.140625, 1e-3], dtype=torch.bfloat16)
    back = openvino_cpu._tensor(openvino_cpu._ov_tensor(tensor))
    assert back.dtype == torch.bfloat16 and torch.equal(back, tensor)
