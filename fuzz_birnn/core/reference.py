"""An independent implementation of the cell equations in torch's documentation.

Plain tensor arithmetic only: no ``nn.RNN/GRU/LSTM``, no ``torch._VF``, no packing. Every
sequence steps through time in lockstep and a mask keeps a finished (shorter) sequence's state
frozen and its output zero, so the reverse direction of a sequence of length ``n`` starts at step
``n - 1`` from its row of ``h0``, whatever the padding after it. The input projections of all
time steps are computed at once, and a layer's two directions step together (stacked along a
leading axis), so a case costs a Python loop over time steps and layers only.

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

from fuzz_birnn.core.layout import Hidden, canonical

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
        if isinstance(hidden, tuple):
            h_n, c_n = hidden
            return output, (h_n.to(dtype), c_n.to(dtype))
        return output, hidden.to(dtype)

    def compute(self, module: nn.RNNBase, input: torch.Tensor | PackedSequence,
                hx: Hidden | None = None) -> tuple[torch.Tensor | PackedSequence, Hidden]:
        """``module(input, hx)`` in ``compute_dtype``, in the caller's form.

        Both directions of a layer step together, stacked along a leading direction axis: at
        step ``s`` the forward direction reads time ``s`` and the reverse direction time
        ``T - 1 - s``; a sequence's mask keeps its state frozen (and its output zero) where that
        time is past its length.
        """
        call = canonical(module, input, hx)
        mode = _mode(module)
        dtype = self.compute_dtype
        directions = 2 if module.bidirectional else 1
        layer_input = call.sequences.to(dtype)
        steps = layer_input.shape[0]
        valid = (torch.arange(steps).unsqueeze(1) < call.lengths.unsqueeze(0)).to(layer_input.device)  # (T, B)
        masked = not bool(valid.all())  # only packed batches of unequal lengths need the mask
        valid = _in_processing_order(valid.unsqueeze(0).expand(directions, -1, -1)).unsqueeze(-1)  # (D, T, B, 1)
        h_rows, c_rows = [], []
        for layer in range(module.num_layers):
            rows = slice(layer * directions, (layer + 1) * directions)
            weights = _weights(module, layer, directions, dtype)
            h = call.h0[rows].to(dtype)  # (D, B, H)
            c = None if call.c0 is None else call.c0[rows].to(dtype)
            # What does not depend on the recurrence, for every time step at once.
            projected = _in_processing_order(self.input_projection(layer_input, weights))  # (D, T, B, G)
            output = []
            for step in range(steps):
                h_next, c_next = self.cell(mode, projected[:, step], h, c, weights)
                if masked:
                    keep = valid[:, step]
                    h = torch.where(keep, h_next, h)
                    c = None if c is None or c_next is None else torch.where(keep, c_next, c)
                    output.append(torch.where(keep, h_next, torch.zeros_like(h_next)))
                else:
                    h, c = h_next, c_next
                    output.append(h_next)
            stacked = _in_processing_order(torch.stack(output, dim=1))  # back in time order: (D, T, B, H)
            layer_input = stacked.permute(1, 2, 0, 3).flatten(2)  # (T, B, D * H): [forward, reverse]
            h_rows.append(h)
            if c is not None:
                c_rows.append(c)
        h_n = torch.cat(h_rows)
        c_n = torch.cat(c_rows) if c_rows else None
        return call.restore_output(layer_input), call.restore_hidden(h_n, c_n)

    def input_projection(self, x: torch.Tensor, w: Weights) -> torch.Tensor:
        """``x W_ih^T + b_ih`` for a whole ``(T, B, F)`` sequence and every direction at once:
        the gates' input part, ``(D, T, B, G)``."""
        bias = _or_zero(w["bias_ih"])
        return x.unsqueeze(0) @ _given(w["weight_ih"]).mT.unsqueeze(1) + (bias if isinstance(bias, float)
                                                                  else bias.unsqueeze(1))

    def cell(self, mode: str, gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
             w: Weights) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One time step of every direction: ``(h', c')`` from the step's input projection ``gi``
        (``(D, B, G)``, see :meth:`input_projection`) and the state ``(h, c)`` (``(D, B, H)``).
        Weights are stacked over directions: ``weight_hh`` is ``(D, G, H)``, biases ``(D, 1, G)``."""
        bias, weight_hh = w["bias_hh"], _given(w["weight_hh"])
        gh = torch.bmm(h, weight_hh.mT) if bias is None else torch.baddbmm(bias, h, weight_hh.mT)
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
        gates = gi + gh
        i, f, _, o = torch.sigmoid(gates).chunk(4, dim=-1)
        g = torch.tanh(gates.chunk(4, dim=-1)[2])
        c_next = f * c + i * g
        h_next = o * torch.tanh(c_next)
        if w["weight_hr"] is not None:
            h_next = h_next @ w["weight_hr"].mT
        return h_next, c_next


#: The float64 reference as a ready-made candidate.
reference = CellReference()


def _mode(module: nn.RNNBase) -> str:
    if isinstance(module, nn.LSTM):
        return "LSTM"
    if isinstance(module, nn.GRU):
        return "GRU"
    return "RNN_RELU" if module.nonlinearity == "relu" else "RNN_TANH"


def _weights(module: nn.RNNBase, layer: int, directions: int, dtype: torch.dtype) -> Weights:
    """One layer's parameters, stacked over its directions (forward first); biases as ``(D, 1, G)``."""
    weights: Weights = {}
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
        found = [getattr(module, f"{name}_l{layer}{suffix}", None) for suffix in ("", "_reverse")[:directions]]
        if found[0] is None:
            weights[name] = None
            continue
        stacked = torch.stack([_as(t, dtype) for t in found])  # type: ignore[misc]
        weights[name] = stacked.unsqueeze(1) if name.startswith("bias") else stacked
    return weights


def _in_processing_order(tensor: torch.Tensor) -> torch.Tensor:
    """``(D, T, ...)`` with the reverse direction's time axis flipped (its own inverse)."""
    if tensor.shape[0] == 1:
        return tensor
    return torch.stack([tensor[0], tensor[1].flip(0)])


def _as(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(dtype)


def _or_zero(bias: torch.Tensor | None) -> torch.Tensor | float:
    return 0.0 if bias is None else bias


def _given(weight: torch.Tensor | None) -> torch.Tensor:
    """A weight every module has (only biases and projections may be absent)."""
    assert weight is not None
    return weight
