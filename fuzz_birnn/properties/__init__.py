"""Every property ``fuzz-birnn run`` can search, by name.

A property takes ``(candidate, case, label, details)`` and returns an :class:`~fuzz_birnn.core.outcomes.Outcome`
or raises :class:`~fuzz_birnn.core.outcomes.CheckFailure`. Some check torch itself and ignore the
candidate; some need cases of a particular form (``narrowing``, intersected with the user's flags).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fuzz_birnn.core.case import Case
from fuzz_birnn.core.check import check, check_fused
from fuzz_birnn.core.outcomes import Candidate, Outcome
from fuzz_birnn.properties.autocast import check_autocast
from fuzz_birnn.properties.backends import check_backends
from fuzz_birnn.properties.gradients import check_gradients
from fuzz_birnn.properties.invalid import check_invalid
from fuzz_birnn.properties.relations import RELATIONS, check_relation

__all__ = ["PROPERTIES", "Property", "default_properties"]


#: ``check(candidate, case, label, details) -> Outcome``; ``details`` is what the case alone does not
#: say (the corruption of an invalid call), as stored in a report's ``details``.
Check = Callable[[Candidate, Case, str, Mapping[str, Any]], Outcome]


@dataclass(frozen=True)
class Property:
    """A property a run can search, and everything the run needs to know of it."""

    name: str
    run: Check
    #: what its cases must be, as :meth:`~fuzz_birnn.core.space.CaseSpace.narrowed` takes it (allowed
    #: values are intersected with the user's flags, lower bounds raised, flags fixed).
    narrowing: Mapping[str, Any] = field(default_factory=dict)
    #: checks torch's fused module only (the candidate plays no part).
    torch_only: bool = False
    #: draws ``(case, corruption)`` from ``invalid_calls`` instead of a case (the corruption goes in ``details``).
    invalid: bool = False
    #: who it checks in a run of torch itself (no ``--candidate``): the decomposition where it
    #: compares two implementations, else torch's fused module.
    checks_in_torch_run: str = "fused"
    #: run for a candidate only when asked (``--grad``); always in a run of torch itself.
    opt_in: bool = False
    #: a failure of it is a wrong result the diagnosis can name (a report stores the candidate's result).
    diagnosed: bool = False
    #: it checks torch's own kernels, so a run also searches it at every lower instruction-set level
    #: this machine can reach (:mod:`fuzz_birnn.core.isa`)
    isa_levels: bool = False

    def candidate(self, user: str | None) -> str:
        """Who this property checks when the user names ``user`` (``None``: torch itself)."""
        return user if user is not None and not self.torch_only else self.checks_in_torch_run


_RELATION_NARROWING: dict[str, dict[str, Any]] = {
    "batch_independence": {"forms": ["padded", "packed_sorted", "packed_unsorted"], "min_batch": 2},
    "unbatched": {"forms": ["unbatched"]},
    "layout": {"forms": ["padded"]},
    "sorting": {"forms": ["packed_sorted", "packed_unsorted"], "min_batch": 2},
    "time_reversal": {},
    "dropout_eval": {"dropout": True},
    "zero_state": {"initial_state": False},
}


def _relation(name: str) -> Check:
    return lambda candidate, case, label, details: check_relation(name, candidate, case, name=label)


PROPERTIES: dict[str, Property] = {
    "agreement": Property("agreement", lambda cand, case, label, details: check(cand, case, name=label),
                          checks_in_torch_run="decomposed", diagnosed=True),
    # torch's cells (nn.RNNCell, nn.GRUCell, nn.LSTMCell) as people stack them, against the fused
    # module and the float64 reference; nn.LSTMCell has no proj_size
    "cells": Property("cells", lambda cand, case, label, details: check(cand, case, name=label), {"proj": False},
                      torch_only=True, checks_in_torch_run="cells", diagnosed=True, isa_levels=True),
    # torch's fused module (or the candidate) inside torch.autocast (float32 cases; bfloat16 on the CPU,
    # float16 on CUDA)
    "autocast": Property("autocast", lambda cand, case, label, details: check_autocast(
        case, None if label == "fused" else cand, label), {"dtypes": ["float32"]}, isa_levels=True),
    "fused-vs-reference": Property("fused-vs-reference", lambda cand, case, label, details: check_fused(case),
                                   torch_only=True, diagnosed=True, isa_levels=True),
    **{f"relation:{name}": Property(f"relation:{name}", _relation(name), _RELATION_NARROWING[name])
       for name in RELATIONS},
    # bfloat16/float16 gradients are left out: the measured backward error of a correct decomposition
    # reached 14x that of a plain bfloat16 implementation, beyond what the forward model bounds.
    "gradients": Property("gradients", lambda cand, case, label, details: check_gradients(cand, case, name=label),
                          {"dtypes": ["float64", "float32"]}, checks_in_torch_run="decomposed", opt_in=True),
    "backends": Property("backends", lambda cand, case, label, details: check_backends(case),
                         torch_only=True, isa_levels=True),
    "invalid-calls": Property("invalid-calls",
                              lambda cand, case, label, details: check_invalid(case, details["corruption"]),
                              torch_only=True, invalid=True),
}


def default_properties(candidate: str | None, grad: bool) -> list[str]:
    """Torch's whole battery without a candidate; else every property that checks the candidate
    (the opt-in ones with ``grad``)."""
    if candidate is None:
        return list(PROPERTIES)
    return [name for name, prop in PROPERTIES.items() if not prop.torch_only and (grad or not prop.opt_in)]
