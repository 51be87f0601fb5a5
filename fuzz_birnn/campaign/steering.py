"""Steering a search away from what its candidate refuses.

A candidate raises :class:`~fuzz_birnn.Unsupported` for what it cannot take (float16, a packed
batch ...). Hypothesis only sees an ``assume`` fail and goes on drawing the value: a third of a
search's cases can be refusals of one dtype. So a value of a dimension that the candidate has
refused on every case of a search that had it, :data:`REFUSALS_TO_STEER` times at least, while
other values of that dimension were compared, is not drawn by that search's later slices
(:func:`refused_values`, :func:`without`), and the run says so, with the flag that would have left
it out from the start. Not within a slice: Hypothesis takes a strategy that changes between its
cases for a flaky test, and stops. A slice is at most 200 cases (and for a slow candidate, a few
seconds: ``Slice.cap_seconds``), so a value is dropped within a few hundred cases of the first.

Only dimensions with a :class:`~fuzz_birnn.core.space.CaseSpace` field to narrow are steered; a
dimension is never narrowed to nothing, and a value refused only sometimes (with another value
of another dimension) is not refused by this dimension: it stays. Nor is a value whose every case
was refused because each had another refused value (every time-major case drawn so far was
float64, which the candidate refuses): a value is steered only where one of its refused cases has
no other such value; where two always came together, neither is, until later cases tell them apart.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.output.run_record import CountKey

__all__ = ["REFUSALS_TO_STEER", "Refused", "refused_values", "without"]

#: Refusals of a value, and no case compared with it, before a search stops drawing it.
REFUSALS_TO_STEER = 5

#: A count's dimension -> the CaseSpace field of its choices (the value is the field's item).
_CHOICES = {"dtype": "dtypes", "form": "forms", "device": "devices"}
#: A count's dimension -> (the CaseSpace flag, the flag's value that leaves out each of its values).
_FLAGS = {"backend": ("onednn", {"oneDNN on": False, "oneDNN off": True}),
          "layout": ("batch_first", {"batch_first": False, "time-major": True}),
          "h0": ("initial_state", {"h0 given": False, "h0 default": True}),
          "bias": ("bias", {"bias": False, "no bias": True})}
#: How a user leaves a value out of a whole run, where a flag does (by dimension, or dimension and value).
_FLAG_WORDS = {"dtype": "--dtypes", "device": "--devices", ("form", "unbatched"): "--no-unbatched",
               ("form", "packed_sorted"): "--no-packed", ("form", "packed_unsorted"): "--no-packed",
               ("backend", "oneDNN off"): "--no-onednn-off", ("layout", "batch_first"): "--no-batch-first",
               ("h0", "h0 given"): "--no-initial-state"}


@dataclass(frozen=True)
class Refused:
    """A value a search stops drawing: ``dimension`` (``dtype``), ``value`` (``float16``), how many
    cases it was refused on, and the candidate's reason for the first of them."""

    dimension: str
    value: str
    cases: int
    reason: str

    def describe(self, search: str) -> str:
        flag = _FLAG_WORDS.get(self.dimension) or _FLAG_WORDS.get((self.dimension, self.value))
        return (f"{search}: stopped drawing {self.dimension} {self.value}: the candidate refused all "
                f"{self.cases} cases with it ({self.reason})"
                + (f"; {flag} leaves it out of a run from the start" if flag else ""))


def refused_values(counts: Mapping[CountKey, int], prop: str, mode: str, isa: str) -> list[Refused]:
    """The values the candidate refuses on every case of the search ``(prop, mode, isa)`` so far
    (see the module's docstring), each dimension with at least one value compared."""
    refused: dict[tuple[str, str], int] = collections.Counter()
    compared: dict[tuple[str, str], int] = collections.Counter()
    for key, n in counts.items():
        if (key.property, key.mode, key.isa) != (prop, mode, isa) or key.verdict == "skipped":
            continue
        for dimension in (*_CHOICES, *_FLAGS):
            pair = (dimension, str(getattr(key, dimension)))
            if key.verdict == "unsupported":
                refused[pair] += n
            else:
                compared[pair] += n
    candidates = []
    for (dimension, value), n in sorted(refused.items()):
        others_compared = any(d == dimension and v != value and m for (d, v), m in compared.items())
        if n >= REFUSALS_TO_STEER and not compared[(dimension, value)] and others_compared:
            candidates.append((dimension, value, n))
    genuine = _genuine(counts, prop, mode, isa, [(d, v) for d, v, _ in candidates])
    return [Refused(dimension, value, n, genuine[(dimension, value)].removeprefix("unsupported: "))
            for dimension, value, n in candidates if (dimension, value) in genuine]


def _genuine(counts: Mapping[CountKey, int], prop: str, mode: str, isa: str,
             pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Of the ``(dimension, value)`` pairs refused on every case, those with a refusal no other of
    them explains: a refused case whose values in every other dimension were compared elsewhere.
    Every time-major case drawn so far was float64 (refused): time-major's refusals are all
    explained by float64, float64's by nothing else. With the reason of that refusal."""
    suspects = set(pairs)
    found: dict[tuple[str, str], str] = {}
    for key, n in counts.items():
        if not n or key.verdict != "unsupported" or (key.property, key.mode, key.isa) != (prop, mode, isa):
            continue
        values = [(dimension, str(getattr(key, dimension))) for dimension in (*_CHOICES, *_FLAGS)]
        refused_here = [pair for pair in values if pair in suspects]
        if len(refused_here) == 1:
            found.setdefault(refused_here[0], str(key.reason))
    return found


def without(space: CaseSpace, refused: Iterable[tuple[str, str]]) -> CaseSpace:
    """``space`` less the ``(dimension, value)`` pairs, each where it can be left out and leaves
    something to draw (a flag already fixed, or a dimension's last value, stays)."""
    changes: dict[str, object] = {}
    for dimension, value in refused:
        if dimension in _CHOICES:
            field = _CHOICES[dimension]
            current = changes.get(field, getattr(space, field))
            if current is None:
                continue  # every device this machine has: not a list to narrow
            kept = tuple(v for v in current if v != value)  # type: ignore[attr-defined]
            if kept:
                changes[field] = kept
        elif dimension in _FLAGS:
            flag, leaving_out = _FLAGS[dimension]
            if value in leaving_out and changes.get(flag, getattr(space, flag)) is None:
                changes[flag] = leaving_out[value]
    return dataclasses.replace(space, **changes)  # type: ignore[arg-type]

