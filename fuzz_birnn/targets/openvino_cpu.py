"""``--candidate openvino`` and ``openvino-default``: the module converted by
``openvino.convert_model`` (OpenVINO's PyTorch frontend, traced with the case's own input) and run
on OpenVINO's CPU plugin, as people deploy recurrent models on Intel CPUs.

``openvino`` compiles with ``INFERENCE_PRECISION_HINT=f32``, the accurate setting; ``openvino-default``
with the plugin's defaults, under which it infers float32 models in bfloat16 on CPUs that have it
(AVX-512 BF16, AMX) and in float16 on some others. Both are documented: the CPU plugin's internal
primitives are f32, bf16 and f16 only, so float64 models are computed in float32 (by the default
one, in its default precision). Each target declares what it computes each dtype in
(``computes_in``: :func:`~fuzz_birnn.core.evaluation.computes_in`), read from the plugin on this
machine, and is held to that precision's tolerance; a failure says which it was held to.

**One conversion and compilation a case** (about 0.5-1 s on a small module): the converted model
holds the weights as constants, and the frontend refuses them as graph inputs to
``aten::gru``/``aten::lstm``/``aten::rnn_*`` (tried: "SequenceMark ... not converted"), so no model
can serve another case's weights honestly. A slow target: see the README's targets table.

OpenVINO's runtime deadlocks in a process forked from one that has used it (seen: a forked
``convert_model`` never returns), so both targets say ``fork_safe = False`` and the harness runs
their probes, confirmations and isolated cases in-process.

Outputs come back with the dtype and shape the plugin produced. bfloat16 tensors cross as their
bits (NumPy has no bfloat16; OpenVINO shows them as float16 arrays). Refusals translated to
:class:`~fuzz_birnn.Unsupported`: the frontend's own "No translator found for" an operator (an
operator it says it does not convert). A conversion that fails inside a translator, an invalid
model or a wrong result stays a finding.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

import numpy as np
import torch

from fuzz_birnn.core.check import Unsupported
from fuzz_birnn.targets.adapter import arguments, candidate_from

__all__ = ["default_precision", "openvino", "openvino_default", "run_openvino"]

#: The frontend's explicit refusal of an operator it has no translation for.
_NO_TRANSLATOR = re.compile(r"No translator found for [\w:.]+")
#: The plugin's inference precision hint -> the dtype it computes float32 models in.
_PRECISIONS = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def run_openvino(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any, *, hint: str | None) -> Any:
    """``module(x, hx)`` converted by ``openvino.convert_model`` and run on the CPU plugin, with
    ``INFERENCE_PRECISION_HINT=hint`` (``None``: the plugin's default)."""
    import openvino as ov

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ov.convert_model(module, example_input=arguments(x, hx))
    except Exception as error:
        refusal = _NO_TRANSLATOR.search(str(error))
        if refusal:
            raise Unsupported(f"openvino.convert_model: {refusal.group(0)}") from error
        raise
    compiled = _core().compile_model(model, "CPU", {} if hint is None else {"INFERENCE_PRECISION_HINT": hint})
    request = compiled.create_infer_request()
    request.infer([_ov_tensor(t) for t in _flat(x, hx)])
    returned = [_tensor(request.get_output_tensor(k)) for k in range(len(compiled.outputs))]
    return returned[0], (returned[1] if len(returned) == 2 else tuple(returned[1:]))


@functools.cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


def default_precision() -> str:
    """The dtype the CPU plugin computes float32 models in at its defaults, on this machine."""
    hint = _core().get_property("CPU", "INFERENCE_PRECISION_HINT")  # an ov.Type: bf16, f16 or f32
    name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    return _PRECISIONS.get(name, "float32")


def _flat(x: torch.Tensor, hx: Any) -> list[torch.Tensor]:
    return [x] if hx is None else [x, *hx] if isinstance(hx, tuple) else [x, hx]


def _ov_tensor(tensor: torch.Tensor) -> Any:
    import openvino as ov

    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        value = ov.Tensor(ov.Type.bf16, ov.Shape(list(tensor.shape)))
        value.data[...] = tensor.view(torch.int16).numpy().view(value.data.dtype)
        return value
    return ov.Tensor(tensor.numpy())


def _tensor(value: Any) -> torch.Tensor:
    import openvino as ov

    if value.element_type == ov.Type.bf16:
        return torch.from_numpy(np.array(value.data).view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.array(value.data).copy())


def _accurate() -> Any:
    candidate = candidate_from(lambda module, x, hx: run_openvino(module, x, hx, hint="f32"))
    candidate.computes_in = {"float64": "float32"}  # type: ignore[attr-defined]
    candidate.fork_safe = False  # type: ignore[attr-defined]  # a forked child of a process that used it hangs
    return candidate


def _default() -> Any:
    candidate = candidate_from(lambda module, x, hx: run_openvino(module, x, hx, hint=None))
    lower = default_precision()
    candidate.computes_in = {"float64": lower, "float32": lower}  # type: ignore[attr-defined]
    candidate.fork_safe = False  # type: ignore[attr-defined]
    return candidate


openvino = _accurate()
openvino_default = _default()
