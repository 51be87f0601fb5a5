"""The catalogue of mistakes people make when they build or port a recurrent stack.

Each :class:`Mistake` is the float64 reference with one thing done wrong, the way a person gets it
wrong: the seed thread's missing re-reversal, ``h0`` rows read in the wrong order, the output's
halves swapped, gates read in another framework's order, and so on. :mod:`fuzz_birnn.diagnosis.diagnose`
runs them on a failing case and names those that reproduce the candidate's result.

A mistake is computed in one of four ways, whichever is the most direct statement of it:

* **on the stack** (:class:`~fuzz_birnn.DecomposedStack` with one step changed): what goes into
  the next layer, which way a direction runs;
* **on the cell** (:class:`~fuzz_birnn.CellReference` with one equation changed);
* **on the weights**: reading a gate block or a direction's weights where another belongs is the
  correct computation on a module whose weights are moved accordingly;
* **on the initial state or on the result**: rows read or written in the wrong order, a state
  ignored, halves swapped: the correct computation with its ``h0`` or its result moved.

Every mistake returns the result in per-direction form (``output`` ``(T, B, D, F)``, ``h_n``/``c_n``
``(L, D, B, F)``, float64 on the CPU), from a float64 copy of the case's call.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from fuzz_birnn.core.case import Case
from fuzz_birnn.core.compare import tensors_of
from fuzz_birnn.core.decomposition import DecomposedStack
from fuzz_birnn.core.layout import Canonical, Hidden, canonical
from fuzz_birnn.core.reference import CellReference

__all__ = ["CATALOGUE", "Mistake", "Tensors", "applicable", "correct"]

#: Per-direction float64 tensors by name (``output``, ``h_n``, ``c_n``).
Tensors = dict[str, torch.Tensor]
#: ``run(module, input, hx, case)``: the mistaken result of a float64 call, per direction.
Run = Callable[[nn.RNNBase, "torch.Tensor | nn.utils.rnn.PackedSequence", "Hidden | None", Case], Tensors]

_REFERENCE = CellReference(torch.float64)


@dataclass(frozen=True)
class Mistake:
    """One mistake: ``name`` is short and stable (``seed-missing-re-reversal``), ``behaviour``
    completes "behaves like a stack ..." , ``applies`` says on which cases it can show at all."""

    name: str
    behaviour: str
    applies: Callable[[Case], bool]
    run: Run


# -- how each kind of mistake is computed --------------------------------------------------------


def correct(module: nn.RNNBase, input: object, hx: Hidden | None, case: Case) -> Tensors:
    """The right result, per direction, in float64: what every mistake is a change of."""
    return tensors_of(_REFERENCE.compute(module, input, hx), case)  # type: ignore[arg-type]


def on_stack(stack: DecomposedStack) -> Run:
    """The decomposition with one step changed, run in float64."""
    return lambda module, input, hx, case: tensors_of(stack(module, input, hx), case)


def on_cell(cell: CellReference) -> Run:
    return lambda module, input, hx, case: tensors_of(cell.compute(module, input, hx), case)


def on_weights(move: Callable[[nn.RNNBase], None]) -> Run:
    """The correct computation on a copy of the module whose weights ``move`` rearranges."""
    def run(module: nn.RNNBase, input: object, hx: Hidden | None, case: Case) -> Tensors:
        moved = copy.deepcopy(module)
        with torch.no_grad():
            move(moved)
        return correct(moved, input, hx, case)
    return run


def on_state(move: Callable[[torch.Tensor, nn.RNNBase], torch.Tensor], *, which: str = "both") -> Run:
    """The correct computation from initial-state rows that ``move`` rearranges (``which``: ``h0``,
    ``c0`` or both)."""
    def run(module: nn.RNNBase, input: object, hx: Hidden | None, case: Case) -> Tensors:
        if isinstance(hx, tuple):
            h0, c0 = hx
            moved: Hidden = (move(h0, module) if which != "c0" else h0, move(c0, module) if which != "h0" else c0)
        else:
            assert hx is not None
            moved = move(hx, module)
        return correct(module, input, moved, case)
    return run


def on_result(move: Callable[[Tensors, nn.RNNBase, Canonical], Tensors]) -> Run:
    """The correct result, rearranged by ``move`` (given the call in canonical form)."""
    def run(module: nn.RNNBase, input: object, hx: Hidden | None, case: Case) -> Tensors:
        right = correct(module, input, hx, case)
        return move(right, module, canonical(module, input, hx))  # type: ignore[arg-type]
    return run


# -- the stack's steps ----------------------------------------------------------------------------


class _NotReReversed(DecomposedStack):
    def next_layer_input(self, outputs: list[torch.Tensor], call: Canonical) -> torch.Tensor:
        forward, *rest = outputs
        return torch.cat([forward, *(self.reverse(o, call) for o in rest)], dim=2)


class _NextLayerHalvesSwapped(DecomposedStack):
    def next_layer_input(self, outputs: list[torch.Tensor], call: Canonical) -> torch.Tensor:
        return torch.cat(outputs[::-1], dim=2)


class _NextLayerForwardTwice(DecomposedStack):
    def next_layer_input(self, outputs: list[torch.Tensor], call: Canonical) -> torch.Tensor:
        return torch.cat([outputs[0]] * len(outputs), dim=2)


class _ReverseFromPaddedEnd(DecomposedStack):
    def reverse(self, sequences: torch.Tensor, call: Canonical) -> torch.Tensor:
        return sequences.flip(0)


class _ReverseRunsForward(DecomposedStack):
    def reverse(self, sequences: torch.Tensor, call: Canonical) -> torch.Tensor:
        return sequences


class _LengthsIgnored(DecomposedStack):
    """A packed batch run as if padded: every sequence steps on over the padding (zeros)."""

    def run_direction(self, module: nn.RNNBase, layer: int, direction: int, sequences: torch.Tensor,
                      call: Canonical, state: tuple[torch.Tensor, torch.Tensor | None],
                      ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor | None]]:
        padded = dataclasses.replace(call, form="padded", lengths=torch.full_like(call.lengths, sequences.shape[0]))
        return super().run_direction(module, layer, direction, sequences, padded, state)


# -- the cell --------------------------------------------------------------------------------------


class _GruNewGateBiasOutsideReset(CellReference):
    def cell(self, mode: str, gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
             w: dict[str, torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor | None]:
        bias, weight_hh = w["bias_hh"], w["weight_hh"]
        if mode != "GRU" or bias is None or weight_hh is None:
            return super().cell(mode, gi, h, c, w)
        gh = torch.bmm(h, weight_hh.mT)
        b_r, b_z, b_n = bias.chunk(3, dim=-1)
        (i_r, i_z, i_n), (h_r, h_z, h_n) = gi.chunk(3, dim=-1), gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(i_r + h_r + b_r), torch.sigmoid(i_z + h_z + b_z)
        return (1 - z) * torch.tanh(i_n + r * h_n + b_n) + z * h, None


# -- the weights -----------------------------------------------------------------------------------


def _gate_order(order: list[int]) -> Callable[[nn.RNNBase], None]:
    """Gate blocks read in another order: block ``k`` of the correct computation is the module's
    block ``order[k]``."""
    def move(module: nn.RNNBase) -> None:
        blocks = len(order)
        for name in module._flat_weights_names:
            if name.startswith(("weight_ih", "weight_hh", "bias_ih", "bias_hh")):
                tensor = getattr(module, name)
                tensor.copy_(torch.cat([tensor.chunk(blocks, dim=0)[k] for k in order], dim=0))
    return move


def _both_directions_swap(prefix: str) -> Callable[[nn.RNNBase], None]:
    """Each layer's forward and reverse ``prefix`` weights exchanged."""
    def move(module: nn.RNNBase) -> None:
        for name in module._flat_weights_names:
            if name.startswith(prefix) and not name.endswith("_reverse"):
                forward, reverse = getattr(module, name), getattr(module, name + "_reverse")
                saved = forward.clone()
                forward.copy_(reverse)
                reverse.copy_(saved)
    return move


