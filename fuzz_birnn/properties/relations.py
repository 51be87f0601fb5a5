"""Metamorphic relations: two calls whose results must agree, with no reference needed.

Each relation runs the candidate (torch's fused module by default) on the case's own call and on
a *follow-up* call derived from it, and compares the parts that must be equal:

* ``batch_independence``: every sequence of a batch, run alone (trimmed to its length, with its
  own column of ``h0``/``c0``), gives its slice of the batched result.
* ``unbatched``: a 2-D input gives what the same input gives as a batch of one.
* ``layout``: ``batch_first=True`` on the transposed input gives what ``batch_first=False`` gives.
* ``sorting``: the batch shuffled and packed with ``enforce_sorted=False``, un-shuffled afterwards,
  gives the original result, ``h_n``/``c_n`` columns included.
* ``time_reversal``: swapping every layer's forward and reverse parameters (and, above layer 0,
  the two halves of ``weight_ih``'s input columns, which now arrive swapped), reversing every
  sequence within its length and swapping ``h0``'s direction rows gives the output reversed in
  time with its halves swapped, and ``h_n``/``c_n`` with their direction rows swapped.
* ``dropout_eval``: ``dropout > 0`` in eval mode gives what ``dropout = 0`` gives.
* ``zero_state``: ``hx=None`` gives what explicit zeros give.

Both sides come from the same implementation in the same dtype, so they may differ by two of its
rounding allowances (see :mod:`fuzz_birnn.core.compare`), never by a layout mistake.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from fuzz_birnn.core.candidates import candidate_label, fused
from fuzz_birnn.core.case import Built, Case, backend
from fuzz_birnn.core.compare import Mismatch, Tolerances, max_abs_difference, not_close
from fuzz_birnn.core.evaluation import evaluate, for_candidate
from fuzz_birnn.core.layout import Canonical, as_tensor, canonical, each_state, reverse_within_lengths
from fuzz_birnn.core.outcomes import Candidate, CheckFailure, Outcome, Unsupported, unsupported
from fuzz_birnn.portable.calls import per_direction, structure_problem

__all__ = ["RELATIONS", "RELATION_WORDS", "check_relation"]

#: (what is compared, tensor name, from the original call, from the follow-up call)
Pair = tuple[str, str, torch.Tensor, torch.Tensor]
Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class _Call:
    """What a relation needs: the candidate bound to one call, and the case's call canonicalised."""

    candidate: Candidate
    label: str
    prop: str
    case: Case
    built: Built
    call: Canonical

    def run(self, module: nn.RNNBase, input: object, hx: object, *, unbatched: bool = False,
            follow_up: bool = True) -> Tensors:
        """``candidate(module, input, hx)`` per layer and direction, in float64 on the CPU, once its
        structure (types, ranks, shapes, dtypes, devices) is that of torch's own result of the same
        call: a wrong one is a finding here, before anything unpacks it."""
        when = "on a follow-up call, " if follow_up else ""
        try:
            result = self.candidate(module, input, hx)
        except Unsupported:
            raise
        except Exception as error:
            message = f"{when}candidate raised {type(error).__name__}: {error}".splitlines()[0]
            raise CheckFailure(Mismatch("result", message), self.case, self.label, self.prop) from error
        if self.candidate is not fused:
            try:
                expected = module(input, hx)
            except Exception as error:  # a valid call torch refuses: torch's fault, said as such
                message = f"{when}torch's fused module raised {type(error).__name__}: {error}".splitlines()[0]
                raise CheckFailure(Mismatch("result", message), self.case, "fused", self.prop) from error
            try:
                problem = structure_problem(result, expected)
            except Exception as error:  # reading the result raised (an object whose shape raises)
                problem = "result", f"reading the result raised {type(error).__name__}: {error}".splitlines()[0]
            if problem is not None:
                raise CheckFailure(Mismatch(problem[0], when + problem[1]), self.case, self.label, self.prop)
        tensors = per_direction(result, num_layers=module.num_layers, bidirectional=module.bidirectional,
                                batch_first=module.batch_first, unbatched=unbatched)
        return {name: t.detach().to("cpu", torch.float64) for name, t in tensors.items()}

    def hx_columns(self, index: torch.Tensor) -> object:
        """The caller's ``hx`` restricted to (or permuted by) batch ``index``; ``None`` if not given."""
        if self.built.hx is None:
            return None
        index = index.to(self.call.h0.device)
        h0 = self.call.h0.index_select(1, index)
        return h0 if self.call.c0 is None else (h0, self.call.c0.index_select(1, index))


