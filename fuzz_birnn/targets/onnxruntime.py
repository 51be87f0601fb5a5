"""``--candidate onnxruntime`` and ``onnxruntime-torchscript``: the module exported to ONNX (by the
installed torch's default exporter, or by its TorchScript-based one) and run on ONNX Runtime's CPU
execution provider at its default settings, as users deploy it.

Outputs come back with the dtype and shape ONNX Runtime produced (never cast or reshaped into
agreement); ``h_n`` and ``c_n`` follow the exported graph's output order. Refusals translated to
:class:`~fuzz_birnn.Unsupported`: the exporters' (see :mod:`.onnx_export`), ONNX Runtime's
``NOT_IMPLEMENTED`` (no kernel for an operator or dtype), and a kernel's own "X operator does not
support <dtype> yet". An invalid model (``INVALID_GRAPH``, a shape-inference failure) is the
exporter's finding, never a refusal. bfloat16 tensors cross into ONNX Runtime as their bits
(``OrtValue`` with the ONNX bfloat16 type), since NumPy has no bfloat16.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from fuzz_birnn.core.check import Unsupported
from fuzz_birnn.targets.adapter import CASES_PER_SHAPE, ExportCache, candidate_from
from fuzz_birnn.targets.onnx_export import input_names, onnx_model, runs_deployed, shared_inputs, shared_model

__all__ = ["onnxruntime", "onnxruntime_torchscript", "run_onnx"]


def run_onnx(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any, *, exporter: str) -> Any:
    """``module(x, hx)`` exported by ``exporter`` and run on ONNX Runtime, in the form the case's
    weights choose (:mod:`.onnx_export`: deployed, or shared with the weights as inputs)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    names, tensors = input_names(hx), _flat(x, hx)
    if runs_deployed(module):
        model = onnx_model(module, x, hx, exporter=exporter)
    else:
        model, names = shared_model(module, x, hx, exporter=exporter)
        tensors = shared_inputs(module, x, hx)
    try:
        session = _SESSIONS.get(model, lambda: _session(model))
        feeds = {name: _ort_value(t) for name, t in zip(names, tensors, strict=True)}
        outputs = [o.name for o in session.get_outputs()]
        results = session.run_with_ort_values(outputs, feeds)
    except ort_state.NotImplemented as refusal:
        raise Unsupported(f"onnxruntime: {_said(refusal)}") from refusal
    except ort_state.RuntimeException as error:
        no_kernel = _NO_KERNEL.search(_said(error))
        if no_kernel:
            raise Unsupported(f"onnxruntime: {no_kernel.group(0)}") from error
        raise
    returned = [_tensor(value) for value in results]
    return returned[0], (returned[1] if len(returned) == 2 else tuple(returned[1:]))


#: Sessions of the models in use: a shared model's session serves case after case.
_SESSIONS = ExportCache()


def _session(model: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


#: A kernel's own refusal of a dtype: "GRU operator does not support double yet".
_NO_KERNEL = re.compile(r"\w+ operator does not support \w+( yet)?")


def _said(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _flat(x: torch.Tensor, hx: Any) -> list[torch.Tensor]:
    return [x] if hx is None else [x, *hx] if isinstance(hx, tuple) else [x, hx]


def _ort_value(tensor: torch.Tensor) -> Any:
    import onnxruntime as ort

    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(tensor.view(torch.int16).numpy(), 16)
    return ort.OrtValue.ortvalue_from_numpy(tensor.numpy())


def _tensor(value: Any) -> torch.Tensor:
    if value.data_type() == "tensor(bfloat16)":
        raw = value.numpy()
        return torch.from_numpy(raw.view("int16").copy()).view(torch.bfloat16)
    return torch.from_numpy(value.numpy().copy())


onnxruntime = candidate_from(lambda module, x, hx: run_onnx(module, x, hx, exporter="dynamo"),
                             cases_per_shape=CASES_PER_SHAPE)
onnxruntime_torchscript = candidate_from(lambda module, x, hx: run_onnx(module, x, hx, exporter="torchscript"),
                                         cases_per_shape=CASES_PER_SHAPE)
