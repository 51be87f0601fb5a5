"""The catalogue of mistakes people make building or porting a recurrent stack: kinds by places.

A mistake is a kind of slip (:class:`Kind`: the reverse output left in processing order, the
directions concatenated the wrong way round, gate blocks read in another order, a bias left out,
``h0`` rows read in the wrong layout, ...) made at a place: in every layer or some, in one
direction or both, between layers or in the returned output, in ``h`` or ``c``. :func:`catalogue`
lists every mistake that can show on a case, each kind at every place it can occur and each gate
order as every permutation of the gate blocks, and :mod:`fuzz_birnn.diagnosis.diagnose` runs them
(:class:`~fuzz_birnn.diagnosis.slips.SlippedStack`) on a failing case.

Places, for a stack of ``L`` layers, each said in words in the mistake's description:

* layers: every layer, every layer but the last, the last layer only, every layer but the first,
  layer ``k`` only (the same set of layers is listed once, under its first wording);
* for a join of the directions (what the next layer gets; at the last layer, the returned output):
  the same sets of layers, worded as between layers and/or in the returned output;
* directions: both, the forward only, the reverse only.

A mistake's name is its kind, its variant in brackets and its place after ``@``
(``gate-order[i,g,f,o]@every-layer``, ``bias-left-out[hh]@layer-1+reverse``); the mistakes of the
first catalogue keep their names (``seed-missing-re-reversal`` is ``not-re-reversed`` between every
pair of layers).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fuzz_birnn.core.case import Case
from fuzz_birnn.diagnosis.slips import GATES, Slip

__all__ = ["Kind", "Mistake", "catalogue"]


@dataclass(frozen=True)
class Kind:
    """A kind of slip. ``says`` completes "behaves like a stack ..." with ``{detail}`` and
    ``{where}`` filled in; ``place`` is what it can be confined to: ``call`` (nothing: the whole
    call), ``layers``, ``states`` (layers, the last one first: where a final state is read wrong),
    ``joins`` (layers, worded as joins) or ``cells`` (layers and directions);
    ``details`` lists its variants for a case (``None`` where it has one) with their words."""

    name: str
    says: str
    place: str
    applies: Callable[[Case], bool]
    details: Callable[[Case], list[tuple[str | None, str]]] = lambda case: [(None, "")]


@dataclass(frozen=True)
class Mistake:
    """One or more slips (a pair is two mistakes named together), with a name, the words that
    complete "behaves like a stack ...", and how many (layer, direction) cells they touch, which
    ranks the simpler explanation first."""

    slips: tuple[Slip, ...]
    name: str
    behaviour: str
    cells: int
    #: the lowest layer whose result the mistake changes (``None``: it can change any)
    first_layer: int | None

    @property
    def kind(self) -> str:
        return self.slips[0].kind

    @property
    def layers(self) -> frozenset[int]:
        return self.slips[0].layers

    @property
    def directions(self) -> frozenset[int]:
        return self.slips[0].directions

    @property
    def detail(self) -> str | None:
        return self.slips[0].detail

    def __str__(self) -> str:
        return self.name


def catalogue(case: Case) -> list[Mistake]:
    """Every mistake that can show on ``case``: each applicable kind, at each of its places, in
    each of its variants; the same slips listed once."""
    mistakes: dict[tuple[Slip, ...], Mistake] = {}
    for kind in KINDS:
        if not kind.applies(case):
            continue
        details = kind.details(case)
        for detail, detail_words in details:
            shown = f"[{detail}]" if detail and len(details) > 1 else ""
            for (layers, layer_code, layer_words), (directions, direction_code, direction_words) in _places(kind, case):
                slip = Slip(kind.name, layers, directions, detail)
                if (slip,) in mistakes:
                    continue
                code = "+".join(c for c in (layer_code, direction_code) if c)
                name = f"{kind.name}{shown}{f'@{code}' if code else ''}"
                where = " ".join(w for w in (layer_words, direction_words) if w)
                behaviour = " ".join(kind.says.format(detail=detail_words, where=where).split())
                cells = max(1, len(layers)) * max(1, len(directions))
                name = LEGACY_NAMES.get(name, name)
                if name == "seed-missing-re-reversal":
                    behaviour += " (the seed thread's bug)"
                mistakes[(slip,)] = Mistake((slip,), name, behaviour,
                                            cells, _first_layer(kind, layers, case))
    return list(mistakes.values())


def pair(first: Mistake, second: Mistake) -> Mistake:
    """Two mistakes made at once, as one (in catalogue order, whichever order they come in)."""
    order = [kind.name for kind in KINDS]
    first, second = sorted((first, second), key=lambda m: (order.index(m.kind), sorted(m.layers), m.name))
    return Mistake(first.slips + second.slips, f"{first.name} + {second.name}",
                   f"with two mistakes at once: one {first.behaviour}; and one {second.behaviour}",
                   first.cells + second.cells,
                   None if None in (first.first_layer, second.first_layer)
                   else min(first.first_layer, second.first_layer))  # type: ignore[type-var]


# -- places ------------------------------------------------------------------------------------------


Place = tuple[frozenset[int], str, str]


def _places(kind: Kind, case: Case) -> Iterator[tuple[Place, Place]]:
    if kind.place == "call":
        yield (frozenset(), "", ""), (frozenset(), "", "")
        return
    layers = _joins(case) if kind.place == "joins" else _layers(case, last_first=kind.place == "states")
    directions = _directions(case) if kind.place == "cells" else [(frozenset(), "", "")]
    yield from itertools.product(layers, directions)


def _layers(case: Case, last_first: bool = False) -> list[Place]:
    count = case.config.num_layers
    every, last = frozenset(range(count)), frozenset({count - 1})
    if count == 1:
        return [(every, "last-layer" if last_first else "every-layer", "")]
    places = [(every, "every-layer", "in every layer"),
              (every - last, "every-layer-but-last", "in every layer but the last"),
              (last, "last-layer", "in the last layer only"),
              (every - {0}, "every-layer-but-first", "in every layer but the first")]
    if last_first:
        places = [places[2], places[0], places[1], places[3]]
    places += [(frozenset({k}), f"layer-{k}", f"in layer {k} only") for k in range(count)]
    return _first_wording(places)


def _joins(case: Case) -> list[Place]:
    """Sets of layers whose join (of the two directions) is made wrong: a join feeds the next
    layer, the last layer's is the returned output."""
    count = case.config.num_layers
    last = frozenset({count - 1})
    if count == 1:
        return [(last, "last-layer", "in the returned output")]
    places = [(frozenset(range(count - 1)), "every-layer-but-last",
               "before it is fed to the next layer (between every pair of layers, not in the returned output)"),
              (last, "last-layer", "in the returned output only (not between layers)"),
              (frozenset(range(count)), "every-layer", "everywhere: between layers and in the returned output")]
    places += [(frozenset({k}), f"layer-{k}", f"only where layer {k} feeds layer {k + 1}") for k in range(count - 1)]
    return _first_wording(places)


