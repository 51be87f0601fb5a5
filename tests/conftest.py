"""This project's own test set-up; reports, profiles and the header come from fuzz-birnn's pytest
plugin (:mod:`fuzz_birnn.pytest_plugin`), as they do in any project that installs fuzz-birnn.

The profile is ``fuzz-birnn-dev`` unless one is chosen (``--hypothesis-profile fuzz-birnn-ci`` or
``FUZZ_BIRNN_PROFILE=ci``); the README's test command uses ``ci``.
"""

from __future__ import annotations

import multiprocessing.process
import os
import subprocess

import pytest
import torch
from hypothesis import settings

# Cases are tiny: intra-op threads only fight the other xdist workers for the cores (measured:
# 12x slower with torch's default thread count on 2 cores and 2 workers).
torch.set_num_threads(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (torch.compile's)")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hypothesis_profile", None) and not os.environ.get("FUZZ_BIRNN_PROFILE"):
        settings.load_profile("fuzz-birnn-dev")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _processes_only_in_e2e_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pytest -m "not e2e"`` is the inner loop: a test that starts a process (a subprocess, a
    campaign's spawned workers) must say so with ``@pytest.mark.e2e``. Forked children (the
    isolation of one case) cost milliseconds and are allowed."""
    if request.node.get_closest_marker("e2e"):
        return

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"{request.node.nodeid} starts a process: mark it @pytest.mark.e2e", pytrace=False)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
