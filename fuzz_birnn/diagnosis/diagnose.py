"""Which mistake a failing result is: the catalogue run on the case, named when it reproduces the result.

A failing agreement check says *where* a candidate diverges; :func:`diagnose` says *which* mistake
it makes. The catalogue (:func:`fuzz_birnn.diagnosis.mistakes.catalogue`: kinds of slip by the
places they can be made) is searched on a float64 copy of the call, cheapest first:

1. **prune by what the case shows**: the result's first wrong layer (its lowest wrong ``h_n``/``c_n``
   row; the output counts as the last layer) must be the first layer the mistake changes, since a
   slip never reaches the layers before it, and one made earlier would show there;
2. **reproduce**: a mistake whose result matches the candidate's within the tolerance the check
   used is a match; one that moves the correct result by less than twice that tolerance is not
   tried at all, so a result within tolerance of the correct one can never be named;
3. **confirm**: when the candidate itself can be run, up to ``siblings`` more cases of the same
   configuration (other values, same shapes) are checked, and a match survives only if it
   reproduces the candidate on every one on which the candidate fails;
4. **rank**: of the survivors of one kind, the one made at the fewest places is named ("in layer 1
   only" before "in every layer"); survivors of different kinds coincide on this configuration and
   are all named, as indistinguishable here;
5. **pairs**: only when no single mistake survives, two mistakes made at once, each of which
   reproduces part of the result (some wrong ``h_n`` rows, one half of the output) or the first
   wrong layer and then something after it, are tried and confirmed the same way, and named as a pair.

Nothing survives: a lower precision is tried last (:func:`_in_precision`). A result whose every
value is a number of float32 (in a float64 case), float16 or bfloat16 (in a float64 or float32
case), off the float64 reference by about as much as the reference computed in that precision,
here and on every confirming case where the candidate fails, is named ``computed-in-float32``
(...): a target that computes in a lower precision than it is given (a runtime's precision setting,
a kernel that rounds to it) is one cause, whatever the message of each failure. A result whose
error is that size but whose values are not that precision's numbers gets a hint in the summary,
not a name: by size alone, a lower precision and a small mistake (a constant 1% off is the size of
bfloat16 rounding) cannot be told apart. Nothing fits: "none of the catalogued mistakes".

A relation's failure (:func:`diagnose_relation`) is put down to a lower precision only where the
candidate's own result on its case is named ``computed-in-DTYPE`` and the relation's two results
are no more than two of DTYPE's roundings apart; otherwise it is left undiagnosed, its own finding.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence

from fuzz_birnn.core.candidates import fused
from fuzz_birnn.core.case import Case
from fuzz_birnn.core.check import check
from fuzz_birnn.core.compare import compare_values, tensors_of
from fuzz_birnn.core.layout import Hidden, canonical, each_state
from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.core.reference import CellReference
from fuzz_birnn.diagnosis.mistakes import Mistake, catalogue, pair
from fuzz_birnn.diagnosis.slips import READ, WHOLE_CALL, SlippedStack
from fuzz_birnn.portable.calls import abs_error
from fuzz_birnn.processes.forked import value_of

__all__ = ["Diagnosis", "Tensors", "diagnose", "diagnose_relation"]

#: Per-direction float64 tensors by name: ``output`` ``(T, B, D, F)``, ``h_n``/``c_n`` ``(L, D, B, F)``.
Tensors = dict[str, torch.Tensor]
#: A part of a result that a mistake can get right or wrong on its own: ``("output", direction)``,
#: ``("h_n", layer, direction)``, ``("c_n", layer, direction)``.
Part = tuple

#: Seconds a candidate gets on one confirming case.
CONFIRM_SECONDS = 60.0
#: Mistakes in writing the final state: they leave the output as it was.
WRITING = WHOLE_CALL - READ
#: At most this many pairs are run on one case, the simplest first.
PAIRS = 400
#: At most this many indistinguishable mistakes are spelled out in the summary.
SPELLED_OUT = 3
#: The lower precisions a case of each dtype may have been computed in, the most precise first.
LOWER_PRECISIONS = {"float64": ("float32", "float16", "bfloat16"), "float32": ("float16", "bfloat16"),
                    "float16": ("bfloat16",)}
#: A result computed in a lower precision is off the float64 reference by between 1/ROUNDING_BAND
#: and ROUNDING_BAND times the reference's own error in that precision (measured over 150 drawn
#: cases each of float32-in-float64 and bfloat16/float16-in-float32: 98% of ratios within 8x).
ROUNDING_BAND = 8.0


@dataclass(frozen=True)
class Diagnosis:
    """``mistakes``: what reproduces the result (none, one, several that coincide here, or a
    pair made at once); ``tried``: how many mistakes (and pairs) could show on the case and were
    run; ``confirmed_on``: on how many more failing cases the names were confirmed."""

    mistakes: tuple[Mistake, ...]
    tried: int
    confirmed_on: int = 0
    #: the lower precision the result's error is the rounding of, when no mistake reproduces it
    precision: Precision | None = None
    #: for a relation's failure: how far apart its two results are (:func:`diagnose_relation`)
    relation_difference: float | None = None

    @property
    def names(self) -> tuple[str, ...]:
        if self.precision is not None and self.precision.exact:
            return (f"computed-in-{self.precision.dtype}",)
        return tuple(m.name for m in self.mistakes)

    @property
    def pair(self) -> bool:
        return any(len(m.slips) > 1 for m in self.mistakes)

    def describe(self) -> str:
        """One sentence for a summary: ``behaves like a stack ...``, or why nothing is named."""
        if self.relation_difference is not None and self.precision is not None:
            return (f"follows from a lower precision: the relation's two results are {self.relation_difference:.2g} "
                    f"apart, within two {self.precision.dtype} roundings, and the candidate's own result on "
                    f"this case: {dataclasses.replace(self, relation_difference=None).describe()}")
        where = f"this case and {self.confirmed_on} more" if self.confirmed_on else "this case"
        low = self.precision and self.precision.dtype
        if self.precision is not None and self.precision.exact:
            return (f"none of the {self.tried} catalogued mistakes reproduces the result, but every value is a "
                    f"number of {low} and its error the size of {low} rounding: computed in {low} somewhere? "
                    f"({self.precision.evidence}; on {where})")
        if self.precision is not None:
            return (f"none of the {self.tried} catalogued mistakes (and pairs) that can show on this case "
                    f"reproduces the result; its error is the size of {low} rounding ({self.precision.evidence}): "
                    f"computed in {low} somewhere, or a mistake that small?")
        if not self.mistakes:
            return (f"none of the {self.tried} catalogued mistakes (and pairs) that can show on this case "
                    "reproduces the result")
        first, *others = (m.behaviour for m in self.mistakes)
        sentence = f"behaves like a stack {first}"
        if others:
            spelled = others[:SPELLED_OUT - 1]
            more = len(others) - len(spelled)
            sentence += ("; on this configuration also indistinguishable from a stack " + "; or one ".join(spelled)
                         + (f"; or {more} more" if more else ""))
        return f"{sentence} (reproduced within tolerance on {where})"

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "tried": self.tried, "confirmed_on": self.confirmed_on,
                "summary": self.describe(),
                "precision": None if self.precision is None else {**dataclasses.asdict(self.precision),
                                                                  "evidence": self.precision.evidence},
                "relation_difference": self.relation_difference,
                "mistakes": [{"name": m.name, "slips": [{"kind": s.kind, "layers": sorted(s.layers),
                                                         "directions": sorted(s.directions), "detail": s.detail}
                                                        for s in m.slips]} for m in self.mistakes]}


def diagnose(case: Case, actual: Tensors, allowed: dict[str, float],
             candidate: Callable[..., Any] | None = None, *, siblings: int = 3) -> Diagnosis:
    """Name the catalogued mistakes that reproduce ``actual`` (the candidate's per-direction result
    on ``case``, float64) within ``allowed``, confirmed on ``siblings`` more cases when
    ``candidate`` is given (see the module docstring)."""
    run = _Runner(case)
    right = run(())
    assert right is not None, "the stack without a slip runs on every case the reference does"
    wrong = _parts_apart(actual, right, allowed)
    if not wrong:
        return Diagnosis((), 0)  # within tolerance everywhere: there is no mistake to name
    first = min(part[1] if part[0] != "output" else case.config.num_layers - 1 for part in wrong)
    apart = {name: 2 * value for name, value in allowed.items()}
    mistakes = catalogue(case)

    def results_of(wanted: Callable[[int | None], bool]) -> dict[Mistake, Tensors]:
        results = {}
        for mistake in mistakes:
            if wanted(mistake.first_layer) and (result := run(mistake.slips)) is not None \
                    and _parts_apart(result, right, apart):
                results[mistake] = result
        return results

    results = results_of(lambda layer: layer in (None, first))
    tried = len(results)
    confirming = _Confirming(case, candidate, siblings)
    matches = [m for m, result in results.items() if _close(actual, result, allowed)]
    survivors = confirming.survivors(matches)
    if not survivors:
        # a pair may hold a mistake that only shows after the first wrong layer
        results |= results_of(lambda layer: layer is not None and layer > first)
        pairs = _pairs(results, actual, wrong, first, allowed)
        tried += len(pairs)
        matches = [m for m in pairs if (result := run(m.slips)) is not None and _close(actual, result, allowed)]
        survivors = confirming.survivors(matches)
    if not survivors:
        precision = _in_precision(case, actual, right, confirming)
        if precision is not None:
            return Diagnosis((), tried, confirming.count if precision.exact else 0, precision)
    return Diagnosis(_simplest(survivors), tried, confirming.count if survivors else 0)


def diagnose_relation(case: Case, difference: float, candidate: Callable[..., Any] | None,
                      *, siblings: int = 3) -> Diagnosis | None:
    """A relation's failure on ``case`` (its two results ``difference`` apart) that follows from a
    lower precision: the candidate's own result on the case fails, is named ``computed-in-DTYPE``
    (:func:`diagnose`), and the two results are no further apart than two roundings of DTYPE (each
    is off by one). ``None`` otherwise: the relation's failure is a finding of its own."""
    found = None if candidate is None else _failing_result(candidate, case)
    if found is None:
        return None
    diagnosis = diagnose(case, *found, candidate, siblings=siblings)
    precision = diagnosis.precision
    if precision is None or not precision.exact or difference > 2 * ROUNDING_BAND * precision.rounding:
        return None
    return dataclasses.replace(diagnosis, relation_difference=difference)


