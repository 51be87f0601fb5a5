"""``--candidate torch-compile``: ``torch.compile`` (inductor, CPU) of the module's forward, as a
function of its weights, compiled once per configuration and shapes. Opt-in and slow: a compile
takes tens of seconds (37 s for a 2-layer GRU here); its default time limit per case is 600 s.

By default TorchDynamo purposely graph-breaks on RNN/GRU/LSTM modules (``torch._dynamo.config.
allow_rnn = False``; pytorch/pytorch#118740), which would run them eagerly and check nothing of the
compiler; this target turns ``allow_rnn`` on, so Dynamo captures the module. Inductor then calls
torch's own RNN kernel for the captured ``aten`` RNN op, so what this target checks is the capture
(arguments, states, packed input, layouts through Dynamo), not a second implementation of the cell
equations: ``torch-export`` is the one that runs torch's decompositions. Dynamo's recompile limit
is lifted too: every configuration compiles (see :func:`_capture_everything`).

With ``--grad`` the gradients property runs backward through the compiled function (AOTAutograd
compiles its backward too), to the module's parameters, the input and the initial state: the way
people train with ``torch.compile``."""

from __future__ import annotations

from typing import Any

import torch
from torch.func import functional_call

from fuzz_birnn.targets.adapter import ExportCache, arguments, candidate_from, export_key

__all__ = ["torch_compile"]

_COMPILED = ExportCache()


def _capture_everything() -> None:
    """Dynamo would run RNN modules eagerly (``allow_rnn``), and after 8 recompiles of one function
    (the same ``forward`` here, for every configuration) fall back to eager silently: both would
    check torch's eager path under another name. Capture RNNs, never stop recompiling."""
    import torch._dynamo

    config = torch._dynamo.config
    config.allow_rnn = True
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, 10**6)


def _run(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> Any:
    def compile_() -> Any:
        _capture_everything()
        template = module

        def forward(parameters: dict[str, torch.Tensor], *args: Any) -> Any:
            return functional_call(template, parameters, args)
        return torch.compile(forward, backend="inductor", dynamic=False)

    compiled = _COMPILED.get(export_key(module, x, hx), compile_)
    return compiled(dict(module.named_parameters()), *arguments(x, hx))


torch_compile = candidate_from(_run, differentiable=True)
