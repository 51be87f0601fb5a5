"""An independent implementation of the cell equations in torch's documentation.

Plain tensor arithmetic only: no ``nn.RNN/GRU/LSTM``, no ``torch._VF``, no packing. Every
sequence steps through time in lockstep and a mask keeps a finished (shorter) sequence's state
frozen and its output zero, so the reverse direction of a sequence of length ``n`` starts at step
``n - 1`` from its row of ``h0``, whatever the padding after it.

Equations, per time step (``*`` is elementwise, ``x W^T`` a matmul, missing biases are zero):

* RNN: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`` with ``act`` tanh or relu.
* GRU, gates in the weight's row order ``r, z, n``::

      r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
      z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
      n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))
      h' = (1 - z) * n + z * h

* LSTM, gates in the row order ``i, f, g, o``::

      c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
      h' = sigmoid(o) * tanh(c'),   then h' = h' W_hr^T when proj_size > 0
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .layout import Hidden, canonical

__all__ = ["CellReference", "reference"]

Weights = dict[str, torch.Tensor | None]


class CellReference:
    """Candidate: the cell equations, computed in ``compute_dtype`` (float64 by default).

    Calling it returns results cast back to the module's dtype, as the candidate contract asks;
    :meth:`compute` returns them in ``compute_dtype``, which the tolerance model uses.
    """

    def __init__(self, compute_dtype: torch.dtype = torch.float64) -> None:
        self.compute_dtype = compute_dtype

    def __call__(self, module: nn.RNNBase, input: torch.Tensor | PackedSequence,
                 hx: Hidden | None = None) -> tuple[torch.Tensor | PackedSequence, Hidden]:
        dtype = (input.data if isinstance(input, PackedSequence) else input).dtype
        output, hidden = self.compute(module, input, hx)
        output = output._replace(data=output.data.to(dtype)) if isinstance(output, PackedSequence) \
            else output.to(dtype)
        hidden = tuple(h.to(dtype) for h in hidden) if isinstance(hidden, tuple) else hidden.to(dtype)
        return output, hidden

    def compute(self, module: nn.RNNBase, input: torch.Tensor | PackedSequence,
                hx: Hidden | None = None) -> tuple[torch.Tensor | PackedSequence, Hidden]:
        """``module(input, hx)`` in ``compute_dtype``, in the caller's form."""
        call = canonical(module, input, hx)
        mode = _mode(module)
        dtype = self.compute_dtype
        layer_input = call.sequences.to(dtype)
        steps, batch = layer_input.shape[:2]
        valid = (torch.arange(steps).unsqueeze(1) < call.lengths.unsqueeze(0)).to(layer_input.device)
        directions = 2 if module.bidirectional else 1
        h_rows, c_rows = [], []
        for layer in range(module.num_layers):
            outputs = []
            for direction in range(directions):
                row = layer * directions + direction
                weights = _weights(module, layer, direction, dtype)
                h = call.h0[row].to(dtype)
                c = None if call.c0 is None else call.c0[row].to(dtype)
                output = layer_input.new_zeros(steps, batch, h.shape[-1])
                for t in (reversed(range(steps)) if direction else range(steps)):
                    h_next, c_next = self.cell(mode, layer_input[t], h, c, weights)
                    keep = valid[t].unsqueeze(1)
                    h = torch.where(keep, h_next, h)
                    c = None if c is None or c_next is None else torch.where(keep, c_next, c)
                    output[t] = torch.where(keep, h_next, torch.zeros_like(h_next))
                outputs.append(output)
                h_rows.append(h)
                if c is not None:
                    c_rows.append(c)
            layer_input = torch.cat(outputs, dim=2)
        h_n = torch.stack(h_rows)
        c_n = torch.stack(c_rows) if c_rows else None
        return call.restore_output(layer_input), call.restore_hidden(h_n, c_n)

    def cell(self, mode: str, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
             w: Weights) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One time step of one direction: ``(h', c')`` from input ``x`` and state ``(h, c)``."""
        gi = x @ w["weight_ih"].T + _or_zero(w["bias_ih"])
        gh = h @ w["weight_hh"].T + _or_zero(w["bias_hh"])
        if mode == "RNN_TANH":
            return torch.tanh(gi + gh), None
        if mode == "RNN_RELU":
            return torch.relu(gi + gh), None
        if mode == "GRU":
            i_r, i_z, i_n = gi.chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            return (1 - z) * n + z * h, None
        assert c is not None
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_next = torch.sigmoid(o) * torch.tanh(c_next)
        if w["weight_hr"] is not None:
            h_next = h_next @ w["weight_hr"].T
        return h_next, c_next


#: The float64 reference as a ready-made candidate.
reference = CellReference()


def _mode(module: nn.RNNBase) -> str:
    if isinstance(module, nn.LSTM):
        return "LSTM"
    if isinstance(module, nn.GRU):
        return "GRU"
    return "RNN_RELU" if module.nonlinearity == "relu" else "RNN_TANH"


def _weights(module: nn.RNNBase, layer: int, direction: int, dtype: torch.dtype) -> Weights:
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
    return {name: _as(getattr(module, name + suffix, None), dtype) for name in names}


def _as(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(dtype)


def _or_zero(bias: torch.Tensor | None) -> torch.Tensor | float:
    return 0.0 if bias is None else bias
