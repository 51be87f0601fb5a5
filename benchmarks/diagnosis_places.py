"""How well the diagnosis names mistakes that were written outside its own catalogue.

The diagnosis (:func:`fuzz_birnn.diagnosis.diagnose.diagnose`) gets a failing case and the
candidate's result and names the known kind of mistake, and the place, that reproduces it. Its own
tests plant each kind the way its catalogue writes it; here the mistakes come from two ports of a
bidirectional multi-layer ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` written from scratch, from torch's
documented equations, in two different styles:

* :func:`precomputed_port` projects every time step's input at once and cuts the gates out of one
  product (``chunk``), the batch whole, one layer after another;
* :func:`gatewise_port` runs one sequence of the batch at a time, with each gate's own slice of
  the weights, as a port written for single-sequence inference does.

Each entry switches on one slip (two, for the pair entries) at a place a person porting the layer
really makes it: one direction, one layer, the returned output but not the layers' inputs, ``c``
but not ``h``, gate orders of other libraries. Most are kinds the diagnosis knows (the entry says
which kind, layers, directions and detail it must name); five are mistakes no known kind expresses
(an off-by-one in time, a constant, a different equation, state carried between batch rows),
where the only right answer is to name nothing.

For each entry Hypothesis draws cases (``seed(0)``, no shrinking, no database) until ``N`` failing
cases have been diagnosed, and then finds the case it shrinks to and diagnoses that as well. A
diagnosis is *right* when its named mistakes include the expected one (both, for a pair), *wrong*
when it names something else (or anything, for an uncatalogued slip), and *none* when it names
nothing. Usage: ``python benchmarks/diagnosis_places.py [N] [ENTRY-SUBSTRING]``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, find, given, seed, settings
from hypothesis.errors import NoSuchExample

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz_birnn import CheckFailure, check
from fuzz_birnn.diagnosis.diagnose import diagnose
from fuzz_birnn.strategies import cases

ALL_MODES = ("RNN_TANH", "RNN_RELU", "GRU", "LSTM")
RNN_MODES = ("RNN_TANH", "RNN_RELU")
#: torch's gate blocks, in the order its weights stack them (an RNN has one block).
TORCH_GATES = {"RNN_TANH": ("h",), "RNN_RELU": ("h",), "GRU": ("r", "z", "n"), "LSTM": ("i", "f", "g", "o")}


# --- Where a slip is made ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """A place in the stack: ``layer`` is an index, ``"all"``, ``"last"``, ``"all-but-last"`` or
    ``None`` (nowhere); ``direction`` is 0 (forward), 1 (reverse) or ``None`` (both). A place that
    concerns a layer's concatenation, not one direction, is asked with ``direction=None``."""

    layer: int | str | None = "all"
    direction: int | None = None

    def __call__(self, layer: int, direction: int | None, layers: int) -> bool:
        if self.layer is None:
            return False
        if self.direction is not None and direction is not None and direction != self.direction:
            return False
        return layer in resolve_layers(self.layer, layers)


NOWHERE = Where(None)


def resolve_layers(rule: int | str | None, layers: int) -> frozenset[int]:
    """The layers a rule names in a stack of ``layers`` (``None``: no layer place at all)."""
    if rule is None:
        return frozenset()
    if isinstance(rule, int):
        return frozenset({rule}) if rule < layers else frozenset()
    return frozenset({"all": range(layers), "all-but-last": range(layers - 1), "last": (layers - 1,)}[rule])