def _reverse_uses_forward_weights(module: nn.RNNBase) -> None:
    for name in module._flat_weights_names:
        if name.endswith("_reverse"):
            getattr(module, name).copy_(getattr(module, name[: -len("_reverse")]))


def _zero(prefix: str) -> Callable[[nn.RNNBase], None]:
    def move(module: nn.RNNBase) -> None:
        for name in module._flat_weights_names:
            if name.startswith(prefix):
                getattr(module, name).zero_()
    return move


def _other_nonlinearity(module: nn.RNNBase) -> None:
    module.nonlinearity = "relu" if module.nonlinearity == "tanh" else "tanh"


# -- initial states and results --------------------------------------------------------------------


def _rows_direction_major(rows: torch.Tensor, module: nn.RNNBase) -> torch.Tensor:
    """What a reader of rows ``direction * L + layer`` gets where torch stores ``layer * D + direction``."""
    layers, directions = module.num_layers, 2
    order = [direction * layers + layer for layer in range(layers) for direction in range(directions)]
    return rows[order]


def _reverse_from_forward_row(rows: torch.Tensor, module: nn.RNNBase) -> torch.Tensor:
    return rows[[2 * (row // 2) for row in range(rows.shape[0])]]


def _zeros(rows: torch.Tensor, module: nn.RNNBase) -> torch.Tensor:
    return torch.zeros_like(rows)


def _h0_c0_swapped(module: nn.RNNBase, input: object, hx: Hidden | None, case: Case) -> Tensors:
    assert isinstance(hx, tuple)
    return correct(module, input, (hx[1], hx[0]), case)


def _output_halves_swapped(result: Tensors, module: nn.RNNBase, call: Canonical) -> Tensors:
    return {**result, "output": result["output"].flip(2)}


def _final_rows_direction_major(names: tuple[str, ...]) -> Callable[[Tensors, nn.RNNBase, Canonical], Tensors]:
    def move(result: Tensors, module: nn.RNNBase, call: Canonical) -> Tensors:
        moved = dict(result)
        for name in names:
            if name in result:
                layers, directions = result[name].shape[:2]
                written = result[name].transpose(0, 1).flatten(0, 1)  # rows in direction-major order
                moved[name] = written.unflatten(0, (layers, directions))
        return moved
    return move


def _h_n_c_n_swapped(result: Tensors, module: nn.RNNBase, call: Canonical) -> Tensors:
    return {**result, "h_n": result["c_n"], "c_n": result["h_n"]}


def _final_state_in_sorted_order(result: Tensors, module: nn.RNNBase, call: Canonical) -> Tensors:
    assert call.packed is not None and call.packed.sorted_indices is not None
    order = call.packed.sorted_indices.cpu()
    return {name: (t if name == "output" else t.index_select(2, order)) for name, t in result.items()}


def _final_state_from_last_padded_step(result: Tensors, module: nn.RNNBase, call: Canonical) -> Tensors:
    """The last layer's ``h_n`` read off the output at the last (padded) time step: ``output[-1]``."""
    h_n = result["h_n"].clone()
    h_n[-1] = result["output"][-1].transpose(0, 1)  # (B, D, F) -> (D, B, F)
    return {**result, "h_n": h_n}


def _reverse_final_state_from_last_step(result: Tensors, module: nn.RNNBase, call: Canonical) -> Tensors:
    """The reverse direction's ``h_n`` taken at each sequence's last time step, which is the first
    step it processed."""
    h_n = result["h_n"].clone()
    last = (call.lengths - 1).clamp(min=0)
    h_n[-1, 1] = result["output"][last, torch.arange(len(last)), 1]
    return {**result, "h_n": h_n}


# -- when a mistake can show -------------------------------------------------------------------------


def _bidirectional(case: Case) -> bool:
    return case.config.bidirectional


def _deep_bidirectional(case: Case) -> bool:
    return case.config.bidirectional and case.config.num_layers > 1


def _given_state(case: Case) -> bool:
    return case.inputs.initial_state


def _mode(*modes: str) -> Callable[[Case], bool]:
    return lambda case: case.config.mode in modes


def _all(*conditions: Callable[[Case], bool]) -> Callable[[Case], bool]:
    return lambda case: all(condition(case) for condition in conditions)


def _packed(case: Case) -> bool:
    return case.inputs.packed and len(set(case.inputs.lengths or ())) > 1


def _unsorted(case: Case) -> bool:
    return case.inputs.packed and not case.inputs.enforce_sorted


def _lstm_without_projection(case: Case) -> bool:
    return case.config.mode == "LSTM" and case.config.proj_size == 0


def _projection(case: Case) -> bool:
    return case.config.proj_size > 0 and case.config.bidirectional


def _bias(case: Case) -> bool:
    return case.config.bias


#: Every mistake, the seed thread's first.
CATALOGUE: tuple[Mistake, ...] = (
    Mistake("seed-missing-re-reversal", "whose backward output is not put back in forward time order before it "
            "is fed to the next layer (the seed thread's bug)", _deep_bidirectional, on_stack(_NotReReversed())),
    Mistake("next-layer-halves-swapped", "that feeds the next layer [backward, forward] instead of "
            "[forward, backward]", _deep_bidirectional, on_stack(_NextLayerHalvesSwapped())),
    Mistake("next-layer-forward-only", "that feeds the next layer the forward output in both halves",
            _deep_bidirectional, on_stack(_NextLayerForwardTwice())),
    Mistake("output-halves-swapped", "whose output is [backward, forward] instead of [forward, backward]",
            _bidirectional, on_result(_output_halves_swapped)),
    Mistake("reverse-runs-forward", "whose reverse direction runs forward in time", _bidirectional,
            on_stack(_ReverseRunsForward())),
    Mistake("h0-rows-direction-major", "that reads h0/c0 row direction * num_layers + layer instead of "
            "layer * 2 + direction", _all(_deep_bidirectional, _given_state), on_state(_rows_direction_major)),
    Mistake("h_n-rows-direction-major", "that writes h_n/c_n rows in direction-major order (direction * "
            "num_layers + layer)", _deep_bidirectional, on_result(_final_rows_direction_major(("h_n", "c_n")))),
    Mistake("c_n-rows-direction-major", "that writes c_n (but not h_n) rows in direction-major order",
            _all(_deep_bidirectional, _mode("LSTM")), on_result(_final_rows_direction_major(("c_n",)))),
    Mistake("reverse-starts-from-forward-h0", "whose reverse direction starts from the forward direction's "
            "row of h0/c0", _all(_bidirectional, _given_state), on_state(_reverse_from_forward_row)),
    Mistake("initial-state-ignored", "that ignores the given h0/c0 and starts from zeros", _given_state,
            on_state(_zeros)),
    Mistake("h0-c0-swapped", "that takes h0 for c0 and c0 for h0", _all(_given_state, _lstm_without_projection),
            _h0_c0_swapped),
    Mistake("h_n-c_n-swapped", "that returns (c_n, h_n) instead of (h_n, c_n)", _lstm_without_projection,
            on_result(_h_n_c_n_swapped)),
    Mistake("packed-reverse-from-padded-end", "whose reverse direction of a packed batch starts at the padded "
            "end instead of each sequence's own last step", _all(_bidirectional, _packed),
            on_stack(_ReverseFromPaddedEnd())),
    Mistake("packed-run-as-padded", "that runs a packed batch as if padded, so short sequences step on over "
            "the padding (h_n taken at the padded end)", _packed, on_stack(_LengthsIgnored())),
    Mistake("h_n-from-last-padded-step", "that takes the last layer's h_n from the output's last time step "
            "(output[-1])", lambda case: _bidirectional(case) or _packed(case),
            on_result(_final_state_from_last_padded_step)),
    Mistake("reverse-h_n-from-last-step", "that takes the reverse direction's h_n from its output at the last "
            "time step (the first step it processed)", _bidirectional,
            on_result(_reverse_final_state_from_last_step)),
    Mistake("h_n-left-in-sorted-order", "that leaves h_n/c_n in the packed batch's sorted order instead of "
            "the caller's", _unsorted, on_result(_final_state_in_sorted_order)),
    Mistake("lstm-gates-tensorflow-order", "that reads the LSTM gate blocks in TensorFlow's order (i, g, f, o) "
            "instead of torch's (i, f, g, o)", _mode("LSTM"), on_weights(_gate_order([0, 2, 1, 3]))),
    Mistake("lstm-gates-onnx-order", "that reads the LSTM gate blocks in ONNX's order (i, o, f, c) instead of "
            "torch's (i, f, g, o)", _mode("LSTM"), on_weights(_gate_order([0, 2, 3, 1]))),
    Mistake("gru-gates-onnx-order", "that reads the GRU gate blocks in ONNX/Keras order (z, r, n) instead of "
            "torch's (r, z, n)", _mode("GRU"), on_weights(_gate_order([1, 0, 2]))),
    Mistake("gru-b_hn-outside-reset", "that adds GRU's b_hn outside the reset gate: tanh(W_in x + b_in + "
            "r * (W_hn h) + b_hn)", _all(_mode("GRU"), _bias), on_cell(_GruNewGateBiasOutsideReset())),
    Mistake("projection-of-other-direction", "that applies each direction's LSTM projection (weight_hr) to the "
            "other direction", _projection, on_weights(_both_directions_swap("weight_hr"))),
    Mistake("reverse-uses-forward-weights", "whose reverse direction uses the forward direction's weights",
            _bidirectional, on_weights(_reverse_uses_forward_weights)),
    Mistake("hidden-bias-left-out", "that leaves out the hidden-to-hidden bias b_hh", _bias,
            on_weights(_zero("bias_hh"))),
    Mistake("input-bias-left-out", "that leaves out the input-to-hidden bias b_ih", _bias,
            on_weights(_zero("bias_ih"))),
    Mistake("tanh-relu-confused", "that uses tanh where relu is asked for, or relu for tanh",
            _mode("RNN_TANH", "RNN_RELU"), on_weights(_other_nonlinearity)),
)


def applicable(case: Case) -> Iterator[Mistake]:
    """The mistakes that can show on ``case`` at all."""
    return (mistake for mistake in CATALOGUE if mistake.applies(case))

