"""``--candidate torch-compile``: ``torch.compile`` (inductor, CPU) of the module's forward, as a
function of its weights, compiled once per configuration and shapes. Opt-in and slow: a first
compile takes tens of seconds; its default time limit per case is 600 s."""

from __future__ import annotations

from typing import Any

import torch
from torch.func import functional_call

from .adapter import ExportCache, arguments, candidate_from, export_key

__all__ = ["torch_compile"]

_COMPILED = ExportCache()


def _run(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> Any:
    def compile_() -> Any:
        template = module

        def forward(parameters: dict[str, torch.Tensor], *args: Any) -> Any:
            return functional_call(template, parameters, args)
        return torch.compile(forward, backend="inductor", dynamic=False)

    compiled = _COMPILED.get(export_key(module, x, hx), compile_)
    return compiled(dict(module.named_parameters()), *arguments(x, hx))


torch_compile = candidate_from(_run)
