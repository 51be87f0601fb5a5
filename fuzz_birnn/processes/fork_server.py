"""One forked child that checks case after case until it dies: isolation at the pace of a worker.

:func:`~fuzz_birnn.processes.forked.run_forked` forks a fresh child for every case. That is what
a crash's reduction needs (each attempt from the same clean state), but a search that goes on
after a crash pays for it on every later case: not the fork itself, but everything the child
warms up and throws away (oneDNN's compiled kernels, torch's caches, pages copied on write).
Measured on a GRU search after a crash, a fresh child per case cost 3.2x the in-process check.

A :class:`ForkServer` is the fork mode of AFL and libFuzzer: the worker forks one child, sends
it each case's argument down a pipe, and reads back how the case ended, as
:func:`~fuzz_birnn.processes.forked.run_forked` reports it (:class:`~fuzz_birnn.processes.forked.Ending`).
The child stays warm from case to case. When a case crashes it (its pipe closes; its exit status
says how) or hangs (the worker kills it at the case's limit), that case's ending says so and the
next case forks a new child: a crash still costs one child, never the worker. What one case leaves
behind in the child (a thread, a corrupted heap) can bring it down during a later case, which is
then the one reported, as in a worker; the reduction replays a crash in fresh children, one case
each, and its report says so when the case does not crash there on its own.

Messages are pickles with an 8-byte length in front. The child flushes Python's stdout and
stderr after each case, so what a case printed is in the capture file before its ending is read.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import time
from collections.abc import Callable
from typing import Any

from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.processes.forked import Ending, exit_reason, flush_streams, one_thread
from fuzz_birnn.processes.lifeline import set_parent_death_signal

__all__ = ["ForkServer"]

_HEADER = struct.Struct("<Q")
_PASSED, _FAILED, _RAISED = "passed", "failed", "raised"


class ForkServer:
    """Runs ``function(argument)`` in a long-lived forked child, one argument at a time.

    Use as a context manager (or call :meth:`close`): the child is stopped at the end.
    """

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function
        self.pid: int | None = None
        self._requests = self._replies = -1
        #: children forked so far (one, plus one per case that crashed or hung)
        self.started = 0
        #: CPU seconds of the live child so far (a reaped child's are in ``os.times()``'s children's)
        self.cpu_seconds = 0.0

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, argument: Any, limit: float) -> Ending:
        """Run one case in the child for at most ``limit`` seconds (forking one if none is alive)."""
        started = time.monotonic()
        if self.pid is None:
            self._fork()
        try:
            _write_message(self._requests, (argument,))  # boxed: a None argument is not the pipe's end
        except OSError:  # it died between cases (a thread of the last one, say): that case is over
            return self._ended(started, limit, hung=False)
        reply, hung = _read_message(self._replies, started + limit)
        if reply is None:
            return self._ended(started, limit, hung=hung)
        kind, payload, self.cpu_seconds = reply
        seconds = time.monotonic() - started
        if kind == _PASSED:
            return Ending("passed", value=payload, seconds=seconds)
        if kind == _FAILED:
            return Ending("failed", seconds=seconds)
        return Ending("raised", payload, seconds=seconds)

    def close(self) -> None:
        """Stop the child (killed: it may be busy with a case that never returns) and reap it."""
        if self.pid is None:
            return
        os.close(self._requests)
        os.close(self._replies)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.pid, self.cpu_seconds = None, 0.0

    def _ended(self, started: float, limit: float, *, hung: bool) -> Ending:
        """The child did not answer: it hung (kill it) or died; reap it and say how."""
        assert self.pid is not None
        pid = self.pid
        if hung:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.close(self._requests)
        os.close(self._replies)
        self.pid, self.cpu_seconds = None, 0.0
        _, status = os.waitpid(pid, 0)
        seconds = time.monotonic() - started
        if hung:
            return Ending("hung", f"ran past the {limit:g}s limit", seconds=seconds)
        return Ending("crashed", exit_reason(os.waitstatus_to_exitcode(status)), seconds=seconds)

    def _fork(self) -> None:
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never return into the worker's stack, never run its exit handlers
            try:
                os.close(from_parent)
                os.close(to_parent)
                set_parent_death_signal()
                one_thread()
                if os.getppid() == parent:
                    _serve(self.function, to_child, from_child)
            finally:
                os._exit(0)
        os.close(to_child)
        os.close(from_child)
        self.pid, self._requests, self._replies = pid, from_parent, to_parent
        self.started += 1


def _serve(function: Callable[[Any], Any], requests: int, replies: int) -> None:
    """The child's loop: one reply per request, until the worker closes the pipe."""
    while True:
        request, _ = _read_message(requests, None)
        if request is None:
            return
        try:
            reply: tuple[str, Any] = (_PASSED, function(request[0]))
            pickle.dumps(reply)  # an unpicklable value is the case's error, not the server's death
        except CheckFailure:
            reply = (_FAILED, None)
        except BaseException as error:
            reply = (_RAISED, f"{type(error).__name__}: {error}".splitlines()[0])
        flush_streams()
        _write_message(replies, (*reply, sum(os.times()[:2])))  # and the CPU time it has used


def _write_message(fd: int, value: Any) -> None:
    data = pickle.dumps(value)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_message(fd: int, deadline: float | None) -> tuple[Any, bool]:
    """The next message, or ``(None, hung)``: ``hung`` past ``deadline``, else the pipe closed."""
    header = _read_exactly(fd, _HEADER.size, deadline)
    if not isinstance(header, bytes):
        return None, header == "hung"
    body = _read_exactly(fd, _HEADER.unpack(header)[0], deadline)
    if not isinstance(body, bytes):
        return None, body == "hung"
    return pickle.loads(body), False


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes | str:
    """``size`` bytes, or ``"closed"`` / ``"hung"``."""
    chunks, got = [], 0
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return "hung"
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
        try:
            chunk = os.read(fd, min(size - got, 1 << 20))
        except OSError:
            return "closed"
        if not chunk:
            return "closed"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
