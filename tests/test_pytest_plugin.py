"""The pytest plugin, seen from a separate project: a temporary directory holding one test file and
nothing of this repository (no conftest, no ``PYTHONPATH``), run with the installed fuzz-birnn."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz_birnn.output.reports import load_report

pytestmark = pytest.mark.e2e  # every test here starts processes

ROOT = Path(__file__).resolve().parents[1]

#: The seed thread's stack (the backward output is not re-reversed before the next layer), as a
#: user would write it in their own project.
SEED_STACK = (ROOT / "examples" / "seed_decomposition.py").read_text()

USER_TESTS = SEED_STACK + '''

from hypothesis import given
from fuzz_birnn import check
from fuzz_birnn.strategies import cases


@given(cases(modes=["RNN_TANH"], forms=["padded"], dtypes=["float64"]))
def test_my_stack(case):
    check(seed_decomposition, case)


def test_the_candidate_from_the_command_line(fuzz_birnn_candidate):
    from fuzz_birnn import Case, Config, Inputs
    check(fuzz_birnn_candidate, Case(Config(num_layers=2), Inputs(seq_len=3, batch_size=2)))


def test_an_unnamed_candidate():
    from fuzz_birnn import Case, Config, Inputs
    check(lambda m, x, hx=None: seed_decomposition(m, x, hx), Case(Config(num_layers=2), Inputs(seq_len=2)))
'''


def pytest_environment() -> dict[str, str]:
    """This environment minus anything pointing at this repository or its profile."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "FUZZ_BIRNN_PROFILE", "FUZZ_BIRNN_REPORTS", "PYTEST_ADDOPTS")}


def pytest_in(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` in ``project``, with this environment minus anything pointing here."""
    environment = pytest_environment()
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", *args],
                          cwd=project, env=environment, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "user_project"
    folder.mkdir()
    (folder / "test_user_stack.py").write_text(USER_TESTS)
    return folder


def test_a_separate_project_gets_reports_profiles_and_the_header(project: Path) -> None:
    done = pytest_in(project, "--hypothesis-profile", "fuzz-birnn-ci", "-rs")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "fuzz-birnn: torch " in out and "Hypothesis profile: fuzz-birnn-ci" in out
    assert "2 failed, 1 skipped" in out  # the seed stack, the lambda; the fixture without a candidate
    # the shrunk failing example became a report under the project's rootdir, replayable from there
    [report] = [p.parent for p in (project / "reports").glob("*/case.json")]
    assert f"written to {report}" in out
    stored = load_report(report)
    assert stored.case.config.num_layers == 2 and stored.prop == "agreement"
    assert stored.candidate == "test_user_stack:seed_decomposition"
    assert stored.diagnosis is not None and stored.diagnosis["names"] == ["seed-missing-re-reversal"]
    replay = subprocess.run([sys.executable, str(report / "repro.py")], cwd=project, capture_output=True, text=True)
    assert replay.returncode == 1 and "STILL FAILS" in replay.stdout, replay.stdout + replay.stderr
    # the fixture without a candidate named: skipped, saying how to name one
    assert "no candidate named: pass --fuzz-birnn-candidate MODULE:ATTR" in out
    # the traceback ends at the user's call: the check helpers hide their own frames
    assert re.search(r"^test_user_stack.py:\d+: CheckFailure$", out, re.MULTILINE)
    assert "def _judge" not in out and "def check(" not in out
    # a lambda cannot be replayed: the test output says so instead of writing a broken report
    assert "not written: candidate" in out and "INTERNALERROR" not in out


def test_the_options_choose_the_reports_folder_the_candidate_and_the_profile(project: Path) -> None:
    reports = project.parent / "elsewhere"
    done = pytest_in(project, "--fuzz-birnn-reports", str(reports), "--fuzz-birnn-candidate", "decomposed",
                     "-k", "command_line or my_stack", FUZZ_BIRNN_PROFILE="dev")
    out = done.stdout + done.stderr
    assert "Hypothesis profile: fuzz-birnn-dev" in out
    assert "1 failed, 1 passed" in out, out  # the built-in decomposition is right; the seed's stack is not
    assert len(list(reports.glob("*/case.json"))) == 1 and not (project / "reports").exists()

    done = pytest_in(project, "--fuzz-birnn-candidate", "examples.seed_decomposition:seed_decomposition",
                     "-k", "command_line", f"--rootdir={project}")
    assert done.returncode == 4 and "examples.seed_decomposition" in done.stderr, done.stdout + done.stderr


def test_nothing_is_loaded_unless_asked_and_a_bad_profile_is_one_line(project: Path) -> None:
    # a project's other tests keep Hypothesis' own profile: "default", or "ci" where Hypothesis
    # sees a CI environment (it loads that one itself, whatever plugins are installed)
    own = subprocess.run([sys.executable, "-c", "from hypothesis import settings; "
                          "print(settings.get_current_profile_name())"],
                         env=pytest_environment(), capture_output=True, text=True).stdout.strip()
    assert own in ("default", "ci")
    (project / "test_profile.py").write_text("from hypothesis import settings\n\n"
                                             "def test_profile():\n"
                                             "    print('profile in force:', settings.get_current_profile_name())\n")
    done = pytest_in(project, "-k", "command_line or profile", "-s")
    assert f"profile in force: {own}\n" in done.stdout, done.stdout
    header = next(line for line in done.stdout.splitlines() if line.startswith("fuzz-birnn: "))
    assert "fuzz-birnn-" not in header, header
    done = pytest_in(project, "-k", "command_line", FUZZ_BIRNN_PROFILE="weekly")
    assert done.returncode == 4
    assert "FUZZ_BIRNN_PROFILE='weekly' must be one of dev, ci, nightly" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_plugin_imports_neither_torch_nor_hypothesis() -> None:
    """pytest loads the plugin in every project that has fuzz-birnn installed: it must cost nothing
    there until a test uses fuzz-birnn (torch alone takes seconds to import)."""
    probe = ("import sys, fuzz_birnn.pytest_plugin; "
             "print(sorted(m for m in ('torch', 'hypothesis', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], env=pytest_environment(), capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_profiles_load_by_name_wherever_the_strategies_are_imported() -> None:
    probe = ("import fuzz_birnn.strategies; from hypothesis import settings; "
             "settings.load_profile('fuzz-birnn-ci'); print(settings.default.max_examples)")
    done = subprocess.run([sys.executable, "-c", probe], env=pytest_environment(), capture_output=True, text=True)
    assert done.stdout.strip() == "200", done.stdout + done.stderr


def test_the_strategies_install_under_fuzz_birnn_not_as_a_top_level_package(tmp_path: Path) -> None:
    probe = ("import importlib.util, fuzz_birnn.strategies as s; "
             "print(importlib.util.find_spec('strategies') is None, s.cases.__module__)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.stdout.split() == ["True", "fuzz_birnn.strategies"], done.stderr
