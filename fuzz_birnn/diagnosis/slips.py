"""The float64 stack, computed with slips: one kind of mistake made at chosen places.

:class:`SlippedStack` computes ``module(input, hx)`` one layer and one direction at a time, in
float64 on the CPU, from the call in canonical form (:mod:`fuzz_birnn.core.layout`), and makes each
:class:`Slip` it is given where the slip says: in some layers, in one direction or both, in ``h``
or ``c``. With no slip it is one more implementation of the cell equations (the tests hold it to
:class:`~fuzz_birnn.core.reference.CellReference`); every mistake of the catalogue
(:mod:`fuzz_birnn.diagnosis.mistakes`) is a set of slips run here.

Where a slip acts, in the order the stack meets it:

* **reading the initial state**: ``h0-rows-direction-major``, ``h0-c0-swapped`` (the whole call),
  ``h0-reverse-reads-forward-row``, ``h0-ignored`` (some layers and directions);
* **a direction's weights**: ``gate-order`` (``detail``: the order the gate blocks are read in,
  e.g. ``i,g,f,o``; a trailing ``/weights`` leaves the biases in torch's order),
  ``other-direction-weights``, ``bias-left-out`` (``ih``, ``hh`` or ``both``),
  ``projection-of-other-direction``;
* **a direction's steps**: ``reverse-runs-forward``, ``reverse-from-padded-end``,
  ``lengths-ignored``, ``activation-swapped``, ``gru-b_hn-outside-reset``;
* **the join** of a layer's directions (the next layer's input, or the returned output at the last
  layer): ``not-re-reversed``, ``halves-swapped``, ``forward-output-twice``;
* **writing the final state**: ``h_n-from-last-padded-step``, ``reverse-h_n-from-last-step`` (some
  layers), ``h_n-rows-direction-major``, ``h_n-c_n-swapped``, ``h_n-in-sorted-order`` (the whole call).

Layers are computed once per distinct set of slips that can reach them: a run of a mistake made at
layer 2 only reuses layers 0 and 1 of the correct run (:attr:`SlippedStack.cache`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch
from torch import nn

from fuzz_birnn.core.layout import Canonical, reverse_within_lengths

__all__ = ["GATES", "Slip", "SlippedStack"]

#: Each mode's gate letters in the order torch stores their weight blocks.
GATES = {"LSTM": "ifgo", "GRU": "rzn"}

#: Slips that act on the whole call, not at a place in the stack.
WHOLE_CALL = frozenset({"h0-rows-direction-major", "h0-c0-swapped", "h_n-rows-direction-major",
                        "h_n-c_n-swapped", "h_n-in-sorted-order"})
#: Slips read before any layer runs: every layer's cache key holds them.
READ = frozenset({"h0-rows-direction-major", "h0-c0-swapped"})


@dataclass(frozen=True, order=True)
class Slip:
    """``kind`` made in ``layers`` and ``directions`` (0 forward, 1 reverse; both empty for a slip
    of the whole call); ``detail`` says which variant (a gate order, ``ih``/``hh``, ``h``/``c``)."""

    kind: str
    layers: frozenset[int] = frozenset()
    directions: frozenset[int] = frozenset()
    detail: str | None = None

    def at(self, layer: int, direction: int | None = None) -> bool:
        return layer in self.layers and (direction is None or direction in self.directions)

    def up_to(self, layer: int) -> Slip | None:
        """The part of this slip that can reach ``layer``'s computation, or ``None``."""
        if self.kind in WHOLE_CALL:
            return self if self.kind in READ else None
        kept = frozenset(k for k in self.layers if k <= layer)
        return replace(self, layers=kept) if kept else None


