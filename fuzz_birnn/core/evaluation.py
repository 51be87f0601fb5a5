"""What a case is checked against: torch's fused result, the float64 and float32 references, and
the tolerances measured from them (:mod:`fuzz_birnn.core.compare` has the model)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from fuzz_birnn.core.case import Built, Case, backend
from fuzz_birnn.core.compare import Mismatch, Tolerances, tensors_of
from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.core.reference import CellReference

__all__ = ["Evaluation", "evaluate"]

_REFERENCE64 = CellReference(torch.float64)
_REFERENCE32 = CellReference(torch.float32)


@dataclass(frozen=True)
class Evaluation:
    """What a case is checked against: the fused result, the float64 reference per layer
    and direction (see :func:`~fuzz_birnn.core.compare.tensors_of`), and the tolerances measured on it."""

    fused_result: Any
    ref: dict[str, torch.Tensor]
    tolerances: Tolerances
    skipped: str | None


def evaluate(case: Case, built: Built | None = None) -> Evaluation:
    """Run the fused module and the references, and measure the tolerances for this case.

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
        ref32 = tensors_of(_REFERENCE32.compute(*on_cpu), case)
        native = None
        if case.inputs.dtype in ("bfloat16", "float16"):
            native = tensors_of(CellReference(case.inputs.torch_dtype).compute(*on_cpu), case)
        tolerances = Tolerances.measure(case, ref, ref32, native, tensors_of(fused_result, case))
    return Evaluation(fused_result, ref, tolerances, None)


def _on_cpu(case: Case, built: Built) -> tuple[Any, ...]:
    """The built call itself, or an identical one on the CPU (MPS has no float64)."""
    if case.inputs.device == "cpu":
        return built.module, built.input, built.hx
    cpu = dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, device="cpu")).build()
    return cpu.module, cpu.input, cpu.hx
