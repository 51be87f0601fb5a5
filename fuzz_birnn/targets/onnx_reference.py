"""``--candidate onnx-reference``: the module exported by the installed torch's default ONNX
exporter, run by ``onnx.reference.ReferenceEvaluator``, an independent implementation of the ONNX
operators in NumPy (float64-capable). Outputs keep the dtype and shape it produced.

The evaluator takes NumPy arrays, and NumPy has no bfloat16: a bfloat16 case fails at the
conversion (``TypeError: Got unsupported ScalarType BFloat16``), which is reported as
:class:`~fuzz_birnn.Unsupported` with that message, as the run sees it."""

from __future__ import annotations

from typing import Any

import torch

from fuzz_birnn.core.check import Unsupported
from fuzz_birnn.targets.adapter import CASES_PER_SHAPE, ExportCache, candidate_from
from fuzz_birnn.targets.onnx_export import input_names, onnx_model, runs_deployed, shared_inputs, shared_model

__all__ = ["onnx_reference"]


def _run(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> Any:
    import numpy
    from onnx.reference import ReferenceEvaluator

    names, tensors = input_names(hx), [x] if hx is None else [x, *hx] if isinstance(hx, tuple) else [x, hx]
    if runs_deployed(module):  # the form the case's weights choose (see onnx_export)
        model = onnx_model(module, x, hx, exporter="dynamo")
    else:
        model, names = shared_model(module, x, hx, exporter="dynamo")
        tensors = shared_inputs(module, x, hx)
    evaluator = _EVALUATORS.get(model, lambda: ReferenceEvaluator(model))
    try:
        feeds = {name: t.detach().cpu().numpy() for name, t in zip(names, tensors, strict=True)}
    except TypeError as refusal:  # NumPy has no bfloat16
        raise Unsupported(f"onnx.reference takes NumPy arrays: {refusal}") from refusal
    results = [torch.from_numpy(numpy.array(r)) for r in evaluator.run(None, feeds)]  # copies: writable
    return results[0], (results[1] if len(results) == 2 else tuple(results[1:]))


_EVALUATORS = ExportCache()


onnx_reference = candidate_from(_run, cases_per_shape=CASES_PER_SHAPE)
