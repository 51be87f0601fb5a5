"""Baselines: record and check round-trip, planted changes in torch are found and sorted, damaged
or foreign baselines are refused, two interpreters compare, and torch's own bug cannot hide a
candidate's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fuzz_birnn import Case, CheckFailure, Config, Inputs, check, reference
from fuzz_birnn.baseline.baselines import _compare_entry, corpus, ulps

ROOT = Path(__file__).resolve().parent.parent


def fuzz(*args, patch="", cwd=ROOT):
    """``fuzz-birnn ARGS`` in a fresh interpreter, after running ``patch`` (a planted change in torch)."""
    script = textwrap.dedent(patch) + "\nimport sys\nfrom fuzz_birnn.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baseline") / "torch-now"
    done = fuzz("baseline", "record", folder, "--size", 24)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


GRU_H_N_DIRECTION_MAJOR = """
    import torch
    forward = torch.nn.GRU.forward
    def patched(self, input, hx=None):  # h_n rows in direction-major order: a layout regression
        output, h_n = forward(self, input, hx)
        if self.bidirectional and self.num_layers > 1:
            h_n = h_n.unflatten(0, (self.num_layers, 2)).transpose(0, 1).flatten(0, 1)
        return output, h_n
    torch.nn.GRU.forward = patched
"""

LSTM_ONE_ULP = """
    import torch
    forward = torch.nn.LSTM.forward
    def patched(self, input, hx=None):  # the output's first element one ulp away: within tolerance
        output, hidden = forward(self, input, hx)
        data = output.data if isinstance(output, torch.nn.utils.rnn.PackedSequence) else output
        flat = data.detach().view(-1)
        flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf"), dtype=flat.dtype))
        return output, hidden
    torch.nn.LSTM.forward = patched
