"""Comparing a result with the fused module's: structure first, then values under a tolerance model.

Tolerance model
---------------
Let ``ref`` be the float64 reference computed from the case's own (already rounded) parameters
and inputs, so it is the exact answer up to float64 rounding. For each returned tensor
(``output``, ``h_n``, ``c_n``) separately:

* ``scale = max(1, max|ref|)``; the *sensitivity* ``kappa = max|ref32 - ref| / eps(float32)``,
  where ``ref32`` is the same reference computed in float32. Forward error of a straightforward
  implementation grows linearly with the unit roundoff, so ``eps(d) * max(kappa, scale)`` is what
  a plain implementation in dtype ``d`` is expected to get wrong on *this* case; the reference's
  own float64 error, ``eps(float64) * max(kappa, scale)``, is added, since at float64 it is as
  large as the error being measured.
* For bfloat16 and float16 that linear estimate is joined (``max``) by the measured error of the
  reference run natively in that dtype, because at 8 or 11 bits rounding is no longer small.
* ``allowed = RATIO * expected + ACTIVATION_ULPS * eps(c) * max(kappa, scale)``, where ``c`` is
  the precision torch's backends compute in (float64 for float64, float32 for everything else).
  ``RATIO`` absorbs the spread between two samples of rounding error; the second term allows
  activation functions accurate to a few dozen ulps of float32 rather than half of one (oneDNN
  computes tanh and sigmoid with approximations). Torch's fused module is held to that.
* A candidate is held to ``max(allowed, RATIO * max|fused - ref|)``: it may be as inexact as
  torch itself is on the case, so a candidate that copies torch's arithmetic, or computes in
  float64 and casts back, passes at every dtype. Only where torch is within its own allowance,
  though: where torch is wrong, the candidate is held to ``allowed`` (a candidate sharing torch's
  bug fails), and :func:`~fuzz_birnn.core.check.check` reports torch's fault as a ``fused-vs-reference``
  failure of its own.

``benchmarks/calibrate_tolerance.py`` prints how much of the allowance correct implementations use.

A layout bug moves values by O(1) relative to ``scale``, far above ``RATIO * eps(d) * scale``
at every dtype but for cases whose values are all tiny.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fuzz_birnn.core.case import Case
from fuzz_birnn.portable.calls import abs_error, max_abs_difference, per_direction, structure_problem

__all__ = ["ACTIVATION_ULPS", "RATIO", "Mismatch", "Tolerances", "check_structure", "compare_values",
           "max_abs_difference", "not_close", "tensors_of"]

#: How many times the expected rounding error a correct implementation may make.
RATIO = 8.0
#: How many ulps of its compute precision an activation function may be off by.
ACTIVATION_ULPS = 64.0
#: A second measurement of a case's sensitivity widens its allowance at most this many times (the
#: gradients' second sample was about two orders of magnitude above the first on a correct 3-layer case).
SECOND_SAMPLE_CAP = 1000.0

TENSOR_NAMES = ("output", "h_n", "c_n")


@dataclass(frozen=True)
class Mismatch:
    """Where and how a result differs. ``tensor`` names what is wrong: ``output``, ``h_n``, ``c_n``,
    a gradient (``weight_ih_l0.grad``, ``input.grad``), or ``result`` (the call as a whole: it
    raised, or returned the wrong structure)."""

    tensor: str
    message: str
    layer: int | None = None
    direction: str | None = None
    time_step: int | None = None
    batch_index: int | None = None
    max_abs_error: float | None = None
    tolerance: float | None = None
    #: For wrong values: which tensors, directions and layers are wrong anywhere in the result
    #: (not only at the first divergence), e.g. ``output and final state, both directions, from a
    #: later layer``. Part of the fault's signature (:mod:`fuzz_birnn.campaign.signature`).
    pattern: str | None = None


@dataclass(frozen=True)
class Tolerances:
    """Per-tensor allowed absolute error for torch's fused module and for candidates."""

    fused: dict[str, float]
    candidate: dict[str, float]

    @classmethod
    def measure(cls, case: Case, ref: dict[str, torch.Tensor], ref32: dict[str, torch.Tensor] | None,
                native: dict[str, torch.Tensor] | None, fused: dict[str, torch.Tensor],
                sensitivity: dict[str, float] | None = None) -> Tolerances:
        """Build the model from float64 tensors per layer and direction (see :func:`tensors_of`);
        ``sensitivity`` adds other measurements of ``kappa`` (in units of the working precision's
        eps), taken the larger, but never more than :data:`SECOND_SAMPLE_CAP` times the first
        measurement: a second sample may widen the allowance for an ill-read case, not excuse an
        O(1) error in whatever produced it.

        Without ``ref32`` (and ``native``), ``kappa`` is left out (``max(kappa, scale)`` becomes
        ``scale``): the result is a *bound*, no larger than the measured model for any tensor, fused
        or candidate, so a result within the bound is within the model; only a result beyond it
        needs the extra reference runs (:meth:`fuzz_birnn.core.evaluation.Evaluation.judge`)."""
        dtype = case.inputs.torch_dtype
        eps = torch.finfo(dtype).eps
        eps32 = torch.finfo(torch.float32).eps
        eps64 = torch.finfo(torch.float64).eps
        eps_compute = eps64 if dtype == torch.float64 else eps32
        allowed_fused, allowed_candidate = {}, {}
        for name, exact in ref.items():
            kappa = 0.0 if ref32 is None else _max_abs(ref32[name] - exact) / eps32
            first = max(kappa, 1.0, _max_abs(exact))  # max(kappa, scale)
            second = min((sensitivity or {}).get(name, 0.0), SECOND_SAMPLE_CAP * first)
            linear = max(first, second)
            expected = (eps + eps64) * linear
            if native is not None:
                expected = max(expected, _max_abs(native[name] - exact))
            allowed_fused[name] = RATIO * expected + ACTIVATION_ULPS * eps_compute * linear
            torch_error = _max_abs(fused[name] - exact)
            # torch's own error widens a candidate's allowance only where torch is right itself:
            # a candidate that shares torch's bug must not pass because torch has it
            allowed_candidate[name] = (max(allowed_fused[name], RATIO * torch_error)
                                       if torch_error <= allowed_fused[name] else allowed_fused[name])
        # The last layer's h_n is the output at one step: one number cannot be within its allowance
        # in the output and beyond it in h_n, whose few elements sample the rounding far less (a
        # float16 stack of torch's own cells was 4% past h_n's allowance and 8x within output's).
        # An allowance is one per tensor, so every layer's h_n gets it: the last layer's output has
        # been through every layer, so no state below it is more sensitive.
        if "h_n" in ref and "output" in ref:
            for allowed in (allowed_fused, allowed_candidate):
                allowed["h_n"] = max(allowed["h_n"], allowed["output"])
        return cls(allowed_fused, allowed_candidate)


