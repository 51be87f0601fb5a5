"""Built-in targets: the packing adapter on its own, each target's adapter on small fixed cases
(weights, h0/c0, batch_first, unbatched, packed reach the target), refusals as Unsupported, and a
user's Unsupported in the support table."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence

from fuzz_birnn import Case, CheckFailure, Config, Inputs, check
from fuzz_birnn.targets import TARGETS, TargetUnavailable, load_target
from fuzz_birnn.targets.packing import by_length_groups

ROOT = Path(__file__).resolve().parent.parent


def padded_torch(module, x, hx):
    return module(x, hx)


def through_groups(module, input, hx=None):
    if isinstance(input, PackedSequence):
        return by_length_groups(padded_torch, module, input, hx)
    return module(input, hx)


def groups_left_in_sorted_order(module, input, hx=None):
    """The adapter's classic mistake: h_n/c_n left in length-sorted order."""
    output, hidden = through_groups(module, input, hx)
    if isinstance(input, PackedSequence) and input.sorted_indices is not None:
        order = input.sorted_indices
        hidden = tuple(h[:, order] for h in hidden) if isinstance(hidden, tuple) else hidden[:, order]
    return output, hidden


def packed(mode, lengths, *, sorted_=False, batch_first=False, initial_state=True, proj=0, seed=0):
    return Case(Config(mode, 3, 4, 2, True, batch_first, True, proj),
                Inputs(max(lengths), len(lengths), True, tuple(lengths), sorted_, initial_state=initial_state,
                       seed=seed))


PACKED = [packed(mode, lengths, sorted_=s, batch_first=bf)
          for mode in ("RNN_TANH", "GRU", "LSTM") for lengths, s in (((4, 2, 2, 1), True), ((1, 4, 2, 4), False))
          for bf in (False, True)] + [packed("LSTM", (3, 1, 3), proj=2, seed=9)]


@pytest.mark.parametrize("case", PACKED, ids=lambda c: c.describe())
def test_the_packing_adapter_gives_torchs_result(case):
    check(through_groups, case)


def test_the_packing_adapter_test_catches_an_adapter_mistake():
    with pytest.raises(CheckFailure, match="h_n differs"):
        check(groups_left_in_sorted_order, packed("GRU", (1, 4, 2, 4)))


FIXED = [
    Case(Config("GRU", 3, 4, 2, True, True, True), Inputs(5, 2, initial_state=True, dtype="float32", seed=1)),
    Case(Config("RNN_TANH", 2, 3, 1, False, False, True), Inputs(3, None, unbatched=True, dtype="float32", seed=3)),
    Case(Config("RNN_RELU", 2, 3, 2, True, False, True), Inputs(4, 3, True, (4, 1, 3), False, initial_state=True,
                                                                dtype="float32", seed=4)),
    Case(Config("LSTM", 3, 4, 1, True, False, True), Inputs(4, 2, initial_state=True, dtype="float32", seed=5)),
]
SAME_SHAPES_NEW_WEIGHTS = Case(Config("GRU", 3, 4, 2, True, True, True),
                               Inputs(5, 2, initial_state=True, dtype="float32", seed=77))


def target(name):
    if TARGETS[name].needs:
        for package in TARGETS[name].needs:
            pytest.importorskip(package, reason="the onnx extra is not installed (pip install 'fuzz-birnn[onnx]')")
    return load_target(name)


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["torch-export", "torch-export-dynamic", "onnxruntime", "onnxruntime-torchscript",
                                  "onnx-reference"])
def test_each_target_takes_weights_states_layouts_and_packed_input(name):
    candidate = target(name)
    for case in [*FIXED, SAME_SHAPES_NEW_WEIGHTS]:  # the last reuses the first's export with its own weights
        outcome = check(candidate, case, name=name)
        assert outcome.skipped is None, (case.describe(), outcome.skipped)


