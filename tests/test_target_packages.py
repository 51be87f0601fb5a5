"""Reports and the run record name the target's packages with their versions (a runtime's, a
converter's), and only the target's: a run of torch alone names none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz_birnn.core import packages

ROOT = Path(__file__).resolve().parent.parent

#: an installed package nobody here wrote: a wrong GRU "runtime" that wraps torch's decomposition
RUNTIME = '''
from fuzz_birnn import decomposed


def gru(module, input, hx=None):
    output, h_n = decomposed(module, input, hx)
    return output, h_n * 1.5
'''


def install(site: Path, name: str, version: str, source: str) -> None:
    """``name`` as an installed distribution in ``site`` (its module and its ``.dist-info``)."""
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(source)
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    (info / "RECORD").write_text(f"{name}/__init__.py,,\n")


def test_a_package_imported_after_the_harness_is_the_targets_with_its_version(tmp_path, monkeypatch):
    install(tmp_path, "fbirnn_fake_runtime", "1.2.3", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    packages.remember_harness()
    assert "fbirnn-fake-runtime" not in packages.of_target()
    import fbirnn_fake_runtime  # noqa: F401
    found = packages.of_target()
    assert found["fbirnn-fake-runtime"] == "1.2.3"
    assert not {"torch", "hypothesis", "pytest", "fuzz-birnn"} & set(found)
    assert packages.loaded()["torch"] and packages.loaded()["fbirnn-fake-runtime"] == "1.2.3"


@pytest.mark.e2e
def test_reports_and_the_run_record_name_the_targets_packages(tmp_path):
    site = tmp_path / "site"
    install(site, "fbirnn_wrong_runtime", "0.9.1", RUNTIME)
    reports = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", "run", "--candidate", "fbirnn_wrong_runtime:gru",
                           "--modes", "gru", "--properties", "agreement", "--max-examples", "40", "--seed", "0",
                           "--workers", "1", "--database", "none", "--reports", str(reports)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(site)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "target's packages: fbirnn-wrong-runtime 0.9.1" in done.stdout
    record = json.loads((reports / "run.json").read_text())
    assert record["environment"]["target_packages"] == {"fbirnn-wrong-runtime": "0.9.1"}
    folder = Path(record["findings"][0]["smallest"]["report"])
    folder = folder if folder.is_absolute() else reports / folder
    case = json.loads((folder / "case.json").read_text())
    assert case["environment"]["target_packages"] == {"fbirnn-wrong-runtime": "0.9.1"}
    assert case["environment"]["packages"]["torch"]
    assert "**Target's packages**: fbirnn-wrong-runtime 0.9.1" in (folder / "summary.md").read_text()

    alone = subprocess.run([sys.executable, "-m", "fuzz_birnn", "run", "--modes", "gru", "--properties", "agreement",
                            "--max-examples", "20", "--workers", "1", "--database", "none", "--reports",
                            str(tmp_path / "torch")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert json.loads((tmp_path / "torch" / "run.json").read_text())["environment"]["target_packages"] == {}
    assert "target's packages" not in alone.stdout
