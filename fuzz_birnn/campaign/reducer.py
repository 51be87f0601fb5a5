"""Shrinking a case that crashes or hangs, by retrying smaller cases in child processes.

Hypothesis shrinks a failure by running the test again and again in-process; a case that kills
the process, or never returns, cannot be shrunk that way. This reducer does what crash reducers
(C-Reduce, delta debugging) do instead: propose simpler variants of the case, run each in a
forked child (:mod:`fuzz_birnn.processes.forked`), keep the first that still crashes the same way (or
still hangs), and start again from it, until no proposal reproduces or the budget is spent.

Proposals, tried in this order each round:

1. everything at its simplest at once (a candidate that crashes on every case is done in one try);
2. per dimension, the simplest value, then halfway, then one less: ``num_layers``, ``seq_len``
   (lengths clipped), batch size (lengths truncated), ``hidden_size``, ``input_size``,
   ``proj_size``;
3. the flags towards their simple value: no bias, ``batch_first=False``, default ``h0``,
   contiguous, oneDNN on, no dropout; the input form towards padded (packed unsorted to sorted);
   earlier dtypes; scale 1; seed 0.

Every proposal stays inside what the search's strategy could have drawn (``within``), so a
reduced case is still a case of its (property, mode) search. The result is 1-minimal in each
dimension: no single proposal from it reproduces.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fuzz_birnn.core.case import DTYPES, SCALES, Case
from fuzz_birnn.core.space import CaseSpace

__all__ = ["MAX_ATTEMPTS", "Reduction", "proposals", "reduce_case", "within_space"]

#: Proposals a reduction tries at most.
MAX_ATTEMPTS = 500



@dataclass(frozen=True)
class Reduction:
    """The smallest case found, the attempts it took, and whether the reduction ran to its end
    (``complete``) or was cut short by its budget."""

    case: Case
    attempts: int
    complete: bool
    seconds: float


def reduce_case(case: Case, reproduces: Callable[[Case], bool], *, within: Callable[[Case], bool],
                deadline: float, max_attempts: int = MAX_ATTEMPTS) -> Reduction:
    """Greedy reduction of ``case`` while ``reproduces`` holds; stops at ``deadline`` (monotonic)."""
    started = time.monotonic()
    best, tried, attempts = case, {_key(case)}, 0
    improved = True
    while improved:
        improved = False
        for proposal in proposals(best):
            key = _key(proposal)
            if key in tried or not within(proposal):
                continue
            if attempts >= max_attempts or time.monotonic() >= deadline:
                return Reduction(best, attempts, False, time.monotonic() - started)
            tried.add(key)
            attempts += 1
            if reproduces(proposal):
                best, improved = proposal, True
                break
    return Reduction(best, attempts, True, time.monotonic() - started)


def proposals(case: Case) -> Iterator[Case]:
    """Simpler variants of ``case``, most aggressive first (see the module docstring)."""
    simplest = case
    for change in (*_SIZES_AT_SIMPLEST, *_FLAGS_AT_SIMPLEST):
        simplest = change(simplest) or simplest
    if simplest != case:
        yield simplest
    yield from _size_steps(case)
    for change in _FLAGS_AT_SIMPLEST:
        changed = change(case)
        if changed is not None and changed != case:
            yield changed


def within_space(space: CaseSpace) -> Callable[[Case], bool]:
    """Whether ``cases(**space.arguments())`` could have drawn a case (its choices, lower bounds and
    fixed flags; shrinking never grows a case, so the upper bounds need no check)."""
    def within(case: Case) -> bool:
        c, i = case.config, case.inputs
        fixed = {"bias": c.bias, "batch_first": c.batch_first, "initial_state": i.initial_state,
                 "onednn": i.onednn, "contiguous": i.contiguous, "dropout": c.dropout > 0,
                 "proj": c.proj_size > 0, "bidirectional": c.bidirectional}
        if any(getattr(space, name) not in (None, value) for name, value in fixed.items()
               if not (name == "proj" and c.mode != "LSTM")):
            return False
        return (i.dtype in space.dtypes and i.form in space.forms
                and (i.unbatched or (i.batch_size or 0) >= space.min_batch)
                and c.num_layers >= space.min_layers
                and c.input_size >= space.min_input_size
                and c.hidden_size >= space.min_hidden_size
                and i.seq_len >= space.min_seq_len)
    return within


def _size_steps(case: Case) -> Iterator[Case]:
    c, i = case.config, case.inputs
    for n in _smaller(c.num_layers, 1):
        yield from _made(case, config={"num_layers": n})
    for n in _smaller(i.seq_len, 1):
        yield from _made(case, inputs=_inputs_for_seq_len(case, n))
    if i.batch_size is not None:
        for n in _smaller(i.batch_size, 1):
            yield from _made(case, inputs=_inputs_for_batch(case, n))
    for n in _smaller(c.hidden_size, 1):
        yield from _made(case, config={"hidden_size": n, "proj_size": min(c.proj_size, n - 1)})
    for n in _smaller(c.input_size, 1):
        yield from _made(case, config={"input_size": n})
    for n in _smaller(c.proj_size, 0):
        yield from _made(case, config={"proj_size": n})


_Change = Callable[[Case], "Case | None"]

_SIZES_AT_SIMPLEST: tuple[_Change, ...] = (
    lambda case: _one(case, config={"num_layers": 1}),
    lambda case: _one(case, inputs=_inputs_for_seq_len(case, 1)),
    lambda case: None if case.inputs.batch_size is None else _one(case, inputs=_inputs_for_batch(case, 1)),
    lambda case: _one(case, config={"hidden_size": 1, "proj_size": 0}) or _one(case, config={"hidden_size": 2,
                                                                                             "proj_size": 1}),
    lambda case: _one(case, config={"input_size": 1}),
    lambda case: _one(case, config={"proj_size": 0}),
)

_FLAGS_AT_SIMPLEST: tuple[_Change, ...] = (
    lambda case: _one(case, config={"bias": False}),
    lambda case: _one(case, config={"batch_first": False}),
    lambda case: _one(case, inputs={"initial_state": False}),
    lambda case: _one(case, inputs={"contiguous": True}),
    lambda case: _one(case, inputs={"onednn": True}),
    lambda case: _one(case, config={"dropout": 0.0}),
    lambda case: _one(case, inputs={"unbatched": False, "packed": False, "lengths": None, "enforce_sorted": True,
                                    "batch_size": case.inputs.batch_size or 1}),
    lambda case: None if case.inputs.lengths is None else _one(
        case, inputs={"enforce_sorted": True, "lengths": tuple(sorted(case.inputs.lengths, reverse=True))}),
    *(lambda case, k=k: _earlier(case, "dtype", DTYPES, k) for k in range(len(DTYPES) - 1)),
    *(lambda case, k=k: _earlier(case, "scale", SCALES, k) for k in range(len(SCALES) - 1)),
    lambda case: _one(case, inputs={"seed": 0}),
)


def _earlier(case: Case, name: str, order: tuple[Any, ...], k: int) -> Case | None:
    """``case`` with input ``name`` set to ``order[k]``, if that comes before its value in ``order``."""
    value = getattr(case.inputs, name)
    if value in order and k >= order.index(value):
        return None
    return _one(case, inputs={name: order[k]})


def _inputs_for_batch(case: Case, n: int) -> dict[str, Any]:
    lengths = case.inputs.lengths
    return {"batch_size": n, "lengths": None if lengths is None else lengths[:n]}


def _inputs_for_seq_len(case: Case, n: int) -> dict[str, Any]:
    lengths = case.inputs.lengths
    return {"seq_len": n, "lengths": None if lengths is None else tuple(min(length, n) for length in lengths)}


def _smaller(value: int, low: int) -> list[int]:
    """The simplest value, halfway, one less: each smaller than ``value``."""
    return [n for n in dict.fromkeys((low, (low + value) // 2, value - 1)) if low <= n < value]


def _one(case: Case, *, config: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None) -> Case | None:
    return next(iter(_made(case, config=config, inputs=inputs)), None)


def _made(case: Case, *, config: dict[str, Any] | None = None, inputs: dict[str, Any] | None = None) -> list[Case]:
    """``case`` with the changes, if they make a valid case (else nothing)."""
    try:
        return [Case(dataclasses.replace(case.config, **(config or {})),
                     dataclasses.replace(case.inputs, **(inputs or {})))]
    except ValueError:
        return []


def _key(case: Case) -> str:
    return json.dumps(case.to_dict(), sort_keys=True)
