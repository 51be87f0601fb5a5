"""The harness survives candidates that raise, return junk, crash, hang, and users who press Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AGREEMENT = ["--properties", "agreement", "--seed", "0", "--workers", "1"]


def fuzz(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "fuzz_birnn", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, **kwargs)


def documents(folder):
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*/case.json"))]


@pytest.mark.parametrize(("candidate", "message"), [
    ("raises", "candidate raised NotImplementedError: bidirectional stacks are not supported yet"),
    ("returns_a_tensor", "result is a tensor of shape"),
    ("returns_padded_for_packed", "output is a tensor of shape"),
    ("returns_wrong_dtype", "output.dtype=torch.float64, but should be"),
    ("returns_nan", "output differs first at layer 0"),
])
def test_misbehaving_results_are_findings_not_harness_errors(tmp_path, candidate, message):
    done = fuzz("run", "--candidate", f"tests.contract_bugs:{candidate}", *AGREEMENT, "--modes", "rnn_tanh",
                "--max-examples", 100, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [document] = documents(tmp_path)
    assert message in document["mismatch"]["message"]


def test_a_candidate_that_kills_its_process_is_a_crash_report_and_the_run_goes_on(tmp_path):
    done = fuzz("run", "--candidate", "tests.contract_bugs:segfaults_on_lstm", *AGREEMENT,
                "--modes", "lstm,gru", "--max-examples", 80, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    crashes = [d for d in documents(tmp_path) if d["mismatch"]["tensor"] == "crash"]
    assert crashes and all("SIGSEGV" in d["mismatch"]["message"] for d in crashes)
    assert all(d["case"]["config"]["mode"] == "LSTM" for d in crashes)
    assert "GRU 40" in done.stdout  # the GRU search still ran its budget
    replay = fuzz("replay", Path(tmp_path) / crashes[0]["id"])
    assert replay.returncode == 1 and "the replaying process died (killed by SIGSEGV)" in replay.stdout
    assert not list(Path(tmp_path).glob(".inflight-*"))


def test_a_candidate_that_hangs_is_a_timeout_report_and_the_run_goes_on(tmp_path):
    started = time.monotonic()
    done = fuzz("run", "--candidate", "tests.contract_bugs:hangs_on_gru", *AGREEMENT, "--modes", "gru,rnn_tanh",
                "--max-examples", 60, "--timeout", 2, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 60
    [document] = documents(tmp_path)
    assert document["mismatch"]["tensor"] == "timeout" and document["case"]["config"]["mode"] == "GRU"
    assert "RNN_TANH 30" in done.stdout
    replay = fuzz("replay", "--timeout", 3, tmp_path)
    assert replay.returncode == 1 and "still runs past the 3s limit" in replay.stdout


def test_ctrl_c_stops_promptly_with_a_summary_and_whole_reports(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "fuzz_birnn", "run", "--candidate",
                                "tests.contract_bugs:output_directions_swapped", "--max-examples", "100000",
                                "--workers", "2", "--reports", str(tmp_path)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not documents(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert time.monotonic() - started < 15
    assert process.returncode == 130, stdout + stderr
    assert "interrupted" in stdout and "cases checked" in stdout
    for folder in Path(tmp_path).iterdir():
        if not folder.name.startswith("."):
            assert sorted(p.name for p in folder.iterdir()) == ["case.json", "repro.py", "summary.md", "tensors.pt"]
    assert not list(Path(tmp_path).glob(".inflight-*"))
