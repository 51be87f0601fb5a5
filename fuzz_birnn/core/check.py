"""The public entry points: check a candidate, or torch's fused module itself, on one case."""

from __future__ import annotations

from typing import Any

import torch

from fuzz_birnn.core.candidates import candidate_label, fused
from fuzz_birnn.core.case import Case, backend
from fuzz_birnn.core.compare import Mismatch, check_structure, compare_values, max_abs_difference, tensors_of
from fuzz_birnn.core.evaluation import Evaluation, evaluate, for_candidate
from fuzz_birnn.core.outcomes import Candidate, CheckFailure, Outcome, Unsupported, unsupported

__all__ = ["check", "check_fused", "held_to"]


def check(candidate: Candidate, case: Case, *, name: str | None = None) -> Outcome:
    """Check ``candidate`` against torch's fused module on ``case``; raise :class:`CheckFailure`.

    The candidate gets a freshly built module (eval mode) and the case's exact ``input`` and
    ``hx``, under the case's CPU backend. Its result must have the fused result's structure
    (types, shapes, dtypes, devices) and values within the tolerance model of
    :mod:`fuzz_birnn.core.compare`, which allows for torch's own error on the case.
    """
    __tracebackhide__ = True  # pytest shows the caller's line and the message
    label = name or candidate_label(candidate)
    if candidate is fused:
        return check_fused(case)
    built = case.build()
    evaluation = evaluate(case, built)
    if evaluation.skipped:
        return Outcome(case, {}, {}, evaluation.skipped)
    with backend(case.inputs), torch.no_grad():
        try:
            actual = candidate(built.module, built.input, built.hx)
        except Unsupported as refusal:
            return Outcome(case, {}, {}, unsupported(refusal))
        except Exception as error:  # the candidate's bug, reported as a finding
            message = f"candidate raised {type(error).__name__}: {error}".splitlines()[0]
            raise CheckFailure(Mismatch("result", message), case, label, allowed=evaluation.tolerances.candidate,
                               reference=evaluation.ref) from error
    held, lower = for_candidate(evaluation, case, candidate)
    try:
        outcome = _judge(actual, held, "candidate", case, label, "agreement")
    except CheckFailure as failure:
        if lower is not None:
            failure.add_note(held_to(lower, case))
        if not _torch_is_right(case, evaluation):
            failure.add_note("torch's fused module is wrong on this case too (fused-vs-reference), so the "
                             "candidate was held to the plain allowance")
        raise
    check_fused(case, evaluation)  # the candidate is right, but is torch? Its fault is reported as its own
    return outcome


def check_fused(case: Case, evaluation: Evaluation | None = None) -> Outcome:
    """Check torch's fused module against the float64 reference on ``case`` (``evaluation``:
    :func:`evaluate`'s, if the caller has it already)."""
    __tracebackhide__ = True  # pytest shows the caller's line and the message
    evaluation = evaluate(case) if evaluation is None else evaluation
    if evaluation.skipped:
        return Outcome(case, {}, {}, evaluation.skipped)
    return _judge(evaluation.fused_result, evaluation, "fused", case, "fused", "fused-vs-reference")


def _torch_is_right(case: Case, evaluation: Evaluation) -> bool:
    try:
        check_fused(case, evaluation)
    except CheckFailure:
        return False
    return True


def _judge(actual: Any, evaluation: Evaluation, side: str, case: Case, label: str, prop: str) -> Outcome:
    """``actual`` against the reference under ``side``'s allowance (``fused`` or ``candidate``):
    the bound first, the measured tolerances only for values beyond it."""
    __tracebackhide__ = True  # pytest shows the caller's line and the message
    mismatch = check_structure(actual, evaluation.fused_result, case)
    if mismatch is not None:
        raise CheckFailure(mismatch, case, label, prop, allowed=getattr(evaluation.tolerances, side),
                           reference=evaluation.ref)
    values = tensors_of(actual, case)
    mismatch, tolerances = evaluation.judge(lambda t: compare_values(values, evaluation.ref, getattr(t, side)))
    allowed = getattr(tolerances, side)
    if mismatch is not None:
        raise CheckFailure(mismatch, case, label, prop, actual=values, allowed=allowed, reference=evaluation.ref)
    errors = {k: max_abs_difference(values[k], evaluation.ref[k]) for k in evaluation.ref}
    return Outcome(case, errors, allowed)


def held_to(lower: str, case: Case) -> str:
    """What a failure of a candidate that declares a lower precision was held to."""
    return (f"held to {lower}'s tolerance: the candidate declares it computes {case.inputs.dtype} cases in {lower} "
            "(its computes_in), so it failed by more than that precision explains")