def _directions(case: Case) -> list[Place]:
    if not case.config.bidirectional:
        return [(frozenset({0}), "", "")]
    return [(frozenset({0, 1}), "", ""),
            (frozenset({0}), "forward", "in the forward direction only"),
            (frozenset({1}), "reverse", "in the reverse direction only")]


def _first_wording(places: list[Place]) -> list[Place]:
    seen: set[frozenset[int]] = set()
    kept = []
    for place in places:
        if place[0] not in seen:
            seen.add(place[0])
            kept.append(place)
    return kept


def _first_layer(kind: Kind, layers: frozenset[int], case: Case) -> int | None:
    """The lowest layer whose own result (its final state; the output at the last layer) a slip
    at ``layers`` changes: a join changes the layer after it."""
    if not layers:
        return None
    first = min(layers)
    return min(first + 1, case.config.num_layers - 1) if kind.place == "joins" else first


# -- variants ----------------------------------------------------------------------------------------


def _gate_orders(case: Case) -> list[tuple[str | None, str]]:
    """Every order the gate blocks can be read in but torch's own, and with the biases left in
    torch's order while the weights are read in another (a port that moves the matrices only)."""
    gates = GATES[case.config.mode]
    orders = [",".join(order) for order in itertools.permutations(gates) if "".join(order) != gates]
    torch_order = ",".join(gates)
    named: list[tuple[str | None, str]] = [(order, f"in the order ({order}) instead of torch's ({torch_order})")
                                           for order in orders]
    if case.config.bias:
        named += [(f"{order}/weights", f"in the order ({order}) instead of torch's ({torch_order}) for the weights "
                   "but not for the biases") for order in orders]
    return named


