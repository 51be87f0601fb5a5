"""``fuzz-birnn run`` and ``replay`` as a user runs them: exit status, summary, reports, repro.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz_birnn.properties.relations import RELATIONS

pytestmark = pytest.mark.e2e  # every test here starts processes

ROOT = Path(__file__).resolve().parent.parent
SEED = "examples.seed_decomposition"
RNN_ONLY = ["--modes", "rnn_tanh", "--no-packed", "--no-unbatched", "--properties", "agreement"]


def fuzz(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "fuzz_birnn", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def reports_in(folder):
    return sorted(p.parent for p in Path(folder).glob("*/case.json"))


def test_run_checks_torch_over_the_whole_space(tmp_path):
    done = fuzz("run", "--max-examples", 400, "--seed", 0, "--workers", 2, "--reports", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no failures" in done.stdout
    coverage = done.stdout.split("coverage:")[1]
    for value in ("RNN_TANH", "RNN_RELU", "GRU", "LSTM", "float64", "float32", "bfloat16", "float16",
                  "padded", "unbatched", "packed_sorted", "packed_unsorted", "agreement", "fused-vs-reference",
                  "gradients", "backends", "invalid-calls", *(f"relation:{r}" for r in RELATIONS)):
        assert f"{value} " in coverage
    assert reports_in(tmp_path) == []


def test_seed_bug_is_found_shrunk_reported_and_reproduced(tmp_path):
    done = fuzz("run", "--candidate", f"{SEED}:seed_decomposition", *RNN_ONLY, "--seed", 1,
                "--max-examples", 600, "--workers", 1, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    [report] = reports_in(tmp_path)
    document = json.loads((report / "case.json").read_text())
    assert document["schema_version"] == 2 and document["id"] == report.name
    assert document["candidate"] == f"{SEED}:seed_decomposition"
    config, inputs = document["case"]["config"], document["case"]["inputs"]
    assert (config["num_layers"], config["input_size"], config["hidden_size"], inputs["seq_len"]) == (2, 1, 1, 2)
    assert (document["mismatch"]["layer"], document["mismatch"]["direction"]) == (1, "forward")
    assert set(document["environment"]) == {"torch", "hypothesis", "python", "platform", "fuzz_birnn", "cpu_dispatch",
                                            "packages", "target_packages"}
    assert document["environment"]["target_packages"] == {}  # a plain file brings no package of its own
    assert "layer 1, forward direction" in (report / "summary.md").read_text()
    assert str(report) in done.stdout

    repro = subprocess.run([sys.executable, report / "repro.py"], cwd=ROOT, capture_output=True, text=True)
    assert repro.returncode == 1 and "STILL FAILS" in repro.stdout
    replay = fuzz("replay", tmp_path)
    assert replay.returncode == 1 and "STILL FAILS" in replay.stdout

    again = fuzz("run", "--candidate", f"{SEED}:seed_decomposition", *RNN_ONLY, "--seed", 1,
                 "--max-examples", 600, "--workers", 1, "--reports", tmp_path)
    assert again.returncode == 1 and "already reported" in again.stdout
    assert reports_in(tmp_path) == [report]


def test_time_reversal_relation_finds_the_seed_bug_without_any_reference(tmp_path):
    done = fuzz("run", "--candidate", f"{SEED}:seed_decomposition", *RNN_ONLY[:-1], "relation:time_reversal",
                "--dtypes", "float64", "--max-examples", 600, "--seed", 1, "--workers", 1, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    [report] = reports_in(tmp_path)
    document = json.loads((report / "case.json").read_text())
    assert document["property"] == "relation:time_reversal"
    assert document["case"]["config"]["num_layers"] == 2
    replay = subprocess.run([sys.executable, report / "repro.py"], cwd=ROOT, capture_output=True, text=True)
    assert replay.returncode == 1 and "STILL FAILS" in replay.stdout, replay.stdout + replay.stderr


def test_replay_and_repro_tell_fixed_from_still_failing(tmp_path):
    (tmp_path / "mystack.py").write_text(
        "from examples.seed_decomposition import seed_decomposition as stack\n")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    done = fuzz("run", "--candidate", "mystack:stack", *RNN_ONLY, "--seed", 2, "--max-examples", 600, "--workers", 1,
                cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    [report] = reports_in(tmp_path / "reports")

    (tmp_path / "mystack.py").write_text(
        "from examples.seed_decomposition import fixed_decomposition as stack\n")
    replay = fuzz("replay", report, cwd=tmp_path)
    assert replay.returncode == 0 and "FIXED" in replay.stdout, replay.stdout + replay.stderr
    repro = subprocess.run([sys.executable, report / "repro.py"], cwd=tmp_path, capture_output=True, text=True)
    assert repro.returncode == 0 and "FIXED" in repro.stdout, repro.stdout + repro.stderr


@pytest.mark.parametrize(("candidate", "narrowing"), [
    ("h_n_left_in_sorted_order", ["--modes", "gru"]),
    ("output_directions_swapped", ["--modes", "rnn_relu"]),
    ("reverse_h_n_from_last_output_step", ["--modes", "lstm"]),
    ("initial_state_ignored", ["--modes", "rnn_tanh"]),
    ("c_n_direction_major", ["--modes", "lstm"]),
])
def test_unseen_layout_bugs_are_caught(tmp_path, candidate, narrowing):
    done = fuzz("run", "--candidate", f"tests.contract_bugs:{candidate}", *narrowing, "--properties", "agreement",
                "--max-examples", 300,
                "--seed", 0, "--workers", 1, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    [report] = reports_in(tmp_path)
    repro = subprocess.run([sys.executable, report / "repro.py"], cwd=ROOT, capture_output=True, text=True)
    assert repro.returncode == 1, repro.stdout + repro.stderr


@pytest.mark.parametrize("candidate", ["reference", "tests.contract_bugs:torch_in_float64"])
def test_correct_higher_precision_candidates_pass(tmp_path, candidate):
    done = fuzz("run", "--candidate", candidate, "--max-examples", 120, "--seed", 0, "--workers", 2,
                "--reports", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert reports_in(tmp_path) == []


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--modes", "lstm,transformer"], "choose from rnn_tanh,rnn_relu,gru,lstm"),
    (["run", "--max-examples", "0"], "'0' is not a positive integer"),
    (["run", "--seed", "x"], "'x' is not an integer"),
    (["run", "--candidate", "no colon"], "must be MODULE:ATTR"),
    (["run", "--candidate", "os;rm:x"], "must be MODULE:ATTR"),
    (["run", "--candidate", "not_a_module_xyz:f"], "cannot import 'not_a_module_xyz'"),
    (["run", "--candidate", "json:nothing_here"], "has no attribute 'nothing_here'"),
    (["run", "--candidate", "json:__doc__"], "is a str, not callable"),
    (["run", "--devices", "mps"], "not available here"),
    (["run", "--properties", "agreement,telepathy"], "--properties telepathy: choose from"),
    (["run", "--properties", "relation:unbatched", "--no-unbatched"],
     "the flags leave no cases for relation:unbatched"),
    (["run", "--reports", "/proc/fuzz-birnn"], "cannot write there"),
    (["replay", "/nonexistent/report"], "no such report or folder"),
    ([], "name a command: run, replay"),
])
def test_bad_input_gets_one_line_and_exit_status_2(args, message):
    done = fuzz(*args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