@dataclass(frozen=True)
class Precision:
    """The lower precision a result's error is the rounding of: ``dtype``; ``exact``: every value
    of the result is a number of that dtype; ``error``: the result's largest error against the
    float64 reference; ``rounding``: the reference's own when computed in ``dtype``."""

    dtype: str
    exact: bool
    error: float
    rounding: float

    @property
    def evidence(self) -> str:
        return (f"off the float64 reference by {self.error:.2g}, where the reference computed in {self.dtype} "
                f"is off by {self.rounding:.2g}")


def _in_precision(case: Case, actual: Tensors, right: Tensors, confirming: _Confirming) -> Precision | None:
    """The lower precision of :data:`LOWER_PRECISIONS` whose rounding the result's error is the size
    of (:func:`_rounding_fits`), ``exact`` where every value of the result is a number of it, here
    and on every confirming case where the candidate fails (a bfloat16 number is a float16 number
    too: the least precise is taken); otherwise, a hint: the one whose rounding is nearest the error
    on this case (a lower precision, or a mistake as small as its rounding)."""
    fits: dict[str, tuple[float, float]] = {}
    held_exactly = []
    for dtype in LOWER_PRECISIONS.get(case.inputs.dtype, ()):
        errors, exact = _errors(case, actual, right, getattr(torch, dtype)), _exactly_in(actual, getattr(torch, dtype))
        if errors is not None and _rounding_fits(errors, exact):
            fits[dtype] = errors
            held_exactly += [dtype] if exact else []

    for dtype in reversed(held_exactly):
        if confirming.confirm(functools.partial(_fits_in, getattr(torch, dtype))) or confirming.count == 0:
            return Precision(dtype, True, *fits[dtype])
    nearest = sorted(fits, key=lambda d: abs(math.log(fits[d][0] / fits[d][1])))
    return Precision(nearest[0], False, *fits[nearest[0]]) if nearest else None


