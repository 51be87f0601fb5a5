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

PROPERTIES = {
    "fused-vs-decomposed": "decomposed",
    "fused-vs-reference": "fused",
}


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


def jobs_for(candidate: str | None, modes: list[str], max_examples: int, seed: int,
             strategy: dict[str, Any], reports: Path) -> list[Job]:
    """The searches for a run: torch's own properties, or the candidate against torch."""
    targets = list(PROPERTIES.items()) if candidate is None else [("fused-vs-candidate", candidate)]
    count = len(targets) * len(modes)
    per_job = max(1, -(-max_examples // count))
    return [Job(prop, spec, mode, per_job, seed + index, strategy, str(reports))
            for index, ((prop, spec), mode) in enumerate((t, m) for t in targets for m in modes)]


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

    from strategies import cases

    from .candidates import load_candidate
    from .check import CheckFailure, check, check_fused
    from .reports import check_failures, write_report

    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    # Cases are tiny: intra-op threads only fight the other workers for the cores.
    torch.set_num_threads(1)
    result = JobResult(job)
    candidate = load_candidate(job.candidate)

    @settings(max_examples=job.max_examples, database=None, deadline=None, verbosity=Verbosity.quiet,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=True)
    @seed(job.seed)
    @given(cases(modes=[job.mode], **job.strategy))
    def search(case):
        event = {"job": job.prop, "mode": case.config.mode, "dtype": case.inputs.dtype,
                 "form": case.inputs.form, "failed": False, "skipped": False}
        try:
            outcome = check_fused(case) if job.candidate == "fused" else check(candidate, case, name=job.candidate)
        except CheckFailure:
            event["failed"] = True
            raise
        finally:
            events.put(event)
        event["skipped"] = outcome.skipped is not None
        assume(outcome.skipped is None)

    try:
        search()
    except BaseException as raised:  # noqa: BLE001 - sorted below
        failures, others = check_failures(raised)
        for failure in failures:
            folder, new = write_report(failure, job.prop, Path(job.reports))
            result.reports.append((str(folder), new, str(failure).splitlines()[0]))
        if others:
            result.error = "".join(traceback.format_exception(others[0])).rstrip()
        if isinstance(raised, KeyboardInterrupt):
            raise
    return result


def _drain(events: Any, on_event: Any) -> None:
    with contextlib.suppress(queue_module.Empty, EOFError, BrokenPipeError, ConnectionError):
        while True:
            on_event(events.get_nowait())
