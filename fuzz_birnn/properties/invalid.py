"""Invalid calls: torch must refuse them with a clear Python exception, and so must the others.

A *corruption* turns a valid case into an invalid call at one stage: building the module
(``proj_size >= hidden_size``), packing the input (a zero length, a length longer than the
sequence, unsorted lengths with ``enforce_sorted=True``), calling the module (``h0``/``c0`` of the
wrong shape, kind or dtype, input of the wrong feature size, rank or dtype), or calling the mode's
cell (``nn.RNNCell``, ``nn.GRUCell``, ``nn.LSTMCell``) with an input and a state that do not fit
each other (feature or hidden size, batch, rank, an unbatched input with a batched state). The property:

* torch raises ``ValueError``, ``RuntimeError``, ``TypeError`` or ``IndexError`` (an
  ``AttributeError`` or similar means an argument went unchecked; accepting the call, or killing
  the process, is worse; ``fuzz-birnn`` writes the case ahead, so a crash is still recorded);
* at the call stage, the decomposition and the reference refuse the same call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from fuzz_birnn.core.case import Case, backend
from fuzz_birnn.core.compare import Mismatch
from fuzz_birnn.core.decomposition import decomposed
from fuzz_birnn.core.outcomes import CheckFailure, Outcome
from fuzz_birnn.core.reference import reference

__all__ = ["CLEAR_ERRORS", "CORRUPTIONS", "KNOWN_TORCH_CRASHES", "KNOWN_TORCH_ISSUES", "applicable_corruptions",
           "check_invalid"]

#: Exceptions that count as a clear refusal.
CLEAR_ERRORS = (ValueError, RuntimeError, TypeError, IndexError)


def _state_shape(case: Case, which: int, change: Callable[[list[int]], list[int]]) -> Callable[..., Any]:
    def call(impl: Callable[..., Any]) -> Any:
        built = case.build()
        assert built.hx is not None, "only cases with an initial state are given this corruption"
        states = list(built.hx) if isinstance(built.hx, tuple) else [built.hx]
        shape = change(list(states[which].shape))
        states[which] = torch.zeros(shape, dtype=states[which].dtype, device=states[which].device)
        return impl(built.module, built.input, tuple(states) if len(states) == 2 else states[0])
    return call


def _input(case: Case, change: Callable[[Any], Any]) -> Callable[..., Any]:
    def call(impl: Callable[..., Any]) -> Any:
        built = case.build()
        return impl(built.module, change(built.input), built.hx)
    return call


def _hx(case: Case, change: Callable[[Any], Any]) -> Callable[..., Any]:
    def call(impl: Callable[..., Any]) -> Any:
        built = case.build()
        return impl(built.module, built.input, change(built.hx))
    return call


def _pack(case: Case, lengths: Callable[[list[int], int], list[int]], enforce_sorted: bool) -> Callable[..., Any]:
    """Packing happens before any implementation is called, so ``impl`` plays no part."""
    def call(impl: Callable[..., Any]) -> Any:
        steps = torch.zeros(case.inputs.seq_len, case.inputs.batch_size or 1, case.config.input_size,
                            dtype=case.inputs.torch_dtype)
        bad = lengths(list(case.inputs.lengths or ()), case.inputs.seq_len)
        return pack_padded_sequence(steps, torch.tensor(bad), enforce_sorted=enforce_sorted)
    return call


def _projection(case: Case) -> Callable[..., Any]:
    def call(impl: Callable[..., Any]) -> Any:
        kwargs = {**case.config.constructor_kwargs(), "proj_size": case.config.hidden_size}
        return nn.LSTM(**kwargs, device="meta")
    return call


def _cell_call(case: Case, x_shape: Callable[[int, int], tuple[int, ...]],
               h_shape: Callable[[int, int], tuple[int, ...]],
               c_shape: Callable[[int, int], tuple[int, ...]] | None = None) -> Callable[..., Any]:
    """Call torch's cell of the case's mode (layer 0's sizes) with an input and a state whose
    shapes, given the batch and the hidden size, do not fit it; ``impl`` plays no part."""
    def call(impl: Callable[..., Any]) -> Any:
        config, batch, hidden = case.config, case.inputs.batch_size or 1, case.config.hidden_size
        device = case.inputs.device
        kwargs: dict[str, Any] = {"bias": config.bias, "dtype": case.inputs.torch_dtype, "device": device}
        if config.mode.startswith("RNN_"):
            kwargs["nonlinearity"] = config.mode[4:].lower()
        kind = {"LSTM": nn.LSTMCell, "GRU": nn.GRUCell}.get(config.mode, nn.RNNCell)
        cell = kind(config.input_size, hidden, **kwargs)
        x = torch.zeros(x_shape(batch, config.input_size), dtype=case.inputs.torch_dtype, device=device)
        h = torch.zeros(h_shape(batch, hidden), dtype=case.inputs.torch_dtype, device=device)
        if kind is nn.LSTMCell:
            c = torch.zeros((c_shape or h_shape)(batch, hidden), dtype=case.inputs.torch_dtype, device=device)
            return cell(x, (h, c))
        return cell(x, h)
    return call


def _lstm_cell(case: Case) -> bool:
    return case.config.mode == "LSTM" and not case.config.proj_size


def _plain_call(case: Case) -> bool:
    return not case.inputs.packed


def _given_state(case: Case) -> bool:
    return case.inputs.initial_state and not case.inputs.packed


#: name -> (stage, applies to case, the invalid call given an implementation)
CORRUPTIONS: dict[str, tuple[str, Callable[[Case], bool], Callable[[Case], Callable[..., Any]]]] = {
    "h0_rows": ("call", _given_state, lambda c: _state_shape(c, 0, lambda s: [s[0] + 1, *s[1:]])),
    "h0_features": ("call", _given_state, lambda c: _state_shape(c, 0, lambda s: [*s[:-1], s[-1] + 1])),
    "h0_batch": ("call", lambda c: _given_state(c) and not c.inputs.unbatched,
                 lambda c: _state_shape(c, 0, lambda s: [s[0], s[1] + 1, s[2]])),
    "h0_rank": ("call", _given_state, lambda c: _state_shape(c, 0, lambda s: [*s, 1])),
    "c0_features": ("call", lambda c: _given_state(c) and c.config.mode == "LSTM",
                    lambda c: _state_shape(c, 1, lambda s: [*s[:-1], s[-1] + 1])),
    "hx_kind": ("call", _given_state,
                lambda c: _hx(c, lambda hx: hx[0] if isinstance(hx, tuple) else (hx, hx))),
    "h0_dtype": ("call", lambda c: _given_state(c) and c.inputs.dtype != "float64",
                 lambda c: _hx(c, lambda hx: (hx[0].double(), hx[1]) if isinstance(hx, tuple) else hx.double())),
    "input_features": ("call", _plain_call, lambda c: _input(c, lambda x: torch.cat([x, x[..., :1]], dim=-1))),
    "input_rank": ("call", _plain_call, lambda c: _input(c, lambda x: x[None, None])),
    "input_integer": ("call", _plain_call, lambda c: _input(c, lambda x: x.to(torch.int64))),
    "length_zero": ("pack", lambda c: c.inputs.packed, lambda c: _pack(c, lambda ls, t: [*ls[:-1], 0], False)),
    "length_too_long": ("pack", lambda c: c.inputs.packed, lambda c: _pack(c, lambda ls, t: [t + 1, *ls[1:]], False)),
    "unsorted_enforced": ("pack", lambda c: c.inputs.packed and (c.inputs.batch_size or 0) >= 2
                          and c.inputs.seq_len >= 2,
                          lambda c: _pack(c, lambda ls, t: [1, t, *ls[2:]], True)),
    "proj_size_too_large": ("build", lambda c: c.config.mode == "LSTM", _projection),
    # torch's cells, called as people call them in their own stacks
    "cell_input_features": ("cell", lambda c: True, lambda c: _cell_call(c, lambda b, f: (b, f + 1),
                                                                       lambda b, h: (b, h))),
    "cell_input_rank": ("cell", lambda c: True, lambda c: _cell_call(c, lambda b, f: (1, b, f), lambda b, h: (b, h))),
    "cell_hidden_size": ("cell", lambda c: True, lambda c: _cell_call(c, lambda b, f: (b, f), lambda b, h: (b, h + 1))),
    "cell_hidden_batch": ("cell", lambda c: True, lambda c: _cell_call(c, lambda b, f: (b, f),
                                                                     lambda b, h: (b + 1, h))),
    "cell_hidden_rank": ("cell", lambda c: True, lambda c: _cell_call(c, lambda b, f: (b, f), lambda b, h: (1, b, h))),
    "cell_unbatched_input_batched_state": ("cell", lambda c: True,
                                           lambda c: _cell_call(c, lambda b, f: (f,), lambda b, h: (b, h))),
    "cell_batched_input_unbatched_state": ("cell", lambda c: True,
                                           lambda c: _cell_call(c, lambda b, f: (b, f), lambda b, h: (h,))),
    "cell_c_size": ("cell", _lstm_cell, lambda c: _cell_call(c, lambda b, f: (b, f), lambda b, h: (b, h),
                                                            lambda b, h: (b, h + 1))),
    "cell_c_batch": ("cell", _lstm_cell, lambda c: _cell_call(c, lambda b, f: (b, f), lambda b, h: (b, h),
                                                             lambda b, h: (b + 1, h))),
    "cell_c_batched_for_unbatched_input": ("cell", _lstm_cell,
                                           lambda c: _cell_call(c, lambda b, f: (f,), lambda b, h: (h,),
                                                                lambda b, h: (b, h))),
}

#: Corruptions torch is known to accept or to refuse unclearly; reported, not failed, until fixed.
KNOWN_TORCH_ISSUES = {
    "length_too_long": "pack_padded_sequence accepts a length longer than the sequence and returns a "
                       "PackedSequence whose batch_sizes do not match its data",
    "hx_kind": "nn.GRU/nn.RNN given a tuple hx raise AttributeError ('tuple' object has no attribute 'dim')",
    "cell_unbatched_input_batched_state": "nn.RNNCell given an unbatched input and a 2-D state of hidden_size rows "
                                          "accepts it and returns a 2-D state (pytorch/pytorch#195547)",
    "cell_c_batched_for_unbatched_input": "nn.LSTMCell given an unbatched input, a 1-D h and a 2-D c of hidden_size "
                                          "rows accepts them and returns 2-D states (pytorch/pytorch#195547)",
}

#: Corruptions that crash torch (the process dies) in these modes: not called unless ``strict``, so
#: that every run does not pay a crash and its reduction for a bug already known.
KNOWN_TORCH_CRASHES: dict[str, tuple[tuple[str, ...], str]] = {
    "cell_unbatched_input_batched_state": (("GRU", "LSTM"), "nn.GRUCell/nn.LSTMCell given an unbatched input and a "
                                           "2-D state can crash with SIGSEGV (pytorch/pytorch#175978, #195547)"),
}


def applicable_corruptions(case: Case) -> list[str]:
    """The corruptions that make an invalid call out of ``case``, in a fixed order."""
    return [name for name, (_, applies, _) in CORRUPTIONS.items() if applies(case)]


def check_invalid(case: Case, corruption: str, *, strict: bool = False) -> Outcome:
    """Torch, the decomposition and the reference must all refuse ``corruption`` of ``case``.

    A corruption listed in :data:`KNOWN_TORCH_ISSUES` that torch still mishandles returns an
    outcome with ``skipped`` naming the known issue, unless ``strict``; one listed in
    :data:`KNOWN_TORCH_CRASHES` for the case's mode is not called at all, unless ``strict``.
    """
    __tracebackhide__ = True  # pytest shows the caller's line and the message
    stage, applies, make = CORRUPTIONS[corruption]
    if not applies(case):
        return Outcome(case, {}, {}, f"{corruption} does not apply to this case")
    crashes_in, crash = KNOWN_TORCH_CRASHES.get(corruption, ((), ""))
    if case.config.mode in crashes_in and not strict:
        return Outcome(case, {}, {}, f"known torch issue: {crash} (not called)")
    invalid_call = make(case)
    torch_says = _refusal(invalid_call, lambda module, input, hx: module(input, hx), case)
    if torch_says is not None:
        if corruption in KNOWN_TORCH_ISSUES and not strict:
            return Outcome(case, {}, {}, f"known torch issue: {KNOWN_TORCH_ISSUES[corruption]}")
        raise CheckFailure(Mismatch("result", f"{corruption}: torch {torch_says}"), case, "fused",
                           "invalid-calls", {"corruption": corruption})
    if stage == "call":
        for label, implementation in (("decomposed", decomposed), ("reference", reference)):
            says = _refusal(invalid_call, implementation, case)
            if says is not None:
                raise CheckFailure(Mismatch("result", f"{corruption}: torch refuses it, but {label} {says}"),
                                   case, label, "invalid-calls", {"corruption": corruption})
    return Outcome(case, {}, {})


def _refusal(invalid_call: Callable[..., Any], implementation: Callable[..., Any], case: Case) -> str | None:
    """``None`` when the call is refused clearly, else what happened instead."""
    try:
        with backend(case.inputs), torch.no_grad():
            invalid_call(implementation)
    except CLEAR_ERRORS as error:
        return None if str(error).strip() else f"raised {type(error).__name__} with no message"
    except Exception as error:
        said = str(error).splitlines()[0] if str(error) else "no message"
        return f"raised {type(error).__name__} ({said}), not a clear error"
    return "accepted the call"
