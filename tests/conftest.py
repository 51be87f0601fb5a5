"""Hypothesis profiles and the pytest header.

Profiles, chosen by ``FUZZ_BIRNN_PROFILE`` (default ``dev``):

* ``dev``: quick local runs, 50 examples a property, no deadline.
* ``ci``: 200 examples a property, derandomised so CI is repeatable.
* ``nightly``: 5,000 examples a property, to look hard for rare cases.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, Phase, settings

from fuzz_birnn.devices import environment_summary

# Cases are tiny: intra-op threads only fight the other xdist workers for the cores (measured:
# 12x slower with torch's default thread count on 2 cores and 2 workers).
torch.set_num_threads(1)

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=50, **_COMMON)
settings.register_profile("ci", max_examples=200, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("nightly", max_examples=5000, print_blob=True, **_COMMON)
PROFILE = os.environ.get("FUZZ_BIRNN_PROFILE", "dev")
if PROFILE not in ("dev", "ci", "nightly"):
    raise pytest.UsageError(f"FUZZ_BIRNN_PROFILE={PROFILE!r} must be dev, ci or nightly")
settings.load_profile(PROFILE)

#: Settings for tests that search for a planted bug: enough examples to find it on any profile,
#: no example database (each run must find the bug on its own), and the full shrink.
SEARCH = settings(max_examples=1000, database=None, derandomize=True, deadline=None,
                  phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"fuzz-birnn: {environment_summary()}; Hypothesis profile: {PROFILE}"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A property that fails with a CheckFailure writes its shrunk case to the reports folder
    (``FUZZ_BIRNN_REPORTS``, default ``./reports``), the same way ``fuzz-birnn run`` does."""
    report = yield
    if call.when == "call" and call.excinfo is not None:
        from fuzz_birnn.reports import write_failures

        for line in write_failures(call.excinfo.value, Path(os.environ.get("FUZZ_BIRNN_REPORTS", "reports")),
                                   origin=f"pytest {item.nodeid}"):
            report.sections.append(("fuzz-birnn report", line))
    return report


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (torch.compile's)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
