"""Candidates that make a catalogued kind of mistake at a place the first catalogue did not hold
(confined to one direction or one layer, in the returned output as well as between layers, in
``c`` but not ``h``), or two at once: written against the candidate contract, on torch's own
modules, the way such bugs look from outside."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .contract_bugs import output_directions_swapped


def never_re_reversed(module, input, hx=None):
    """The most common first attempt at the seed's decomposition: one unidirectional torch module
    per layer and direction, the reverse one run on the time-reversed input, and its output never
    put back in forward time order, between layers or in the returned output (padded input only)."""
    x = input.transpose(0, 1) if module.batch_first else input
    lstm = isinstance(module, nn.LSTM)
    h_rows, c_rows = [], []
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(2):
            single = _single(module, x.shape[-1], layer, "_reverse" if direction else "")
            row = slice(2 * layer + direction, 2 * layer + direction + 1)
            state = None if hx is None else (hx[0][row], hx[1][row]) if lstm else hx[row]
            output, hidden = single(x.flip(0) if direction else x, state)
            outputs.append(output)
            h_rows.append(hidden[0] if lstm else hidden)
            if lstm:
                c_rows.append(hidden[1])
        x = torch.cat(outputs, dim=-1)
    h_n = torch.cat(h_rows)
    return (x.transpose(0, 1) if module.batch_first else x), ((h_n, torch.cat(c_rows)) if lstm else h_n)


def _single(module, input_size, layer, suffix):
    kind = type(module)
    kwargs = {"input_size": input_size, "hidden_size": module.hidden_size, "bias": module.bias}
    if kind is nn.RNN:
        kwargs["nonlinearity"] = module.nonlinearity
    single = kind(**kwargs).to(module.weight_ih_l0.dtype)
    with torch.no_grad():
        for name in single._flat_weights_names:
            getattr(single, name).copy_(getattr(module, f"{name[:-1]}{layer}{suffix}"))
    return single


def reverse_lstm_gates_in_tensorflow_order(module, input, hx=None):
    """Reads the reverse direction's LSTM gate blocks as (i, g, f, o), TensorFlow's order, and the
    forward direction's right."""
    moved = copy.deepcopy(module)
    with torch.no_grad():
        for name in moved._flat_weights_names:
            if name.endswith("_reverse") and not name.startswith("weight_hr"):
                i, f, g, o = getattr(moved, name).chunk(4)
                getattr(moved, name).copy_(torch.cat([i, g, f, o]))
    return moved(input, hx)


def hidden_bias_left_out_in_layer_1(module, input, hx=None):
    """Leaves out b_hh in layer 1 (both directions) only."""
    moved = copy.deepcopy(module)
    with torch.no_grad():
        for name in ("bias_hh_l1", "bias_hh_l1_reverse"):
            if hasattr(moved, name):
                getattr(moved, name).zero_()
    return moved(input, hx)


def c0_ignored(module, input, hx=None):
    """Starts from the given h0 but from zeros for c."""
    if hx is not None and isinstance(hx, tuple):
        hx = (hx[0], torch.zeros_like(hx[1]))
    return module(input, hx)


def output_swapped_and_h_n_direction_major(module, input, hx=None):
    """Two mistakes at once: the output's halves swapped, and h_n (and c_n) rows written
    direction-major."""
    output, hidden = output_directions_swapped(module, input, hx)
    layers = module.num_layers

    def direction_major(h):
        return h.unflatten(0, (layers, 2)).transpose(0, 1).flatten(0, 1)

    return output, (tuple(direction_major(h) for h in hidden) if isinstance(hidden, tuple) else direction_major(hidden))
