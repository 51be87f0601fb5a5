"""What makes two failures the same fault: a signature built from where and how they differ.

A search goes on past its first fault (see :mod:`fuzz_birnn.campaign.engine`), so it needs to tell a
fault it has already reported from a new one, and a run groups the reports of one fault found by
several searches into one finding. Both use :func:`signature_of`, a short sentence that leaves
out everything that depends on the case's sizes:

* **wrong values** (``agreement``, ``fused-vs-reference``): the pattern of
  :func:`~fuzz_birnn.core.compare.compare_values`: ``final state wrong`` when any ``h_n``/``c_n`` is,
  else ``output wrong, final state right`` and the output's directions that are wrong. Finer
  patterns were tried and dropped: where in the stack a fault first shows, and in which
  directions, moves with the case (a saturated tanh hides a wrong ``h0`` in one direction, a
  one-layer stack has its last layer first), which reported one fault three times. In bfloat16
  and float16 a fault's errors near the tolerance can hide the final state's, so the pattern is
  taken from the case's float64 twin (the same case in float64); a fault the twin does not show
  is ``values wrong in bfloat16 only``;
* **a wrong structure**: what is wrong, not with what: ``output.dtype is wrong``, ``result
  should be a pair (output, hidden)`` (whether a tensor or a PackedSequence came back);
* **autocast**: its message without the backend it was seen with (``with oneDNN on``/``off``);
* **a relation that does not hold**: ``RELATION: results differ``, whichever tensor differs and
  for which variant (``batch_first=True`` or ``False``, a sequence run alone): one fault shows
  in several; two faults of one relation are told apart by what each needs
  (:mod:`fuzz_birnn.campaign.needs`);
* **everything else** (an exception, a gradient that does not hold, a refused
  invalid call, a crash, a hang): the message, with every number, list and address replaced by
  ``#``; an exception keeps its type and its words.

Mode and property are deliberately not part of it: one fault seen in four modes and two
properties is one finding, seen in eight places. A coarse signature alone would report two
different faults with the same pattern in one search as one (two faults that both leave a final
state wrong); what each needs in order to show tells them apart (:mod:`fuzz_birnn.campaign.needs`):
a failure of a known signature whose case lacks what the known fault needs is a new fault. A
case that shows two faults at once is taken for the one whose pattern shows (a wrong final state
outranks a wrong output); a finer signature would report the same fault again and again at every
size, or once more for every combination of faults.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from fuzz_birnn.core.compare import Mismatch
from fuzz_birnn.core.words import shortened

__all__ = ["crash_signature", "fault_signature", "normalise", "signature_of"]

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_NUMBER = re.compile(r"(?<![A-Za-z_0-9])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|\b(?:inf|nan)\b")
#: Indices in names (``weight_ih_l0``, ``node_GRU_74``), not the digits that are part of a name
#: (``bfloat16``, ``complex64``, ``ml_dtypes.float8_e4m3``: a dtype is what a message is about).
_DIGITS_IN_NAME = re.compile(r"(?<=_l)\d+(?![A-Za-z0-9])|(?<=_)\d+(?![A-Za-z0-9])")
#: Shapes written with an ``x`` (``mat1 and mat2 shapes cannot be multiplied (2x7 and 8x32)``): numbers, not names.
_TIMES = re.compile(r"(?<![A-Za-z_0-9])\d+(?:x\d+)+(?![A-Za-z_0-9])")
_BRACKETED = re.compile(r"\[[^\[\]]*\]|\((?:#|, |,)+\)")
_LONGEST = 160
_FOLLOW_UP = "on a follow-up call, "
#: Graph element names in runtime messages ("input parameter (/Unsqueeze_output_0)", "in node
#: (/LSTM)", "Name:'node_GRU_74'"): where in an exported graph, which moves with the export.
_GRAPH_NAME = re.compile(r"\b(parameter|node|Name:)\s*(\([^()]*\)|'[^']*')")
#: A relation's message: ``layout: output differs for batch_first=True on the transposed input: ...``.
_RELATION = re.compile(r"^(\w+): (?:output|h_n|c_n) differs for ")
#: Which backend an autocast failure was seen with: one fault shows with oneDNN on and off.
_AUTOCAST_BACKEND = re.compile(r"(?<=\)) with oneDNN o(?:n|ff)(?=[,:])")
#: check_structure's messages: ``output.dtype=torch.float64, but should be torch.float32``,
#: ``result is a tensor of shape (2, 3), but should be a pair (output, hidden)``.
_STRUCTURE = re.compile(r"^([\w.]+)(=| is ).*?, but should be (.*)$")


def fault_signature(mismatch: Mismatch) -> str:
    """The signature of a failure, from its :class:`~fuzz_birnn.core.compare.Mismatch`."""
    if mismatch.pattern:
        return mismatch.pattern
    message = mismatch.message.removeprefix(_FOLLOW_UP)  # a relation's extra call: the same fault
    message = _AUTOCAST_BACKEND.sub("", message)
    relation = _RELATION.match(message)
    if relation:
        return f"{relation.group(1)}: results differ"
    structure = _STRUCTURE.match(message)
    if structure:
        subject, how, expected = structure.groups()
        return f"{subject} is wrong" if how == "=" else f"{subject} should be {normalise(expected)}"
    return normalise(message)


def signature_of(failure: Any, twin_mismatch: Callable[[Any], Mismatch | None]) -> str:
    """The signature of a :class:`~fuzz_birnn.core.outcomes.CheckFailure`; ``twin_mismatch(case)`` checks
    another case the same way and returns its mismatch (``None`` if it passes). It is called
    only for wrong values at a dtype other than float64, with the case's float64 twin."""
    mismatch, case = failure.mismatch, failure.case
    if mismatch.pattern is None or case.inputs.dtype == "float64":
        return fault_signature(mismatch)

    twin = dataclasses.replace(case, inputs=dataclasses.replace(case.inputs, dtype="float64"))
    seen = twin_mismatch(twin)
    if seen is None or seen.pattern is None:
        return f"values wrong in {case.inputs.dtype} only"
    return seen.pattern


def crash_signature(kind: str, how: str) -> str:
    """``crash: killed by SIGSEGV`` or ``timeout``: a process that died, or a case that overran."""
    return "timeout" if kind == "timeout" else f"crash: {normalise(how)}"


def normalise(message: str) -> str:
    """``message`` with addresses, numbers (``0`` in ``weight_ih_l0`` too, not the ``16`` of
    ``bfloat16``), lists, shapes and the names of exported graph elements as ``#``; cut at a word's
    end past 160 characters."""
    text = _ADDRESS.sub("#", message.splitlines()[0] if message else "")
    text = _GRAPH_NAME.sub(lambda m: f"{m.group(1)} (#)", text)
    text = _TIMES.sub("#", text)
    text = _DIGITS_IN_NAME.sub("#", text)
    text = _NUMBER.sub("#", text)
    previous = None
    while previous != text:
        previous, text = text, _BRACKETED.sub(lambda m: "[#]" if m.group(0).startswith("[") else "(#)", text)
    return shortened(text, _LONGEST)

