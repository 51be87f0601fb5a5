"""Autocast: torch's fused module, or a candidate, called inside ``torch.autocast``, as
mixed-precision training and serving call it (``torch.autocast("cpu", dtype=torch.bfloat16)``; on
CUDA, float16).

For a float32 case, the property makes the call under autocast with oneDNN on and off (on the
CPU) and holds each to what a user may rely on:

* a valid call does not raise (one that does is a finding, its message naming the setting);
* each returned tensor is in the input's dtype or the autocast dtype (torch's documentation lets
  an op downstream of an autocast op run in the lower precision; an LSTM with ``proj_size``
  returns its projected ``output`` and ``h_n`` in bfloat16 and ``c_n`` in float32), and in the
  same dtype whether oneDNN is on or off;
* the values agree with the float64 reference under the tolerance model of
  :mod:`fuzz_birnn.core.compare` for the autocast dtype: its unit roundoff, joined by the
  measured error of the reference computed natively in that dtype.

Torch's refusals that are known upstream are :data:`KNOWN_TORCH_ISSUES`, unless ``strict``: a
case whose own oneDNN setting meets one is "not compared", saying which; where only the other
setting meets it, the case's own is still checked (without the dtype comparison across settings).
A dtype that depends on oneDNN by torch's own autocast op list is :data:`KNOWN_DTYPE_DIFFERENCES`,
unless ``strict``: both settings' values are still held to the reference, each in its own dtype.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch
from torch.nn.utils.rnn import PackedSequence

from fuzz_birnn.core.case import Case, backend
from fuzz_birnn.core.compare import Mismatch, Tolerances, compare_values, tensors_of
from fuzz_birnn.core.outcomes import Candidate, CheckFailure, Outcome, Unsupported
from fuzz_birnn.core.reference import CellReference

__all__ = ["AUTOCAST_DTYPES", "KNOWN_DTYPE_DIFFERENCES", "KNOWN_TORCH_ISSUES", "check_autocast"]

#: The dtype autocast computes in, by device type.
AUTOCAST_DTYPES = {"cpu": torch.bfloat16, "cuda": torch.float16}

#: (mode, oneDNN on, what torch raises) -> the known issue, reported as "not compared" until fixed.
KNOWN_TORCH_ISSUES: dict[tuple[str, bool, str], str] = {
    ("LSTM", True, "could not create a primitive descriptor"):
        "nn.LSTM under CPU autocast with oneDNN on raises 'could not create a primitive descriptor' where "
        "oneDNN has no bfloat16 LSTM (pytorch/pytorch#88136, intel/torch-xpu-ops#4066)",
}

#: (device, mode) -> why the returned dtypes differ with oneDNN on and off, by torch's design.
KNOWN_DTYPE_DIFFERENCES: dict[tuple[str, str], str] = {
    ("cpu", "LSTM"):
        "torch's CPU autocast list casts oneDNN's LSTM layer (aten::mkldnn_rnn_layer, registered in "
        "aten/src/ATen/autocast_mode.cpp) to bfloat16 and not the native LSTM, so where oneDNN has a "
        "bfloat16 LSTM nn.LSTM returns bfloat16 with oneDNN on and float32 with it off",
}


def check_autocast(case: Case, candidate: Candidate | None = None, label: str = "fused", *,
                   strict: bool = False) -> Outcome:
    """``candidate`` (``None``: torch's fused module) under ``torch.autocast`` on ``case`` (a float32
    case), with oneDNN on and off; a candidate's ``Unsupported`` is "not compared"."""
    __tracebackhide__ = True  # pytest shows the caller's line and the message
    device = case.inputs.device
    if device not in AUTOCAST_DTYPES:
        return Outcome(case, {}, {}, f"autocast is not checked on {device}")
    dtype = AUTOCAST_DTYPES[device]
    low = str(dtype).removeprefix("torch.")
    settings = [case.inputs.onednn, not case.inputs.onednn] if device == "cpu" else [case.inputs.onednn]
    built = case.build()
    who = "torch's fused module" if candidate is None or label == "fused" else f"candidate {label}"
    results = {}
    for onednn in settings:
        setting = dataclasses.replace(case.inputs, onednn=onednn)
        with backend(setting), torch.no_grad(), _autocast(device, dtype):
            try:
                results[onednn] = (built.module(built.input, built.hx) if candidate is None
                                   else candidate(built.module, built.input, built.hx))
            except Unsupported as refusal:
                return Outcome(case, {}, {}, f"unsupported: {refusal}")
            except Exception as error:
                known = next((issue for (mode, on, says), issue in KNOWN_TORCH_ISSUES.items()
                              if mode == case.config.mode and on == onednn and says in str(error)), None)
                if known is not None and not strict:
                    if onednn == case.inputs.onednn:  # the case's own setting: not compared, saying why
                        return Outcome(case, {}, {}, f"known torch issue: {known}")
                    continue  # the other setting: the case's own is still checked
                message = (f"under torch.autocast({device!r}, {low}) with oneDNN {_on(onednn)}, {who} "
                           f"raised {type(error).__name__}: {error}").splitlines()[0]
                raise CheckFailure(Mismatch("result", message), case, label, "autocast") from error
    for onednn, result in results.items():
        if not _is_result(result):
            raise CheckFailure(Mismatch("result", f"under torch.autocast({device!r}, {low}) with oneDNN {_on(onednn)}, "
                                                  f"{who} returned {type(result).__name__}, not (output, hidden)"),
                               case, label, "autocast")
    kinds = {onednn: _dtypes(result) for onednn, result in results.items()}
    for onednn, found in kinds.items():
        for name, kind in found.items():
            if kind not in (case.inputs.torch_dtype, dtype):
                raise CheckFailure(Mismatch(name, f"under torch.autocast({device!r}, {low}) with oneDNN "
                                                  f"{_on(onednn)}, {who} returned {name} in "
                                                  f"{_name(kind)}, neither {case.inputs.dtype} nor {low}"),
                                   case, label, "autocast")
    if len(kinds) > 1 and kinds[True] != kinds[False] and not (
            not strict and _by_design(device, case.config.mode, kinds, case.inputs.torch_dtype, dtype)):
        name = next(n for n in kinds[True] if kinds[True][n] != kinds[False][n])
        raise CheckFailure(Mismatch(name, f"under torch.autocast({device!r}, {low}) the dtype of {name} depends "
                                          f"on oneDNN: {_name(kinds[True][name])} with it on, "
                                          f"{_name(kinds[False][name])} with it off"), case, label, "autocast")
    with backend(case.inputs), torch.no_grad():
        ref = tensors_of(CellReference(torch.float64).compute(built.module, built.input, built.hx), case)
        ref32 = tensors_of(CellReference(torch.float32).compute(built.module, built.input, built.hx), case)
        native = tensors_of(CellReference(dtype).compute(built.module, built.input, built.hx), case)
    at_low = dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, dtype=low))
    # only the fused allowance is used, which rests on the references alone
    tolerances = Tolerances.measure(at_low, ref, ref32, native, ref)
    errors: dict[str, float] = {}
    for onednn, result in results.items():
        try:
            actual = tensors_of(result, case)
        except (RuntimeError, ValueError, IndexError, TypeError) as error:  # shapes that do not fit the case
            raise CheckFailure(Mismatch("result", f"under torch.autocast({device!r}, {low}) with oneDNN "
                                                  f"{_on(onednn)}, {who} returned tensors of the wrong shape "
                                                  f"({type(error).__name__}: {error})".splitlines()[0]),
                               case, label, "autocast") from error
        wrong = next((name for name in ref if name not in actual or actual[name].shape != ref[name].shape), None)
        if wrong is not None:
            raise CheckFailure(Mismatch(wrong, f"under torch.autocast({device!r}, {low}) with oneDNN {_on(onednn)}, "
                                               f"{who} returned {wrong} of the wrong shape"), case, label, "autocast")
        mismatch = compare_values(actual, ref, tolerances.fused)
        if mismatch is not None:
            where = f"under torch.autocast({device!r}, {low}) with oneDNN {_on(onednn)}: "
            raise CheckFailure(dataclasses.replace(mismatch, message=where + mismatch.message), case, label,
                               "autocast", actual=actual, allowed=tolerances.fused, reference=ref)
        for name, tensor in actual.items():
            errors[name] = max(errors.get(name, 0.0), float((tensor - ref[name]).abs().max()))
    return Outcome(case, errors, tolerances.fused)


