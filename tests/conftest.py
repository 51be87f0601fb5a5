"""This project's own test set-up; reports, profiles and the header come from fuzz-birnn's pytest
plugin (:mod:`fuzz_birnn.pytest_plugin`), as they do in any project that installs fuzz-birnn.

The profile is ``fuzz-birnn-dev`` unless one is chosen (``--hypothesis-profile fuzz-birnn-ci`` or
``FUZZ_BIRNN_PROFILE=ci``); the README's test command uses ``ci``.
"""

from __future__ import annotations

import os

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