def _batch_independence(c: _Call, original: Tensors) -> Iterator[Pair]:
    module = c.built.module
    for b, length in enumerate(c.call.lengths.tolist()):
        alone = c.call.sequences[:length, b:b + 1]
        alone = alone.transpose(0, 1) if module.batch_first else alone
        got = c.run(module, alone, c.hx_columns(torch.tensor([b])))
        what = f"sequence {b} run alone"
        yield what, "output", original["output"][:length, b], got["output"][:, 0]
        for name in ("h_n", "c_n"):
            if name in original:
                yield what, name, original[name][:, :, b], got[name][:, :, 0]


def _unbatched(c: _Call, original: Tensors) -> Iterator[Pair]:
    module = c.built.module
    hx = each_state(c.built.hx, lambda h: h.unsqueeze(1))
    got = c.run(module, as_tensor(c.built.input).unsqueeze(0 if module.batch_first else 1), hx)
    for name in original:
        yield "the same input as a batch of one", name, original[name], got[name]


def _layout(c: _Call, original: Tensors) -> Iterator[Pair]:
    flipped = copy.deepcopy(c.built.module)
    flipped.batch_first = not flipped.batch_first
    got = c.run(flipped, as_tensor(c.built.input).transpose(0, 1), c.built.hx)
    for name in original:
        yield f"batch_first={flipped.batch_first} on the transposed input", name, original[name], got[name]


def _sorting(c: _Call, original: Tensors) -> Iterator[Pair]:
    batch = c.call.sequences.shape[1]
    order = torch.randperm(batch, generator=torch.Generator().manual_seed(c.case.inputs.seed))
    if torch.equal(order, torch.arange(batch)):
        order = order.roll(1)
    module = c.built.module
    shuffled = c.call.sequences[:, order.to(c.call.sequences.device)]
    shuffled = shuffled.transpose(0, 1) if module.batch_first else shuffled
    packed = pack_padded_sequence(shuffled, c.call.lengths[order], batch_first=module.batch_first,
                                  enforce_sorted=False)
    got = c.run(module, packed, c.hx_columns(order))
    undo = torch.argsort(order)
    yield "the batch shuffled and packed unsorted", "output", original["output"], got["output"][:, undo]
    for name in ("h_n", "c_n"):
        if name in original:
            yield "the batch shuffled and packed unsorted", name, original[name], got[name][:, :, undo]


def _time_reversal(c: _Call, original: Tensors) -> Iterator[Pair]:
    module = c.built.module
    swapped = copy.deepcopy(module)
    half = module.proj_size or module.hidden_size
    with torch.no_grad():
        for layer in range(module.num_layers):
            for base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
                forward, reverse = f"{base}_l{layer}", f"{base}_l{layer}_reverse"
                if not hasattr(module, forward):
                    continue
                for target, source in ((forward, reverse), (reverse, forward)):
                    value = getattr(module, source)
                    if base == "weight_ih" and layer > 0:  # inputs arrive as [reverse, forward] now
                        value = torch.cat([value[:, half:], value[:, :half]], dim=1)
                    getattr(swapped, target).copy_(value)
    lengths = c.call.lengths
    reversed_steps = reverse_within_lengths(c.call.sequences, lengths)
    form = c.call.form
    follow_input: torch.Tensor | PackedSequence
    if form == "unbatched":
        follow_input = reversed_steps[:, 0]
    else:
        steps = reversed_steps.transpose(0, 1) if module.batch_first else reversed_steps
        follow_input = pack_padded_sequence(steps, lengths, batch_first=module.batch_first,
                                            enforce_sorted=c.case.inputs.enforce_sorted) if form == "packed" else steps
    swap_rows = torch.arange(c.call.h0.shape[0]).view(-1, 2).flip(1).reshape(-1).to(c.call.h0.device)
    hx = each_state(c.built.hx, lambda h: h.index_select(0, swap_rows))
    got = c.run(swapped, follow_input, hx, unbatched=form == "unbatched")
    length, batch, directions, features = got["output"].shape
    back = reverse_within_lengths(got["output"].reshape(length, batch, -1), lengths)
    what = "directions swapped and every sequence reversed"
    yield what, "output", original["output"], back.reshape(length, batch, directions, features).flip(2)
    for name in ("h_n", "c_n"):
        if name in original:
            yield what, name, original[name], got[name].flip(1)


def _dropout_eval(c: _Call, original: Tensors) -> Iterator[Pair]:
    plain = copy.deepcopy(c.built.module)
    plain.dropout = 0.0
    got = c.run(plain, c.built.input, c.built.hx, unbatched=c.case.inputs.unbatched)
    for name in original:
        yield "dropout=0", name, original[name], got[name]


def _zero_state(c: _Call, original: Tensors) -> Iterator[Pair]:
    h0 = torch.zeros_like(c.call.h0)
    c0 = None if c.call.c0 is None else torch.zeros_like(c.call.c0)
    if c.case.inputs.unbatched:
        h0, c0 = h0[:, 0], None if c0 is None else c0[:, 0]
    got = c.run(c.built.module, c.built.input, h0 if c0 is None else (h0, c0), unbatched=c.case.inputs.unbatched)
    for name in original:
        yield "explicit zero initial state", name, original[name], got[name]


