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
from fuzz_birnn.properties.backends import check_backends
from fuzz_birnn.properties.gradients import check_gradients
from fuzz_birnn.properties.invalid import check_invalid
from fuzz_birnn.properties.relations import RELATIONS, check_relation

__all__ = ["PROPERTIES", "Property", "candidate_for", "default_properties", "narrowed"]


#: ``check(candidate, case, label, details) -> Outcome``; ``details`` is what the case alone does not
#: say (the corruption of an invalid call), as stored in a report's ``details``.
Check = Callable[[Candidate, Case, str, Mapping[str, Any]], Outcome]


@dataclass(frozen=True)
class Property:
    name: str
    run: Check
    #: ``cases`` keyword arguments the property needs (forms are intersected with the user's).
    narrowing: dict[str, Any] = field(default_factory=dict)
    #: checks torch's fused module only (the candidate plays no part).
    torch_only: bool = False
    #: draws ``(case, corruption)`` from ``invalid_calls`` instead of a case (the corruption goes in ``details``).
    invalid: bool = False


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
    "agreement": Property("agreement", lambda cand, case, label, details: check(cand, case, name=label)),
    "fused-vs-reference": Property("fused-vs-reference", lambda cand, case, label, details: check_fused(case),
                                   torch_only=True),
    **{f"relation:{name}": Property(f"relation:{name}", _relation(name), _RELATION_NARROWING[name])
       for name in RELATIONS},
    # bfloat16/float16 gradients are left out: the measured backward error of a correct decomposition
    # reached 14x that of a plain bfloat16 implementation, beyond what the forward model bounds.
    "gradients": Property("gradients", lambda cand, case, label, details: check_gradients(cand, case, name=label),
                          {"dtypes": ["float64", "float32"]}),
    "backends": Property("backends", lambda cand, case, label, details: check_backends(case),
                          torch_only=True),
    "invalid-calls": Property("invalid-calls",
                              lambda cand, case, label, details: check_invalid(case, details["corruption"]),
                              torch_only=True, invalid=True),
}


def default_properties(candidate: str | None, grad: bool) -> list[str]:
    """Torch's whole battery without a candidate; else agreement and the relations (and gradients
    with ``grad``), each run on the candidate."""
    if candidate is None:
        return list(PROPERTIES)
    chosen = [name for name, prop in PROPERTIES.items() if not prop.torch_only and name != "gradients"]
    return [*chosen, "gradients"] if grad else chosen


def candidate_for(prop: Property, candidate: str | None) -> str:
    """Who a property checks: the user's candidate, or for torch's own run the decomposition
    (agreement, gradients) and torch's fused module (everything else)."""
    if candidate is not None and not prop.torch_only:
        return candidate
    return "decomposed" if prop.name in ("agreement", "gradients") else "fused"


def narrowed(prop: Property, strategy: dict[str, Any]) -> dict[str, Any] | None:
    """The user's strategy arguments narrowed to what ``prop`` needs; ``None`` if nothing is left."""
    merged = dict(strategy)
    for key, value in prop.narrowing.items():
        if isinstance(value, list):  # allowed values: intersect with the user's
            merged[key] = [v for v in strategy.get(key, value) if v in value]
            if not merged[key]:
                return None
        elif strategy.get(key) not in (None, value):
            return None
        else:
            merged[key] = value
    return merged
