"""``--candidate torch-export``: ``torch.export.export`` then ``run_decompositions()``, run as the
exported program: torch's own decompositions of RNN/GRU/LSTM into primitive ops, code separate
from the fused kernels. One export per configuration and shapes; each case's weights are loaded
into it (``load_state_dict``), never the weights of the case it was exported with.

``--candidate torch-export-dynamic`` exports the way people export for deployment: the batch
size and the sequence length as ``torch.export.Dim`` s, one export per configuration, run on every
batch size (and sequence length) after. torch.export refuses a dynamic time axis for these modules
(``Constraints violated``: its decomposition unrolls the time loop; seen on torch 2.13.0); where it
does, the sequence length is exported static and the batch size alone stays dynamic, tried again
on each new release. The export is made from an example of batch 2 (never the case's own batch,
which at 1 would be specialised away) and then runs the case itself.

Refusals translated to :class:`~fuzz_birnn.Unsupported`: ``torch._dynamo.exc.Unsupported``
(torch.export's own "cannot trace this"). Anything else is a finding.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, cast

import torch

from fuzz_birnn.core.check import Unsupported
from fuzz_birnn.targets.adapter import CASES_PER_SHAPE, ExportCache, arguments, candidate_from, export_key

__all__ = ["torch_export", "torch_export_dynamic"]

_PROGRAMS = ExportCache()


def _run(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> Any:
    def export() -> torch.nn.Module:
        try:
            program = torch.export.export(module, arguments(x, hx)).run_decompositions()
        except torch._dynamo.exc.Unsupported as refusal:
            raise Unsupported(f"torch.export: {str(refusal).splitlines()[0]}") from refusal
        return program.module()

    exported = _PROGRAMS.get(export_key(module, x, hx), export)
    exported.load_state_dict(module.state_dict())
    return exported(*arguments(x, hx))


torch_export = candidate_from(_run, cases_per_shape=CASES_PER_SHAPE)

_DYNAMIC = ExportCache()
#: configurations whose export refused a dynamic sequence length (exported per length instead)
_TIME_REFUSED: set[Hashable] = set()
_MAX = 4096


def _run_dynamic(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> Any:
    batched = x.dim() == 3
    time_axis = 1 if batched and module.batch_first else 0
    configuration = _without_sizes(export_key(module, x, hx))
    static_time = configuration in _TIME_REFUSED or not batched

    def export(dynamic_time: bool) -> torch.nn.Module:
        example_x, example_hx = _example(module, x, hx)
        dims: dict[int, Any] = {}
        if batched:
            dims[1 - time_axis] = torch.export.Dim("batch", min=1, max=_MAX)
        if dynamic_time:
            dims[time_axis] = torch.export.Dim("time", min=1, max=_MAX)
        state_dims = None if hx is None else (
            tuple({1: dims[1 - time_axis]} for _ in hx) if isinstance(hx, tuple) else {1: dims[1 - time_axis]})
        shapes = (dims,) if hx is None else (dims, state_dims)
        try:
            program = torch.export.export(module, arguments(example_x, example_hx), dynamic_shapes=shapes)
        except torch._dynamo.exc.Unsupported as refusal:
            raise Unsupported(f"torch.export: {str(refusal).splitlines()[0]}") from refusal
        return program.run_decompositions().module()

    def export_static_time() -> torch.nn.Module:
        return export(False)

    if static_time:
        exported = _DYNAMIC.get((configuration, x.shape[time_axis]), export_static_time)
    else:
        try:
            exported = _DYNAMIC.get(configuration, lambda: export(True))
        except torch._dynamo.exc.UserError as refusal:
            if "Constraints violated" not in str(refusal):
                raise
            _TIME_REFUSED.add(configuration)
            exported = _DYNAMIC.get((configuration, x.shape[time_axis]), export_static_time)
    exported.load_state_dict(module.state_dict())
    return exported(*arguments(x, hx))


def _without_sizes(key: Hashable) -> Hashable:
    """An export key with the input's and the states' shapes left out (they are dynamic)."""
    kind, extra, nonlinearity, shape, dtype, device, states = cast(tuple[Any, ...], key)
    return kind, extra, nonlinearity, len(shape), dtype, device, tuple((len(s), d) for s, d in states)


def _example(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> tuple[torch.Tensor, Any]:
    """Zeros shaped like ``(x, hx)`` but with a batch of 2 (batched input only)."""
    if x.dim() != 3:
        return torch.zeros_like(x), hx if hx is None else (
            tuple(torch.zeros_like(h) for h in hx) if isinstance(hx, tuple) else torch.zeros_like(hx))
    batch_axis = 0 if module.batch_first else 1
    shape = list(x.shape)
    shape[batch_axis] = 2

    def state(h: torch.Tensor) -> torch.Tensor:
        return h.new_zeros(h.shape[0], 2, h.shape[2])
    example_hx = None if hx is None else tuple(map(state, hx)) if isinstance(hx, tuple) else state(hx)
    return x.new_zeros(shape), example_hx


torch_export_dynamic = candidate_from(_run_dynamic, cases_per_shape=CASES_PER_SHAPE)
