"""What a campaign's workers tell the process that runs it: a slice's progress and end, a
reduction's end, and a job whose worker died, or whose machine was lost, before it ended.

The same events come from worker processes on this machine (:mod:`fuzz_birnn.campaign.pool`) and
from workers on a Ray cluster's nodes (:mod:`fuzz_birnn.campaign.cluster`), so the campaign that
handles them does not know where its workers are.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from fuzz_birnn.output.run_record import CountKey, Finding

__all__ = ["Counts", "Died", "Event", "Fault", "Lost", "Progress", "ReductionEnded", "SliceEnded", "SliceResult",
           "ends_job"]

#: Cases by what they are counted under (:class:`~fuzz_birnn.output.run_record.CountKey`).
Counts = collections.Counter[CountKey]


@dataclass(frozen=True)
class Fault:
    """A case that crashed or hung where the search had not met that before: the parent reduces it."""

    kind: str  # "crash" or "timeout"
    how: str  # "died (SIGSEGV)", "ran past the 60s limit", ...
    in_flight: dict[str, Any] | None  # the case as written ahead (None: nothing was written yet)
    output: str  # what the candidate printed on it


@dataclass
class SliceResult:
    """A slice's end: what it counted and found, and why it stopped if not of its own accord."""

    counts: Counts
    generated: int
    slowest: float
    findings: list[Finding]
    fault: Fault | None = None
    error: str | None = None
    #: why the search cannot go on, though nothing went wrong (said in the run's notes)
    ended: str | None = None
    #: the target's packages loaded in the worker, with their versions (:func:`fuzz_birnn.core.packages.of_target`)
    packages: dict[str, str] = field(default_factory=dict)
    #: cases it checked to a verdict, and the seconds they took (what makes a candidate slow)
    checked: int = 0
    checked_seconds: float = 0.0


@dataclass(frozen=True)
class Progress:
    """Counts of a slice still running (about once a second): the progress line, and what a
    worker that dies had done."""

    worker_id: int
    counts: Counts
    generated: int


@dataclass(frozen=True)
class SliceEnded:
    worker_id: int
    result: SliceResult


@dataclass(frozen=True)
class ReductionEnded:
    """A crash or hang reduction's end: its report, or why reducing it failed."""

    worker_id: int
    finding: Finding | None
    error: str | None = None


@dataclass(frozen=True)
class Died:
    """The worker of a job died, or was stopped, before the job ended.

    ``hung``: its case ran past the search's ``--timeout`` and the worker was killed; ``late``: the
    run's time budget ran out with a case in flight and the worker was stopped; otherwise it died
    of itself, ``how`` saying of what. ``in_flight`` is the case it had written ahead (``None``:
    none yet), ``output`` what that case printed.
    """

    worker_id: int
    how: str
    hung: bool
    late: bool
    in_flight: dict[str, Any] | None
    output: str


@dataclass(frozen=True)
class Lost:
    """A job whose worker is gone with nothing known of how the job went (its machine left the
    cluster, its Ray worker was killed): the job runs again on another worker."""

    worker_id: int
    why: str


Event = Progress | SliceEnded | ReductionEnded | Died | Lost


def ends_job(event: Event) -> bool:
    """Whether ``event`` is the last its worker sends about its job."""
    return not isinstance(event, Progress)
