"""Running one case in a forked child, so that a crash or a hang costs the child, not the worker.

The worker has paid for importing torch and the candidate once; each child starts from that
state, runs one case, and reports through its exit status (and a pipe for a small return value).
The parent waits at most ``limit`` seconds, then kills it; the time limit is enforced from
outside, so no ``except`` or destructor inside the candidate can swallow it.

Crash and hang reduction (:mod:`fuzz_birnn.campaign.reducer`) and the diagnosis' confirmations run
every attempt this way, each from the same clean state. A search that goes on after a crash uses
:class:`~fuzz_birnn.processes.fork_server.ForkServer` instead: one warm child for case after case.
Needs ``os.fork`` (Linux, macOS): elsewhere :func:`can_fork` is false and callers fall back to a
fresh process per case.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.processes.lifeline import set_parent_death_signal

__all__ = ["Ending", "can_fork", "exit_reason", "flush_streams", "forbid_forking", "one_thread", "run_forked",
           "value_of", "why_not_forked"]

_PASSED, _FAILED, _RAISED = 0, 1, 2


@dataclass(frozen=True)
class Ending:
    """How a forked case ended: ``passed`` (``value`` is what it returned), ``failed`` (a
    :class:`~fuzz_birnn.core.outcomes.CheckFailure`), ``raised`` (anything else; ``detail`` names it),
    ``crashed`` (``detail``: ``killed by SIGSEGV``, ``exit status 3``) or ``hung``."""

    kind: str
    detail: str = ""
    value: Any = None
    seconds: float = 0.0


#: Why this process must not fork a child that runs the candidate (``None``: it may).
_NO_FORK: str | None = None


def can_fork() -> bool:
    """Whether a case may run in a forked child here: ``os.fork`` exists, and the candidate loaded
    in this process survives a fork (:func:`forbid_forking`)."""
    return hasattr(os, "fork") and _NO_FORK is None


def forbid_forking(reason: str) -> None:
    """From now on this process runs its cases in-process: its candidate said it does not survive
    a fork (``fork_safe = False``: a runtime whose thread pools deadlock in a forked child, as
    OpenVINO's do once used)."""
    global _NO_FORK
    _NO_FORK = reason


def value_of(function: Callable[[], Any], limit: float) -> Any:
    """``function()``'s value, run in a forked child for at most ``limit`` seconds where this
    process may fork (a crash or a hang there costs the child), else in-process; ``None`` where
    it did not return one."""
    if can_fork():
        ended = run_forked(function, limit)
        return ended.value if ended.kind == "passed" else None
    try:
        return function()
    except Exception:
        return None


def why_not_forked() -> str:
    """What stops forking here, in words."""
    return _NO_FORK or "needs os.fork"


def one_thread() -> None:
    """In a forked child: run torch's CPU work on this one thread. The parent's OpenMP threads were
    not copied by the fork, and a child that asks for them waits for ever (a process that has run
    torch on more than one thread, as a user's does by default, would see every case hang)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def run_forked(function: Callable[[], Any], limit: float) -> Ending:
    """Run ``function()`` in a forked child for at most ``limit`` seconds."""

    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never return into the parent's stack, never run its exit handlers
        code = _RAISED
        try:
            os.close(read_end)
            _die_with(os.getppid())
            one_thread()
            try:
                payload, code = pickle.dumps(function()), _PASSED
            except CheckFailure:
                payload, code = b"", _FAILED
            except BaseException as error:
                payload, code = pickle.dumps(f"{type(error).__name__}: {error}".splitlines()[0]), _RAISED
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view):]
            flush_streams()  # os._exit flushes nothing: what the case printed must reach the capture file
        finally:
            os._exit(code)
    os.close(write_end)
    data, hung = _read_until_exit(read_end, started + limit)
    if hung:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - started
    if hung:
        return Ending("hung", f"ran past the {limit:g}s limit", seconds=seconds)
    code = os.waitstatus_to_exitcode(status)
    if code == _PASSED:
        return Ending("passed", value=pickle.loads(data) if data else None, seconds=seconds)
    if code == _FAILED:
        return Ending("failed", seconds=seconds)
    if code == _RAISED and data:
        return Ending("raised", pickle.loads(data), seconds=seconds)
    return Ending("crashed", exit_reason(code), seconds=seconds)


def exit_reason(exitcode: int | None) -> str:
    """``killed by SIGSEGV`` for a negative exit code (as multiprocessing and subprocess give it)."""
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def _read_until_exit(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything the child writes, until it closes the pipe (exits); ``hung`` past ``deadline``."""
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), True
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return b"".join(chunks), False
                chunks.append(chunk)
    finally:
        os.close(fd)


def flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _die_with(parent: int) -> None:
    """A child outlives neither its worker nor, through it, the run (Linux's parent-death signal)."""

    set_parent_death_signal()
    if os.getppid() != parent:
        os._exit(_RAISED)