def tensors_of(result: object, case: Case) -> dict[str, torch.Tensor]:
    """:func:`~fuzz_birnn.portable.calls.per_direction` of a result of ``case``, detached, in float64 on the CPU."""
    c = case.config
    tensors = per_direction(result, num_layers=c.num_layers, bidirectional=c.bidirectional,
                            batch_first=c.batch_first, unbatched=case.inputs.unbatched)
    return {name: t.detach().to("cpu", torch.float64) for name, t in tensors.items()}


def check_structure(actual: object, expected: tuple, case: Case) -> Mismatch | None:
    """Types, shapes, dtypes and devices of ``actual`` against the fused module's ``expected``
    (:func:`~fuzz_birnn.portable.calls.structure_problem`, which a report's ``repro.py`` runs too)."""
    problem = structure_problem(actual, expected)
    return None if problem is None else Mismatch(*problem)


def compare_values(actual: dict[str, torch.Tensor], ref: dict[str, torch.Tensor],
                   allowed: dict[str, float]) -> Mismatch | None:
    """The earliest fault: lowest layer, then forward before reverse, then first time step."""
    faults = []
    for name in TENSOR_NAMES:
        if name not in ref:
            continue
        error = abs_error(actual[name], ref[name])
        bad = error > allowed[name]
        if not bad.any():
            continue
        if name == "output":  # (T, B, D, F): only the last layer's output is visible
            steps, batches, directions = bad.any(dim=3).nonzero(as_tuple=True)
            layers = torch.full_like(steps, ref["h_n"].shape[0] - 1)
        else:  # (L, D, B, F)
            layers, directions, batches = bad.any(dim=3).nonzero(as_tuple=True)
            steps = None
        for k in range(len(layers)):
            direction = int(directions[k])
            # In processing order the reverse direction meets its last time step first.
            step = None if steps is None else int(steps[k]) * (-1 if direction else 1)
            rank = (int(layers[k]), direction, name != "output", step or 0, int(batches[k]))
            faults.append((rank, name, step, error, allowed[name]))
    if not faults:
        return None
    pattern = _pattern(faults)
    (layer, direction, _, _, batch), name, step, error, tolerance = min(faults, key=lambda f: f[0])
    time_step = None if step is None else abs(step)
    where = f"layer {layer} ({'reverse' if direction else 'forward'} direction)"
    if time_step is not None:
        where += f", time step {time_step}"
    worst = float(error.max())
    there = error[time_step, batch, direction] if name == "output" else error[layer, direction, batch]
    off = int((error > tolerance).sum())
    message = (f"{name} differs first at {where}, batch index {batch}: abs error {float(there.max()):.3g} there; "
               f"{off} of {error.numel()} elements beyond the tolerance {tolerance:.3g}, max abs error {worst:.3g}")
    return Mismatch(name, message, layer, "reverse" if direction else "forward", time_step, batch,
                    worst, tolerance, pattern)


