"""What a slice learns of a new fault beyond its failing case, by checking more cases.

Once a slice has a new fault, before its report is written:

* :meth:`FaultProbes.needs`: what the fault needs in order to show (:mod:`.needs`), measured on
  simpler cases in a forked child (a candidate that crashes on a simpler case costs the child);
* :meth:`FaultProbes.follows`: for a fault of another property that checks the candidate (a
  relation, autocast, gradients), the agreement fault its case (a relation's: its case family)
  shows, so that the record makes it part of that finding;
* :meth:`FaultProbes.reduced`: for a slow candidate (:mod:`.slow`), the fault reduced field by
  field (:func:`~fuzz_birnn.campaign.reducer.reduce_case`) instead of shrunk by Hypothesis.

Every case a probe checks is written ahead first, marked as a probe: the parent times each case
from its write-ahead line, so a probe's cases, one after another, are never taken for one case
that hangs, and a probe case that kills the worker is reported as that case's crash.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fuzz_birnn.campaign.needs import family, needs_of
from fuzz_birnn.campaign.reducer import MAX_ATTEMPTS, reduce_case, within_space
from fuzz_birnn.campaign.scheduler import Slice
from fuzz_birnn.campaign.signature import signature_of
from fuzz_birnn.campaign.writeahead import WriteAhead
from fuzz_birnn.core.case import Case
from fuzz_birnn.core.compare import Mismatch
from fuzz_birnn.core.outcomes import Candidate, CheckFailure
from fuzz_birnn.processes.capture import OutputCapture
from fuzz_birnn.processes.forked import value_of
from fuzz_birnn.processes.time_limit import CaseTimeout, time_limit
from fuzz_birnn.properties import PROPERTIES, Property

__all__ = ["NEEDS_SECONDS", "FaultProbes", "as_fault"]

#: Measuring what a new fault needs in order to show (:mod:`.needs`), or what it follows from,
#: gets at most this much time (and never past the budget); features not tried by then count as
#: not needed.
NEEDS_SECONDS = 30.0

#: Seconds a forked proposal may run past the case's time limit before its child is killed.
FORK_GRACE = 5.0

_FAULT_TYPES: dict[str, type] = {}


def as_fault(failure: CheckFailure, signature: str, details: dict[str, Any], output: str) -> CheckFailure:
    """``failure`` as a fault of its signature's own type (Hypothesis tells bugs apart by exception
    type, so each new fault in a slice is shrunk on its own), with the search's details, what the
    case printed, and what the candidate raised, if it did (its report says where)."""
    if signature not in _FAULT_TYPES:
        _FAULT_TYPES[signature] = type("Fault", (CheckFailure,), {"__module__": __name__})
    fault = _FAULT_TYPES[signature](failure.mismatch, failure.case, failure.candidate, failure.prop,
                                    {**details, **failure.details}, failure.actual, failure.allowed, failure.reference)
    fault.signature, fault.output = signature, output
    fault.__cause__ = failure.__cause__
    return fault


@dataclass
class FaultProbes:
    """The probes of one slice: its job, the candidate and property it checks, where cases are
    written ahead and their output captured, and which failures are of faults it knows."""

    job: Slice
    candidate: Candidate
    prop: Property
    capture: OutputCapture
    ahead: WriteAhead
    #: ``known(signature, case)``: a failure of a fault the search has found before
    known: Callable[[str, Case], bool]

    def twin(self, details: dict[str, Any], of: Property | None = None) -> Callable[[Case], Mismatch | None]:
        """How a failure's float64 twin fares (:func:`~fuzz_birnn.campaign.signature.signature_of`
        reads it): checked the same way, in-process, under the time limit; a twin that overruns
        counts as one that does not show the fault."""
        prop = of or self.prop

        def mismatch(twin: Case) -> Mismatch | None:
            failure = self._checked(twin, prop, details)
            return None if failure is None else failure.mismatch
        return mismatch

    def _checked(self, case: Case, of: Property, details: dict[str, Any]) -> CheckFailure | None:
        """``of``'s failure on ``case``, checked in this process under the case's time limit;
        ``None`` where it passes (or overruns, or the harness raises)."""
        spec = self.job.search
        try:
            with time_limit(spec.timeout):
                of.run(self.candidate, case, spec.candidate, details)
        except CheckFailure as failure:
            return failure
        except (Exception, CaseTimeout):
            return None
        return None

    def probing(self, case: Case, prop_name: str, details: dict[str, Any]) -> None:
        """Write ahead a case a probe is about to check (see the module docstring)."""
        self.ahead.write({"candidate": self.job.search.candidate, "property": prop_name, "case": case.to_dict(),
                          "details": details, "probing": True})

    def failure_on(self, case: Case, of: Property, details: dict[str, Any]) -> CheckFailure | None:
        """``case`` written ahead and checked by ``of`` in this process: its failure, ``None``
        where it passes (or overruns, or the harness raises)."""
        self.probing(case, of.name, details)
        self.capture.reset()
        return self._checked(case, of, details)

    def signature_on(self, case: Case, of: Property, details: dict[str, Any]) -> str | None:
        """The signature of ``of``'s failure on ``case`` (:meth:`failure_on`), ``None`` where it passes."""
        failure = self.failure_on(case, of, details)
        return None if failure is None else signature_of(failure, self.twin(details, of))

    def seconds(self) -> float:
        """How long a probe of a new fault may take: :data:`NEEDS_SECONDS`, never past the budget."""
        deadline = self.job.deadline
        return NEEDS_SECONDS if deadline is None else min(NEEDS_SECONDS, deadline - time.time())

    def needs(self, fault: CheckFailure) -> tuple[str, ...] | None:
        """What a new fault needs in order to show, measured in a forked child; ``None`` where it
        could not be measured whole."""
        signature, seconds, spec = getattr(fault, "signature", None), self.seconds(), self.job.search
        if signature is None or seconds <= 0:
            return None

        def shows(case: Case) -> bool:
            return self.signature_on(case, self.prop, fault.details) == signature and not self.known(signature, case)

        return value_of(lambda: needs_of(fault.case, shows, deadline=time.monotonic() + seconds),
                        seconds + spec.timeout)

    def follows(self, fault: CheckFailure) -> str | None:
        """For a fault of another property that checks the candidate (a relation, autocast,
        gradients): the signature of the agreement fault its case shows; for a relation, where the
        agreement property passes on its case, the one that another case of its family
        (:func:`~fuzz_birnn.campaign.needs.family`) shows. ``None``: none, or no time left."""
        seconds, spec = self.seconds(), self.job.search
        if spec.prop == "agreement" or self.prop.invalid or self.prop.torch_only or seconds <= 0:
            return None
        agreement, relation = PROPERTIES["agreement"], spec.prop.startswith("relation:")
        deadline = time.monotonic() + seconds

        def first_agreement_fault() -> str | None:
            own = self.signature_on(fault.case, agreement, {})
            if not relation:
                return own
            if own is not None:
                return None  # its own case is wrong already: the relation may fail for another fault
            for relative in family(fault.case)[1:]:
                if time.monotonic() > deadline:
                    return None
                shown = self.signature_on(relative, agreement, {})
                if shown is not None:
                    return shown
            return None

        return value_of(first_agreement_fault, seconds + spec.timeout)

    def reduced(self, fault: CheckFailure, since: float) -> tuple[CheckFailure, str]:
        """A slow candidate's new fault (found at ``since``, ``time.monotonic()``) and how its
        reduction ended: the greedy field-by-field reduction of :mod:`.reducer` from the failing
        case, a call a proposal where Hypothesis' shrinker takes hundreds, keeping the signature
        and staying off known faults, for the slice's shrinking allowance. Each
        proposal is checked in a forked child where the candidate allows it (one that crashes on a
        simpler case costs the child, not the fault); the smallest is checked again here for its
        report."""
        job, signature, details = self.job, getattr(fault, "signature", ""), fault.details
        spec = job.search

        def fails_alike(case: Case) -> bool:
            shown = value_of(lambda: self.signature_on(case, self.prop, details), spec.timeout + FORK_GRACE)
            return shown == signature and not self.known(signature, case)

        # what the slice may shrink for: slow mode's allowance where the scheduler knows the candidate
        # is slow; a slice that found it slow itself keeps the ordinary share, so every search gets its turn
        ends = since + (math.inf if job.shrink_seconds is None else job.shrink_seconds)
        run_ends = math.inf if job.deadline is None else time.monotonic() + job.deadline - time.time()
        reduction = reduce_case(fault.case, fails_alike, within=within_space(spec.space),
                                deadline=min(ends, run_ends))
        if reduction.complete:
            how = "complete"
        elif reduction.attempts >= MAX_ATTEMPTS:
            how = f"shrinking cut short: {MAX_ATTEMPTS} attempts"
        elif run_ends <= ends:
            how = "shrinking cut short: the time budget ran out"
        else:
            how = "shrinking cut short: its search's share of the time budget ran out"
        how += f" (slow target: reduced field by field, {reduction.attempts} attempts)"
        if reduction.case == fault.case:
            return fault, how
        again = self.failure_on(reduction.case, self.prop, details)
        if again is None or signature_of(again, self.twin(details)) != signature:
            return fault, ("shrinking cut short: its smallest case did not fail alike again in this process, so the "
                           f"report keeps the first failing case (slow target: {reduction.attempts} attempts)")
        return as_fault(again, signature, details, self.capture.read()), how