class SlippedStack:
    """``module(input, hx)`` with slips, per direction, in float64; one instance per call, so its
    :attr:`cache` of computed layers serves every mistake tried on that call."""

    def __init__(self, module: nn.RNNBase, call: Canonical) -> None:
        self.module = module
        self.call = call
        self.mode = _mode(module)
        self.directions = 2 if module.bidirectional else 1
        self.cache: dict[tuple[int, frozenset[Slip]], tuple[torch.Tensor, list, list]] = {}

    def run(self, slips: Iterable[Slip] = ()) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(output, h_n, c_n)`` in canonical form: ``(T, B, D * F)`` and ``(L * D, B, F)``."""
        slips = frozenset(slips)
        layers = self.module.num_layers
        outputs: torch.Tensor = self.call.sequences.double()
        h_rows: list[torch.Tensor] = []
        c_rows: list[torch.Tensor] = []
        for layer in range(layers):
            key = (layer, frozenset(s for s in (slip.up_to(layer) for slip in slips) if s is not None))
            if key not in self.cache:
                self.cache[key] = self._layer(layer, outputs, slips)
            outputs, h, c = self.cache[key]
            h_rows += h
            c_rows += c
        h_n = torch.stack(h_rows)
        c_n = torch.stack(c_rows) if c_rows else None
        return self._written(outputs, h_n, c_n, slips)

    # -- one layer ---------------------------------------------------------------------------------

    def _layer(self, layer: int, x: torch.Tensor, slips: frozenset[Slip]) -> tuple[torch.Tensor, list, list]:
        """The layer's joined output (its directions' outputs, in forward time order), and its
        final states, one per direction."""
        outputs, h_rows, c_rows = [], [], []
        for direction in range(self.directions):
            h0, c0 = self._initial(layer, direction, slips)
            weights = self._weights(layer, direction, slips)
            output, h, c = self._direction(layer, direction, x, h0, c0, weights, slips)
            h, c = self._final(layer, direction, output, h, c, slips)
            outputs.append(output)
            h_rows.append(h)
            if c is not None:
                c_rows.append(c)
        if self._has("halves-swapped", slips, layer):
            outputs = outputs[::-1]
        if self._has("forward-output-twice", slips, layer):
            outputs = [outputs[0]] * len(outputs)
        return torch.cat(outputs, dim=2), h_rows, c_rows

    def _initial(self, layer: int, direction: int, slips: frozenset[Slip]) -> tuple[torch.Tensor, torch.Tensor | None]:
        call, directions = self.call, self.directions
        rows = self._slip("h0-rows-direction-major", slips)
        source = 0 if direction and self._has("h0-reverse-reads-forward-row", slips, layer) else direction

        def row(state: str) -> int:
            if rows is not None and rows.detail in (state, "both"):
                return source * self.module.num_layers + layer
            return layer * directions + source

        h0: torch.Tensor = call.h0[row("h")].double()
        c0 = None if call.c0 is None else call.c0[row("c")].double()
        if self._has("h0-c0-swapped", slips) and c0 is not None:
            h0, c0 = c0, h0
        ignored = self._slip("h0-ignored", slips, layer, direction)
        if ignored is not None:
            if ignored.detail in ("h", "both"):
                h0 = torch.zeros_like(h0)
            if ignored.detail in ("c", "both") and c0 is not None:
                c0 = torch.zeros_like(c0)
        return h0, c0

    def _weights(self, layer: int, direction: int, slips: frozenset[Slip]) -> dict[str, torch.Tensor | None]:
        own = "_reverse" if direction else ""
        other = "" if direction else "_reverse"
        if self._has("other-direction-weights", slips, layer, direction):
            own = other
        weights: dict[str, torch.Tensor | None] = {}
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
            swapped = name == "weight_hr" and self._has("projection-of-other-direction", slips, layer, direction)
            suffix = other if swapped else own
            found = getattr(self.module, f"{name}_l{layer}{suffix}", None)
            weights[name] = None if found is None else found.double()
        order = self._slip("gate-order", slips, layer, direction)
        if order is not None and order.detail is not None:
            letters, _, only = order.detail.partition("/")
            names = ("weight_ih", "weight_hh") if only == "weights" else \
                ("bias_ih", "bias_hh") if only == "biases" else ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            for name in names:
                weights[name] = _read_in_order(weights[name], letters.split(","), GATES[self.mode])
        left_out = self._slip("bias-left-out", slips, layer, direction)
        if left_out is not None:
            for which in ("ih", "hh"):
                if left_out.detail in (which, "both"):
                    weights[f"bias_{which}"] = None
        return weights

    def _direction(self, layer: int, direction: int, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
                   w: dict[str, torch.Tensor | None], slips: frozenset[Slip],
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One direction over ``x`` (``(T, B, F)``): its output in forward time order (zeros past
        each sequence's length), and its final state."""
        lengths = self.call.lengths
        steps = x.shape[0]
        if self._has("lengths-ignored", slips, layer, direction):
            lengths = torch.full_like(lengths, steps)
        flip = _no_flip
        if direction and not self._has("reverse-runs-forward", slips, layer):
            flip = _flip_padded if self._has("reverse-from-padded-end", slips, layer) else _flip_within
        sequence = flip(x, lengths)
        valid = (torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)
        gi = sequence @ _given(w["weight_ih"]).T + _or_zero(w["bias_ih"])
        outputs = []
        for step in range(steps):
            h_next, c_next = self._cell(layer, direction, gi[step], h, c, w, slips)
            keep = valid[step]
            h = torch.where(keep, h_next, h)
            c = None if c is None or c_next is None else torch.where(keep, c_next, c)
            outputs.append(torch.where(keep, h_next, torch.zeros_like(h_next)))
        output = torch.stack(outputs)
        if not (direction and self._has("not-re-reversed", slips, layer)):
            output = flip(output, lengths)
        return output, h, c

    def _cell(self, layer: int, direction: int, gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
              w: dict[str, torch.Tensor | None], slips: frozenset[Slip]) -> tuple[torch.Tensor, torch.Tensor | None]:
        gh = h @ _given(w["weight_hh"]).T
        b_hh = _or_zero(w["bias_hh"])
        mode = self.mode
        if mode in ("RNN_TANH", "RNN_RELU"):
            relu = (mode == "RNN_RELU") != self._has("activation-swapped", slips, layer, direction)
            return (torch.relu if relu else torch.tanh)(gi + gh + b_hh), None
        if mode == "GRU":
            (i_r, i_z, i_n), (h_r, h_z, h_n) = gi.chunk(3, -1), gh.chunk(3, -1)
            b_r, b_z, b_n = b_hh.chunk(3, -1) if isinstance(b_hh, torch.Tensor) else (0.0, 0.0, 0.0)
            r, z = torch.sigmoid(i_r + h_r + b_r), torch.sigmoid(i_z + h_z + b_z)
            if self._has("gru-b_hn-outside-reset", slips, layer, direction):
                n = torch.tanh(i_n + r * h_n + b_n)
            else:
                n = torch.tanh(i_n + r * (h_n + b_n))
            return (1 - z) * n + z * h, None
        assert c is not None
        i, f, g, o = (gi + gh + b_hh).chunk(4, -1)
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_next = torch.sigmoid(o) * torch.tanh(c_next)
        if w["weight_hr"] is not None:
            h_next = h_next @ w["weight_hr"].T
        return h_next, c_next

    def _final(self, layer: int, direction: int, output: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
               slips: frozenset[Slip]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The direction's ``h_n`` row as written: its final state, or read off its output."""
        if self._has("h_n-from-last-padded-step", slips, layer):
            return output[-1], c
        if direction and self._has("reverse-h_n-from-last-step", slips, layer):
            last = (self.call.lengths - 1).clamp(min=0)
            return output[last, torch.arange(len(last))], c
        return h, c

    # -- the whole call ----------------------------------------------------------------------------

    def _written(self, output: torch.Tensor, h_n: torch.Tensor, c_n: torch.Tensor | None,
                 slips: frozenset[Slip]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        rows = self._slip("h_n-rows-direction-major", slips)
        if rows is not None:
            layers = self.module.num_layers
            rows_read = [direction * layers + layer for layer in range(layers) for direction in range(self.directions)]
            # the row written at layer-major position k holds what direction-major position k means
            inverse = torch.argsort(torch.tensor(rows_read))
            if rows.detail in ("h", "both"):
                h_n = h_n[inverse]
            if rows.detail in ("c", "both") and c_n is not None:
                c_n = c_n[inverse]
        if self._has("h_n-c_n-swapped", slips) and c_n is not None:
            h_n, c_n = c_n, h_n
        if self._has("h_n-in-sorted-order", slips) and self.call.packed is not None \
                and self.call.packed.sorted_indices is not None:
            order = self.call.packed.sorted_indices.cpu()
            h_n = h_n.index_select(1, order)
            c_n = None if c_n is None else c_n.index_select(1, order)
        return output, h_n, c_n

    # -- which slips are where -----------------------------------------------------------------------

    def _slip(self, kind: str, slips: frozenset[Slip], layer: int | None = None,
              direction: int | None = None) -> Slip | None:
        for slip in slips:
            if slip.kind == kind and (layer is None or slip.at(layer, direction)):
                return slip
        return None

    def _has(self, kind: str, slips: frozenset[Slip], layer: int | None = None, direction: int | None = None) -> bool:
        return self._slip(kind, slips, layer, direction) is not None


def _read_in_order(tensor: torch.Tensor | None, letters: list[str], gates: str) -> torch.Tensor | None:
    """The blocks of ``tensor`` as a port that reads them in the order ``letters`` uses them: the
    gate ``letters[k]`` gets the module's block ``k``."""
    if tensor is None:
        return None
    blocks = tensor.chunk(len(gates), dim=0)
    return torch.cat([blocks[letters.index(gate)] for gate in gates], dim=0)


def _flip_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return reverse_within_lengths(x, lengths)


def _flip_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return x.flip(0)


def _no_flip(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return x


def _mode(module: nn.RNNBase) -> str:
    if isinstance(module, nn.LSTM):
        return "LSTM"
    if isinstance(module, nn.GRU):
        return "GRU"
    return "RNN_RELU" if module.nonlinearity == "relu" else "RNN_TANH"


def _or_zero(bias: torch.Tensor | None) -> torch.Tensor | float:
    return 0.0 if bias is None else bias


def _given(weight: torch.Tensor | None) -> torch.Tensor:
    assert weight is not None
    return weight
