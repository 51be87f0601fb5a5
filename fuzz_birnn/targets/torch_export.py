"""``--candidate torch-export``: ``torch.export.export`` then ``run_decompositions()``, run as the
exported program: torch's own decompositions of RNN/GRU/LSTM into primitive ops, code separate
from the fused kernels. One export per configuration and shapes; each case's weights are loaded
into it (``load_state_dict``), never the weights of the case it was exported with.

Refusals translated to :class:`~fuzz_birnn.Unsupported`: ``torch._dynamo.exc.Unsupported``
(torch.export's own "cannot trace this"). Anything else is a finding.
"""

from __future__ import annotations

from typing import Any

import torch

from fuzz_birnn.core.check import Unsupported
from fuzz_birnn.targets.adapter import CASES_PER_SHAPE, ExportCache, arguments, candidate_from, export_key

__all__ = ["torch_export"]

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
