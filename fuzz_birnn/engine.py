"""The search behind ``fuzz-birnn run``: one Hypothesis search per (property, mode), in parallel.

Splitting the space by property and mode keeps distinct bugs distinct (Hypothesis stops a search
at its first failure and shrinks it), and gives worker processes independent jobs. Each search
runs in a worker process (spawned, so a fresh interpreter with its own torch threads); workers
stream one event per checked case to the parent, which draws progress and counts coverage.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue as queue_module
import traceback
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Job", "JobResult", "jobs_for", "run_jobs"]

@dataclass(frozen=True)
class Job:
    """One search: ``property`` over ``mode``, checking ``candidate``."""

    prop: str
    candidate: str
    mode: str
    max_examples: int
    seed: int
    strategy: dict[str, Any]
    reports: str


@dataclass
class JobResult:
    job: Job
    reports: list[tuple[str, bool, str]] = field(default_factory=list)  # (folder, new, summary)
    error: str | None = None


def jobs_for(candidate: str | None, properties: list[str], modes: list[str], max_examples: int, seed: int,
             strategy: dict[str, Any], reports: Path) -> tuple[list[Job], list[str]]:
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
    jobs = [Job(name, spec, mode, per_job, seed + index, kwargs, str(reports))
            for index, (name, spec, mode, kwargs) in enumerate(planned)]
    return jobs, impossible


def run_jobs(jobs: list[Job], workers: int, on_event: Any) -> Iterator[JobResult]:
    """Run ``jobs`` on ``workers`` processes, calling ``on_event(event)`` for each checked case."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        events = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: set[Future] = {pool.submit(run_job, job, events) for job in jobs}
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(events, on_event)
                    for future in done:
                        yield future.result()
                _drain(events, on_event)
            except BaseException:
                for future in pending:
                    future.cancel()
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
                raise


def run_job(job: Job, events: Any) -> JobResult:
    """Worker side: search, and write a report for each distinct shrunk failure."""
    import warnings

    import torch
    from hypothesis import HealthCheck, Verbosity, assume, given, seed, settings

    from strategies import cases, invalid_calls

    from .candidates import load_candidate
    from .check import CheckFailure
    from .properties import PROPERTIES
    from .reports import check_failures, write_report

    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    # Cases are tiny: intra-op threads only fight the other workers for the cores.
    torch.set_num_threads(1)
    result = JobResult(job)
    candidate = load_candidate(job.candidate)
    prop = PROPERTIES[job.prop]
    strategy = (invalid_calls if prop.invalid else cases)(modes=[job.mode], **job.strategy)

    @settings(max_examples=job.max_examples, database=None, deadline=None, verbosity=Verbosity.quiet,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=True)
    @seed(job.seed)
    @given(strategy)
    def search(drawn):
        case = drawn[0] if prop.invalid else drawn
        event = {"job": job.prop, "mode": case.config.mode, "dtype": case.inputs.dtype,
                 "form": case.inputs.form, "failed": False, "skipped": False}
        try:
            outcome = prop.run(candidate, drawn, job.candidate)
            event["skipped"] = _reason(outcome.skipped)
        except CheckFailure:
            event["failed"] = True
            raise
        finally:
            events.put(event)
        assume(outcome.skipped is None)

    try:
        search()
    except BaseException as raised:  # noqa: BLE001 - sorted below
        failures, others = check_failures(raised)
        for failure in failures:
            folder, new = write_report(failure, Path(job.reports), origin="fuzz-birnn run")
            result.reports.append((str(folder), new, str(failure).splitlines()[0]))
        if others:
            result.error = "".join(traceback.format_exception(others[0])).rstrip()
        if isinstance(raised, KeyboardInterrupt):
            raise
    return result


def _reason(skipped: str | None) -> str | None:
    """A skip reason without case-specific numbers, so that reasons can be counted."""
    if skipped is None:
        return None
    return "values beyond the dtype's range" if "range" in skipped else skipped


def _drain(events: Any, on_event: Any) -> None:
    with contextlib.suppress(queue_module.Empty, EOFError, BrokenPipeError, ConnectionError):
        while True:
            on_event(events.get_nowait())
