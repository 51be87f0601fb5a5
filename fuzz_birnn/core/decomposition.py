"""A multi-layer bidirectional module rebuilt from unidirectional single-layer torch modules.

This is the computation flow the seed thread had to find by trial and error, written down once:

* layer ``l``, direction ``d`` is an ``nn.RNN/GRU/LSTM(num_layers=1, bidirectional=False)``
  whose parameters are the fused module's ``weight_ih_l{l}``, ``weight_hh_l{l}``, ``bias_ih_l{l}``,
  ``bias_hh_l{l}`` (and ``weight_hr_l{l}``), with the suffix ``_reverse`` for ``d = 1``;
* its initial state and its final state are row ``2 * l + d`` of ``h0``/``c0`` and ``h_n``/``c_n``
  (``l`` alone when unidirectional);
* the reverse direction runs on each sequence reversed *within its own length* (padding stays at
  the end), and its output is reversed back into forward time order before the two directions are
  concatenated, ``[forward, reverse]`` along features, as the next layer's input;
* dropout (training mode only) applies to every layer's output but the last.

The parameters are passed with :func:`torch.func.functional_call`, so gradients flow to the
fused module's own parameters.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from fuzz_birnn.core.layout import Canonical, Hidden, canonical, reverse_within_lengths

__all__ = ["DecomposedStack", "decomposed"]


class DecomposedStack:
    """Candidate: ``module(input, hx)`` computed one layer and one direction at a time.

    Each step is a method, so a variant (a planted bug, an instrumented copy) overrides one step.
    """

    def __call__(self, module: nn.RNNBase, input: torch.Tensor | PackedSequence,
                 hx: Hidden | None = None) -> tuple[torch.Tensor | PackedSequence, Hidden]:
        call = canonical(module, input, hx)
        directions = 2 if module.bidirectional else 1
        layer_input = call.sequences
        h_rows: list[torch.Tensor] = []
        c_rows: list[torch.Tensor] = []
        for layer in range(module.num_layers):
            outputs = []
            for direction in range(directions):
                state = self.initial_state(call, layer, direction, directions, module.num_layers)
                output, (h_n, c_n) = self.run_direction(module, layer, direction, layer_input, call, state)
                outputs.append(output)
                h_rows.append(h_n)
                if c_n is not None:
                    c_rows.append(c_n)
            if layer == module.num_layers - 1:
                layer_input = torch.cat(outputs, dim=2)
            else:
                layer_input = self.next_layer_input(outputs, call)
                if module.training and module.dropout > 0:
                    layer_input = F.dropout(layer_input, module.dropout, training=True)
        order = [self.state_row(layer, direction, directions, module.num_layers)
                 for layer in range(module.num_layers) for direction in range(directions)]
        h_n = torch.stack(_in_row_order(h_rows, order))
        c_n = torch.stack(_in_row_order(c_rows, order)) if c_rows else None
        return call.restore_output(layer_input), call.restore_hidden(h_n, c_n)

    def state_row(self, layer: int, direction: int, directions: int, num_layers: int) -> int:
        """Row of ``h0``/``h_n`` that holds ``layer`` and ``direction``: layer-major."""
        return layer * directions + direction

    def initial_state(self, call: Canonical, layer: int, direction: int, directions: int,
                      num_layers: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(h0, c0)`` rows for one layer and direction (``c0`` is ``None`` but for LSTM)."""
        row = self.state_row(layer, direction, directions, num_layers)
        return call.h0[row], None if call.c0 is None else call.c0[row]

    def next_layer_input(self, outputs: list[torch.Tensor], call: Canonical) -> torch.Tensor:
        """The next layer's input: the directions' time-ordered outputs, ``[forward, reverse]``."""
        return torch.cat(outputs, dim=2)

    def reverse(self, sequences: torch.Tensor, call: Canonical) -> torch.Tensor:
        """Time-reverse every sequence within its own length."""
        return reverse_within_lengths(sequences, call.lengths)

    def run_direction(self, module: nn.RNNBase, layer: int, direction: int, sequences: torch.Tensor,
                      call: Canonical, state: tuple[torch.Tensor, torch.Tensor | None],
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor | None]]:
        """One layer in one direction over canonical ``(T, B, F)`` input, output in forward time order."""
        single = _single_layer(module, sequences.shape[2])
        suffix = "_reverse" if direction else ""
        weights = {name: getattr(module, f"{name[:-1]}{layer}{suffix}") for name in single._flat_weights_names}
        h0, c0 = state
        hx = h0.unsqueeze(0) if c0 is None else (h0.unsqueeze(0), c0.unsqueeze(0))
        steps = self.reverse(sequences, call) if direction else sequences
        if call.form == "packed":
            packed = pack_padded_sequence(steps, call.lengths, enforce_sorted=False)
            packed_out, hidden = functional_call(single, weights, (packed, hx))
            output, _ = pad_packed_sequence(packed_out, total_length=steps.shape[0])
        else:
            output, hidden = functional_call(single, weights, (steps, hx))
        if direction:
            output = self.reverse(output, call)
        h_n, c_n = hidden if isinstance(hidden, tuple) else (hidden, None)
        return output, (h_n[0], None if c_n is None else c_n[0])


#: The decomposition as a ready-made candidate.
decomposed = DecomposedStack()


def _single_layer(module: nn.RNNBase, input_size: int) -> nn.RNNBase:
    """A parameterless (``meta``) one-layer, one-direction module of the same kind as ``module``.

    Reused between calls (building one costs more than running it): ``functional_call`` only
    lends it parameters for the duration of a call. One per thread, since lending is not atomic.
    """
    kind = next(cls for cls in (nn.LSTM, nn.GRU, nn.RNN) if isinstance(module, cls))
    kwargs: dict[str, Any] = {"input_size": input_size, "hidden_size": module.hidden_size, "num_layers": 1,
                              "bias": module.bias}
    if kind is nn.LSTM:
        kwargs["proj_size"] = module.proj_size
    if kind is nn.RNN:
        kwargs["nonlinearity"] = module.nonlinearity
    return _meta_module(threading.get_ident(), kind, tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=256)
def _meta_module(thread: int, kind: type[nn.RNNBase], kwargs: tuple[tuple[str, Any], ...]) -> nn.RNNBase:
    return kind(**dict(kwargs), bidirectional=False, device="meta")


def _in_row_order(states: list[torch.Tensor], rows: list[int]) -> list[torch.Tensor]:
    by_row = dict(zip(rows, states, strict=True))
    return [by_row[row] for row in range(len(rows))]
