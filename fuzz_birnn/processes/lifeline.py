"""A worker process that ends when the process that started it is gone, whatever killed it.

A run's parent can die without a chance to stop its workers: SIGKILL from a CI job's time limit,
the out-of-memory killer, a closed terminal. Its workers must not live on (holding cores, memory,
and writing into the reports folder) inside a candidate that may never return. Two mechanisms,
so that each covers what the other cannot:

* on Linux the kernel's parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) kills the
  worker the moment its parent dies, even while it is stuck in C code holding the GIL;
* everywhere, a daemon thread notices that the parent pid changed (the orphan was re-parented)
  and kills its own process; it needs only that the worker's main thread lets go of the GIL now
  and then, as Python code and sleeping or blocking C calls do.

The multiprocessing resource tracker that the parent started ends by itself once the last
process holding its pipe (the workers) is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time

__all__ = ["POLL_SECONDS", "die_with_parent", "set_parent_death_signal", "watch_parent"]

#: How often the portable watcher looks at the parent pid.
POLL_SECONDS = 0.25

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Make this process end (SIGKILL) as soon as ``parent_pid`` is no longer its parent."""
    set_parent_death_signal()
    watch_parent(parent_pid)


def set_parent_death_signal() -> None:
    """On Linux, have the kernel SIGKILL this process when its parent dies (elsewhere nothing)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def watch_parent(parent_pid: int) -> threading.Thread:
    """Start the portable watcher thread alone (:func:`die_with_parent` uses it too)."""
    if os.getppid() != parent_pid:  # the parent died before we were watching
        _kill_self()
    thread = threading.Thread(target=_watch, args=(parent_pid,), name="fuzz-birnn-lifeline", daemon=True)
    thread.start()
    return thread


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    _kill_self()


def _kill_self() -> None:
    # SIGKILL, not an exception: the main thread may be inside code that never returns to us.
    os.kill(os.getpid(), signal.SIGKILL)
