"""The search behind ``fuzz-birnn run``: one Hypothesis search per (property, mode), in parallel.

Splitting the space by property and mode keeps distinct bugs distinct (Hypothesis stops a search
at its first failure and shrinks it) and gives the workers independent jobs.

Workers are spawned processes (a fresh interpreter each, one torch thread each) that the parent
feeds one job at a time. Because the code under test is broken by definition, a worker assumes
it may die at any moment:

* before each case it writes the case *ahead* to ``DIR/.inflight-<worker>.json``
  (:mod:`fuzz_birnn.writeahead`); if the process dies (segfault, abort, out of memory), the
  parent turns that record into a ``crash`` report, starts a new worker, and runs the job again
  with that case skipped (at most ``MAX_CRASHES`` times a job);
* each case runs under a time limit (``SIGALRM``); a case that overruns becomes a ``timeout``
  report and ends its job; a worker that stops answering altogether is killed by the parent and
  reported like a crash;
* workers ignore Ctrl-C: the parent stops them, so an interrupted run ends at once, every report
  already renamed into place stays whole, and a half-written one stays hidden;
* a parent killed outright (SIGKILL, the out-of-memory killer) takes its workers with it
  (:mod:`fuzz_birnn.lifeline`), even those stuck inside a candidate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import queue as queue_module
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .lifeline import die_with_parent
from .writeahead import WriteAhead, last_record

__all__ = ["MAX_CRASHES", "CaseTimeout", "Job", "JobResult", "jobs_for", "run_jobs", "time_limit"]

#: A job whose worker dies this many times is given up (each crash is reported).
MAX_CRASHES = 3


@dataclass(frozen=True)
class Job:
    """One search: ``prop`` over ``mode``, checking ``candidate``."""

    prop: str
    candidate: str
    mode: str
    max_examples: int
    seed: int
    strategy: dict[str, Any]
    reports: str
    timeout: float = 60.0
    #: keys of cases that crashed a worker: skipped when the job runs again
    skip: tuple[str, ...] = ()


@dataclass
class JobResult:
    job: Job
    reports: list[tuple[str, bool, str]] = field(default_factory=list)  # (folder, new, summary)
    error: str | None = None


def jobs_for(candidate: str | None, properties: list[str], modes: list[str], max_examples: int, seed: int,
             strategy: dict[str, Any], reports: Path, timeout: float = 60.0) -> tuple[list[Job], list[str]]:
    """The searches for a run, and the properties the user's flags leave no cases for."""
    from .properties import PROPERTIES, candidate_for, narrowed

    planned, impossible = [], []
    for name in properties:
        prop = PROPERTIES[name]
        kwargs = narrowed(prop, strategy)
        if kwargs is None:
            impossible.append(name)
            continue
        planned += [(name, candidate_for(prop, candidate), mode, kwargs) for mode in modes]
    per_job = max(1, -(-max_examples // max(1, len(planned))))
    jobs = [Job(name, spec, mode, per_job, seed + index, kwargs, str(reports), timeout)
            for index, (name, spec, mode, kwargs) in enumerate(planned)]
    return jobs, impossible


# -- parent side -------------------------------------------------------------------------------


@dataclass
class _Worker:
    process: Any
    inbox: Any
    job: Job | None = None
    last_seen: float = field(default_factory=time.monotonic)


def run_jobs(jobs: list[Job], workers: int, on_event: Callable[[dict[str, Any]], None]) -> Iterator[JobResult]:
    """Run ``jobs`` on ``workers`` processes; ``on_event`` is called for each checked case."""
    context = multiprocessing.get_context("spawn")
    outbox = context.Queue()
    todo = list(jobs)
    crashes: dict[tuple[str, str], int] = {}
    pool: dict[int, _Worker] = {}

    def start(worker_id: int) -> None:
        inbox = context.Queue()
        process = context.Process(target=_worker_main, args=(worker_id, inbox, outbox, os.getpid()), daemon=True)
        process.start()
        pool[worker_id] = _Worker(process, inbox)

    for worker_id in range(min(workers, len(jobs))):
        start(worker_id)
    try:
        while todo or any(w.job for w in pool.values()):
            for worker in pool.values():
                if worker.job is None and todo:
                    worker.job, worker.last_seen = todo.pop(0), time.monotonic()
                    worker.inbox.put(worker.job)
            with contextlib.suppress(queue_module.Empty):
                kind, worker_id, payload = outbox.get(timeout=0.2)
                worker = pool[worker_id]
                worker.last_seen = time.monotonic()
                if kind == "event":
                    on_event(payload)
                else:
                    worker.job = None
                    yield payload
            for worker_id, worker in list(pool.items()):
                job = worker.job
                if job is None:
                    continue
                hung = time.monotonic() - worker.last_seen > job.timeout + 30
                if worker.process.is_alive() and not hung:
                    continue
                if hung:
                    worker.process.kill()
                worker.process.join()
                _drain(outbox, pool, on_event)
                if pool[worker_id].job is None:  # it finished after all
                    continue
                yield from _after_crash(worker_id, job, worker.process.exitcode, hung, crashes, todo)
                start(worker_id)
    finally:
        for worker in pool.values():
            if worker.process.is_alive():
                worker.process.terminate()
        for worker_id, worker in pool.items():
            worker.process.join(timeout=5)
            with contextlib.suppress(OSError):  # a case written ahead by a worker stopped mid-case
                (Path(jobs[0].reports) / f".inflight-{worker_id}.json").unlink()


def _after_crash(worker_id: int, job: Job, exitcode: int | None, hung: bool,
                 crashes: dict[tuple[str, str], int], todo: list[Job]) -> Iterator[JobResult]:
    """Report the case a dead worker was on, and run its job again without that case."""
    from .case import Case
    from .reports import write_crash

    inflight = Path(job.reports) / f".inflight-{worker_id}.json"
    how = (f"stopped answering for over {job.timeout + 30:.0f}s and was killed" if hung else
           f"died ({_exit_reason(exitcode)})")
    result = JobResult(job)
    record = last_record(inflight)
    with contextlib.suppress(OSError):
        inflight.unlink()
    if record is None:
        result.error = f"the worker {how} before its first case was written ahead"
        yield result
        return
    folder, new, key = write_crash(record, f"the worker process {how} while checking this case",
                                   Path(job.reports), kind="timeout" if hung else "crash")
    described = Case.from_dict(record["case"]).describe()
    result.reports.append((str(folder), new, f"{'timeout' if hung else 'crash'}: the worker {how} [{described}]"))
    count = crashes[(job.prop, job.mode)] = crashes.get((job.prop, job.mode), 0) + 1
    if count >= MAX_CRASHES:
        result.error = f"{job.prop} ({job.mode}) given up after {count} dead workers"
    else:
        todo.insert(0, dataclasses.replace(job, skip=(*job.skip, key)))
    yield result


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def _drain(outbox: Any, pool: dict[int, _Worker], on_event: Callable[[dict[str, Any]], None]) -> None:
    """Take what a dead worker managed to send (its events, maybe its result) before deciding."""
    with contextlib.suppress(queue_module.Empty, EOFError, OSError):
        while True:
            kind, worker_id, payload = outbox.get(timeout=0.1)
            if kind == "event":
                on_event(payload)
            else:
                pool[worker_id].job = None


# -- worker side -------------------------------------------------------------------------------


class CaseTimeout(BaseException):
    """Raised by SIGALRM inside a case that overran its time limit. A BaseException, so that no
    ``except Exception`` in the code under test (or in :func:`~fuzz_birnn.check`) swallows it."""


class _Abort(BaseException):
    """Ends a search at once, without shrinking (a hanging case would hang every shrink)."""

    def __init__(self, case: Any, details: dict[str, Any]) -> None:
        super().__init__()
        self.case, self.details = case, details


def _worker_main(worker_id: int, inbox: Any, outbox: Any, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    die_with_parent(parent_pid)  # ... and if it cannot (it was killed), its death stops us
    import warnings

    import torch

    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    torch.set_num_threads(1)  # cases are tiny: intra-op threads only fight the other workers
    while True:
        job = inbox.get()
        if job is None:
            return
        outbox.put(("result", worker_id, run_job(job, lambda event: outbox.put(("event", worker_id, event)),
                                                 worker_id)))


def run_job(job: Job, emit: Callable[[dict[str, Any]], None], worker_id: int = 0) -> JobResult:
    """Search, and write a report for each distinct shrunk failure (or the timeout)."""
    from hypothesis import HealthCheck, Verbosity, assume, given, seed, settings

    from strategies import cases, invalid_calls

    from .candidates import load_candidate
    from .check import CheckFailure
    from .properties import PROPERTIES
    from .reports import case_key, check_failures, write_crash, write_report

    result = JobResult(job)
    candidate = load_candidate(job.candidate)
    prop = PROPERTIES[job.prop]
    strategy = (invalid_calls if prop.invalid else cases)(modes=[job.mode], **job.strategy)
    ahead = WriteAhead(Path(job.reports) / f".inflight-{worker_id}.json")

    @settings(max_examples=job.max_examples, database=None, deadline=None, verbosity=Verbosity.quiet,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=True)
    @seed(job.seed)
    @given(strategy)
    def search(drawn):
        case, details = (drawn[0], {"corruption": drawn[1]}) if prop.invalid else (drawn, {})
        if job.skip:
            assume(case_key(job.candidate, job.prop, case, details) not in job.skip)
        ahead.record({"candidate": job.candidate, "property": job.prop, "case": case.to_dict(), "details": details})
        event = {"job": job.prop, "mode": case.config.mode, "dtype": case.inputs.dtype,
                 "form": case.inputs.form, "failed": False, "skipped": None}
        try:
            with time_limit(job.timeout):
                outcome = prop.run(candidate, drawn, job.candidate)
            event["skipped"] = _reason(outcome.skipped)
        except CheckFailure:
            event["failed"] = True
            raise
        except CaseTimeout:
            event["failed"] = True
            raise _Abort(case, details) from None
        finally:
            emit(event)
        assume(outcome.skipped is None)

    try:
        with ahead:
            search()
    except _Abort as aborted:
        record = {"candidate": job.candidate, "property": job.prop, "case": aborted.case.to_dict(),
                  "details": aborted.details}
        folder, new, _ = write_crash(record, f"checking this case took longer than the {job.timeout:g}s limit",
                                     Path(job.reports), kind="timeout")
        result.reports.append((str(folder), new, f"timeout: a case took longer than {job.timeout:g}s "
                                                 f"[{aborted.case.describe()}]"))
    except Exception as raised:
        failures, others = check_failures(raised)
        for failure in failures:
            folder, new = write_report(failure, Path(job.reports), origin="fuzz-birnn run")
            result.reports.append((str(folder), new, str(failure).splitlines()[0]))
        if others:
            result.error = "".join(traceback.format_exception(others[0])).rstrip()
    return result


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


def _reason(skipped: str | None) -> str | None:
    """A skip reason without case-specific numbers, so that reasons can be counted."""
    if skipped is None:
        return None
    return "values beyond the dtype's range" if "range" in skipped else skipped
