"""What the tests that run one slice of a search in this process share."""

from __future__ import annotations


class NoCapture:
    """An output capture that keeps nothing: a slice run in the test's own process prints to pytest."""

    def reset(self) -> None:
        pass

    def read(self) -> str:
        return ""