def _errors(case: Case, actual: Tensors, right: Tensors | None, low: torch.dtype) -> tuple[float, float] | None:
    """``actual``'s largest error against the float64 reference, and the reference's own when
    computed in ``low``; ``None`` where they cannot be compared."""
    built = case.build()
    on_cpu = _on_cpu(case, built)
    with torch.no_grad():
        if right is None:
            right = tensors_of(CellReference(torch.float64).compute(*on_cpu), case)
        try:
            lowered = tensors_of(CellReference(low).compute(*on_cpu), case)
        except (RuntimeError, TypeError):
            return None  # no kernel in that dtype here
    if set(actual) != set(right) or any(actual[k].shape != right[k].shape for k in right):
        return None
    return (max(float(abs_error(actual[k], right[k]).max()) for k in right),
            max(float(abs_error(lowered[k], right[k]).max()) for k in right))


def _fits_in(low: torch.dtype, case: Case, result: Tensors) -> bool:
    """Whether every value of ``result`` on ``case`` is a number of ``low``, off by its rounding."""
    errors = _errors(case, result, None, low)
    return errors is not None and _exactly_in(result, low) and _rounding_fits(errors, exact=True)


def _rounding_fits(errors: tuple[float, float], exact: bool) -> bool:
    """Whether an error is the size of a precision's rounding: within :data:`ROUNDING_BAND` of the
    reference's own error in it; a result held exactly in that precision may be off by less (a
    kernel that rounds only its inputs and outputs to it, accumulating in float32)."""
    error, rounding = errors
    return rounding > 0 and error <= rounding * ROUNDING_BAND and (exact or error >= rounding / ROUNDING_BAND)