@dataclass(frozen=True)
class Slips:
    """The mistakes a port makes, each where it makes it (all off: the correct port).

    A ``(detail, Where)`` pair says what is slipped there: the gate order as the port unpacks
    torch's blocks (``"i,o,f,g"``), which bias (``"ih"``, ``"hh"``, ``"both"``), which state
    (``"h"``, ``"c"``, ``"both"``). Each port reads only the slips it is written to make.
    """

    # how a layer's two directions are put together (output of the last layer included)
    not_re_reversed: Where = NOWHERE
    halves_swapped: Where = NOWHERE
    forward_half_duplicated: Where = NOWHERE
    # one direction of one layer
    reverse_runs_forward: Where = NOWHERE
    other_direction_weights: Where = NOWHERE
    activation_swapped: Where = NOWHERE
    b_hn_outside_reset: Where = NOWHERE
    gate_order: tuple[str, Where] = ("", NOWHERE)
    bias_left_out: tuple[str, Where] = ("", NOWHERE)
    h0_ignored: tuple[str, Where] = ("", NOWHERE)
    h0_reverse_reads_forward_row: Where = NOWHERE
    output_before_update: Where = NOWHERE
    forget_bias_one: Where = NOWHERE
    update_gate_swapped: Where = NOWHERE
    tanh_on_c_left_out: Where = NOWHERE
    # the rows of the state tensors
    h0_direction_major: str = ""
    h_n_direction_major: str = ""
    h0_c0_swapped: bool = False
    h_n_c_n_swapped: bool = False
    state_carried_across_rows: bool = False

    def made(self, name: str, layer: int, direction: int | None, layers: int) -> str:
        """The detail of slip ``name`` where it is made at (layer, direction), else ``""``."""
        detail, place = getattr(self, name)
        return detail if place(layer, direction, layers) else ""

    def only(self, names: set[str]) -> Slips:
        """Itself, once checked that it switches on no slip outside ``names``."""
        stray = [f.name for f in dataclasses.fields(self)
                 if f.name not in names and getattr(self, f.name) != f.default]
        if stray:
            raise ValueError(f"this port does not make {', '.join(stray)}")
        return self


CORRECT = Slips()


# --- Shared by both ports ------------------------------------------------------------------------------