#: name -> (when it applies, the relation)
RELATIONS: dict[str, tuple[Callable[[Case], bool], Callable[[_Call, Tensors], Iterator[Pair]]]] = {
    "batch_independence": (lambda case: not case.inputs.unbatched and (case.inputs.batch_size or 0) >= 2,
                           _batch_independence),
    "unbatched": (lambda case: case.inputs.unbatched, _unbatched),
    "layout": (lambda case: case.inputs.form == "padded", _layout),
    "sorting": (lambda case: case.inputs.packed and (case.inputs.batch_size or 0) >= 2, _sorting),
    "time_reversal": (lambda case: case.config.bidirectional, _time_reversal),
    "dropout_eval": (lambda case: case.config.dropout > 0, _dropout_eval),
    "zero_state": (lambda case: not case.inputs.initial_state, _zero_state),
}


#: What each relation says, in plain words, for a report's page.
RELATION_WORDS = {
    "batch_independence": "every sequence of a batch, run alone, must give its own slice of the batched result: "
                          "one sequence's result may not depend on the others in its batch",
    "unbatched": "an unbatched (2-D) input must give what the same input gives as a batch of one",
    "layout": "batch_first=True on the transposed input must give what batch_first=False gives",
    "sorting": "the batch shuffled and packed with enforce_sorted=False, and put back in order afterwards, must "
               "give the original result, h_n and c_n included",
    "time_reversal": "swapping the forward and reverse directions' parameters and reversing every sequence must give "
                     "the output reversed in time with its halves swapped (and h_n/c_n's direction rows swapped)",
    "dropout_eval": "dropout > 0 in eval mode must give what dropout = 0 gives",
    "zero_state": "leaving hx out (None) must give what explicit zeros give",
}


def check_relation(relation: str, candidate: Candidate, case: Case, *, name: str | None = None) -> Outcome:
    """Check one metamorphic relation for ``candidate`` (``fused`` for torch itself) on ``case``.

    Returns an :class:`Outcome` with ``skipped`` set when the relation does not apply to the case
    (a follow-up needs, say, a batch of two) or its values exceed the dtype's range.
    """
    __tracebackhide__ = True  # pytest shows the caller's line and the message
    applies, relate = RELATIONS[relation]
    if not applies(case):
        return Outcome(case, {}, {}, f"{relation} does not apply to this case")
    built = case.build()
    evaluation = evaluate(case, built)
    if evaluation.skipped:
        return Outcome(case, {}, {}, evaluation.skipped)
    evaluation, _ = for_candidate(evaluation, case, candidate)  # its declared precision, if lower
    label = name or candidate_label(candidate)
    prop = f"relation:{relation}"
    with backend(case.inputs), torch.no_grad():
        bound = _Call(candidate, label, prop, case, built, canonical(built.module, built.input, built.hx))
        try:
            original = bound.run(built.module, built.input, built.hx, unbatched=case.inputs.unbatched,
                                 follow_up=False)
            pairs = list(relate(bound, original))
        except Unsupported as refusal:
            return Outcome(case, {}, {}, unsupported(refusal))

    # each pair's difference once (None: another shape), judged under the bound and maybe the model
    differences = [None if mine.shape != theirs.shape else max_abs_difference(theirs, mine)
                   for _, _, mine, theirs in pairs]

    def beyond(tolerances: Tolerances) -> Mismatch | None:
        """The first pair of another shape, or further apart than twice the candidate's allowance
        (two results, each off by up to it)."""
        allowed = _twice(tolerances)
        for (what, tensor, mine, theirs), difference in zip(pairs, differences, strict=True):
            if difference is None:
                return Mismatch(tensor, f"{relation}: {tensor}.shape={tuple(theirs.shape)} for {what}, "
                                        f"but should be {tuple(mine.shape)}")
            if difference > allowed[tensor]:
                return not_close(tensor, theirs, mine, allowed[tensor], f"{relation}: {tensor} differs for {what}")
        return None

    mismatch, tolerances = evaluation.judge(beyond)
    if mismatch is not None:
        raise CheckFailure(mismatch, case, label, prop)
    errors: dict[str, float] = {}
    for (_, tensor, _, _), difference in zip(pairs, differences, strict=True):
        errors[tensor] = max(errors.get(tensor, 0.0), difference or 0.0)
    allowed = _twice(tolerances)
    return Outcome(case, errors, allowed)


def _twice(tolerances: Tolerances) -> dict[str, float]:
    return {k: 2 * v for k, v in tolerances.candidate.items()}
