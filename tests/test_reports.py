"""Reports are whole or absent, one per distinct failure, and damaged ones are refused clearly."""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz_birnn import Case, CheckFailure, Config, Inputs, check
from fuzz_birnn.output.reports import REPORT_FILES, ReportError, load_report, write_report

from . import planted

ROOT = Path(__file__).resolve().parent.parent
CASE = Case(Config(num_layers=2), Inputs(seq_len=2))


def _failure() -> CheckFailure:
    with pytest.raises(CheckFailure) as raised:
        check(planted.seed_missing_re_reversal, CASE, name="tests.planted:seed_missing_re_reversal")
    return raised.value


def _write_in_process(folder: str) -> str:
    path, _ = write_report(_failure(), Path(folder))
    return str(path)


def test_a_report_holds_everything_to_replay_it(tmp_path):
    folder, new = write_report(_failure(), tmp_path)
    assert new and sorted(p.name for p in folder.iterdir()) == sorted(REPORT_FILES)
    report = load_report(folder)
    assert report.case == CASE and report.prop == "agreement" and report.kind == "check"
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no staging folder left behind


def test_a_report_records_what_chose_the_cpu_kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # as a capped worker would have it (read at start)
    folder, _ = write_report(_failure(), tmp_path)
    dispatch = json.loads((folder / "case.json").read_text())["environment"]["cpu_dispatch"]
    assert dispatch["caps"] == {"ATEN_CPU_CAPABILITY": "default"}
    assert dispatch["cpu_capability"] and dispatch["threads"] >= 1 and isinstance(dispatch["config"], list)
    assert "- **CPU dispatch**: torch's kernels at " in (folder / "summary.md").read_text()
    assert "caps: ATEN_CPU_CAPABILITY=default" in (folder / "summary.md").read_text()


@pytest.mark.e2e
def test_parallel_writers_of_one_failure_leave_one_whole_report(tmp_path):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        paths = pool.map(_write_in_process, [str(tmp_path)] * 8)
    assert len(set(paths)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [Path(paths[0]).name]
    load_report(Path(paths[0]))


def test_a_writer_that_dies_midway_leaves_nothing(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fuzz_birnn.output.reports.save_tensors", crash)
    with pytest.raises(KeyboardInterrupt):
        write_report(_failure(), tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_a_killed_writer_leaves_only_a_hidden_staging_folder_that_replay_ignores(tmp_path):
    folder, _ = write_report(_failure(), tmp_path)
    shutil.copytree(folder, tmp_path / f".{folder.name}-killed")  # as if killed before the rename
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", "replay", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True)
    assert "1 report(s) replayed" in done.stdout, done.stdout + done.stderr


DAMAGE = [
    (lambda d: "{ not json", "not valid JSON"),
    (lambda d: json.dumps(d)[: len(json.dumps(d)) // 2], "not valid JSON (truncated?)"),
    (lambda d: json.dumps([d]), "a report is a JSON object"),
    (lambda d: json.dumps({**d, "schema_version": 99}), "schema_version=99 is not understood"),
    (lambda d: json.dumps({k: v for k, v in d.items() if k != "case"}), "missing 'case'"),
    (lambda d: json.dumps({**d, "candidate": "__import__('os').system('x')"}), "must be MODULE:ATTR"),
    (lambda d: json.dumps({**d, "case": {**d["case"], "config": {**d["case"]["config"], "num_layers": -1}}}),
     "num_layers=-1"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("damage", "message"), DAMAGE, ids=[m for _, m in DAMAGE])
def test_a_damaged_report_is_refused_with_one_line(tmp_path, damage, message):
    folder, _ = write_report(_failure(), tmp_path)
    case_json = folder / "case.json"
    case_json.write_text(damage(json.loads(case_json.read_text())))
    with pytest.raises(ReportError, match=re.escape(message)):
        load_report(folder)
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", "replay", str(folder)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


@pytest.mark.e2e
def test_a_missing_tensor_file_is_refused_clearly(tmp_path):
    folder, _ = write_report(_failure(), tmp_path)
    (folder / "tensors.safetensors").unlink()
    done = subprocess.run([sys.executable, str(folder / "repro.py")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "tensors.safetensors: cannot read it" in done.stderr
    assert "Traceback" not in done.stderr
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", "replay", str(folder)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "tensors.safetensors: missing" in done.stderr and done.stderr.count("\n") == 1