def _exactly_in(tensors: Tensors, low: torch.dtype) -> bool:
    """Whether every value is a number of ``low``, one at least other than 0 and +-1 (which every
    precision holds: a relu's zeros, a saturated tanh). A computed value of a float64 case is a
    float32 number by chance once in 2^29, a float32 value a float16 number once in 2^13 (and the
    confirming cases must hold it too)."""
    values = torch.cat([t.flatten() for t in tensors.values()])
    telling = values[(values != 0) & (values.abs() != 1)]
    return telling.numel() >= 1 and bool(torch.isfinite(values).all()) \
        and bool((values.to(low).to(values.dtype) == values).all())


def _on_cpu(case: Case, built: Any) -> tuple[Any, ...]:
    """The case's call on the CPU (MPS has no float64)."""
    if case.inputs.device == "cpu":
        return built.module, built.input, built.hx
    cpu = dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, device="cpu")).build()
    return cpu.module, cpu.input, cpu.hx


class _Runner:
    """Mistakes' results on one case: one :class:`SlippedStack` (and its cache of layers) for all."""

    def __init__(self, case: Case) -> None:
        self.case = case
        built = case.build()
        module = copy.deepcopy(built.module).to(device="cpu", dtype=torch.float64)
        x = built.input
        x = x._replace(data=x.data.to("cpu", torch.float64)) if isinstance(x, PackedSequence) \
            else x.to("cpu", torch.float64)
        hx: Hidden | None = each_state(built.hx, lambda h: h.to("cpu", torch.float64))
        self.call = canonical(module, x, hx)
        self.stack = SlippedStack(module, self.call)

    def __call__(self, slips: Sequence) -> Tensors | None:
        """The result with ``slips`` made, per direction; ``None`` where they cannot be made on this call."""
        try:
            with torch.no_grad():
                output, h_n, c_n = self.stack.run(slips)
                return tensors_of((self.call.restore_output(output), self.call.restore_hidden(h_n, c_n)), self.case)
        except Exception:
            return None


class _Confirming:
    """The candidate's failing results on more cases of the configuration, drawn once and kept."""

    def __init__(self, case: Case, candidate: Callable[..., Any] | None, siblings: int) -> None:
        self.candidate = candidate
        self.cases = _siblings(case, siblings) if candidate is not None else []
        self.failing: list[tuple[Case, Tensors, dict[str, float]] | None] | None = None
        self.count = 0

    def _failing(self) -> list[tuple[Case, Tensors, dict[str, float]] | None]:
        if self.failing is None:
            self.failing = []
            for sibling in self.cases:
                found = _failing_result(self.candidate, sibling) if self.candidate is not None else None
                self.failing.append(None if found is None else (sibling, *found))
        return self.failing

    def confirm(self, holds: Callable[[Case, Tensors], bool]) -> bool:
        """Whether ``holds(case, result)`` on every confirming case where the candidate fails (and
        there is at least one); :attr:`count` says on how many it was checked."""
        self.count = 0
        for failing in self._failing():
            if failing is None:
                continue
            sibling, result, _ = failing
            self.count += 1
            if not holds(sibling, result):
                return False
        return self.count > 0

    def survivors(self, matches: list[Mistake]) -> list[Mistake]:
        """The matches that reproduce the candidate on every confirming case on which it fails."""
        if not matches or self.candidate is None:
            return matches
        self.count = 0
        for failing in self._failing():
            if failing is None:
                continue  # the candidate is right on it, or cannot be compared: it says nothing
            sibling, result, sibling_allowed = failing
            run = _Runner(sibling)
            matches = [m for m in matches if (r := run(m.slips)) is not None and _close(result, r, sibling_allowed)]
            self.count += 1
            if not matches:
                break
        return matches


