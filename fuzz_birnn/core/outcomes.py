"""What a check ends in: an :class:`Outcome` (it passed), a :class:`CheckFailure` (it did not), or
the candidate's own :class:`Unsupported` refusal (not compared)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from fuzz_birnn.core.case import Case
from fuzz_birnn.core.compare import Mismatch
from fuzz_birnn.core.reproducer import reproducer

__all__ = ["Candidate", "CheckFailure", "Outcome", "Unsupported", "unsupported"]

#: ``candidate(module, input, hx=None) -> (output, hidden)``, with the semantics of ``module(input, hx)``.
Candidate = Callable[..., Any]


@dataclass(frozen=True)
class Outcome:
    """A passed check: each tensor's worst error and its allowance, or why values were not compared."""

    case: Case
    errors: dict[str, float]
    allowed: dict[str, float]
    skipped: str | None = None


class Unsupported(Exception):
    """Raised by a candidate for a configuration it genuinely cannot take (``"bfloat16 has no
    kernel"``). Not a failure: the case counts under "not compared" as ``unsupported: REASON``, the
    search moves on (a value refused on every case stops being drawn:
    :mod:`fuzz_birnn.campaign.steering`), and the run's support table shows which values were
    refused. Raise it only for the target's own explicit refusals; a wrong result, a shape error
    or a crash is a finding."""


class CheckFailure(AssertionError):
    """A property that does not hold: ``mismatch`` says where and how, ``prop`` which property
    (``agreement``, ``fused-vs-reference``, ``relation:NAME``, ``gradients``, ``backends`` or
    ``invalid-calls``), ``details`` what else it takes to replay it; ``actual``, where values were
    compared, is the result per direction (float64, see :func:`~fuzz_birnn.core.compare.tensors_of`),
    ``allowed`` the tolerance each tensor was held to and ``reference`` the float64 result it was
    compared with, for the report (which then need not evaluate the case again), its pictures and
    its diagnosis."""

    def __init__(self, mismatch: Mismatch, case: Case, candidate: str, prop: str = "agreement",
                 details: dict[str, Any] | None = None, actual: dict[str, torch.Tensor] | None = None,
                 allowed: dict[str, float] | None = None, reference: dict[str, torch.Tensor] | None = None,
                 ) -> None:
        super().__init__(f"{mismatch.message} [{case.describe()}]")
        self.mismatch = mismatch
        self.case = case
        self.candidate = candidate
        self.prop = prop
        self.details = details or {}
        self.actual = actual
        self.allowed = allowed
        self.reference = reference
        self.add_note(reproducer(case, candidate, prop, self.details))


def unsupported(refusal: Unsupported) -> str:
    """The "not compared" reason of a refusal."""
    return f"unsupported: {str(refusal).splitlines()[0] if str(refusal) else type(refusal).__name__}"