@contextlib.contextmanager
def _autocast(device: str, dtype: torch.dtype) -> Iterator[None]:
    with torch.autocast(device, dtype=dtype):
        yield


def _by_design(device: str, mode: str, kinds: dict[bool, dict[str, torch.dtype]], own: torch.dtype,
               low: torch.dtype) -> bool:
    """Whether the dtypes differ exactly as :data:`KNOWN_DTYPE_DIFFERENCES` says torch's do: in the
    autocast dtype with oneDNN on, in the input's with it off, and only where oneDNN computes in it."""
    differing = [name for name in kinds[True] if kinds[True][name] != kinds[False].get(name)]
    return ((device, mode) in KNOWN_DTYPE_DIFFERENCES and torch.ops.mkldnn._is_mkldnn_bf16_supported()
            and all(kinds[True][name] == low and kinds[False].get(name) == own for name in differing))


def _is_result(result: object) -> bool:
    """Whether ``result`` has the form of ``nn.RNNBase``'s: ``(output, h_n)`` or ``(output, (h_n, c_n))``."""
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.Tensor | PackedSequence)):
        return False
    hidden = result[1]
    return isinstance(hidden, torch.Tensor) or (
        isinstance(hidden, tuple) and len(hidden) == 2 and all(isinstance(h, torch.Tensor) for h in hidden))


def _dtypes(result: object) -> dict[str, torch.dtype]:
    """The dtype of each tensor a call returned, by name (``output``, ``h_n``, ``c_n``)."""
    assert isinstance(result, tuple) and len(result) == 2, "nn.RNNBase returns (output, hidden)"
    output, hidden = result
    states = list(hidden) if isinstance(hidden, tuple) else [hidden]
    tensors = [output.data if isinstance(output, PackedSequence) else output, *states]
    return {name: tensor.dtype for name, tensor in zip(("output", "h_n", "c_n"), tensors, strict=False)}


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _on(onednn: bool) -> str:
    return "on" if onednn else "off"
