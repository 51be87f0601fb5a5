"""Which mistake a failing result is: the catalogue's variants run on the case, named when they reproduce it.

A failing agreement check says *where* a candidate diverges; :func:`diagnose` says *which* mistake
it makes. Every catalogued mistake (:mod:`fuzz_birnn.diagnosis.mistakes`) that can show on the case is run
on a float64 copy of the call, and those whose result matches the candidate's within the same
tolerance the check used are the candidates for a name. A name is only worth giving if it is
right, so a match must also hold on other cases: when the candidate itself can be run,
:func:`diagnose` draws up to ``siblings`` more cases of the same configuration (other values,
same shapes), and a mistake survives only if it reproduces the candidate on every one on which the
candidate fails. Nothing survives: "none of the catalogued mistakes"; more than one survives (two
mistakes that coincide on this configuration): all are named, as indistinguishable here.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence

from fuzz_birnn.core.candidates import fused
from fuzz_birnn.core.case import Case
from fuzz_birnn.core.check import check
from fuzz_birnn.core.compare import compare_values
from fuzz_birnn.core.layout import Hidden, each_state
from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.diagnosis.mistakes import CATALOGUE, Mistake, Tensors, applicable, correct
from fuzz_birnn.processes.forked import can_fork, run_forked

__all__ = ["Diagnosis", "diagnose"]

_BY_NAME = {mistake.name: mistake for mistake in CATALOGUE}


@dataclass(frozen=True)
class Diagnosis:
    """``names``: the catalogued mistakes that reproduce the result (none, one, or several that
    coincide here); ``tried``: how many could show on the case; ``confirmed_on``: on how many more
    failing cases the names were confirmed."""

    names: tuple[str, ...]
    tried: int
    confirmed_on: int = 0

    def describe(self) -> str:
        """One sentence for a summary: ``behaves like a stack whose ...``, or why nothing is named."""
        if not self.names:
            return (f"none of the {self.tried} catalogued mistakes that can show on this case reproduces "
                    "the result")
        first, *others = (_BY_NAME[name].behaviour for name in self.names)
        sentence = f"behaves like a stack {first}"
        if others:
            sentence += "; on this configuration also indistinguishable from a stack " + "; or one ".join(others)
        where = f"this case and {self.confirmed_on} more" if self.confirmed_on else "this case"
        return f"{sentence} (reproduced within tolerance on {where})"

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "tried": self.tried, "confirmed_on": self.confirmed_on,
                "summary": self.describe()}


def diagnose(case: Case, actual: Tensors, allowed: dict[str, float],
             candidate: Callable[..., Any] | None = None, *, siblings: int = 3) -> Diagnosis:
    """Name the catalogued mistakes that reproduce ``actual`` (the candidate's per-direction result
    on ``case``, float64) within ``allowed``; confirm them on ``siblings`` more cases when
    ``candidate`` is given (see the module docstring), each checked by :func:`~fuzz_birnn.core.check.check`
    itself."""
    right = _correct(case)
    results = {m: result for m in applicable(case) if (result := _mistaken(m, case)) is not None}
    # a mistake that does not change this case's result (a swap of equal halves, a state of
    # zeros read from the wrong row) could be named for a correct result: it is not tried
    tried = [m for m, result in results.items() if not _close(right, result, allowed)]
    matches = [m for m in tried if _close(actual, results[m], allowed)]
    confirmed = 0
    if candidate is not None and matches:
        for sibling in _siblings(case, siblings):
            failing = _failing_result(candidate, sibling)
            if failing is None:
                continue  # the candidate is right on it, or cannot be compared: it says nothing
            result, sibling_allowed = failing
            matches = [m for m in matches if _reproduces(m, sibling, result, sibling_allowed)]
            confirmed += 1
            if not matches:
                break
    return Diagnosis(tuple(m.name for m in matches), len(tried), confirmed if matches else 0)


def _reproduces(mistake: Mistake, case: Case, actual: Tensors, allowed: dict[str, float]) -> bool:
    mistaken = _mistaken(mistake, case)
    return mistaken is not None and _close(actual, mistaken, allowed)


def _close(actual: Tensors, mistaken: Tensors, allowed: dict[str, float]) -> bool:
    if set(mistaken) != set(actual) or any(mistaken[k].shape != actual[k].shape for k in actual):
        return False
    return compare_values(actual, mistaken, allowed) is None


def _mistaken(mistake: Mistake, case: Case) -> Tensors | None:
    """The mistake's result on the case, or ``None`` where it cannot be made on this call."""
    try:
        module, input, hx = _float64_call(case)
        with torch.no_grad():
            return mistake.run(module, input, hx, case)
    except Exception:
        return None


def _correct(case: Case) -> Tensors:
    module, input, hx = _float64_call(case)
    with torch.no_grad():
        return correct(module, input, hx, case)


def _float64_call(case: Case) -> tuple[torch.nn.RNNBase, torch.Tensor | PackedSequence, Hidden | None]:
    """The case's call, exactly, in float64 on the CPU (its values are already rounded to its dtype)."""
    built = case.build()
    module = copy.deepcopy(built.module).to(device="cpu", dtype=torch.float64)
    x = built.input
    if isinstance(x, PackedSequence):
        x = x._replace(data=x.data.to("cpu", torch.float64))
    else:
        x = x.to("cpu", torch.float64)
    return module, x, each_state(built.hx, lambda h: h.to("cpu", torch.float64))


def _siblings(case: Case, count: int) -> list[Case]:
    """The same configuration and shapes with other values."""
    return [dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, seed=(case.inputs.seed + k) % 2**32))
            for k in range(1, count + 1)]


def _failing_result(candidate: Callable[..., Any], case: Case) -> tuple[Tensors, dict[str, float]] | None:
    """The candidate's result on ``case`` and the allowance it was held to, where :func:`check`
    finds its values wrong; ``None`` where it says nothing about them (right, not compared, the
    wrong structure, raised) or, in a forked child where the system has fork, where it crashes or
    runs past :data:`CONFIRM_SECONDS`: a confirming case must never take the caller down with it."""

    # check() goes on to torch's own module once a candidate agrees: its failure is not the candidate's
    candidates_property = "fused-vs-reference" if candidate is fused else "agreement"

    def failing() -> tuple[Tensors, dict[str, float]] | None:
        try:
            check(candidate, case)
        except CheckFailure as failure:
            if failure.prop == candidates_property and failure.actual is not None and failure.allowed is not None:
                return failure.actual, failure.allowed
        return None

    if can_fork():
        ended = run_forked(failing, CONFIRM_SECONDS)
        return ended.value if ended.kind == "passed" else None
    try:
        return failing()
    except Exception:
        return None


#: Seconds a candidate gets on one confirming case.
CONFIRM_SECONDS = 60.0
