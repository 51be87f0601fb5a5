"""fuzz-birnn's pytest plugin, loaded by pytest in any project that installs fuzz-birnn (``pytest11``).

What a project's tests get without a line of set-up:

* **Reports.** A test that fails with a :class:`~fuzz_birnn.CheckFailure` (``check``, ``check_fused``,
  ``check_relation``, ...; Hypothesis' shrunk example included) writes a self-contained report, the
  same as ``fuzz-birnn run`` writes, to ``--fuzz-birnn-reports DIR`` (or ``FUZZ_BIRNN_REPORTS``;
  default ``reports`` under pytest's rootdir). The test's output says where it went.
* **Profiles.** ``fuzz-birnn-dev`` (50 examples a property), ``fuzz-birnn-ci`` (200, derandomised, so
  CI repeats itself) and ``fuzz-birnn-nightly`` (5,000), with no deadline (a case's cost varies
  with its size far more than a deadline allows), chosen with Hypothesis' own
  ``--hypothesis-profile``, or ``FUZZ_BIRNN_PROFILE=dev|ci|nightly``. Nothing is loaded unless asked:
  the plugin never changes the settings of a project's other tests.
* **The header** line: torch's version, the devices and the oneDNN state, and the profile, as far
  as they are loaded when pytest starts (the header never loads torch or Hypothesis itself).
* **Nothing heavy on import**: pytest loads this plugin in every project that has fuzz-birnn
  installed, so importing it imports neither torch nor Hypothesis; they load when a test uses them.
* **The** ``fuzz_birnn_candidate`` **fixture**: the candidate named by ``--fuzz-birnn-candidate``
  (``MODULE:ATTR``, a built-in such as ``decomposed``, or a target such as ``torch-export``), so one
  test file checks whichever implementation the command line names. A test that asks for it is
  skipped, saying how to name one, when none is given.

Turn the plugin off with ``-p no:fuzz_birnn``.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from fuzz_birnn.profiles import PROFILES, register

__all__ = ["PROFILES", "profile_name"]

_CANDIDATE = pytest.StashKey[Callable[..., Any]]()


def profile_name(short: str) -> str:
    """``fuzz-birnn-ci`` for ``ci``; a usage error naming the choices for anything else."""
    if short not in PROFILES:
        raise pytest.UsageError(f"FUZZ_BIRNN_PROFILE={short!r} must be one of {', '.join(PROFILES)}")
    return f"fuzz-birnn-{short}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fuzz-birnn", "fuzz-birnn (property-based testing of recurrent layers)")
    group.addoption("--fuzz-birnn-reports", metavar="DIR", default=None,
                    help="write a report for each failing fuzz-birnn check here "
                         "(default: $FUZZ_BIRNN_REPORTS, else reports/ under the rootdir)")
    group.addoption("--fuzz-birnn-candidate", metavar="MODULE:ATTR", default=None,
                    help="the candidate the fuzz_birnn_candidate fixture gives: MODULE:ATTR, "
                         "or a built-in or target name (see fuzz-birnn run --help)")


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' plugin loads --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    # --hypothesis-profile wins: Hypothesis' own plugin loads it. The environment variable is the
    # fallback, so "FUZZ_BIRNN_PROFILE=ci pytest" keeps working. Hypothesis itself is imported only
    # when a session asks for one of these profiles, or has imported it already (a conftest that
    # loads one by name in its own pytest_configure, which runs after this one).
    short = os.environ.get("FUZZ_BIRNN_PROFILE")
    chosen = config.getoption("hypothesis_profile", None)
    if short or str(chosen).startswith("fuzz-birnn-") or "hypothesis" in sys.modules:
        register()
    if short and not chosen:
        from hypothesis import settings

        settings.load_profile(profile_name(short))
    spec = config.getoption("fuzz_birnn_candidate")
    if spec:  # imported now, so that a wrong name stops the session with one line, not every test
        from fuzz_birnn.targets.naming import CandidateError, load_candidate

        try:
            config.stash[_CANDIDATE] = load_candidate(spec)
        except CandidateError as error:
            raise pytest.UsageError(f"--fuzz-birnn-candidate: {error}") from None


def pytest_report_header(config: pytest.Config) -> list[str]:
    """torch and its devices, and the Hypothesis profile, as far as they are loaded: the header
    never imports torch or Hypothesis for a session that does not use them."""
    if "torch" in sys.modules:
        from fuzz_birnn.core.devices import environment_summary

        line = f"fuzz-birnn: {environment_summary()}"
    else:
        line = f"fuzz-birnn: torch {importlib.metadata.version('torch')} (not loaded yet)"
    if "hypothesis" in sys.modules:
        line += f"; Hypothesis profile: {current_profile()}"
    return [line]


def current_profile() -> str:
    """The name of the Hypothesis profile in force (``get_current_profile_name`` where this
    Hypothesis has it, else the attribute it reads)."""
    from hypothesis import settings

    named = getattr(settings, "get_current_profile_name", None)
    return str(named() if named else settings._current_profile)


def reports_directory(config: pytest.Config) -> Path:
    """Where failing checks are written: the option, the environment, or ``reports/`` under rootdir."""
    chosen = config.getoption("fuzz_birnn_reports") or os.environ.get("FUZZ_BIRNN_REPORTS")
    return Path(chosen) if chosen else config.rootpath / "reports"


@pytest.hookimpl(hookwrapper=True)  # the old-style wrapper: every pytest a user may have knows it
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A test that fails with a CheckFailure writes its shrunk case as a report."""
    outcome = yield
    report = outcome.get_result()
    if call.when == "call" and call.excinfo is not None:
        from fuzz_birnn.output.reports import write_failures

        for line in write_failures(call.excinfo.value, reports_directory(item.config), origin=f"pytest {item.nodeid}"):
            report.sections.append(("fuzz-birnn report", line))


@pytest.fixture
def fuzz_birnn_candidate(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """The candidate named by ``--fuzz-birnn-candidate``; the test is skipped when none is named."""
    if _CANDIDATE not in request.config.stash:
        pytest.skip("no candidate named: pass --fuzz-birnn-candidate MODULE:ATTR")
    return request.config.stash[_CANDIDATE]
