"""A multi-layer bidirectional module rebuilt from torch's cells: ``nn.RNNCell``, ``nn.GRUCell``
and ``nn.LSTMCell``, one time step at a time, the way people write their own stacks.

The flow is the decomposition's (:mod:`fuzz_birnn.core.decomposition`: rows of ``h0``/``h_n``,
the reverse direction run on each sequence reversed within its length and put back in forward
time order, ``[forward, reverse]`` as the next layer's input); only the innermost step differs:
layer ``l``, direction ``d`` is a cell given the fused module's ``weight_ih_l{l}``,
``weight_hh_l{l}``, ``bias_ih_l{l}`` and ``bias_hh_l{l}`` (``_reverse`` for ``d = 1``), called on
each time step. So where it disagrees with torch's fused module and the float64 reference while
the decomposition agrees, torch's cells are wrong.

The cells are called as a user calls them: with 1-D input and state for an unbatched input,
without a state at the first step when the caller gave none, and, for a packed batch of unequal
lengths, on every sequence at every step, a sequence's state kept where its time is past its
length (its output there zero). ``nn.LSTMCell`` has no ``proj_size``: a projected LSTM is
:class:`~fuzz_birnn.core.outcomes.Unsupported`.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence

from fuzz_birnn.core.decomposition import DecomposedStack
from fuzz_birnn.core.layout import Canonical, Hidden
from fuzz_birnn.core.outcomes import Unsupported

__all__ = ["CellStack", "cells"]

_CELLS: dict[type[nn.RNNBase], type[nn.RNNCellBase]] = {nn.LSTM: nn.LSTMCell, nn.GRU: nn.GRUCell,
                                                        nn.RNN: nn.RNNCell}


class CellStack(DecomposedStack):
    """Candidate: ``module(input, hx)`` computed with torch's cells, one layer, direction and step at a time."""

    def __init__(self) -> None:
        self._call = threading.local()  # whether the caller gave a state, per thread

    def __call__(self, module: nn.RNNBase, input: torch.Tensor | PackedSequence,
                 hx: Hidden | None = None) -> tuple[torch.Tensor | PackedSequence, Hidden]:
        if isinstance(module, nn.LSTM) and module.proj_size:
            raise Unsupported("nn.LSTMCell has no proj_size: a stack of cells cannot hold a projected LSTM")
        self._call.default_state = hx is None
        return super().__call__(module, input, hx)

    def run_direction(self, module: nn.RNNBase, layer: int, direction: int, sequences: torch.Tensor,
                      call: Canonical, state: tuple[torch.Tensor, torch.Tensor | None],
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor | None]]:
        cell = _cell(module, sequences.shape[2])
        suffix = "_reverse" if direction else ""
        weights = {name: getattr(module, f"{name}_l{layer}{suffix}") for name, _ in cell.named_parameters()}
        steps = self.reverse(sequences, call) if direction else sequences
        unbatched = call.form == "unbatched"
        valid = torch.arange(steps.shape[0]).unsqueeze(1) < call.lengths.unsqueeze(0)  # (T, B)
        masked = not bool(valid.all())
        valid = valid.to(steps.device).unsqueeze(-1)  # (T, B, 1)
        h, c = state
        outputs = []
        for t in range(steps.shape[0]):
            given = None if t == 0 and self._call.default_state else (h if c is None else (h, c))
            new_h, new_c = _step(cell, weights, steps[t], given, unbatched)
            if masked:
                new_h = torch.where(valid[t], new_h, h)
                new_c = None if c is None or new_c is None else torch.where(valid[t], new_c, c)
            outputs.append(torch.where(valid[t], new_h, torch.zeros_like(new_h)) if masked else new_h)
            h, c = new_h, new_c
        output = torch.stack(outputs)
        if direction:
            output = self.reverse(output, call)
        return output, (h, c)


def _step(cell: nn.RNNCellBase, weights: dict[str, torch.Tensor], x: torch.Tensor,
          state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None,
          unbatched: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One call of ``cell``; for an unbatched input, with 1-D input and state, as its caller would."""
    if unbatched:
        x = x[0]
        if isinstance(state, tuple):
            state = (state[0][0], state[1][0])
        elif state is not None:
            state = state[0]
    new = functional_call(cell, weights, (x, state))
    h, c = new if isinstance(new, tuple) else (new, None)
    if unbatched:
        h, c = h.unsqueeze(0), None if c is None else c.unsqueeze(0)
    return h, c


def _cell(module: nn.RNNBase, input_size: int) -> nn.RNNCellBase:
    """A parameterless (``meta``) cell of ``module``'s kind, reused per thread (see :mod:`.decomposition`)."""
    kind = next(cell for base, cell in _CELLS.items() if isinstance(module, base))
    kwargs: dict[str, Any] = {"input_size": input_size, "hidden_size": module.hidden_size, "bias": module.bias}
    if kind is nn.RNNCell:
        kwargs["nonlinearity"] = module.nonlinearity
    return _meta_cell(threading.get_ident(), kind.__name__, tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=256)
def _meta_cell(thread: int, kind: str, kwargs: tuple[tuple[str, Any], ...]) -> nn.RNNCellBase:
    cell: nn.RNNCellBase = getattr(nn, kind)(**dict(kwargs), device="meta")
    return cell


#: The stack of cells as a ready-made candidate.
cells = CellStack()