def initial_state(module: Any, hx: Any, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(h0, c0)`` as given, zeros where not given; ``c0`` is ``None`` except for an LSTM."""
    zeros = like.new_zeros(2 * module.num_layers, batch, module.hidden_size)
    if module.mode == "LSTM":
        return hx if hx is not None else (zeros, zeros)
    return (hx if hx is not None else zeros), None


def row(layer: int, direction: int, layers: int, direction_major: bool) -> int:
    """The row of ``h0``/``h_n`` for (layer, direction): torch's ``layer * 2 + direction``, or the
    ``direction * layers + layer`` of a port that read the layout the other way round."""
    return direction * layers + layer if direction_major else layer * 2 + direction


def weights(module: Any, layer: int, direction: int) -> tuple[torch.Tensor, ...]:
    """``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` of (layer, direction); zero biases
    for a module without them."""
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    w_ih, w_hh = getattr(module, "weight_ih" + suffix), getattr(module, "weight_hh" + suffix)
    if not module.bias:
        return w_ih, w_hh, w_ih.new_zeros(w_ih.shape[0]), w_hh.new_zeros(w_hh.shape[0])
    return w_ih, w_hh, getattr(module, "bias_ih" + suffix), getattr(module, "bias_hh" + suffix)


def gate_names(mode: str, order: str) -> tuple[str, ...]:
    """The names a port gives torch's gate blocks, in block order: torch's own unless ``order``."""
    return tuple(order.split(",")) if order else TORCH_GATES[mode]


# --- Port 1: input projections precomputed, gates cut from one product ---------------------------


def precomputed_port(module: Any, input: torch.Tensor, hx: Any = None, slips: Slips = CORRECT) -> Any:
    """A bidirectional stack that projects the whole sequence's input at once per direction, then
    steps through time with one hidden product per step, the gates cut out with ``chunk``."""
    slips.only({"not_re_reversed", "halves_swapped", "forward_half_duplicated", "reverse_runs_forward",
                "other_direction_weights", "activation_swapped", "gate_order", "bias_left_out", "h0_ignored",
                "h0_reverse_reads_forward_row", "h0_direction_major", "h_n_direction_major"})
    x = input.transpose(0, 1) if module.batch_first else input
    layers = module.num_layers
    h0, c0 = initial_state(module, hx, x.shape[1], x)
    finals: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor | None]] = {}
    for layer in range(layers):
        halves, backwards = [], False
        for direction in (0, 1):
            start = _start(h0, c0, layer, direction, layers, slips)
            steps, backwards, finals[layer, direction] = _direction(module, layer, direction, x, start, slips)
            halves.append(steps)
        x = _concatenated(halves[0], halves[1], backwards, layer, layers, slips)
    output = x.transpose(0, 1) if module.batch_first else x
    h_n = _final_rows(finals, layers, 0, slips.h_n_direction_major in ("h", "both"))
    if module.mode != "LSTM":
        return output, h_n
    return output, (h_n, _final_rows(finals, layers, 1, slips.h_n_direction_major in ("c", "both")))


def _start(h0: torch.Tensor, c0: torch.Tensor | None, layer: int, direction: int, layers: int,
           slips: Slips) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The (h, c) that (layer, direction) starts from, read from the initial state's rows."""
    ignored = slips.made("h0_ignored", layer, direction, layers)
    source = 0 if direction == 1 and slips.h0_reverse_reads_forward_row(layer, direction, layers) else direction

    def read(states: torch.Tensor | None, which: str) -> torch.Tensor | None:
        if states is None:
            return None
        state = states[row(layer, source, layers, slips.h0_direction_major in (which, "both"))]
        return torch.zeros_like(state) if ignored in (which, "both") else state

    return read(h0, "h"), read(c0, "c")  # type: ignore[return-value]


def _direction(module: Any, layer: int, direction: int, x: torch.Tensor, start: tuple[Any, Any],
               slips: Slips) -> tuple[torch.Tensor, bool, tuple[Any, Any]]:
    """One direction of one layer: the hidden states in the order processed, whether that order
    ran backwards in time, and the final (h, c)."""
    layers = module.num_layers
    source = 1 - direction if slips.other_direction_weights(layer, direction, layers) else direction
    w_ih, w_hh, b_ih, b_hh = weights(module, layer, source)
    left_out = slips.made("bias_left_out", layer, direction, layers)
    if left_out in ("ih", "both"):
        b_ih = torch.zeros_like(b_ih)
    if left_out in ("hh", "both"):
        b_hh = torch.zeros_like(b_hh)
    order = slips.made("gate_order", layer, direction, layers)
    swapped = slips.activation_swapped(layer, direction, layers)
    projected = x @ w_ih.T + b_ih  # every step's input part, at once
    backwards = direction == 1 and not slips.reverse_runs_forward(layer, direction, layers)
    h, c = start
    steps = []
    for t in reversed(range(x.shape[0])) if backwards else range(x.shape[0]):
        h, c = _chunked_step(module.mode, projected[t], h @ w_hh.T + b_hh, h, c, order, swapped)
        steps.append(h)
    return torch.stack(steps), backwards, (h, c)


def _chunked_step(mode: str, x_part: torch.Tensor, h_part: torch.Tensor, h: torch.Tensor, c: Any, order: str,
                  activation_swapped: bool) -> tuple[torch.Tensor, Any]:
    """One time step from the input's and the hidden state's projections (all gates stacked)."""
    if mode in RNN_MODES:
        relu = (mode == "RNN_RELU") != activation_swapped
        return (torch.relu if relu else torch.tanh)(x_part + h_part), None
    names = gate_names(mode, order)
    xg = dict(zip(names, x_part.chunk(len(names), dim=-1), strict=True))
    hg = dict(zip(names, h_part.chunk(len(names), dim=-1), strict=True))
    if mode == "GRU":
        r = torch.sigmoid(xg["r"] + hg["r"])
        z = torch.sigmoid(xg["z"] + hg["z"])
        n = torch.tanh(xg["n"] + r * hg["n"])
        return (1 - z) * n + z * h, None
    c = torch.sigmoid(xg["f"] + hg["f"]) * c + torch.sigmoid(xg["i"] + hg["i"]) * torch.tanh(xg["g"] + hg["g"])
    return torch.sigmoid(xg["o"] + hg["o"]) * torch.tanh(c), c


def _concatenated(forward: torch.Tensor, reverse: torch.Tensor, backwards: bool, layer: int, layers: int,
                  slips: Slips) -> torch.Tensor:
    """A layer's output: the forward half, then the reverse half put back in forward time order."""
    if backwards and not slips.not_re_reversed(layer, None, layers):
        reverse = reverse.flip(0)
    if slips.forward_half_duplicated(layer, None, layers):
        reverse = forward
    if slips.halves_swapped(layer, None, layers):
        forward, reverse = reverse, forward
    return torch.cat([forward, reverse], dim=-1)


def _final_rows(finals: dict[tuple[int, int], tuple[Any, Any]], layers: int, index: int,
                direction_major: bool) -> torch.Tensor:
    """``h_n`` (``index`` 0) or ``c_n`` (1) from each (layer, direction)'s final state."""
    rows: list[Any] = [None] * (2 * layers)
    for (layer, direction), state in finals.items():
        rows[row(layer, direction, layers, direction_major)] = state[index]
    return torch.stack(rows)


# --- Port 2: one sequence at a time, one weight slice per gate -------------------------------------


@dataclass(frozen=True)
class Gate:
    """One gate's slices of the weights: its input part ``w_i x + b_i`` and hidden part ``w_h h + b_h``."""

    w_i: torch.Tensor
    w_h: torch.Tensor
    b_i: torch.Tensor
    b_h: torch.Tensor

    def of_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_i @ x + self.b_i

    def of_hidden(self, h: torch.Tensor) -> torch.Tensor:
        return self.w_h @ h + self.b_h


def gatewise_port(module: Any, input: torch.Tensor, hx: Any = None, slips: Slips = CORRECT) -> Any:
    """A bidirectional stack run one sequence of the batch at a time, as vectors, each gate from
    its own slice of the weights (``W_ir``, ``W_iz``, ... as the documentation writes them)."""
    slips.only({"gate_order", "b_hn_outside_reset", "output_before_update", "forget_bias_one",
                "update_gate_swapped", "tanh_on_c_left_out", "h0_c0_swapped", "h_n_c_n_swapped",
                "state_carried_across_rows"})
    sequences = input if module.batch_first else input.transpose(0, 1)  # (batch, time, features)
    h0, c0 = initial_state(module, hx, sequences.shape[0], input)
    if slips.h0_c0_swapped:
        h0, c0 = c0, h0
    outputs, finals, carried = [], [], None
    for b, sequence in enumerate(sequences):
        start = carried if slips.state_carried_across_rows and carried is not None else _row_start(h0, c0, b)
        output, carried = _one_sequence(module, sequence, start, slips)
        outputs.append(output)
        finals.append(carried)
    output = torch.stack(outputs) if module.batch_first else torch.stack(outputs, dim=1)
    keys = [(layer, direction) for layer in range(module.num_layers) for direction in (0, 1)]
    h_n = torch.stack([torch.stack([final[key][0] for final in finals]) for key in keys])
    if module.mode != "LSTM":
        return output, h_n
    c_n = torch.stack([torch.stack([final[key][1] for final in finals]) for key in keys])
    return output, (c_n, h_n) if slips.h_n_c_n_swapped else (h_n, c_n)


def _row_start(h0: torch.Tensor, c0: torch.Tensor | None, b: int) -> dict[tuple[int, int], tuple[Any, Any]]:
    """Batch row ``b``'s initial (h, c) for each (layer, direction)."""
    layers = h0.shape[0] // 2
    return {(layer, direction): (h0[layer * 2 + direction, b], None if c0 is None else c0[layer * 2 + direction, b])
            for layer in range(layers) for direction in (0, 1)}


def _one_sequence(module: Any, sequence: torch.Tensor, start: dict[tuple[int, int], tuple[Any, Any]],
                  slips: Slips) -> tuple[torch.Tensor, dict[tuple[int, int], tuple[Any, Any]]]:
    """One sequence (time, features) through every layer: its output and each final (h, c)."""
    finals = {}
    for layer in range(module.num_layers):
        halves = []
        for direction in (0, 1):
            gates = _gates(module, layer, direction, slips.made("gate_order", layer, direction, module.num_layers))
            half, finals[layer, direction] = _run(module, gates, sequence, start[layer, direction], layer, direction,
                                                  slips)
            halves.append(half)
        sequence = torch.cat(halves, dim=-1)
    return sequence, finals


def _gates(module: Any, layer: int, direction: int, order: str) -> dict[str, Gate]:
    """(layer, direction)'s gates by name, each from its own slice of the stacked weights."""
    slices = [w.split(module.hidden_size) for w in weights(module, layer, direction)]
    return {name: Gate(*parts) for name, *parts in zip(gate_names(module.mode, order), *slices, strict=True)}


def _run(module: Any, gates: dict[str, Gate], sequence: torch.Tensor, start: tuple[Any, Any], layer: int,
         direction: int, slips: Slips) -> tuple[torch.Tensor, tuple[Any, Any]]:
    """One direction over one sequence: the hidden state at each time step, and the final (h, c)."""
    def at(name: str) -> bool:
        return getattr(slips, name)(layer, direction, module.num_layers)

    h, c = start
    written: list[Any] = [None] * sequence.shape[0]
    for t in reversed(range(sequence.shape[0])) if direction == 1 else range(sequence.shape[0]):
        before = h
        h, c = _gatewise_step(module.mode, gates, sequence[t], h, c, at)
        written[t] = before if at("output_before_update") else h
    return torch.stack(written), (h, c)


def _gatewise_step(mode: str, gates: dict[str, Gate], x: torch.Tensor, h: torch.Tensor, c: Any,
                   at: Callable[[str], bool]) -> tuple[torch.Tensor, Any]:
    """One time step of one vector, gate by gate, as torch's documentation writes the equations."""
    def pre(name: str) -> torch.Tensor:
        return gates[name].of_input(x) + gates[name].of_hidden(h)

    if mode in RNN_MODES:
        return (torch.relu if mode == "RNN_RELU" else torch.tanh)(pre("h")), None
    if mode == "GRU":
        r, z, n_gate = torch.sigmoid(pre("r")), torch.sigmoid(pre("z")), gates["n"]
        if at("b_hn_outside_reset"):
            n = torch.tanh(n_gate.of_input(x) + r * (n_gate.w_h @ h) + n_gate.b_h)
        else:
            n = torch.tanh(n_gate.of_input(x) + r * n_gate.of_hidden(h))
        return (z * n + (1 - z) * h if at("update_gate_swapped") else (1 - z) * n + z * h), None
    forget = torch.sigmoid(pre("f") + (1.0 if at("forget_bias_one") else 0.0))
    c = forget * c + torch.sigmoid(pre("i")) * torch.tanh(pre("g"))
    o = torch.sigmoid(pre("o"))
    return (o * c if at("tanh_on_c_left_out") else o * torch.tanh(c)), c


# --- The entries ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """A mistake the diagnosis must name: its kind; its layers as a rule resolved per case
    (``"all"``, ``"all-but-last"``, ``"last"``, an index, or ``None`` for a kind with no layer
    place, which must then say ``frozenset()``); its directions (``"both"``, ``"forward"``,
    ``"reverse"``, or ``None``: not compared); its detail (``None``: not compared)."""

    kind: str
    layers: int | str | None = "all"
    directions: str | None = None
    detail: str | None = None

    def __str__(self) -> str:
        parts = [self.kind, f"layers={self.layers}" if self.layers is not None else ""]
        parts += [f"dirs={self.directions}" if self.directions else "", self.detail or ""]
        return " ".join(p for p in parts if p)


DIRECTIONS = {"both": frozenset({0, 1}), "forward": frozenset({0}), "reverse": frozenset({1})}


@dataclass(frozen=True)
class Entry:
    """A buggy candidate, the modes it can show in, the cases to draw it on (``narrowing``: more
    keywords of :func:`cases`), and what the diagnosis must name: one :class:`Expected`, a pair of
    them, or ``None`` for a mistake no known kind expresses."""

    name: str
    candidate: Callable[..., Any]
    modes: tuple[str, ...]
    expected: Expected | tuple[Expected, Expected] | None
    narrowing: dict[str, Any] = dataclasses.field(default_factory=dict)

    def strategy(self) -> Any:
        return cases(modes=list(self.modes), forms=["padded"], proj=False, bidirectional=True,
                     dtypes=["float64", "float32"], **self.narrowing)

    def label(self) -> str:
        if self.expected is None:
            return "(nothing)"
        if isinstance(self.expected, tuple):
            return " + ".join(map(str, self.expected))
        return str(self.expected)


def ported(port: Callable[..., Any], name: str, **slips: Any) -> Callable[..., Any]:
    """A candidate: ``port`` making ``slips``, under a name that says which."""
    made = Slips(**slips)

    def candidate(module: Any, input: torch.Tensor, hx: Any = None) -> Any:
        return port(module, input, hx, made)

    candidate.__name__ = candidate.__qualname__ = name
    return candidate


A, B = precomputed_port, gatewise_port
ENTRIES = [
    # the returned output and the layers' inputs, at other places than the seed's
    Entry("not re-reversed at every layer, output too", ported(A, "not_re_reversed_everywhere",
          not_re_reversed=Where("all")), ALL_MODES, Expected("not-re-reversed", "all")),
    Entry("not re-reversed in the returned output only", ported(A, "not_re_reversed_in_output",
          not_re_reversed=Where("last")), ALL_MODES, Expected("not-re-reversed", "last")),
    Entry("halves swapped at layer 1 of 3+", ported(A, "halves_swapped_at_layer_1", halves_swapped=Where(1)),
          ALL_MODES, Expected("halves-swapped", 1), {"min_layers": 3}),
    Entry("reverse runs forward at layer 0 only", ported(A, "reverse_runs_forward_at_layer_0",
          reverse_runs_forward=Where(0)), ALL_MODES, Expected("reverse-runs-forward", 0), {"min_layers": 2}),
    # gate orders of other libraries, and in one direction only
    Entry("LSTM gates in ONNX's order i,o,f,g", ported(B, "lstm_onnx_gate_order", gate_order=("i,o,f,g", Where())),
          ("LSTM",), Expected("gate-order", "all", "both", "i,o,f,g")),
    Entry("LSTM reverse direction reads i,f,o,g", ported(B, "lstm_reverse_gate_order",
          gate_order=("i,f,o,g", Where(direction=1))), ("LSTM",), Expected("gate-order", "all", "reverse", "i,f,o,g")),
    Entry("GRU gates in Keras' order z,r,n", ported(A, "gru_keras_gate_order", gate_order=("z,r,n", Where())),
          ("GRU",), Expected("gate-order", "all", "both", "z,r,n")),
    Entry("GRU b_hn outside reset, reverse only", ported(B, "gru_b_hn_outside_reset_reverse",
          b_hn_outside_reset=Where(direction=1)), ("GRU",), Expected("gru-b_hn-outside-reset", "all", "reverse"),
          {"bias": True}),
    # one bias, one activation, one direction's weights
    Entry("bias_hh left out at layer 0", ported(A, "bias_hh_left_out_at_layer_0", bias_left_out=("hh", Where(0))),
          ALL_MODES, Expected("bias-left-out", 0, "both", "hh"), {"bias": True, "min_layers": 2}),
    Entry("bias_ih left out in the reverse direction", ported(A, "bias_ih_left_out_reverse",
          bias_left_out=("ih", Where(direction=1))), ALL_MODES, Expected("bias-left-out", "all", "reverse", "ih"),
          {"bias": True}),
    Entry("activation swapped in the reverse direction", ported(A, "activation_swapped_reverse",
          activation_swapped=Where(direction=1)), RNN_MODES, Expected("activation-swapped", "all", "reverse")),
    Entry("last layer's reverse uses forward weights", ported(A, "other_direction_weights_last_reverse",
          other_direction_weights=Where("last", 1)), ALL_MODES,
          Expected("other-direction-weights", "last", "reverse"), {"min_layers": 2}),
    # the state tensors: c but not h, h but not c
    Entry("c0 ignored, h0 read", ported(A, "c0_ignored", h0_ignored=("c", Where())), ("LSTM",),
          Expected("h0-ignored", "all", "both", "c"), {"initial_state": True}),
    Entry("h0 read direction-major, c0 right", ported(A, "h0_direction_major_h_only", h0_direction_major="h"),
          ("LSTM",), Expected("h0-rows-direction-major", None, None, "h"), {"initial_state": True, "min_layers": 2}),
    Entry("c_n written direction-major, h_n right", ported(A, "c_n_direction_major", h_n_direction_major="c"),
          ("LSTM",), Expected("h_n-rows-direction-major", None, None, "c"), {"min_layers": 2}),
    # two independent mistakes at once
    Entry("pair: output halves swapped + reverse starts from forward's h0 row",
          ported(A, "halves_swapped_in_output_and_h0_forward_row", halves_swapped=Where("last"),
                 h0_reverse_reads_forward_row=Where()), ALL_MODES,
          (Expected("halves-swapped", "last"), Expected("h0-reverse-reads-forward-row", "all")),
          {"initial_state": True}),
    Entry("pair: LSTM gates f,i,g,o + h_n/c_n swapped", ported(B, "lstm_f_i_g_o_and_h_n_c_n_swapped",
          gate_order=("f,i,g,o", Where()), h_n_c_n_swapped=True), ("LSTM",),
          (Expected("gate-order", "all", "both", "f,i,g,o"), Expected("h_n-c_n-swapped", None))),
    # mistakes no known kind expresses: the right answer is to name nothing
    Entry("output written before the update (off by one)", ported(B, "output_before_update",
          output_before_update=Where()), ALL_MODES, None),
    Entry("LSTM forget gate +1 (Keras' unit_forget_bias)", ported(B, "lstm_forget_bias_one",
          forget_bias_one=Where()), ("LSTM",), None),
    Entry("GRU update gate the other way round", ported(B, "gru_update_gate_swapped",
          update_gate_swapped=Where()), ("GRU",), None),
    Entry("LSTM h = o * c (tanh left out)", ported(B, "lstm_tanh_on_c_left_out", tanh_on_c_left_out=Where()),
          ("LSTM",), None),
    Entry("state carried from one batch row to the next", ported(B, "state_carried_across_rows",
          state_carried_across_rows=True), ALL_MODES, None, {"min_batch": 2}),
]

#: Written as uncatalogued, but the first catalogue already held it (``next-layer-forward-only``):
#: the list of kinds its author was given left it out. Judged as the kind it is.
ENTRIES.append(Entry("next layer fed the forward half twice", ported(A, "forward_half_fed_twice",
                     forward_half_duplicated=Where("all-but-last")), ALL_MODES,
                     Expected("forward-output-twice", "all-but-last"), {"min_layers": 2}))


# --- Verdicts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosed:
    """One diagnosed failing case: the verdict, the names given, and how long the diagnosis took."""

    verdict: str
    names: tuple[str, ...]
    seconds: float
    case: str


def matches(mistake: Any, expected: Expected, layers: int) -> bool:
    """Whether a named mistake is ``expected`` on a stack of ``layers`` layers."""
    return (mistake.kind == expected.kind
            and frozenset(mistake.layers) == resolve_layers(expected.layers, layers)
            and (expected.directions is None or frozenset(mistake.directions) == DIRECTIONS[expected.directions])
            and (expected.detail is None or mistake.detail == expected.detail))


def verdict(mistakes: Sequence[Any], expected: Expected | tuple[Expected, ...] | None, layers: int) -> str:
    """``right``, ``wrong`` or ``none`` (see the module's docstring)."""
    if not mistakes:
        return "none"
    if expected is None:
        return "wrong"
    wanted = expected if isinstance(expected, tuple) else (expected,)
    return "right" if all(any(matches(m, e, layers) for m in mistakes) for e in wanted) else "wrong"


def name_of(mistake: Any) -> str:
    return getattr(mistake, "name", None) or str(mistake)


def failing(candidate: Callable[..., Any], case: Any) -> CheckFailure | None:
    """The candidate's disagreement with torch on ``case`` where values were compared, else ``None``
    (it passed, raised, returned the wrong structure, or torch itself was the one at fault)."""
    try:
        check(candidate, case)
    except CheckFailure as failure:
        return failure if failure.actual is not None and failure.prop == "agreement" else None
    return None


def diagnosed(entry: Entry, case: Any, failure: CheckFailure) -> Diagnosed:
    """The diagnosis of one failing case, judged against the entry's expectation."""
    started = time.perf_counter()
    diagnosis = diagnose(case, failure.actual, failure.allowed, entry.candidate)
    seconds = time.perf_counter() - started
    mistakes = tuple(diagnosis.mistakes) if hasattr(diagnosis, "mistakes") else _first_catalogue(diagnosis.names, case)
    # a pair is one named mistake of two slips: each slip is judged as a mistake of its own
    made = tuple(slip for m in mistakes for slip in getattr(m, "slips", (m,)))
    return Diagnosed(verdict(made, entry.expected, case.config.num_layers), tuple(map(name_of, mistakes)),
                     seconds, case.describe())


@dataclass(frozen=True)
class _Named:
    """A name of the first catalogue (whole-stack variants, before mistakes had places), as what it means."""

    name: str
    kind: str
    layers: frozenset[int]
    directions: frozenset[int]
    detail: str | None


#: The first catalogue's names, as kind, layers rule, directions and detail: to measure it "before".
FIRST_CATALOGUE: dict[str, tuple[str, int | str | None, frozenset[int], str | None]] = {
    "seed-missing-re-reversal": ("not-re-reversed", "all-but-last", frozenset(), None),
    "next-layer-halves-swapped": ("halves-swapped", "all-but-last", frozenset(), None),
    "next-layer-forward-only": ("forward-output-twice", "all-but-last", frozenset(), None),
    "output-halves-swapped": ("halves-swapped", "last", frozenset(), None),
    "reverse-runs-forward": ("reverse-runs-forward", "all", frozenset(), None),
    "h0-rows-direction-major": ("h0-rows-direction-major", None, frozenset(), "both"),
    "h_n-rows-direction-major": ("h_n-rows-direction-major", None, frozenset(), "both"),
    "c_n-rows-direction-major": ("h_n-rows-direction-major", None, frozenset(), "c"),
    "reverse-starts-from-forward-h0": ("h0-reverse-reads-forward-row", "all", frozenset(), None),
    "initial-state-ignored": ("h0-ignored", "all", frozenset({0, 1}), "both"),
    "h0-c0-swapped": ("h0-c0-swapped", None, frozenset(), None),
    "h_n-c_n-swapped": ("h_n-c_n-swapped", None, frozenset(), None),
    "lstm-gates-tensorflow-order": ("gate-order", "all", frozenset({0, 1}), "i,g,f,o"),
    "lstm-gates-onnx-order": ("gate-order", "all", frozenset({0, 1}), "i,o,f,g"),
    "gru-gates-onnx-order": ("gate-order", "all", frozenset({0, 1}), "z,r,n"),
    "gru-b_hn-outside-reset": ("gru-b_hn-outside-reset", "all", frozenset({0, 1}), None),
    "reverse-uses-forward-weights": ("other-direction-weights", "all", frozenset({1}), None),
    "hidden-bias-left-out": ("bias-left-out", "all", frozenset({0, 1}), "hh"),
    "input-bias-left-out": ("bias-left-out", "all", frozenset({0, 1}), "ih"),
    "tanh-relu-confused": ("activation-swapped", "all", frozenset({0, 1}), None),
}


def _first_catalogue(names: Sequence[str], case: Any) -> tuple[_Named, ...]:
    """A diagnosis of the first catalogue's (names only), as what the names mean on ``case``."""
    named = []
    for name in names:
        kind, rule, directions, detail = FIRST_CATALOGUE.get(name, (name, None, frozenset(), None))
        named.append(_Named(name, kind, resolve_layers(rule, case.config.num_layers), directions, detail))
    return tuple(named)


class _Enough(Exception):
    """Raised in the search once enough failing cases are diagnosed."""


def drawn(entry: Entry, wanted: int) -> list[Diagnosed]:
    """Up to ``wanted`` diagnosed failing cases, in the order Hypothesis draws them (seed 0)."""
    found: list[Diagnosed] = []

    @settings(max_examples=2000, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @seed(0)
    @given(entry.strategy())
    def search(case: Any) -> None:
        if len(found) >= wanted:
            raise _Enough
        failure = failing(entry.candidate, case)
        if failure is not None:
            found.append(diagnosed(entry, case, failure))

    with contextlib.suppress(_Enough):
        search()
    return found


def shrunk(entry: Entry) -> Diagnosed | None:
    """The diagnosis of the case Hypothesis shrinks a failure to (``None``: no failure found)."""
    try:
        case = find(entry.strategy(), lambda c: failing(entry.candidate, c) is not None,
                    settings=settings(max_examples=2000, database=None, deadline=None, derandomize=True,
                                      suppress_health_check=list(HealthCheck)))
    except NoSuchExample:
        return None
    failure = failing(entry.candidate, case)
    assert failure is not None
    return diagnosed(entry, case, failure)


# --- The table -----------------------------------------------------------------------------------------


def tally(rows: list[Diagnosed]) -> dict[str, int]:
    return {v: sum(r.verdict == v for r in rows) for v in ("right", "wrong", "none")}


def report(entry: Entry, rows: list[Diagnosed], small: Diagnosed | None) -> None:
    """One entry's line, and the names its shrunk case got."""
    counts = tally(rows)
    timed = rows + ([small] if small else [])
    seconds = f"{statistics.mean(r.seconds for r in timed):.2f}" if timed else "-"
    print(f"{entry.name:<62}{counts['right']:>6}{counts['wrong']:>6}{counts['none']:>6}"
          f"{small.verdict if small else 'unfound':>9}{seconds:>8}", flush=True)
    print(f"    expected: {entry.label()}")
    if small:
        print(f"    shrunk {small.case}: {'; '.join(small.names) or '(nothing named)'}", flush=True)


def totals(title: str, results: list[tuple[list[Diagnosed], Diagnosed | None]]) -> None:
    rows = [r for drawn_rows, _ in results for r in drawn_rows]
    counts = tally(rows)
    shrunk_counts = tally([s for _, s in results if s is not None])
    print(f"{title:<62}{counts['right']:>6}{counts['wrong']:>6}{counts['none']:>6}"
          f"   shrunk: {shrunk_counts['right']} right, {shrunk_counts['wrong']} wrong, {shrunk_counts['none']} none")


def main(wanted: int, only: str | None) -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    entries = [e for e in ENTRIES if only is None or only.lower() in e.name.lower()]
    print(f"torch {torch.__version__}; {len(entries)} entries; {wanted} diagnosed failing cases each + the shrunk one")
    print(f"{'entry':<62}{'right':>6}{'wrong':>6}{'none':>6}{'shrunk':>9}{'s/diag':>8}")
    catalogued, uncatalogued = [], []
    for entry in entries:
        result = (drawn(entry, wanted), shrunk(entry))
        report(entry, *result)
        (uncatalogued if entry.expected is None else catalogued).append(result)
    print()
    totals("catalogued kinds, all entries", catalogued)
    totals("uncatalogued mistakes (right answer: nothing named)", uncatalogued)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10, sys.argv[2] if len(sys.argv) > 2 else None)
