"""Cross-backend: the fused module agrees with itself across the implementations torch offers here.

On the CPU: oneDNN on and off. With CUDA: the CPU against CUDA with cuDNN on and with it off.
With MPS: the CPU against MPS (not for float64, which MPS lacks). Every variant builds the same
values (they are drawn on the CPU and only then moved), and each must land within twice the
fused tolerance of the first variant.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch

from fuzz_birnn.core.case import Case, backend
from fuzz_birnn.core.compare import Mismatch, Tolerances, max_abs_difference, not_close, tensors_of
from fuzz_birnn.core.devices import available_devices
from fuzz_birnn.core.evaluation import evaluate
from fuzz_birnn.core.outcomes import CheckFailure, Outcome

__all__ = ["backend_variants", "check_backends"]


def backend_variants(case: Case) -> list[tuple[str, Case, bool]]:
    """``(label, case on that backend, cuDNN enabled)`` for every backend available here."""
    on = dataclasses.replace

    def at(device: str, onednn: bool = True) -> Case:
        return on(case, inputs=on(case.inputs, device=device, onednn=onednn))

    variants = [("cpu, oneDNN on", at("cpu", True), True), ("cpu, oneDNN off", at("cpu", False), True)]
    devices = available_devices()
    if "cuda" in devices:
        variants += [("cuda, cuDNN on", at("cuda"), True), ("cuda, cuDNN off", at("cuda"), False)]
    if "mps" in devices and case.inputs.dtype != "float64":
        variants.append(("mps", at("mps"), True))
    return variants


def check_backends(case: Case) -> Outcome:
    """Torch's fused module on every available backend against its result on the first."""
    __tracebackhide__ = True  # pytest shows the caller's line and the message
    evaluation = evaluate(dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, device="cpu")))
    if evaluation.skipped:
        return Outcome(case, {}, {}, evaluation.skipped)
    results = []
    for label, variant, cudnn in backend_variants(case):
        built = variant.build()
        with backend(variant.inputs), _cudnn(cudnn), torch.no_grad():
            try:
                results.append((label, tensors_of(built.module(built.input, built.hx), variant)))
            except Exception as error:
                message = f"torch's fused module on {label} raised {type(error).__name__}: {error}".splitlines()[0]
                raise CheckFailure(Mismatch("result", message), case, "fused", "backends") from error
    (first_label, first) = results[0]
    # each backend's difference from the first, once; judged under the bound and maybe the model
    differences = [(label, name, values, max_abs_difference(values, first[name]))
                   for label, tensors in results[1:] for name, values in tensors.items()]
    errors: dict[str, float] = {}
    for _, name, _, difference in differences:
        errors[name] = max(errors.get(name, 0.0), difference)

    def beyond(tolerances: Tolerances) -> Mismatch | None:
        """The first backend further from the first than twice torch's allowance."""
        allowed = _twice(tolerances)
        for label, name, values, difference in differences:
            if difference > allowed[name]:
                return not_close(name, values, first[name], allowed[name],
                                 f"{name} on {label} differs from {first_label}")
        return None

    mismatch, tolerances = evaluation.judge(beyond)
    allowed = _twice(tolerances)
    if mismatch is not None:
        raise CheckFailure(mismatch, case, "fused", "backends")
    return Outcome(case, errors, allowed)


@contextlib.contextmanager
def _cudnn(enabled: bool) -> Iterator[None]:
    with torch.backends.cudnn.flags(enabled=enabled):
        yield


def _twice(tolerances: Tolerances) -> dict[str, float]:
    return {k: 2 * v for k, v in tolerances.fused.items()}
