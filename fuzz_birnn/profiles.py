"""fuzz-birnn's Hypothesis profiles: ``fuzz-birnn-dev`` (50 examples a property), ``fuzz-birnn-ci``
(200, derandomised, so CI repeats itself) and ``fuzz-birnn-nightly`` (5,000), with no deadline (a
case's cost varies with its size far more than a deadline allows).

Registered on first use (:func:`register`): by the pytest plugin when a session asks for one, and
by :mod:`fuzz_birnn.strategies` on import, so ``settings.load_profile("fuzz-birnn-ci")`` works
wherever the strategies are used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROFILES", "register"]

#: The profiles' settings by short name (``FUZZ_BIRNN_PROFILE=ci``); registered as ``fuzz-birnn-NAME``.
PROFILES: dict[str, dict[str, Any]] = {
    "dev": {"max_examples": 50},
    "ci": {"max_examples": 200, "derandomize": True, "print_blob": True},
    "nightly": {"max_examples": 5000, "print_blob": True},
}


def register() -> None:
    """Register the profiles with Hypothesis (imports it; registering twice is harmless)."""
    from hypothesis import HealthCheck, settings

    for name, values in PROFILES.items():
        settings.register_profile(f"fuzz-birnn-{name}", deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], **values)
