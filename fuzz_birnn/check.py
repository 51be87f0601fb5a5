"""The public entry points: check a candidate, or torch's fused module itself, on one case."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .case import Built, Case, backend
from .compare import Mismatch, Tolerances, check_structure, compare_values, max_abs_difference, tensors_of
from .reference import CellReference

__all__ = ["Candidate", "CheckFailure", "Evaluation", "Outcome", "Unsupported", "candidate_label", "check",
           "check_fused", "evaluate", "fused", "unsupported"]

#: ``candidate(module, input, hx=None) -> (output, hidden)``, with the semantics of ``module(input, hx)``.
Candidate = Callable[..., Any]

_REFERENCE64 = CellReference(torch.float64)
_REFERENCE32 = CellReference(torch.float32)


def fused(module: torch.nn.RNNBase, input: Any, hx: Any = None) -> Any:
    """Torch's own fused module, as a candidate: ``module(input, hx)``."""
    return module(input, hx)


class Unsupported(Exception):
    """Raised by a candidate for a configuration it genuinely cannot take (``"bfloat16 has no
    kernel"``). Not a failure: the case counts under "not compared" as ``unsupported: REASON``, the
    search steers elsewhere, and the run's support table shows which values were refused. Raise it
    only for the target's own explicit refusals; a wrong result, a shape error or a crash is a
    finding."""


class CheckFailure(AssertionError):
    """A property that does not hold: ``mismatch`` says where and how, ``prop`` which property
    (``agreement``, ``fused-vs-reference``, ``relation:NAME``, ``gradients``, ``backends`` or
    ``invalid-calls``), ``details`` what else it takes to replay it."""

    def __init__(self, mismatch: Mismatch, case: Case, candidate: str, prop: str = "agreement",
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{mismatch.message} [{case.describe()}]")
        self.mismatch = mismatch
        self.case = case
        self.candidate = candidate
        self.prop = prop
        self.details = details or {}
        self.add_note(reproducer(case, candidate, prop, self.details))


@dataclass(frozen=True)
class Outcome:
    """A passed check: each tensor's worst error and its allowance, or why values were not compared."""

    case: Case
    errors: dict[str, float]
    allowed: dict[str, float]
    skipped: str | None = None


def check(candidate: Candidate, case: Case, *, name: str | None = None) -> Outcome:
    """Check ``candidate`` against torch's fused module on ``case``; raise :class:`CheckFailure`.

    The candidate gets a freshly built module (eval mode) and the case's exact ``input`` and
    ``hx``, under the case's CPU backend. Its result must have the fused result's structure
    (types, shapes, dtypes, devices) and values within the tolerance model of
    :mod:`fuzz_birnn.compare`, which allows for torch's own error on the case.
    """
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
            raise CheckFailure(Mismatch("result", message), case, label) from error
    try:
        outcome = _verdict(actual, evaluation, evaluation.tolerances.candidate, case, label, "agreement")
    except CheckFailure as failure:
        if not _torch_is_right(case, evaluation):
            failure.add_note("torch's fused module is wrong on this case too (fused-vs-reference), so the "
                             "candidate was held to the plain allowance")
        raise
    check_fused(case, evaluation)  # the candidate is right, but is torch? Its fault is reported as its own
    return outcome


def check_fused(case: Case, evaluation: Evaluation | None = None) -> Outcome:
    """Check torch's fused module against the float64 reference on ``case`` (``evaluation``:
    :func:`evaluate`'s, if the caller has it already)."""
    evaluation = evaluate(case) if evaluation is None else evaluation
    if evaluation.skipped:
        return Outcome(case, {}, {}, evaluation.skipped)
    return _verdict(evaluation.fused_result, evaluation, evaluation.tolerances.fused, case, "fused",
                    "fused-vs-reference")


_CALLS = {
    "agreement": ("fuzz_birnn", "check", "check({candidate}, case)"),
    "fused-vs-reference": ("fuzz_birnn", "check_fused", "check_fused(case)"),
    "gradients": ("fuzz_birnn.gradients", "check_gradients", "check_gradients({candidate}, case)"),
    "backends": ("fuzz_birnn.backends", "check_backends", "check_backends(case)"),
    "invalid-calls": ("fuzz_birnn.invalid", "check_invalid", "check_invalid(case, {corruption!r}, strict=True)"),
    "relation": ("fuzz_birnn.metamorphic", "check_relation", "check_relation({relation!r}, {candidate}, case)"),
}


def reproducer(case: Case, candidate: str, prop: str = "agreement", details: dict[str, Any] | None = None) -> str:
    """A copy-paste snippet that re-runs this check."""
    family, _, relation = prop.partition(":")
    module, function, call = _CALLS.get(family, _CALLS["agreement"])
    imports = ["from fuzz_birnn import Case", f"from {module} import {function}"]
    if candidate == "fused":
        name = "fused"
        imports.append("from fuzz_birnn import fused")
    elif ":" in candidate:
        source, attr = candidate.split(":", 1)
        imports.append(f"from {source} import {attr.split('.')[0]}")
        name = attr
    else:
        name = "candidate"
    call = call.format(candidate=name, relation=relation, corruption=(details or {}).get("corruption"))
    lines = [*imports, f"case = Case.from_dict({json.dumps(case.to_dict())})", call]
    return "Reproduce with:\n" + "\n".join("    " + line for line in lines)


@dataclass(frozen=True)
class Evaluation:
    """What a case is checked against: the fused result, the float64 reference in canonical
    form (see :func:`~fuzz_birnn.compare.tensors_of`), and the tolerances measured on it."""

    fused_result: Any
    ref: dict[str, torch.Tensor]
    tolerances: Tolerances
    skipped: str | None


def evaluate(case: Case, built: Built | None = None) -> Evaluation:
    """Run the fused module and the references, and measure the tolerances for this case.

    ``built`` (``case.build()``, built once by the caller) is only read, never changed, so the
    caller may hand the same module and tensors to a candidate afterwards.
    """
    built = case.build() if built is None else built
    with backend(case.inputs), torch.no_grad():
        try:
            fused_result = built.module(built.input, built.hx)
        except Exception as error:  # a valid call that torch refuses is a finding about torch
            message = f"torch's fused module raised {type(error).__name__}: {error}".splitlines()[0]
            raise CheckFailure(Mismatch("result", message), case, "fused", "fused-vs-reference") from error
        on_cpu = _on_cpu(case, built)
        ref = tensors_of(_REFERENCE64.compute(*on_cpu), case)
        limit = torch.finfo(case.inputs.torch_dtype).max / 16
        for tensor_name, tensor in ref.items():
            if float(tensor.abs().max()) > limit:
                return Evaluation(fused_result, ref, Tolerances({}, {}),
                                  f"{tensor_name} exceeds the {case.inputs.dtype} range")
        ref32 = tensors_of(_REFERENCE32.compute(*on_cpu), case)
        native = None
        if case.inputs.dtype in ("bfloat16", "float16"):
            native = tensors_of(CellReference(case.inputs.torch_dtype).compute(*on_cpu), case)
        tolerances = Tolerances.measure(case, ref, ref32, native, tensors_of(fused_result, case))
    return Evaluation(fused_result, ref, tolerances, None)


def _torch_is_right(case: Case, evaluation: Evaluation) -> bool:
    try:
        check_fused(case, evaluation)
    except CheckFailure:
        return False
    return True


def _on_cpu(case: Case, built: Built) -> tuple[Any, ...]:
    """The built call itself, or an identical one on the CPU (MPS has no float64)."""
    if case.inputs.device == "cpu":
        return built.module, built.input, built.hx
    cpu = dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, device="cpu")).build()
    return cpu.module, cpu.input, cpu.hx


