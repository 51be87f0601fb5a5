"""The write-ahead log of the case a worker is on (the case *in flight*), read back by the parent if
the worker dies.

Each case is one JSON line appended to ``DIR/.inflight-<worker>.json`` before the case runs;
the case in flight is the last *complete* line (a worker killed mid-write leaves at most a
partial last line, which is ignored). Appending costs one unbuffered ``write``, where replacing
a file atomically for every case (temporary file, then rename) cost more than checking some
cases. The file is emptied once it passes :data:`MAX_BYTES`, and removed when its worker is done
with it; its name starts with a dot, so nothing that reads reports ever takes it for one.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["MAX_BYTES", "WriteAhead", "last_in_flight"]

#: Past this size the log starts over (only its last line matters).
MAX_BYTES = 1 << 20


class WriteAhead:
    """Appends one line per case to ``path``; use as a context manager, which removes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 (closed in __exit__)

    def write(self, in_flight: dict[str, Any]) -> None:
        """Append the case about to run (``candidate``, ``property``, ``case``, ``details``)."""
        if self._file.tell() > MAX_BYTES:
            self._file.seek(0)
            self._file.truncate()
        self._file.write(json.dumps(in_flight).encode() + b"\n")

    def __enter__(self) -> WriteAhead:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def last_in_flight(path: Path) -> dict[str, Any] | None:
    """The case in flight: the last complete line in ``path``, or ``None`` if there is none (or no file)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    complete = data[:data.rfind(b"\n") + 1]
    if not complete:
        return None
    with contextlib.suppress(ValueError):
        in_flight = json.loads(complete.splitlines()[-1])
        return in_flight if isinstance(in_flight, dict) else None
    return None
