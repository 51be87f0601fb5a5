"""Keeping a candidate's console output off the run's console, and with its case's report.

A worker sends its file descriptors 1 and 2 (C code and Python alike) to one file of its own,
``DIR/.output-<worker>.log``, emptied before each case; so after a case the file holds exactly
what that case printed, and a report can keep it (bounded by :data:`KEEP_BYTES`: its head and its
tail). Some exporters print whole graphs on every refusal; none of it reaches the console. Forked
children (see :mod:`fuzz_birnn.processes.forked`) inherit the file, so an isolated case is captured too,
and the parent reads a dead worker's file for its crash report.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

__all__ = ["KEEP_BYTES", "OutputCapture", "read_file"]

#: How much of one case's output a report keeps: the first 48 KiB and the last 16 KiB.
KEEP_BYTES = 64 * 1024
_TAIL = 16 * 1024


class OutputCapture:
    """Redirects this process's stdout and stderr to ``path`` until :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _flush()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        self._saved = (os.dup(1), os.dup(2))
        os.dup2(self._fd, 1)
        os.dup2(self._fd, 2)

    def reset(self) -> None:
        """Forget what was printed so far (call before each case)."""
        _flush()
        os.ftruncate(self._fd, 0)

    def read(self) -> str:
        """What was printed since the last :meth:`reset`, bounded."""
        _flush()
        return _read_bounded(self._fd)

    def close(self) -> None:
        _flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in (*self._saved, self._fd):
            os.close(fd)
        with contextlib.suppress(OSError):
            self.path.unlink()


def read_file(path: Path) -> str:
    """What a (dead) worker's capture file holds, bounded like :meth:`OutputCapture.read`."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        return _read_bounded(fd)
    finally:
        os.close(fd)


def _read_bounded(fd: int) -> str:
    """The file's text; past :data:`KEEP_BYTES`, its head and tail with a line saying how much
    was left out between them."""
    size = os.fstat(fd).st_size
    if size <= KEEP_BYTES:
        return os.pread(fd, size, 0).decode(errors="replace")
    head = os.pread(fd, KEEP_BYTES - _TAIL, 0).decode(errors="replace")
    tail = os.pread(fd, _TAIL, size - _TAIL).decode(errors="replace")
    return f"{head}\n[... {size - KEEP_BYTES} bytes left out ...]\n{tail}"


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
