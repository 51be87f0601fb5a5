"""The rooms of the package: the files that travel with every report import torch and the standard
library only, and the module names that moved (0.1's flat layout) still import, so old reports and
old imports keep working. Which room may import which is import-linter's contract in
``pyproject.toml``, checked by ``.ci/run``."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fuzz_birnn
from fuzz_birnn._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
PORTABLE = ROOT / "fuzz_birnn" / "portable"
OLD_REPORTS = Path(__file__).with_name("data") / "old_reports"
#: an old report of the seed thread's stack, and one of the built-in decomposition (its repro.py
#: imports it as fuzz_birnn.decomposition:decomposed), both written by fuzz-birnn 0.1.0
SEED_REPORT, BUILTIN_REPORT = "1cceca90a385", "d112cfcaa7d6"


def foreign_imports(source: str, allowed: set[str]) -> list[str]:
    """Top-level packages ``source`` imports beyond the standard library, torch and ``allowed``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        found += [n for n in names if n.split(".")[0] not in {*sys.stdlib_module_names, "torch", *allowed}]
    return found


def test_the_files_copied_beside_repro_py_import_torch_and_the_standard_library_only():
    siblings = {path.stem for path in PORTABLE.glob("*.py")}
    for path in PORTABLE.glob("*.py"):
        foreign = foreign_imports(path.read_text(), siblings)
        if path.name == "repro.py":  # it runs fuzz-birnn's own replay, where installed, for other properties
            foreign = [name for name in foreign if name != "fuzz_birnn.cli"]
        assert not foreign, f"{path.name} imports {foreign}: it must run on a bare torch install"


def test_the_check_catches_a_foreign_import():
    assert foreign_imports("import numpy\nfrom hypothesis import given\nimport torch.nn\nimport json", set()) == \
        ["numpy", "hypothesis"]


@pytest.mark.parametrize(("old", "new"), MOVED.items())
def test_an_old_module_name_imports_the_module_at_its_new_place(old: str, new: str):
    assert importlib.import_module(f"fuzz_birnn.{old}") is importlib.import_module(f"fuzz_birnn.{new}")


def test_an_old_module_name_never_shadows_a_public_name():
    importlib.import_module("fuzz_birnn.check")
    importlib.import_module("fuzz_birnn.reference")
    from fuzz_birnn import check, reference

    assert callable(check) and check.__module__ == "fuzz_birnn.core.check"
    assert fuzz_birnn.check is check and fuzz_birnn.reference is reference
    assert type(reference).__name__ == "CellReference"


def test_the_public_names_load_on_first_use_and_are_all_there():
    for name in fuzz_birnn.__all__:
        assert getattr(fuzz_birnn, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        fuzz_birnn.nothing_here  # noqa: B018


@pytest.mark.e2e
@pytest.mark.parametrize(("report", "status", "said"), [(SEED_REPORT, 1, "STILL FAILS"), (BUILTIN_REPORT, 0, "FIXED")])
def test_a_report_written_before_the_rooms_replays_and_its_own_repro_py_runs(tmp_path, report, status, said):
    folder = tmp_path / report
    shutil.copytree(OLD_REPORTS / report, folder)
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", "replay", str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == status and said in done.stdout, done.stdout + done.stderr
    done = subprocess.run([sys.executable, str(folder / "repro.py")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == status, done.stdout + done.stderr
