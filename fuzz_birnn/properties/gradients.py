"""Gradients: backward through a candidate equals backward through torch's fused module.

The loss is ``sum(output * g_out) + sum(h_n * g_h) (+ sum(c_n * g_c))`` with cotangents drawn
from the case's seed, so every element's gradient matters. Gradients are taken with respect to
the input (the packed data for packed input), ``h0``/``c0`` when given, and every parameter
(``weight_ih_l0``, ``weight_hh_l1_reverse``, ...). The tolerance model is the forward one
(:class:`fuzz_birnn.core.compare.Tolerances`) applied to each gradient: the float64 reference is
differentiated in float64 (the truth) and in float32 (the sensitivity), and natively in
bfloat16/float16.

One float32 sample reads the backward pass less well than the forward one: on a 3-layer case at
scale 4, torch's own float64 backward (and the decomposition's, which runs the same kernels) was
measured 190 relative ulps from the reference's, where the reference's float32 run was one ulp
off (saturated activations are one likely cause: where float32 rounds a tanh to exactly 1, its
derivative is exactly 0 and shows no error). So the sensitivity takes a second sample: torch's own
backward at *another* precision than the one checked (float32 for a float64 case, float64
otherwise), never the one under test, so it cannot excuse itself; an O(1) bug in torch's backward
at both precisions still fails the float64 cases. ``fuzz-birnn run`` checks gradients in float64
and float32 only: in bfloat16 a correct decomposition's backward error was measured at 14x that of
a plain bfloat16 implementation, which no per-case estimate here bounds soundly.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from fuzz_birnn.core.candidates import candidate_label, fused
from fuzz_birnn.core.case import Built, Case, backend
from fuzz_birnn.core.compare import Mismatch, Tolerances, max_abs_difference
from fuzz_birnn.core.outcomes import Candidate, CheckFailure, Outcome, Unsupported, unsupported
from fuzz_birnn.core.reference import CellReference
from fuzz_birnn.portable.calls import abs_error, per_direction, structure_problem

__all__ = ["WrongStructure", "check_gradients", "gradients_of"]

_PARAM = re.compile(r"^\w+_l(\d+)(_reverse)?$")


class WrongStructure(Exception):
    """A candidate's result whose structure is not torch's: ``(tensor, message)``."""


def gradients_of(candidate: Candidate, case: Case, dtype: torch.dtype | None = None,
                 device: str | None = None, *, check_structure: bool = False) -> dict[str, torch.Tensor]:
    """Gradients of the case's loss through ``candidate``, by leaf name, in float64 on the CPU.

    ``dtype``/``device`` rebuild the case's call in another precision or place first (the
    values are the case's own, already rounded, so float64 gives the exact gradients).
    ``check_structure`` first holds the result to the structure of torch's own result of the same
    call, raising :class:`WrongStructure`, before anything unpacks it.
    """
    built = case.build()
    module = built.module
    if dtype is not None or device is not None:
        module = copy.deepcopy(module).to(device=device or _weight(module).device, dtype=dtype)
        built = Built(module, _convert(built.input, dtype, device), _convert(built.hx, dtype, device))
    leaves: dict[str, torch.Tensor] = {name: getattr(module, name) for name in module._flat_weights_names}
    input: torch.Tensor | PackedSequence = built.input
    if isinstance(input, PackedSequence):
        data = input.data.detach().requires_grad_()
        input, leaves["input"] = input._replace(data=data), data
    else:
        input = input.detach().requires_grad_()
        leaves["input"] = input
    hx = built.hx
    if hx is not None:
        if isinstance(hx, tuple):
            hx = (hx[0].detach().requires_grad_(), hx[1].detach().requires_grad_())
            leaves["h0"], leaves["c0"] = hx
        else:
            hx = hx.detach().requires_grad_()
            leaves["h0"] = hx
    with torch.enable_grad():
        result = candidate(module, input, hx)
        if check_structure:
            with torch.no_grad():
                expected = module(input, hx)
            try:
                problem = structure_problem(result, expected)
            except Exception as error:  # reading the result raised (an object whose shape raises)
                problem = "result", f"reading the result raised {type(error).__name__}: {error}".splitlines()[0]
            if problem is not None:
                raise WrongStructure(*problem)
        tensors = per_direction(result, num_layers=module.num_layers, bidirectional=module.bidirectional,
                                    batch_first=module.batch_first, unbatched=case.inputs.unbatched)
        generator = torch.Generator().manual_seed(case.inputs.seed + 1)
        loss = torch.stack([(t * (torch.rand(t.shape, generator=generator, dtype=torch.float64) * 2 - 1)
                             .to(t.dtype).to(t.device)).sum() for _, t in sorted(tensors.items())]).sum()
        names = list(leaves)
        grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
    return {name: (torch.zeros_like(leaves[name]) if g is None else g).detach().to("cpu", torch.float64)
            for name, g in zip(names, grads, strict=True)}


def check_gradients(candidate: Candidate, case: Case, *, name: str | None = None) -> Outcome:
    """Gradients through ``candidate`` against the float64 truth, under the tolerance model;
    with ``candidate=fused``, torch's own backward is what is checked."""
    __tracebackhide__ = True  # pytest shows the caller's line and the message
    label = name or candidate_label(candidate)
    reference64, reference32 = CellReference(torch.float64), CellReference(torch.float32)
    cpu = "cpu" if case.inputs.device != "cpu" else None
    with backend(case.inputs):
        truth = gradients_of(reference64, case, dtype=torch.float64, device=cpu)
        limit = torch.finfo(case.inputs.torch_dtype).max / 16
        if any(float(g.abs().max()) > limit for g in truth.values() if g.numel()):
            return Outcome(case, {}, {}, f"a gradient exceeds the {case.inputs.dtype} range")
        sensitivity = gradients_of(reference32, case, dtype=torch.float32, device=cpu)
        native = None
        if case.inputs.dtype in ("bfloat16", "float16"):
            native = gradients_of(CellReference(case.inputs.torch_dtype), case, device=cpu)
        torch_grads = gradients_of(fused, case)
        other = torch.float32 if case.inputs.dtype == "float64" else torch.float64
        torch_other = gradients_of(fused, case, dtype=other, device=cpu)
        second = {leaf: max_abs_difference(torch_other[leaf], truth[leaf]) / torch.finfo(other).eps
                  for leaf in truth}
        tolerances = Tolerances.measure(case, truth, sensitivity, native, torch_grads, second)
        allowed = tolerances.fused if candidate is fused else tolerances.candidate
        if candidate is fused:
            actual = torch_grads
        else:
            try:
                actual = gradients_of(candidate, case, check_structure=True)
            except Unsupported as refusal:
                return Outcome(case, {}, {}, unsupported(refusal))
            except WrongStructure as wrong:
                tensor, message = wrong.args
                raise CheckFailure(Mismatch(tensor, message), case, label, "gradients") from None
            except Exception as error:
                message = f"backward through the candidate raised {type(error).__name__}: {error}".splitlines()[0]
                raise CheckFailure(Mismatch("result", message), case, label, "gradients") from error
    errors = {}
    for leaf in sorted(truth, key=_leaf_order):
        worst = errors[leaf] = max_abs_difference(actual[leaf], truth[leaf])
        if worst > allowed[leaf]:
            layer, direction = _where(leaf)
            off = int((abs_error(actual[leaf], truth[leaf]) > allowed[leaf]).sum())
            message = (f"gradient of {leaf} differs: {off} of {truth[leaf].numel()} elements off the tolerance "
                       f"{allowed[leaf]:.3g}, max abs error {worst:.3g}")
            raise CheckFailure(Mismatch(f"{leaf}.grad", message, layer, direction, None, None, worst,
                                        allowed[leaf]), case, label, "gradients")
    return Outcome(case, errors, allowed)


def _leaf_order(name: str) -> tuple[int, int, str]:
    """Inputs and states first, then parameters layer by layer, forward before reverse."""
    layer, direction = _where(name)
    return (-1 if layer is None else layer, direction == "reverse", name)


def _where(name: str) -> tuple[int | None, str | None]:
    match = _PARAM.match(name)
    if not match:
        return None, None
    return int(match.group(1)), "reverse" if match.group(2) else "forward"


def _convert(value: Any, dtype: torch.dtype | None, device: str | None) -> Any:
    if value is None:
        return None
    if isinstance(value, PackedSequence):  # before tuple: a PackedSequence is a namedtuple
        return value._replace(data=value.data.to(device=device or value.data.device, dtype=dtype))
    if isinstance(value, tuple):
        return tuple(_convert(v, dtype, device) for v in value)
    return value.to(device=device or value.device, dtype=dtype)


def _weight(module: nn.RNNBase) -> torch.Tensor:
    """The module's first weight, which says where (and in what dtype) it lives."""
    weight = module.weight_ih_l0
    assert isinstance(weight, torch.Tensor)
    return weight