"""


@pytest.mark.e2e
def test_record_then_check_on_the_same_torch_is_all_identical(baseline, tmp_path):
    done = fuzz("baseline", "check", baseline, "--reports", tmp_path / "drift")
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((baseline / "manifest.json").read_text())
    assert f"{len(manifest['entries'])} cases: {len(manifest['entries'])} identical, 0 changed" in done.stdout
    assert not (tmp_path / "drift").exists()
    kinds = {e["kind"] for e in manifest["entries"]}
    assert kinds == {"forward", "invalid"}
    assert any(f"{e['id']}/grad/weight_ih_l0" for e in manifest["entries"])


@pytest.mark.e2e
def test_a_layout_regression_in_torch_is_drift_beyond_tolerance_with_its_case_and_tensor(baseline, tmp_path):
    done = fuzz("baseline", "check", baseline, "--reports", tmp_path / "drift", patch=GRU_H_N_DIRECTION_MAJOR)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "beyond tolerance" in done.stdout
    assert "tensor   h_n" in done.stdout and "mode     GRU" in done.stdout
    assert "mode     LSTM" not in done.stdout  # only GRU changed
    drift = [json.loads(p.read_text()) for p in (tmp_path / "drift").glob("*/case.json")]
    assert drift and all(d["case"]["config"]["mode"] == "GRU" for d in drift)
    assert all(d["mismatch"]["tensor"] in ("h_n", "grad/h0") or d["mismatch"]["tensor"].startswith("grad/")
               for d in drift)
    assert any("h_n:" in d["mismatch"]["message"] for d in drift)
    replay = subprocess.run([sys.executable, "-m", "fuzz_birnn", "replay", tmp_path / "drift"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert replay.returncode == 0 and "FIXED" in replay.stdout, replay.stdout + replay.stderr  # torch unpatched


@pytest.mark.e2e
def test_drift_within_tolerance_is_shown_in_ulps_and_fails_only_when_strict(baseline, tmp_path):
    done = fuzz("baseline", "check", baseline, "--reports", tmp_path / "drift", patch=LSTM_ONE_ULP)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "drifted within tolerance" in done.stdout and "output: 1 ulps" in done.stdout
    strict = fuzz("baseline", "check", baseline, "--strict", "--reports", tmp_path / "drift", patch=LSTM_ONE_ULP)
    assert strict.returncode == 1 and "failing (strict)" in strict.stdout


@pytest.mark.parametrize(("was", "now", "verdict"), [
    ({"raised": "RuntimeError", "message": "a"}, {"raised": "RuntimeError", "message": "a"}, "identical"),
    ({"raised": "RuntimeError", "message": "a"}, {"raised": "RuntimeError", "message": "b"}, "message changed"),
    ({"raised": "RuntimeError", "message": "a"}, {"raised": "ValueError", "message": "a"}, "refusal type changed"),
    ({"raised": "RuntimeError", "message": "a"}, {"accepted": True}, "no longer raising"),
    ({"accepted": True}, {"raised": "ValueError", "message": "a"}, "now raising"),
])
def test_refusals_are_sorted_by_what_changed(was, now, verdict):
    entry = {"id": "e0000", "kind": "invalid", "corruption": "h0_rows", "case": Case().to_dict()}
    assert _compare_entry({**entry, "outcome": was}, {**entry, "outcome": now}, {}, {}).verdict == verdict


def test_ulps_count_units_in_the_last_place_across_zero():
    one = torch.tensor([1.0], dtype=torch.float16)
    assert ulps(one, torch.nextafter(one, torch.tensor([2.0], dtype=torch.float16))) == 1
    tiny = torch.tensor([0.0], dtype=torch.float32)
    up, down = torch.nextafter(tiny, torch.tensor([1.0])), torch.nextafter(tiny, torch.tensor([-1.0]))
    assert ulps(down, up) == 2


def _edit(folder, change):
    from fuzz_birnn.baseline.baselines import _digest

    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    manifest["digest"] = _digest(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.e2e
@pytest.mark.parametrize(("damage", "says"), [
    (lambda f: (f / "results.safetensors").write_bytes((f / "results.safetensors").read_bytes()[:-1] + b"\0"),
     "damaged (its SHA-256"),
    (lambda f: (f / "manifest.json").write_text((f / "manifest.json").read_text().replace('"size": 24', '"size": 25')),
     "damaged or edited"),
    (lambda f: (f / "results.safetensors").unlink(), "missing"),
    (lambda f: _edit(f, lambda m: m.update(schema_version=9)), "schema_version=9 is not understood"),
    (lambda f: _edit(f, lambda m: m["environment"].update(machine="arm64")), "recorded on Linux arm64"),
    (lambda f: _edit(f, lambda m: m["entries"].pop()), "from another corpus"),
    (lambda f: (f / "manifest.json").unlink(), "no manifest.json here"),
])
def test_a_damaged_or_foreign_baseline_is_refused_in_one_line(baseline, tmp_path, damage, says):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(baseline, copy)
    damage(copy)
    done = fuzz("baseline", "check", copy, "--reports", tmp_path / "drift")
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.e2e
def test_two_interpreters_compare_in_one_command(tmp_path):
    done = fuzz("baseline", "compare", "--python", sys.executable, "--python", sys.executable, "--size", 8,
                "--reports", tmp_path / "drift")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("recorded") == 2 and " 0 changed" in done.stdout
    missing = fuzz("baseline", "compare", "--python", sys.executable, "--python", tmp_path / "no-python")
    assert missing.returncode == 2 and "cannot run it" in missing.stderr


def test_the_corpus_covers_every_value_of_every_dimension():
    entries = corpus(16, seed=3)
    cases = [Case.from_dict(e["case"]) for e in entries if e["kind"] == "forward"]
    assert {c.config.mode for c in cases} == {"RNN_TANH", "RNN_RELU", "GRU", "LSTM"}
    assert {c.inputs.form for c in cases} == {"padded", "unbatched", "packed_sorted", "packed_unsorted"}
    assert {c.inputs.dtype for c in cases} == {"float64", "float32", "bfloat16", "float16"}
    assert {c.inputs.onednn for c in cases} == {True, False} and {c.config.bias for c in cases} == {True, False}
    assert any(c.config.proj_size for c in cases)
    from fuzz_birnn.properties.invalid import CORRUPTIONS

    assert {e["corruption"] for e in entries if e["kind"] == "invalid"} == set(CORRUPTIONS)
    assert corpus(16, seed=3) == entries  # deterministic


# -- the candidate's allowance where torch itself is wrong ---------------------------------------


def _h_n_direction_major(monkeypatch):
    forward = torch.nn.GRU.forward

    def patched(self, input, hx=None):
        output, h_n = forward(self, input, hx)
        return output, h_n.unflatten(0, (self.num_layers, 2)).transpose(0, 1).flatten(0, 1)
    monkeypatch.setattr(torch.nn.GRU, "forward", patched)


def shares_torchs_bug(module, input, hx=None):
    return module(input, hx)


GRU_CASE = Case(Config("GRU", 2, 3, 2, True, False, True), Inputs(3, 2, seed=5))


def test_a_candidate_sharing_torchs_bug_fails_and_torchs_fault_is_named(monkeypatch):
    check(shares_torchs_bug, GRU_CASE)  # no false alarm while torch is right
    check(reference, GRU_CASE)
    _h_n_direction_major(monkeypatch)
    with pytest.raises(CheckFailure) as raised:
        check(shares_torchs_bug, GRU_CASE)
    assert raised.value.prop == "agreement" and raised.value.mismatch.tensor == "h_n"
    assert any("torch's fused module is wrong on this case too" in note for note in raised.value.__notes__)
    with pytest.raises(CheckFailure) as torch_wrong:
        check(reference, GRU_CASE)  # a right candidate: the failure is torch's, and says so
    assert (torch_wrong.value.prop, torch_wrong.value.candidate) == ("fused-vs-reference", "fused")
