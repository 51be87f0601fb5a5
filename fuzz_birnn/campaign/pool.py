"""Worker processes on this machine: the slots a campaign hands its jobs to.

A worker is a spawned process (a fresh interpreter, started with the caps of its instruction-set
level where it has one: :mod:`fuzz_birnn.core.isa`) that runs one job at a time and sends its
events (:mod:`fuzz_birnn.campaign.events`) back on one queue shared by all. The pool watches each
busy worker: one that died, whose case ran past its ``--timeout`` (its write-ahead file has not
changed for that long, plus :data:`KILL_GRACE`), or that is still in a case well after the run's
time budget ended, is killed and becomes a :class:`~fuzz_birnn.campaign.events.Died` event with
the case it had written ahead and what that case printed; a fresh worker takes its place.

The campaign's own process runs one such pool; so does each worker of a Ray cluster
(:mod:`fuzz_birnn.campaign.cluster`), with one process, so that a crash on a node is caught
and reported the same way as on one machine.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queue_module
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz_birnn.campaign.events import Died, Event, ends_job
from fuzz_birnn.campaign.scheduler import Reduce, SearchSpec, Slice
from fuzz_birnn.campaign.writeahead import last_in_flight
from fuzz_birnn.core.devices import available_devices, cpu_capability, hostname
from fuzz_birnn.core.isa import caps, levels_here
from fuzz_birnn.output.run_record import Node
from fuzz_birnn.processes.capture import read_file
from fuzz_birnn.processes.forked import exit_reason

__all__ = ["KILL_GRACE", "LocalPool", "WorkerMain", "in_flight_file", "output_file"]

#: Seconds past ``--timeout`` before the pool kills a worker whose case has not returned.
KILL_GRACE = 5.0

#: ``main(worker_id, inbox, outbox, parent_pid)``: a worker's loop (:func:`fuzz_birnn.campaign.engine.worker_main`)
WorkerMain = Callable[[int, Any, Any, int], None]


def in_flight_file(reports: str | Path, worker_id: int) -> Path:
    """Where worker ``worker_id`` writes each case before running it."""
    return Path(reports) / f".inflight-{worker_id}.json"


def output_file(reports: str | Path, worker_id: int) -> Path:
    """Where worker ``worker_id``'s case prints go."""
    return Path(reports) / f".output-{worker_id}.log"


@dataclass
class _Worker:
    process: Any
    inbox: Any
    isa: str | None = None  # the instruction-set level it was started at (None: the machine's own)
    job: Slice | Reduce | None = None


class LocalPool:
    """``size`` worker processes on this machine, numbered ``0..size-1``."""

    def __init__(self, size: int, main: WorkerMain) -> None:
        self.size = size
        self._main = main
        self._context = multiprocessing.get_context("spawn")
        self._outbox: Any = self._context.Queue()
        self._workers: dict[int, _Worker] = {}
        self._reports: set[str] = set()

    def start(self) -> None:
        for worker_id in range(self.size):
            self._start(worker_id)

    def idle(self) -> list[int]:
        return [worker_id for worker_id, worker in self._workers.items() if worker.job is None]

    def fits(self, worker_id: int, spec: SearchSpec) -> bool:
        """A worker runs the searches of the instruction-set level it was started at."""
        return self._workers[worker_id].isa == spec.isa

    #: a worker here can be started again at another level (:meth:`switch`)
    switches = True

    def level(self, worker_id: int) -> str | None:
        return self._workers[worker_id].isa

    def workers(self) -> list[int]:
        return list(self._workers)

    def reaches(self, worker_id: int, isa: str | None) -> bool:
        return isa is None or isa in levels_here()

    def switch(self, worker_id: int, isa: str | None) -> None:
        """Start idle worker ``worker_id`` again, at level ``isa`` (the caps are read once, at start)."""
        worker = self._workers[worker_id]
        assert worker.job is None, "only an idle worker is started again"
        worker.inbox.put(None)
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        self._start(worker_id, isa)

    def cannot_run(self, spec: SearchSpec) -> str | None:
        return None

    def nodes(self) -> list[Node]:
        return [Node(hostname(), hostname(), list(available_devices()), cpu_capability(),
                     {"CPU": float(os.cpu_count() or 1)}, self.size)]

    def node_of(self, worker_id: int) -> str:
        return hostname()

    def give(self, worker_id: int, job: Slice | Reduce) -> None:
        worker = self._workers[worker_id]
        worker.job = job
        self._reports.add(job.search.reports)
        worker.inbox.put(job)

    def events(self, timeout: float) -> list[Event]:
        """What the workers sent within ``timeout`` seconds, then the jobs whose workers died."""
        events = []
        with contextlib.suppress(queue_module.Empty):
            events.append(self._outbox.get(timeout=timeout))
            while True:
                events.append(self._outbox.get_nowait())
        for event in events:
            self._ended(event)
        return events + self._casualties()

    def stop(self) -> None:
        for worker in self._workers.values():
            if worker.process.is_alive():
                worker.process.terminate()
        for worker_id, worker in self._workers.items():
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            for reports in self._reports:
                for path in (in_flight_file(reports, worker_id), output_file(reports, worker_id)):
                    with contextlib.suppress(OSError):
                        path.unlink()

    def _start(self, worker_id: int, isa: str | None = None) -> None:
        inbox = self._context.Queue()
        process = self._context.Process(target=self._main, args=(worker_id, inbox, self._outbox, os.getpid()),
                                        daemon=True)
        with _environment(caps(isa) if isa else {}):  # a spawned process starts with this environment
            process.start()
        self._workers[worker_id] = _Worker(process, inbox, isa)

    def _ended(self, event: Event) -> None:
        if ends_job(event):
            self._workers[event.worker_id].job = None

    def _casualties(self) -> list[Event]:
        """Kill the workers that died, hung or outlived the budget; their jobs' last events."""
        events: list[Event] = []
        for worker_id, worker in list(self._workers.items()):
            job = worker.job
            if job is None:
                continue
            log = in_flight_file(job.search.reports, worker_id)
            hung = _case_overran(log, job.search.timeout + KILL_GRACE)
            late = job.deadline is not None and \
                time.time() > job.deadline + min(job.search.timeout, KILL_GRACE) + KILL_GRACE
            if worker.process.is_alive() and not hung and not late:
                continue
            worker.process.kill()
            worker.process.join()
            drained = self._drain()
            events += drained
            if worker.job is None:  # it finished after all
                continue
            worker.job = None
            how = "stopped answering and was killed" if hung else f"died ({exit_reason(worker.process.exitcode)})"
            events.append(Died(worker_id, how, hung, late and not hung, last_in_flight(log),
                               read_file(output_file(job.search.reports, worker_id))))
            with contextlib.suppress(OSError):
                log.unlink()
            self._start(worker_id, worker.isa)
        return events

    def _drain(self) -> list[Event]:
        """What a dead worker managed to send before deciding what it was doing."""
        events = []
        with contextlib.suppress(queue_module.Empty, EOFError, OSError):
            while True:
                event = self._outbox.get(timeout=0.1)
                self._ended(event)
                events.append(event)
        return events


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``variables`` set, as it was after."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _case_overran(log: Path, limit: float) -> bool:
    """Whether the case written ahead last has been running for more than ``limit`` seconds."""
    try:
        return time.time() - log.stat().st_mtime > limit
    except OSError:
        return False