def _states(case: Case) -> list[tuple[str | None, str]]:
    if case.config.mode != "LSTM":
        return [("both", "h0")]
    return [("both", "h0 and c0"), ("h", "h0 (but not c0)"), ("c", "c0 (but not h0)")]


def _final_states(case: Case) -> list[tuple[str | None, str]]:
    if case.config.mode != "LSTM":
        return [("both", "h_n")]
    return [("both", "h_n and c_n"), ("h", "h_n (but not c_n)"), ("c", "c_n (but not h_n)")]


def _biases(case: Case) -> list[tuple[str | None, str]]:
    return [("hh", "the hidden-to-hidden bias b_hh"), ("ih", "the input-to-hidden bias b_ih"),
            ("both", "both biases")]


# -- when a kind can show ------------------------------------------------------------------------------


def _bidirectional(case: Case) -> bool:
    return case.config.bidirectional


def _given_state(case: Case) -> bool:
    return case.inputs.initial_state


def _deep_bidirectional(case: Case) -> bool:
    return case.config.bidirectional and case.config.num_layers > 1


def _packed(case: Case) -> bool:
    return case.inputs.packed and len(set(case.inputs.lengths or ())) > 1


def _unsorted(case: Case) -> bool:
    return case.inputs.packed and not case.inputs.enforce_sorted


def _lstm_without_projection(case: Case) -> bool:
    return case.config.mode == "LSTM" and case.config.proj_size == 0


def _all(*conditions: Callable[[Case], bool]) -> Callable[[Case], bool]:
    return lambda case: all(condition(case) for condition in conditions)


def _mode(*modes: str) -> Callable[[Case], bool]:
    return lambda case: case.config.mode in modes


