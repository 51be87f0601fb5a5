"""The harness survives candidates that raise, return junk, crash, hang, and users who press Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzz_birnn.campaign.writeahead import last_in_flight
from fuzz_birnn.output.reports import REPORT_FILES, load_report

ROOT = Path(__file__).resolve().parent.parent
AGREEMENT = ["--properties", "agreement", "--seed", "0", "--workers", "1"]


def fuzz(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "fuzz_birnn", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, **kwargs)


def documents(folder):
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*/case.json"))]


@pytest.mark.e2e
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
    [folder] = [p.parent for p in tmp_path.glob("*/case.json")]
    load_report(folder)  # strict JSON (a NaN result's infinite error is written as "inf"): replay reads it


@pytest.mark.e2e
def test_a_candidate_that_kills_its_process_is_a_crash_report_and_the_run_goes_on(tmp_path):
    done = fuzz("run", "--candidate", "tests.contract_bugs:segfaults_on_lstm", *AGREEMENT,
                "--modes", "lstm,gru", "--max-examples", 80, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    crashes = [d for d in documents(tmp_path) if d["kind"] == "crash"]
    assert crashes and all("SIGSEGV" in d["mismatch"]["message"] for d in crashes)
    assert all(d["case"]["config"]["mode"] == "LSTM" for d in crashes)
    assert "GRU 40" in done.stdout  # the GRU search still ran its budget
    replay = fuzz("replay", Path(tmp_path) / crashes[0]["id"])
    assert replay.returncode == 1 and "the replaying process died (killed by SIGSEGV)" in replay.stdout
    assert not list(Path(tmp_path).glob(".inflight-*"))


@pytest.mark.e2e
def test_a_candidate_that_hangs_is_a_timeout_report_and_the_run_goes_on(tmp_path):
    started = time.monotonic()
    done = fuzz("run", "--candidate", "tests.contract_bugs:hangs_on_gru", *AGREEMENT, "--modes", "gru,rnn_tanh",
                "--max-examples", 60, "--timeout", 2, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 60
    [document] = documents(tmp_path)
    assert document["kind"] == "timeout" and document["case"]["config"]["mode"] == "GRU"
    assert "RNN_TANH 30" in done.stdout
    replay = fuzz("replay", "--timeout", 3, tmp_path)
    assert replay.returncode == 1 and "still runs past the 3s limit" in replay.stdout


@pytest.mark.e2e
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
        if not folder.name.startswith(".") and folder.name != "run.json":
            assert sorted(p.name for p in folder.iterdir()) == sorted(REPORT_FILES)
    assert json.loads((Path(tmp_path) / "run.json").read_text())["interrupted"] is True
    assert not list(Path(tmp_path).glob(".inflight-*"))


def _processes_in_session(session: int) -> list[str]:
    """``pid command`` of every live process whose session id is ``session`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        state, _, _, sid = text.rsplit(")", 1)[1].split()[:4]
        if int(sid) == session and state != "Z":
            found.append(f"{stat.parent.name} {text.split(' (')[1].split(')')[0]}")
    return found


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the run's processes")
@pytest.mark.parametrize("candidate", ["hangs_on_gru", "spins_on_gru"])
def test_a_killed_run_takes_its_workers_with_it(tmp_path, candidate):
    # Its own session, so that every process the run starts (workers, resource tracker) is findable.
    process = subprocess.Popen([sys.executable, "-m", "fuzz_birnn", "run", "--candidate",
                                f"tests.contract_bugs:{candidate}", "--seed", "0", "--workers", "2",
                                "--modes", "gru", "--properties", "agreement,relation:zero_state",
                                "--timeout", "600", "--reports", str(tmp_path)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def in_flight():
            return [r for r in map(last_in_flight, Path(tmp_path).glob(".inflight-*.json")) if r is not None]

        deadline = time.monotonic() + 60
        while len(in_flight()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(in_flight()) == 2, "both workers should be inside the candidate"
        assert len(_processes_in_session(process.pid)) >= 3  # the run, two workers (and the resource tracker)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 10
        while _processes_in_session(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_in_session(process.pid) == []
    finally:  # never leave a failing test's orphans behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    for folder in Path(tmp_path).iterdir():
        assert folder.name.startswith("."), f"{folder.name} looks like a report, but the run never finished one"


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the processes")
def test_the_portable_watcher_alone_ends_an_orphan():
    """Without the kernel's parent-death signal: a grandchild that only watches its parent pid."""
    middle = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import sys\\n"
        "from fuzz_birnn.processes.lifeline import watch_parent\\n"
        "watch_parent(int(sys.argv[1]))\\n"
        "print(flush=True)\\n"
        "while True: pass', str(os.getpid())])\n"
        "time.sleep(600)\n")], cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert middle.stdout.readline() == "\n"  # the grandchild is watching, and busy from now on
        assert len(_processes_in_session(middle.pid)) == 2
        middle.kill()
        middle.wait()
        deadline = time.monotonic() + 5
        while _processes_in_session(middle.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_in_session(middle.pid) == []
    finally:
        middle.stdout.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(middle.pid, signal.SIGKILL)


def test_a_kept_file_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """run.json, JUnit XML and pages: a write that fails midway (here: the text cannot be encoded)
    leaves the old file as it was and nothing else behind; a good write replaces it, readable by
    others as the umask says (not mkstemp's 0600)."""
    import os

    from fuzz_birnn.output.files import write_whole

    kept = tmp_path / "run.json"
    write_whole(kept, '{"cases": 1}\n')
    with pytest.raises(UnicodeEncodeError):
        write_whole(kept, '{"cases": 2, "broken": "\udc80"}\n')  # a lone surrogate: not UTF-8
    assert kept.read_text() == '{"cases": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    previous = os.umask(0o022)
    try:
        write_whole(kept, '{"cases": 3}\n')
    finally:
        os.umask(previous)
    assert kept.read_text() == '{"cases": 3}\n' and kept.stat().st_mode & 0o777 == 0o644


@pytest.mark.e2e
def test_a_candidate_that_never_returns_is_one_finding_and_pays_the_time_limit_once_a_worker(tmp_path):
    """What the run learns of a candidate carries across its searches: after its first hang, every
    other search's cases run under the adaptive limit and count as that hang again, instead of each
    of the 18 searches paying the time limit and a reduction of its own."""
    done = fuzz("run", "--candidate", "tests.contract_bugs:always_hangs", "--modes", "gru,lstm", "--max-examples", 30,
                "--timeout", 3, "--seed", 1, "--workers", 2, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    assert [f["signature"] for f in record["findings"]] == ["timeout"] and not record["errors"]
    assert len(documents(tmp_path)) == 1
    full_limits = sum(s["failed"] + s["known"] for s in record["cases"]["by_search"])
    assert full_limits <= 2  # one hang a worker ran to the whole --timeout
    assert record["not_compared"]["ran past the adaptive limit after this candidate's known hang"] == \
        record["cases"]["total"] - full_limits


@pytest.mark.e2e
@pytest.mark.parametrize(("candidate", "kind", "how"), [
    ("exits_on_gru", "crash", "exit status 3"),
    ("kills_itself_on_gru", "crash", "killed by SIGKILL"),
    ("waits_for_a_thread_that_never_ends_on_gru", "timeout", "took longer than the 3s limit"),
    ("leaves_a_thread_running", None, None),
])
def test_every_way_of_not_returning_is_a_finding_and_the_run_ends(tmp_path, candidate, kind, how):
    done = fuzz("run", "--candidate", f"tests.contract_bugs:{candidate}", *AGREEMENT, "--modes", "gru,lstm",
                "--max-examples", 40, "--timeout", 3, "--reports", tmp_path)
    assert "Traceback" not in done.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    assert not record["errors"]
    if kind is None:  # it returned every time, right: nothing to report
        assert done.returncode == 0 and not record["findings"], done.stdout + done.stderr
        return
    assert done.returncode == 1, done.stdout + done.stderr
    [document] = documents(tmp_path)
    assert document["kind"] == kind and how in document["mismatch"]["message"]
    assert document["case"]["config"]["mode"] == "GRU"
    assert "LSTM 20" in done.stdout  # the LSTM search still ran its budget


@pytest.mark.e2e
def test_a_bare_tensor_result_is_a_finding_in_every_property_and_never_an_error(tmp_path):
    """``return module(input, hx)[0]``: once agreement's finding and three tracebacks of the
    time-reversal relation unpacking it; now a finding wherever it is checked, and no error."""
    done = fuzz("run", "--candidate", "tests.contract_bugs:returns_a_tensor", "--modes", "rnn_tanh,lstm",
                "--max-examples", 60, "--seed", 0, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    assert not record["errors"]
    seen = {s["property"] for f in record["findings"] for s in f["seen_in"]}
    assert {"agreement", "relation:time_reversal"} <= seen, seen


def test_a_harness_error_is_one_line_naming_where_its_traceback_went(tmp_path):
    from fuzz_birnn.campaign.engine import harness_error
    from fuzz_birnn.campaign.scheduler import SearchSpec
    from fuzz_birnn.core.space import CaseSpace

    spec = SearchSpec(0, "relation:time_reversal", "decomposed", "GRU", CaseSpace(), 0, str(tmp_path), 60.0)
    try:
        _, _ = (1,)  # the kind of unpacking that once escaped a relation
    except ValueError as error:
        line = harness_error(error, spec, 3)
    saved = tmp_path / ".errors" / "relation-time_reversal-GRU-slice3.txt"
    assert line == f"ValueError: not enough values to unpack (expected 2, got 1) (traceback: {saved})"
    assert "Traceback (most recent call last)" in saved.read_text() and "_, _ = (1,)" in saved.read_text()


@pytest.mark.e2e
def test_every_kind_of_wrong_result_is_a_finding_through_run(tmp_path):
    """None, a generator, the wrong rank, an object whose shape raises: one kind a mode, through
    every property a candidate gets; each a finding, none an error of the harness."""
    done = fuzz("run", "--candidate", "tests.contract_bugs:wrong_by_mode", "--max-examples", 160, "--seed", 0,
                "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    assert not record["errors"]
    modes = {s["mode"] for f in record["findings"] for s in f["seen_in"]}
    assert modes == {"RNN_TANH", "RNN_RELU", "GRU", "LSTM"}, modes


@pytest.mark.e2e
def test_a_candidate_with_a_costly_setup_per_shape_gets_several_value_draws_on_each(tmp_path):
    """``cases_per_shape = 4``: each drawn configuration and shapes is checked on four draws of
    values, every one counted as a case."""
    log = tmp_path / "calls.jsonl"
    args = ["run", "--candidate", "tests.contract_bugs:costly_per_shape", "--properties", "agreement", "--modes",
            "gru", "--max-examples", 40, "--workers", 1, "--seed", 3, "--database", "none", "--reports",
            tmp_path / "reports"]
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "FUZZ_BIRNN_TEST_LOG": str(log)}, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    # packed input is one call; each group of four shares shapes and configuration, not weights
    groups = [calls[i:i + 4] for i in range(0, len(calls), 4)]
    assert len(calls) == 40 and all(len({(str(s), r) for s, r, _ in g}) == 1 for g in groups)
    assert all(len({w for _, _, w in g}) == 4 for g in groups)
    assert json.loads((tmp_path / "reports" / "run.json").read_text())["cases"]["total"] == 40


@pytest.mark.e2e
def test_a_fault_on_another_draw_of_values_is_reported_with_that_case(tmp_path):
    reports = tmp_path / "reports"
    done = fuzz("run", "--candidate", "tests.contract_bugs:costly_per_shape_and_wrong_on_a_large_first_weight",
                "--properties", "agreement", "--modes", "lstm", "--max-examples", 400, "--workers", 1, "--seed", 1,
                "--database", "none", "--reports", reports)
    assert done.returncode == 1, done.stdout + done.stderr
    folders = [p.parent for p in reports.glob("*/case.json")]
    assert folders
    for folder in folders:  # the report's case is the draw that failed, and fails alone
        again = subprocess.run([sys.executable, "-m", "fuzz_birnn", "replay", str(folder)], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
        assert again.returncode == 1, again.stdout + again.stderr


@pytest.mark.e2e
def test_a_crash_that_belongs_to_an_earlier_case_is_reported_as_not_reproduced(tmp_path):
    reports = tmp_path / "reports"
    done = fuzz("run", "--candidate", "tests.contract_bugs:crashes_on_its_second_call", "--properties", "agreement",
                "--modes", "gru", "--max-examples", 6, "--workers", 1, "--seed", 2, "--database", "none",
                "--reports", reports)
    assert done.returncode == 1, done.stdout + done.stderr
    [report] = [json.loads(p.read_text()) for p in reports.glob("*/case.json")]
    assert report["kind"] == "crash"
    assert report["shrink"].startswith("not reproduced: alone in a fresh child the case did not crash again")