def test_a_runtime_without_a_kernel_for_a_dtype_is_unsupported_not_a_failure():
    candidate = target("onnxruntime")
    case = Case(Config("GRU", 2, 3, 1, True, False, True), Inputs(3, 2, seed=2))  # float64
    outcome = check(candidate, case, name="onnxruntime")
    assert outcome.skipped == "unsupported: onnxruntime: GRU operator does not support double yet"


def test_an_exporters_refusal_is_unsupported_and_an_invalid_model_is_a_finding():
    candidate = target("onnxruntime-torchscript")
    proj = Case(Config("LSTM", 2, 4, 1, True, False, True, 2), Inputs(3, 2, dtype="float32", seed=2))
    assert check(candidate, proj, name="onnxruntime-torchscript").skipped.startswith(
        "unsupported: torch.onnx (torchscript): Unsupported: ONNX export of operator LSTM, LSTMs with projections")
    bfloat16 = Case(Config("LSTM", 2, 3, 1, True, False, True), Inputs(3, 2, dtype="bfloat16", seed=2))
    with pytest.raises(CheckFailure, match="INVALID_GRAPH"):  # an invalid model is never a refusal
        check(candidate, bfloat16, name="onnxruntime-torchscript")


def test_the_onnx_reference_refuses_bfloat16_as_numpy_does():
    candidate = target("onnx-reference")
    case = Case(Config("GRU", 2, 3, 1, True, False, True), Inputs(3, 2, dtype="bfloat16", seed=2))
    assert "unsupported: onnx.reference takes NumPy arrays" in check(candidate, case, name="onnx-reference").skipped


@pytest.mark.slow
def test_torch_compile_takes_weights_and_states_and_really_compiles():
    from torch._dynamo.utils import counters

    candidate = target("torch-compile")
    before = counters["stats"]["unique_graphs"]
    for case in (FIXED[0], SAME_SHAPES_NEW_WEIGHTS, FIXED[3]):
        assert check(candidate, case, name="torch-compile").skipped is None
    # at least a graph per configuration (other weights may recompile: 3 graphs measured): Dynamo captured
    # the RNN each time, instead of graph-breaking on it and running torch's eager kernel
    assert counters["stats"]["unique_graphs"] - before >= 2