#: Every kind, the seed thread's first; the order ranks kinds that explain a result equally simply.
KINDS: tuple[Kind, ...] = (
    Kind("not-re-reversed", "whose reverse direction's output is not put back in forward time order {where}",
         "joins", _bidirectional),
    Kind("halves-swapped", "that concatenates the directions as [reverse, forward] instead of [forward, reverse] "
         "{where}", "joins", _bidirectional),
    Kind("forward-output-twice", "that puts the forward direction's output in both halves {where}", "joins",
         _bidirectional),
    Kind("reverse-runs-forward", "whose reverse direction runs forward in time {where}", "layers", _bidirectional),
    Kind("gate-order", "that reads the gate blocks {detail} {where}", "cells", _mode("LSTM", "GRU"), _gate_orders),
    Kind("other-direction-weights", "that uses the other direction's weights {where}", "cells", _bidirectional),
    Kind("bias-left-out", "that leaves out {detail} {where}", "cells", lambda case: case.config.bias, _biases),
    Kind("activation-swapped", "that uses tanh where relu is asked for, or relu for tanh, {where}", "cells",
         _mode("RNN_TANH", "RNN_RELU")),
    Kind("gru-b_hn-outside-reset", "that adds GRU's b_hn outside the reset gate: tanh(W_in x + b_in + r * (W_hn h) "
         "+ b_hn) {where}", "cells", _all(_mode("GRU"), lambda case: case.config.bias)),
    Kind("projection-of-other-direction", "that applies the other direction's LSTM projection (weight_hr) {where}",
         "cells", lambda case: case.config.proj_size > 0 and case.config.bidirectional),
    Kind("h0-ignored", "that ignores the given {detail} and starts from zeros {where}", "cells", _given_state,
         _states),
    Kind("h0-rows-direction-major", "that reads {detail} rows direction * num_layers + layer instead of "
         "layer * 2 + direction", "call", _all(_deep_bidirectional, _given_state), _states),
    Kind("h0-reverse-reads-forward-row", "whose reverse direction starts from the forward direction's row of h0/c0 "
         "{where}", "layers", _all(_bidirectional, _given_state)),
    Kind("h0-c0-swapped", "that takes h0 for c0 and c0 for h0", "call", _all(_given_state, _lstm_without_projection)),
    Kind("h_n-rows-direction-major", "that writes {detail} rows in direction-major order (direction * num_layers + "
         "layer)", "call", _deep_bidirectional, _final_states),
    Kind("h_n-c_n-swapped", "that returns (c_n, h_n) instead of (h_n, c_n)", "call", _lstm_without_projection),
    Kind("reverse-from-padded-end", "whose reverse direction of a packed batch starts at the padded end instead of "
         "each sequence's own last step {where}", "layers", _all(_bidirectional, _packed)),
    Kind("lengths-ignored", "that runs a packed batch as if padded, so short sequences step on over the padding "
         "{where}", "cells", _packed),
    Kind("h_n-from-last-padded-step", "that takes h_n from the output's last time step (output[-1]) {where}",
         "states", lambda case: _bidirectional(case) or _packed(case)),
    Kind("reverse-h_n-from-last-step", "that takes the reverse direction's h_n from its output at the last time step "
         "(the first step it processed) {where}", "states", _bidirectional),
    Kind("h_n-in-sorted-order", "that leaves h_n/c_n in the packed batch's sorted order instead of the caller's",
         "call", _unsorted),
)

#: The first catalogue's names, kept for the same mistakes (reports, pages and users know them).
LEGACY_NAMES = {
    "not-re-reversed@every-layer-but-last": "seed-missing-re-reversal",
    "halves-swapped@every-layer-but-last": "next-layer-halves-swapped",
    "forward-output-twice@every-layer-but-last": "next-layer-forward-only",
    "halves-swapped@last-layer": "output-halves-swapped",
    "reverse-runs-forward@every-layer": "reverse-runs-forward",
    "h0-rows-direction-major[both]": "h0-rows-direction-major",
    "h_n-rows-direction-major": "h_n-rows-direction-major",
    "h0-ignored@every-layer": "initial-state-ignored",
    "h_n-rows-direction-major[both]": "h_n-rows-direction-major",
    "h_n-rows-direction-major[c]": "c_n-rows-direction-major",
    "h0-reverse-reads-forward-row@every-layer": "reverse-starts-from-forward-h0",
    "h0-ignored[both]@every-layer": "initial-state-ignored",
    "reverse-from-padded-end@every-layer": "packed-reverse-from-padded-end",
    "lengths-ignored@every-layer": "packed-run-as-padded",
    "h_n-from-last-padded-step@last-layer": "h_n-from-last-padded-step",
    "reverse-h_n-from-last-step@last-layer": "reverse-h_n-from-last-step",
    "h_n-in-sorted-order": "h_n-left-in-sorted-order",
    "gate-order[i,g,f,o]@every-layer": "lstm-gates-tensorflow-order",
    "gate-order[i,o,f,g]@every-layer": "lstm-gates-onnx-order",
    "gate-order[z,r,n]@every-layer": "gru-gates-onnx-order",
    "gru-b_hn-outside-reset@every-layer": "gru-b_hn-outside-reset",
    "projection-of-other-direction@every-layer": "projection-of-other-direction",
    "other-direction-weights@every-layer+reverse": "reverse-uses-forward-weights",
    "bias-left-out[hh]@every-layer": "hidden-bias-left-out",
    "bias-left-out[ih]@every-layer": "input-bias-left-out",
    "activation-swapped@every-layer": "tanh-relu-confused",
}