def _verdict(actual: Any, evaluation: Evaluation, allowed: dict[str, float], case: Case,
             label: str, prop: str) -> Outcome:
    mismatch = check_structure(actual, evaluation.fused_result, case)
    if mismatch is None:
        values = tensors_of(actual, case)
        mismatch = compare_values(values, evaluation.ref, allowed)
    if mismatch is not None:
        raise CheckFailure(mismatch, case, label, prop)
    errors = {k: max_abs_difference(values[k], evaluation.ref[k]) for k in evaluation.ref}
    return Outcome(case, errors, allowed)


def unsupported(refusal: Unsupported) -> str:
    """The "not compared" reason of a refusal."""
    return f"unsupported: {str(refusal).splitlines()[0] if str(refusal) else type(refusal).__name__}"


def candidate_label(candidate: Candidate) -> str:
    """``fused``, or ``module:attr`` where the candidate is importable under that name, else its repr."""
    if candidate is fused:
        return "fused"
    module = getattr(candidate, "__module__", None) or type(candidate).__module__
    qualname = getattr(candidate, "__qualname__", None)
    if qualname is None:  # an instance: find the module-level name bound to it
        import sys

        namespace = vars(sys.modules.get(module, object()))
        qualname = next((k for k, v in namespace.items() if v is candidate), None)
    return f"{module}:{qualname}" if qualname and "<" not in qualname else repr(candidate)