def _pairs(results: dict[Mistake, Tensors], actual: Tensors, wrong: set[Part], first: int,
           allowed: dict[str, float]) -> list[Mistake]:
    """Pairs worth running, simplest first: two mistakes that each reproduce some of the wrong
    parts and together all of them; one that reproduces the first wrong layer's final states and
    one made at or after it (the second then acts on the first one's result); or one that
    reproduces the output and a mistake in writing the final state (which leaves the output be)."""
    agree = {m: {p for p in wrong if _part_close(actual, result, p, allowed)} for m, result in results.items()}
    at_first = {p for p in wrong if p[0] != "output" and p[1] == first}
    output = {p for p in wrong if p[0] == "output"}

    def worth(a: Mistake, b: Mistake) -> bool:
        if agree[a] and agree[b] and agree[a] | agree[b] == wrong:
            return True
        if at_first and at_first <= agree[a] and (b.first_layer is None or b.first_layer >= first):
            return True
        return b.kind in WRITING and output <= agree[a]

    pairs = [pair(a, b) for a, b in itertools.permutations(results, 2)
             if not (a.kind == b.kind and a.detail == b.detail) and worth(a, b)]
    unique = {m.slips: m for m in sorted(pairs, key=lambda m: m.cells)}
    return list(unique.values())[:PAIRS]


def _simplest(survivors: list[Mistake]) -> tuple[Mistake, ...]:
    """Of each kind's survivors, those made at the fewest places; kinds in catalogue order."""
    by_kind: dict[tuple[str, ...], list[Mistake]] = {}
    for mistake in survivors:
        by_kind.setdefault(tuple(s.kind for s in mistake.slips), []).append(mistake)
    kept = []
    for members in by_kind.values():
        fewest = min(m.cells for m in members)
        kept += [m for m in members if m.cells == fewest]
    return tuple(kept)


def _close(actual: Tensors, mistaken: Tensors, allowed: dict[str, float]) -> bool:
    if set(mistaken) != set(actual) or any(mistaken[k].shape != actual[k].shape for k in actual):
        return False
    return compare_values(actual, mistaken, allowed) is None


def _parts(tensors: Tensors) -> list[Part]:
    parts: list[Part] = [("output", d) for d in range(tensors["output"].shape[2])]
    for name in ("h_n", "c_n"):
        if name in tensors:
            layers, directions = tensors[name].shape[:2]
            parts += [(name, layer, d) for layer in range(layers) for d in range(directions)]
    return parts


def _part(tensors: Tensors, part: Part) -> torch.Tensor:
    if part[0] == "output":
        return tensors["output"][:, :, part[1]]
    return tensors[part[0]][part[1], part[2]]


def _part_close(a: Tensors, b: Tensors, part: Part, allowed: dict[str, float]) -> bool:
    x, y = _part(a, part), _part(b, part)
    return x.shape == y.shape and not bool((abs_error(x, y) > allowed[part[0]]).any())


def _parts_apart(a: Tensors, b: Tensors, allowed: dict[str, float]) -> set[Part]:
    """The parts on which ``a`` and ``b`` differ by more than ``allowed`` (every part, when their
    shapes differ)."""
    if set(a) != set(b) or any(a[k].shape != b[k].shape for k in a):
        return set(_parts(b))
    return {part for part in _parts(b) if not _part_close(a, b, part, allowed)}


def _siblings(case: Case, count: int) -> list[Case]:
    """The same configuration and shapes with other values."""
    return [dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, seed=(case.inputs.seed + k) % 2**32))
            for k in range(1, count + 1)]


def _failing_result(candidate: Callable[..., Any], case: Case) -> tuple[Tensors, dict[str, float]] | None:
    """The candidate's result on ``case`` and the allowance it was held to, where :func:`check`
    finds its values wrong; ``None`` where it says nothing about them (right, not compared, the
    wrong structure, raised) or, in a forked child where the system has fork, where it crashes or
    runs past :data:`CONFIRM_SECONDS`: a confirming case must never take the caller down with it."""

    # check() goes on to torch's own module once a candidate agrees: its failure is not the candidate's
    candidates_property = "fused-vs-reference" if candidate is fused else "agreement"

    def failing() -> tuple[Tensors, dict[str, float]] | None:
        try:
            check(candidate, case)
        except CheckFailure as failure:
            if failure.prop == candidates_property and failure.actual is not None and failure.allowed is not None:
                return failure.actual, failure.allowed
        return None

    return value_of(failing, CONFIRM_SECONDS)