def not_close(tensor: str, actual: torch.Tensor, expected: torch.Tensor, tolerance: float, what: str) -> Mismatch:
    """The one-line :class:`Mismatch` of two same-shaped results of one case that differ by more than
    ``tolerance`` (NaN counting as infinitely far): ``what`` differs, then how in
    ``torch.testing.assert_close``'s own words (how many elements, the greatest difference and where).

    The caller decides with :func:`max_abs_difference`, which it needs for the outcome anyway;
    ``assert_close`` applies the same rule (``|a - b| <= atol``, ``rtol=0``, NaN never close) and
    costs some 30 times as much, so it runs only to word a failure."""
    worst = max_abs_difference(actual, expected)
    try:
        torch.testing.assert_close(actual, expected, rtol=0.0, atol=tolerance, check_device=False,
                                   msg=lambda torch_says: f"{what}: {_one_line(torch_says)}")
    except AssertionError as error:
        return Mismatch(tensor, str(error), max_abs_error=worst, tolerance=tolerance)
    return Mismatch(tensor, f"{what}: max abs difference {worst:.3g} > tolerance {tolerance:.3g}",
                    max_abs_error=worst, tolerance=tolerance)


def _one_line(message: str) -> str:
    """assert_close's report on one line: its counts and greatest differences, or all of it."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    wanted = [line for line in lines if line.startswith(("Mismatched elements", "Greatest absolute"))]
    return "; ".join(wanted or lines)


def _pattern(faults: list) -> str:
    """Where a result is wrong, in terms that stay the same for one fault across stack sizes,
    modes and value scales: ``final state wrong`` when any ``h_n``/``c_n`` is (where in the stack
    it starts, and in which directions, moves with the case: a saturated tanh hides a wrong
    ``h0``, a one-layer stack has its last layer first), else ``output wrong, final state right``
    with the directions of the output that are wrong."""
    if any(name != "output" for _, name, *_ in faults):
        return "final state wrong"
    directions = {rank[1] for rank, *_ in faults}
    sides = "both directions" if len(directions) == 2 else f"{'reverse' if 1 in directions else 'forward'} direction"
    return f"output wrong, final state right, {sides}"


def _max_abs(tensor: torch.Tensor) -> float:
    return float(tensor.abs().max()) if tensor.numel() else 0.0
