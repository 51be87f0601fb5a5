"""Hypothesis strategies for recurrent-layer test cases.

:func:`cases` draws a whole :class:`fuzz_birnn.Case` (a module configuration and the inputs it is
called with). Every dimension is drawn by default and each can be fixed or narrowed by a keyword
argument, so a candidate that supports only part of the space is tested on that part.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from fuzz_birnn import DTYPES, MODES, Case, Config, Inputs, available_devices

__all__ = ["FORMS", "SCALES", "cases", "invalid_calls"]

#: Input forms, simplest first.
FORMS = ("padded", "unbatched", "packed_sorted", "packed_unsorted")
#: Value scales (multiplying the default weight bound and the input range), simplest first:
#: 0.25 keeps every nonlinearity near linear, 4.0 saturates tanh/sigmoid and lets relu grow.
SCALES = (1.0, 0.25, 4.0)
_DROPOUTS = (0.5, 0.1, 0.9)


def cases(
    *,
    modes: Sequence[str] = MODES,
    bidirectional: bool | None = True,
    min_layers: int = 1,
    max_layers: int = 4,
    max_size: int = 8,
    max_seq_len: int = 8,
    min_batch: int = 1,
    max_batch: int = 8,
    bias: bool | None = None,
    batch_first: bool | None = None,
    proj: bool | None = None,
    forms: Sequence[str] = FORMS,
    initial_state: bool | None = None,
    dropout: bool | None = None,
    dtypes: Sequence[str] = DTYPES,
    devices: Sequence[str] | None = None,
    onednn: bool | None = None,
    contiguous: bool | None = None,
    scales: Sequence[float] = SCALES,
) -> st.SearchStrategy[Case]:
    """A recurrent-layer case: configuration first, then input form and sizes, then values.

    Parameters
    ----------
    modes, forms, dtypes, devices, scales
        The values to draw from, simplest first; ``devices=None`` means every device torch reports
        available (``cpu`` always, ``cuda``/``mps`` where present).
    bidirectional, bias, batch_first, initial_state, onednn, contiguous
        ``None`` draws both values; ``True``/``False`` fixes it. ``bidirectional`` is fixed to
        ``True`` by default, the case this project exists for.
    proj, dropout
        ``None`` draws whether LSTM cases get ``proj_size > 0`` / whether ``dropout > 0`` (eval
        mode, so it must change nothing); ``True`` always, ``False`` never.
    min_layers, max_layers, max_size, max_seq_len, min_batch, max_batch
        Bounds for ``num_layers``, ``input_size``/``hidden_size``, the sequence length and batch
        (an unbatched case ignores the batch bounds).

    Returns
    -------
    SearchStrategy[Case]
        Shrinks towards one layer, RNN tanh, no bias, time-major, a padded tensor, batch 1,
        sequence length 1, sizes 1, no initial state, float64, cpu, oneDNN on, contiguous,
        scale 1, seed 0.

    Raises
    ------
    InvalidArgument
        On first use (once, not on every draw), for an argument out of range or a combination
        that leaves nothing to draw.

    Examples
    --------
    >>> from hypothesis import given
    >>> @given(cases(modes=["LSTM"], forms=["padded"], dtypes=["float32"]))
    ... def test_my_lstm(case): ...
    """

    def define() -> st.SearchStrategy[Case]:
        chosen_devices = tuple(available_devices()) if devices is None else tuple(devices)
        _validate(modes=modes, forms=forms, dtypes=dtypes, devices=chosen_devices, scales=scales,
                  min_layers=min_layers, max_layers=max_layers, max_size=max_size,
                  max_seq_len=max_seq_len, min_batch=min_batch, max_batch=max_batch, proj=proj,
                  flags={"bidirectional": bidirectional, "bias": bias, "batch_first": batch_first,
                         "proj": proj, "initial_state": initial_state, "dropout": dropout,
                         "onednn": onednn, "contiguous": contiguous})
        return _cases(modes=tuple(modes), bidirectional=bidirectional, min_layers=min_layers,
                      max_layers=max_layers, max_size=max_size, max_seq_len=max_seq_len, min_batch=min_batch,
                      max_batch=max_batch, bias=bias, batch_first=batch_first, proj=proj, forms=tuple(forms),
                      initial_state=initial_state, dropout=dropout, dtypes=tuple(dtypes),
                      devices=chosen_devices, onednn=onednn, contiguous=contiguous, scales=tuple(scales))

    return st.deferred(define)


@st.composite
def _cases(draw: st.DrawFn, *, modes: tuple[str, ...], bidirectional: bool | None, min_layers: int,
           max_layers: int, max_size: int, max_seq_len: int, min_batch: int, max_batch: int, bias: bool | None,
           batch_first: bool | None, proj: bool | None, forms: tuple[str, ...], initial_state: bool | None,
           dropout: bool | None, dtypes: tuple[str, ...], devices: tuple[str, ...], onednn: bool | None,
           contiguous: bool | None, scales: tuple[float, ...]) -> Case:
    """:func:`cases` once its arguments are validated."""
    mode = draw(_sampled_from(modes))
    with_proj = mode == "LSTM" and max_size >= 2 and _flag(draw, proj)
    input_size = draw(_integers(1, max_size))
    hidden_size = draw(_integers(2 if with_proj else 1, max_size))
    config = Config(
        mode=mode,
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=draw(_integers(min_layers, max_layers)),
        bias=_flag(draw, bias),
        batch_first=_flag(draw, batch_first),
        bidirectional=_flag(draw, bidirectional, simplest=True),
        proj_size=draw(_integers(1, hidden_size - 1)) if with_proj else 0,
        dropout=draw(_sampled_from(_DROPOUTS)) if _flag(draw, dropout) else 0.0,
    )

    form = draw(_sampled_from(forms))
    seq_len = draw(_integers(1, max_seq_len))
    # Drawn even when unbatched, so that "padded" stays the simplest form for the shrinker.
    drawn_batch = draw(_integers(min_batch, max_batch))
    batch_size = None if form == "unbatched" else drawn_batch
    lengths = None
    if form.startswith("packed"):
        drawn = draw(_lengths(seq_len, batch_size))
        lengths = tuple(sorted(drawn, reverse=True) if form == "packed_sorted" else drawn)

    device = draw(_sampled_from(devices))
    usable_dtypes = tuple(d for d in dtypes if not (device == "mps" and d == "float64"))
    if not usable_dtypes:
        raise InvalidArgument(f"dtypes={list(dtypes)} leaves nothing to draw on device {device!r} (no float64 on MPS)")
    inputs = Inputs(
        seq_len=seq_len,
        batch_size=batch_size,
        packed=lengths is not None,
        lengths=lengths,
        enforce_sorted=form != "packed_unsorted",
        unbatched=form == "unbatched",
        initial_state=_flag(draw, initial_state),
        dtype=draw(_sampled_from(usable_dtypes)),
        device=device,
        onednn=_flag(draw, onednn, simplest=True) if device == "cpu" else True,
        contiguous=_flag(draw, contiguous, simplest=True),
        seed=draw(_integers(0, 2**32 - 1)),
        scale=draw(_sampled_from(scales)),
    )
    return Case(config, inputs)


def _flag(draw: st.DrawFn, fixed: bool | None, *, simplest: bool = False) -> bool:
    """``fixed`` if given, else a drawn bool that shrinks towards ``simplest``."""
    if fixed is not None:
        return fixed
    return draw(_sampled_from((simplest, not simplest)))


# Strategies are made once and reused: a strategy object built inside every draw is validated
# again each time, which cost more than the drawing.
_sampled_from = functools.lru_cache(maxsize=1024)(st.sampled_from)
_integers = functools.lru_cache(maxsize=1024)(st.integers)


@functools.lru_cache(maxsize=1024)
def _lengths(seq_len: int, batch_size: int) -> st.SearchStrategy[list[int]]:
    return st.lists(_integers(1, seq_len), min_size=batch_size, max_size=batch_size)


def _validate(*, modes: Sequence[str], forms: Sequence[str], dtypes: Sequence[str],
              devices: Sequence[str], scales: Sequence[float], min_layers: int, max_layers: int,
              max_size: int, max_seq_len: int, min_batch: int, max_batch: int, proj: bool | None,
              flags: dict[str, bool | None]) -> None:
    for name, values, allowed in (("modes", modes, MODES), ("forms", forms, FORMS), ("dtypes", dtypes, DTYPES)):
        if isinstance(values, str) or not values or any(v not in allowed for v in values):
            raise InvalidArgument(f"{name}={values!r} must be a non-empty sequence drawn from {list(allowed)}")
    known_devices = ("cpu", "cuda", "mps")
    if isinstance(devices, str) or not devices or any(d.split(":")[0] not in known_devices for d in devices):
        raise InvalidArgument(f"devices={devices!r} must be a non-empty sequence of cpu, cuda[:N], mps")
    if isinstance(scales, str) or not scales or any(
            isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 100 for s in scales):
        raise InvalidArgument(f"scales={scales!r} must be a non-empty sequence of numbers in (0, 100]")
    for name, value, lowest in (("min_layers", min_layers, 1), ("max_layers", max_layers, 1),
                                ("max_size", max_size, 1), ("max_seq_len", max_seq_len, 1),
                                ("min_batch", min_batch, 1), ("max_batch", max_batch, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise InvalidArgument(f"{name}={value!r} must be an integer >= {lowest}")
    if min_layers > max_layers:
        raise InvalidArgument(f"min_layers={min_layers} is larger than max_layers={max_layers}")
    if min_batch > max_batch:
        raise InvalidArgument(f"min_batch={min_batch} is larger than max_batch={max_batch}")
    for name, value in flags.items():
        if value is not None and not isinstance(value, bool):
            raise InvalidArgument(f"{name}={value!r} must be True, False or None (draw both)")
    if proj is True and max_size < 2:
        raise InvalidArgument(f"proj=True needs hidden_size >= 2, but max_size={max_size}")
    if proj is True and "LSTM" not in modes:
        raise InvalidArgument(f"proj=True applies to LSTM only, but modes={list(modes)}")


def invalid_calls(**case_kwargs: Any) -> st.SearchStrategy[tuple[Case, str]]:
    """A valid case and the name of a corruption that makes an invalid call of it
    (see :mod:`fuzz_birnn.invalid`); ``case_kwargs`` go to :func:`cases`. Shrinks towards the
    simplest case and the first corruption that applies to it."""
    return _invalid_calls(cases(**case_kwargs))


@st.composite
def _invalid_calls(draw: st.DrawFn, valid_cases: st.SearchStrategy[Case]) -> tuple[Case, str]:
    from fuzz_birnn.invalid import applicable_corruptions

    case = draw(valid_cases)
    corruptions = applicable_corruptions(case)
    if not corruptions:  # the simplest cases have no state to corrupt: give them one
        case = Case(case.config, dataclasses.replace(case.inputs, initial_state=True))
        corruptions = applicable_corruptions(case)
    return case, draw(_sampled_from(tuple(corruptions)))
