"""Exporting a module to ONNX for the ONNX targets, once per configuration and shapes.

``dynamo``: the default exporter of the installed torch (``torch.onnx.export(..., dynamo=True)``);
``torchscript``: the TorchScript-based exporter (``dynamo=False``), where the installed torch still
has it. Both fold the weights into derived initializers (the ONNX RNN ops take all gates of a
direction in one tensor), and ``ONNXProgram.apply_weights`` was seen not to reach those (a
2-layer batch_first GRU kept the weights it was exported with), so a model is reused only for
the same weights (Hypothesis replaying a case), never fed another case's.

Refusals translated to :class:`~fuzz_birnn.Unsupported`: ``torch.onnx.errors.UnsupportedOperatorError``
and ``torch.onnx.errors.OnnxExporterError`` whose message says an operator or dtype is not
supported (the exporters' own explicit refusals). Anything else is a finding.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from typing import Any

import torch
from torch.onnx import errors

from fuzz_birnn.core.check import Unsupported
from fuzz_birnn.targets.adapter import ExportCache, arguments, export_key

__all__ = ["input_names", "onnx_model"]

_MODELS = ExportCache()


def input_names(hx: Any) -> list[str]:
    states = [] if hx is None else ["h0", "c0"] if isinstance(hx, tuple) else ["h0"]
    return ["input", *states]


def onnx_model(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any, *, exporter: str) -> bytes:
    """The serialized ONNX model of ``module(x, hx)`` with this module's weights."""
    key = (exporter, export_key(module, x, hx), weights_digest(module))
    return _MODELS.get(key, lambda: _serialized(_export(module, x, hx, dynamo=exporter == "dynamo")))


def weights_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _serialized(exported: Any) -> bytes:
    return exported.getvalue() if isinstance(exported, io.BytesIO) else exported.model_proto.SerializeToString()


def _export(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any, *, dynamo: bool) -> Any:
    target = io.BytesIO() if not dynamo else None
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            # torch types ``f`` as a path; the TorchScript exporter writes to a file object as well
            program = torch.onnx.export(module, arguments(x, hx), target,  # type: ignore[arg-type]
                                        dynamo=dynamo, verbose=False, input_names=input_names(hx))
    except errors.UnsupportedOperatorError as refusal:
        raise Unsupported(f"torch.onnx ({'dynamo' if dynamo else 'torchscript'}): {_first(refusal)}") from refusal
    except errors.OnnxExporterError as error:
        if "not supported" in str(error).lower() or "unsupported" in str(error).lower():
            raise Unsupported(f"torch.onnx ({'dynamo' if dynamo else 'torchscript'}): {_first(error)}") from error
        raise
    return program if dynamo else target


def _first(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
