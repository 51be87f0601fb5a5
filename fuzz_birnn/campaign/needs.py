"""What a fault needs in order to show: the features of its smallest case it cannot do without.

A signature (:mod:`fuzz_birnn.campaign.signature`) is coarse on purpose, so two faults of one
layer type can share one: a wrong ``h0`` in the reverse direction and a bias dropped with
``batch_first`` both leave "final state wrong". What tells them apart is what each needs in order
to show. Once a fault is shrunk, :func:`needs_of` takes each feature of its smallest case away in
turn (two layers become one, the bias goes, a given ``h0`` becomes the default, packed input
becomes padded, ...): a feature is needed when, without it, the fault shows on none of
:data:`DRAWS` draws of values. A later failure with the same signature whose case lacks one of
those features cannot be that fault (:func:`is_known` says no), so the search shrinks it and
writes it as a finding of its own, with its own needs; a failure that has every feature some
known fault of its signature needs is taken for that fault, as before.

Mistakes this can make, and their bounds: a fault that shows in two unrelated ways (with ``bias``
*or* with ``batch_first``) is found once for each way, at most :data:`MAX_CAUSES` times a
signature in one search; a needed feature the probe misses (the fault hides on every draw
without it for another reason) only makes a need too strict, so the fault is found again, never
lost. Two faults of one signature are still taken for one where the second's case has every
feature the first needs (the second needs the same features, or more).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

from fuzz_birnn.core.case import Case

__all__ = ["DRAWS", "MAX_CAUSES", "family", "features", "is_known", "needs_of", "without_feature"]

#: Draws of values tried without a feature before it counts as needed.
DRAWS = 3
#: Findings one signature may have in one search (a fault that shows in several unrelated ways
#: is found at most this many times; past it, every failure of the signature counts as known).
MAX_CAUSES = 3


def features(case: Case) -> set[str]:
    """What ``case`` has beyond the simplest case, in words (``bias``, ``num_layers > 1``, ...)."""
    c, i = case.config, case.inputs
    have = {
        "num_layers > 1": c.num_layers > 1,
        "hidden_size > 1": c.hidden_size > 1,
        "input_size > 1": c.input_size > 1,
        "bias": c.bias,
        "batch_first": c.batch_first,
        "proj_size": c.proj_size > 0,
        "given h0": i.initial_state,
        "seq_len > 1": i.seq_len > 1,
        "batch > 1": not i.unbatched and (i.batch_size or 1) > 1,
        "packed input": i.packed,
        "unsorted lengths": i.packed and not i.enforce_sorted,
        "unbatched input": i.unbatched,
        "non-contiguous": not i.contiguous,
        f"scale {i.scale}": i.scale != 1.0,
        "oneDNN on" if i.onednn else "oneDNN off": i.device == "cpu",
    }
    return {name for name, present in have.items() if present}


def without_feature(case: Case, name: str) -> Case | None:
    """``case`` with the feature ``name`` taken away (everything else kept), or ``None`` where no
    valid case lacks it (a projection forbids ``hidden_size`` 1)."""
    c, i = case.config, case.inputs
    lengths = i.lengths or ()
    changes: dict[str, tuple[dict[str, object], dict[str, object]]] = {
        "num_layers > 1": ({"num_layers": 1}, {}),
        "hidden_size > 1": ({"hidden_size": 1}, {}),
        "input_size > 1": ({"input_size": 1}, {}),
        "bias": ({"bias": False}, {}),
        "batch_first": ({"batch_first": False}, {}),
        "proj_size": ({"proj_size": 0}, {}),
        "given h0": ({}, {"initial_state": False}),
        "seq_len > 1": ({}, {"seq_len": 1, "lengths": (1,) * len(lengths) if i.packed else None}),
        "batch > 1": ({}, {"batch_size": 1, "lengths": (max(lengths),) if i.packed else None}),
        "packed input": ({}, {"packed": False, "lengths": None, "enforce_sorted": True}),
        "unsorted lengths": ({}, {"enforce_sorted": True, "lengths": tuple(sorted(lengths, reverse=True))}),
        "unbatched input": ({}, {"unbatched": False, "batch_size": 1}),
        "non-contiguous": ({}, {"contiguous": True}),
        "oneDNN on": ({}, {"onednn": False}),
        "oneDNN off": ({}, {"onednn": True}),
    }
    if name.startswith("scale "):
        changes[name] = ({}, {"scale": 1.0})
    if name not in changes:
        return None
    config, inputs = changes[name]
    try:
        return Case(dataclasses.replace(c, **config), dataclasses.replace(i, **inputs))  # type: ignore[arg-type]
    except ValueError:
        return None


def needs_of(case: Case, shows: Callable[[Case], bool], *, deadline: float | None = None) -> tuple[str, ...] | None:
    """The features of ``case`` (a fault's smallest case) without which ``shows`` (the fault
    appears: the same signature, not another known fault) is false on :data:`DRAWS` draws of
    values; ``None`` if ``deadline`` (``time.monotonic()``) came before every feature was tried
    (a measurement cut short would depend on timing)."""
    needed = []
    for name in sorted(features(case)):
        if deadline is not None and time.monotonic() > deadline:
            return None
        simpler = without_feature(case, name)
        if simpler is not None and not any(shows(simpler.with_values(k)) for k in range(DRAWS)):
            needed.append(name)
    return tuple(needed)


def is_known(case: Case, known_needs: Iterable[tuple[str, ...]]) -> bool:
    """Whether a failure on ``case``, with the signature of faults already found whose needs are
    ``known_needs``, is one of them: it has every feature one of them needs. No needs recorded (a
    crash, a fault found before needs were measured) means known; so does :data:`MAX_CAUSES`."""
    known_needs = list(known_needs)
    if not known_needs or len(known_needs) >= MAX_CAUSES:
        return True
    have = features(case)
    return any(set(needs) <= have for needs in known_needs)


def family(case: Case) -> list[Case]:
    """``case`` and the cases a relation compares it with, as far as one flag makes them: the other
    layout, batched for unbatched (and unbatched for a batch of one), padded for packed, sorted for
    unsorted, a batch of one. A relation's fault that the agreement property shows on one of them
    follows from that agreement fault."""
    c, i = case.config, case.inputs
    relatives: list[Case | None] = [case, Case(dataclasses.replace(c, batch_first=not c.batch_first), i)]
    relatives += [without_feature(case, name) for name in ("unbatched input", "packed input", "unsorted lengths",
                                                           "batch > 1") if name in features(case)]
    if i.batch_size == 1 and not i.packed:
        relatives.append(Case(c, dataclasses.replace(i, unbatched=True, batch_size=None)))
    return [relative for relative in relatives if relative is not None]