@pytest.mark.e2e
def test_a_missing_extra_is_one_line_naming_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(TargetUnavailable, match=r"needs (.*, )?onnxruntime: pip install 'fuzz-birnn\[onnx\]'"):
        load_target("onnxruntime")
    script = ("import importlib.util, sys\nreal = importlib.util.find_spec\n"
              "importlib.util.find_spec = lambda n, *a: None if n == 'onnxruntime' else real(n, *a)\n"
              "from fuzz_birnn.cli import main\nsys.exit(main(['run', '--candidate', 'onnxruntime']))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "pip install 'fuzz-birnn[onnx]'" in done.stderr


@pytest.mark.e2e
def test_a_users_unsupported_is_counted_and_tabled_not_failed(tmp_path):
    arguments = ["run", "--candidate", "tests.contract_bugs:refuses_float16", "--properties", "agreement",
                 "--modes", "gru", "--max-examples", "200", "--seed", "0", "--reports", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", *arguments], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    dtypes = record["support"]["dtype"]
    assert dtypes["float16"]["checked"] == 0 and dtypes["float16"]["unsupported"] > 0
    assert all(dtypes[d]["checked"] > 0 and dtypes[d]["unsupported"] == 0 for d in ("float64", "float32", "bfloat16"))
    assert record["not_compared"]["unsupported: no float16 kernel"] == dtypes["float16"]["unsupported"]
    assert "support (cases checked / unsupported / failing" in done.stdout
    assert "float16 0/" in done.stdout
    refused, total = dtypes["float16"]["unsupported"], record["cases"]["total"]
    assert f"{total} cases checked" in done.stdout  # and how many of them were compared, at a glance:
    assert f": {total - refused} compared, {refused} refused by the candidate" in done.stdout


# -- the ONNX targets' two forms: deployed (weights folded, one export a case) and shared --------

FORMS_CASES = [
    *FIXED, SAME_SHAPES_NEW_WEIGHTS,
    Case(Config("LSTM", 2, 3, 2, True, True, True), Inputs(3, None, unbatched=True, dtype="float32", seed=6)),
    Case(Config("GRU", 2, 3, 1, False, True, False), Inputs(4, 3, True, (4, 2, 4), False, dtype="float32", seed=8)),
]


def forms(monkeypatch, every):
    """Every case in the deployed form (``every=1``) or in the shared one (a huge ``every``)."""
    from fuzz_birnn.targets import onnx_export

    monkeypatch.setattr(onnx_export, "DEPLOYED_EVERY", every)


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["onnxruntime-torchscript", "onnxruntime"])
def test_the_shared_form_gives_the_deployed_forms_verdict(monkeypatch, name):
    candidate = target(name)
    verdicts = {}
    for every in (1, 10**9):
        forms(monkeypatch, every)
        verdicts[every] = [check(candidate, case, name=name).skipped for case in FORMS_CASES]
    assert verdicts[1] == verdicts[10**9] == [None] * len(FORMS_CASES)


def test_the_torchscript_shared_form_is_exported_once_per_configuration(monkeypatch):
    from fuzz_birnn.targets import onnx_export

    candidate = target("onnxruntime-torchscript")
    forms(monkeypatch, 10**9)
    exports = []
    real = onnx_export._export_shared
    monkeypatch.setattr(onnx_export, "_export_shared", lambda *a, **k: exports.append(1) or real(*a, **k))
    monkeypatch.setattr(onnx_export, "_SHARED", onnx_export.ExportCache())
    gru = Config("GRU", 3, 4, 2, True, False, True)
    for steps, batch, seed in ((5, 2, 1), (3, 4, 2), (7, 1, 3)):  # other lengths, batches and weights
        check(candidate, Case(gru, Inputs(steps, batch, initial_state=True, dtype="float32", seed=seed)))
    # packed: three length groups, each its own padded batch, all through the same export
    check(candidate, Case(gru, Inputs(6, 3, True, (6, 2, 4), False, initial_state=True, dtype="float32", seed=4)))
    assert len(exports) == 1


def test_a_case_runs_one_form_whatever_ran_before():
    target("onnxruntime-torchscript")  # the ONNX extra (NumPy among it), or a skip saying so
    from fuzz_birnn.targets.onnx_export import DEPLOYED_EVERY, runs_deployed

    chosen = [runs_deployed(Case(FIXED[0].config, Inputs(5, 2, dtype="float32", seed=seed)).build().module)
              for seed in range(400)]
    assert chosen == [runs_deployed(Case(FIXED[0].config, Inputs(5, 2, dtype="float32", seed=seed)).build().module)
                      for seed in range(400)]
    assert 400 / DEPLOYED_EVERY / 2 < sum(chosen) < 400 / DEPLOYED_EVERY * 2  # about one case in DEPLOYED_EVERY


@pytest.mark.parametrize("broken", ["deployed", "shared"])
def test_a_bug_in_either_form_is_found(monkeypatch, broken):
    """Each form really runs: a model that ignores the case's weights in one form is caught on the
    cases of that form and only there."""
    import torch

    from fuzz_birnn.targets import onnx_export, onnxruntime

    candidate = target("onnxruntime-torchscript")
    stale = torch.nn.GRU(3, 4, 2, True, False, 0.0, True).eval()  # weights no case has
    if broken == "deployed":
        real_model = onnx_export.onnx_model
        monkeypatch.setattr(onnxruntime, "onnx_model", lambda module, x, hx, **k: real_model(stale, x, hx, **k))
    else:
        real_inputs = onnx_export.shared_inputs
        monkeypatch.setattr(onnxruntime, "shared_inputs",
                            lambda module, x, hx: [*real_inputs(module, x, hx)[:2], *real_inputs(stale, x, hx)[2:]])
    failed = {}
    gru = Config("GRU", 3, 4, 2, True, False, True)
    for seed in range(24):
        case = Case(gru, Inputs(5, 2, initial_state=True, dtype="float32", seed=seed))
        deployed = onnx_export.runs_deployed(case.build().module)
        try:
            check(candidate, case)
            failed[seed] = (deployed, False)
        except CheckFailure:
            failed[seed] = (deployed, True)
    assert any(deployed for deployed, _ in failed.values()) and not all(d for d, _ in failed.values())
    assert all(fails == (deployed == (broken == "deployed")) for deployed, fails in failed.values())


@pytest.mark.e2e
def test_the_dynamo_exporters_table_built_once_exports_the_same_bytes():
    import torch

    target("onnxruntime")
    from torch.onnx._internal.exporter import _registration

    from fuzz_birnn.targets import onnx_export

    module = torch.nn.GRU(3, 4, 2, bidirectional=True).eval()
    x = torch.randn(5, 2, 3)
    before = vars(_registration.ONNXRegistry)["from_torchlib"]
    cached = onnx_export._serialized(onnx_export._export(module, (x,), dynamo=True, names=["input"]))
    assert vars(_registration.ONNXRegistry)["from_torchlib"] is before  # put back as it was
    again = onnx_export._serialized(onnx_export._export(module, (x,), dynamo=True, names=["input"]))
    with warnings.catch_warnings():  # the exporter warns of its own deprecations
        warnings.simplefilter("ignore")
        plain = torch.onnx.export(module, (x,), None, dynamo=True, verbose=False, input_names=["input"])
    assert cached == again == plain.model_proto.SerializeToString()


def test_a_differentiable_target_keeps_gradients_and_the_gradients_property_sees_a_detached_state():
    """``candidate_from(differentiable=True)`` (torch-compile's, for --grad) keeps autograd on; a
    runner that cuts the initial state off the graph is caught by the gradients property."""
    from fuzz_birnn.properties.gradients import check_gradients
    from fuzz_birnn.targets.adapter import candidate_from

    case = Case(Config("GRU", 2, 3, 2, True, False, True), Inputs(3, 2, initial_state=True, seed=3))
    check_gradients(candidate_from(lambda module, x, hx: module(x, hx), differentiable=True), case, name="kept")
    detached = candidate_from(lambda module, x, hx: module(x, hx.detach()), differentiable=True)
    with pytest.raises(CheckFailure, match="h0"):
        check_gradients(detached, case, name="detached")
    with pytest.raises(CheckFailure):  # without differentiable, nothing reaches the parameters at all
        check_gradients(candidate_from(lambda module, x, hx: module(x, hx)), case, name="no grad")


@pytest.mark.e2e
def test_the_dynamic_export_is_reused_across_batch_sizes_with_each_cases_weights(monkeypatch):
    from fuzz_birnn.targets import torch_export

    candidate = target("torch-export-dynamic")
    first = Case(Config("GRU", 3, 4, 2, True, True, True), Inputs(5, 2, initial_state=True, dtype="float32", seed=1))
    other_batch = Case(Config("GRU", 3, 4, 2, True, True, True), Inputs(5, 4, initial_state=True, dtype="float32",
                                                                       seed=9))
    assert check(candidate, first, name="torch-export-dynamic").skipped is None
    exports = len(torch_export._DYNAMIC._entries)
    assert check(candidate, other_batch, name="torch-export-dynamic").skipped is None
    assert len(torch_export._DYNAMIC._entries) == exports, "a new batch size must reuse the export"
    # the same reuse with the case's weights never loaded: the second case runs the first's weights
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", lambda self, state, *args, **kwargs: None)
    with pytest.raises(CheckFailure):
        check(candidate, dataclasses.replace(other_batch, inputs=dataclasses.replace(other_batch.inputs, seed=10)),
              name="torch-export-dynamic")
