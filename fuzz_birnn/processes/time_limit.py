"""A time limit on one case, checked in this process: ``SIGALRM`` raises inside the case."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

__all__ = ["CaseTimeout", "time_limit"]


class CaseTimeout(BaseException):
    """Raised by SIGALRM inside a case that overran its time limit. A BaseException, so that no
    ``except Exception`` in the code under test (or in :func:`~fuzz_birnn.core.check.check`) swallows it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in this (main) thread if the block runs longer than ``seconds``."""
    def overran(signum: int, frame: Any) -> None:
        raise CaseTimeout

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
