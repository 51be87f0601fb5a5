"""What a case is checked against: torch's fused result, the float64 and float32 references, and
the tolerances measured from them (:mod:`fuzz_birnn.core.compare` has the model)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from fuzz_birnn.core.case import Built, Case, backend
from fuzz_birnn.core.compare import Mismatch, Tolerances, tensors_of
from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.core.reference import CellReference

__all__ = ["Evaluation", "computes_in", "evaluate", "for_candidate"]

T = TypeVar("T")

_REFERENCE64 = CellReference(torch.float64)
_REFERENCE32 = CellReference(torch.float32)


@dataclass
class Evaluation:
    """What a case is checked against: the fused result, the float64 reference per layer
    and direction (see :func:`~fuzz_birnn.core.compare.tensors_of`), and the tolerances measured on it.

    The measured tolerances need two more reference runs (float32, and the case's own dtype for
    bfloat16 and float16), which cost as much as the float64 one. Most results are well inside a
    bound that needs neither, so :meth:`judge` compares under :attr:`bound` first and measures
    only for a result beyond it; :attr:`tolerances` measures on first use. A passing outcome's
    ``allowed`` is then the bound, so its error/allowance (the search's ``target`` score) reads
    high on ill-conditioned cases, steering the search towards them.
    """

    fused_result: Any
    ref: dict[str, torch.Tensor]
    #: no larger than :attr:`tolerances` anywhere (:meth:`Tolerances.measure` without ``ref32``)
    bound: Tolerances
    skipped: str | None
    _measure: Callable[[], Tolerances] | None = field(default=None, repr=False)
    _measured: Tolerances | None = field(default=None, repr=False)

    @property
    def tolerances(self) -> Tolerances:
        """The measured tolerance model of :mod:`fuzz_birnn.core.compare` (measured once, on first use)."""
        if self._measured is None:
            self._measured = self.bound if self._measure is None else self._measure()
        return self._measured

    @property
    def measured(self) -> bool:
        """Whether the extra reference runs have been made (for benchmarks and tests)."""
        return self._measured is not None and self._measure is not None

    def judge(self, compare: Callable[[Tolerances], T | None]) -> tuple[T | None, Tolerances]:
        """``compare(tolerances)``'s verdict (``None``: within them) under :attr:`bound`, and only if
        that fails, under the measured :attr:`tolerances`; with the tolerances it was decided under.
        ``compare`` must never fail under a larger allowance where it passed under a smaller one."""
        verdict = compare(self.bound)
        if verdict is None or self._measure is None:
            return verdict, self.bound
        return compare(self.tolerances), self.tolerances


def evaluate(case: Case, built: Built | None = None) -> Evaluation:
    """Run the fused module and the float64 reference (the float32 and native ones wait until a
    result falls outside :attr:`Evaluation.bound`).

    ``built`` (``case.build()``, built once by the caller) is only read, never changed, so the
    caller may hand the same module and tensors to a candidate afterwards.
    """
    __tracebackhide__ = True  # pytest shows the caller's line and the message
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
        fused = tensors_of(fused_result, case)

    def measure() -> Tolerances:
        # from a build of its own: by now a candidate may have written into the caller's tensors
        fresh = _on_cpu(case, case.build())
        with backend(case.inputs), torch.no_grad():
            ref32 = tensors_of(_REFERENCE32.compute(*fresh), case)
            native = None
            if case.inputs.dtype in ("bfloat16", "float16"):
                native = tensors_of(CellReference(case.inputs.torch_dtype).compute(*fresh), case)
            return Tolerances.measure(case, ref, ref32, native, fused)

    return Evaluation(fused_result, ref, Tolerances.measure(case, ref, None, None, fused), None, measure)


def _on_cpu(case: Case, built: Built) -> tuple[Any, ...]:
    """The built call itself, or an identical one on the CPU (MPS has no float64)."""
    if case.inputs.device == "cpu":
        return built.module, built.input, built.hx
    cpu = dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, device="cpu")).build()
    return cpu.module, cpu.input, cpu.hx


def computes_in(candidate: Any, dtype: str) -> str | None:
    """The lower precision ``candidate`` computes ``dtype`` cases in by design, as it declares it:
    ``candidate.computes_in = {"float64": "float32"}`` (a runtime with no float64 kernels, a
    plugin that infers float32 models in bfloat16 by default). ``None``: the case's own."""
    declared = getattr(candidate, "computes_in", None)
    lower = declared.get(dtype) if isinstance(declared, dict) else None
    known = ("float64", "float32", "bfloat16", "float16")
    return lower if lower in known and lower != dtype else None


def for_candidate(evaluation: Evaluation, case: Case, candidate: Any) -> tuple[Evaluation, str | None]:
    """``evaluation`` with the candidate held to the tolerance of the precision it declares it
    computes the case in (:func:`computes_in`), and that precision; else ``evaluation`` itself.
    The lower precision's tolerance is the model measured on the case as if it were in that
    dtype, with the reference computed in it as its own error (as under autocast); torch's own
    allowance is not changed."""
    lower = computes_in(candidate, case.inputs.dtype)
    if lower is None or evaluation.skipped:
        return evaluation, None
    fresh = _on_cpu(case, case.build())
    with backend(case.inputs), torch.no_grad():
        ref32 = tensors_of(_REFERENCE32.compute(*fresh), case)
        native = tensors_of(CellReference(getattr(torch, lower)).compute(*fresh), case)
    at_lower = dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, dtype=lower))
    own, low = evaluation.tolerances, Tolerances.measure(at_lower, evaluation.ref, ref32, native, evaluation.ref)
    widened = Tolerances(own.fused, {name: max(allowed, low.fused[name]) for name, allowed in own.candidate.items()})
    return dataclasses.replace(evaluation, bound=widened, _measure=None, _measured=widened), lower
