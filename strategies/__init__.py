"""Hypothesis strategies for recurrent-layer test cases.

:func:`cases` draws a whole :class:`fuzz_birnn.Case` (a module configuration and the inputs it is
called with). Every dimension is drawn by default and each can be fixed or narrowed by a keyword
argument, so a candidate that supports only part of the space is tested on that part.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hypothesis import reject
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from fuzz_birnn import profiles
from fuzz_birnn.core.case import DTYPES, FORMS, MODES, SCALES, Case, Config, Inputs
from fuzz_birnn.core.devices import DEVICE_TYPES, available_devices
from fuzz_birnn.properties.invalid import applicable_corruptions

__all__ = ["FORMS", "SCALES", "Choices", "cases", "invalid_calls"]

profiles.register()  # settings.load_profile("fuzz-birnn-ci") works wherever the strategies are used

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _defines_strategy(function: F) -> F:
    """A strategy function whose strategies are built on first use (so arguments are validated
    when drawing, not when the test module is imported) and show how they were made:
    ``cases(modes=['LSTM'])``, as Hypothesis' own strategies do (its own decorator for them)."""
    try:
        from hypothesis.strategies._internal.utils import defines_strategy
    except ImportError:  # a Hypothesis that moved it: the same laziness, without the repr
        @functools.wraps(function)
        def deferred(*args: Any, **kwargs: Any) -> Any:
            return st.deferred(lambda: function(*args, **kwargs))
        return deferred  # type: ignore[return-value]
    return defines_strategy()(function)
#: A choice of values, simplest first, or a strategy that draws one.
Choices = Sequence[T] | st.SearchStrategy[T]

_DROPOUTS = (0.5, 0.1, 0.9)


@_defines_strategy
def cases(
    *,
    modes: Choices[str] = MODES,
    bidirectional: bool | None = True,
    min_layers: int = 1,
    max_layers: int = 4,
    min_input_size: int = 1,
    max_input_size: int = 8,
    min_hidden_size: int = 1,
    max_hidden_size: int = 8,
    min_seq_len: int = 1,
    max_seq_len: int = 8,
    min_batch: int = 1,
    max_batch: int = 8,
    bias: bool | None = None,
    batch_first: bool | None = None,
    proj: bool | None = None,
    forms: Choices[str] = FORMS,
    initial_state: bool | None = None,
    dropout: bool | None = None,
    dtypes: Choices[str] = DTYPES,
    devices: Choices[str] | None = None,
    onednn: bool | None = None,
    contiguous: bool | None = None,
    scales: Choices[float] = SCALES,
) -> st.SearchStrategy[Case]:
    """A recurrent-layer case: configuration first, then input form and sizes, then values.

    Parameters
    ----------
    modes, forms, dtypes, devices, scales
        The values to draw from, simplest first, or a strategy that draws them (to compose: say,
        ``dtypes=st.sampled_from(["float32", "bfloat16"])``, or a dtype drawn from ``st.data()``
        elsewhere); ``devices=None`` means every device torch reports available (``cpu`` always,
        ``cuda``/``mps`` where present).
    bidirectional, bias, batch_first, initial_state, onednn, contiguous
        ``None`` draws both values; ``True``/``False`` fixes it. ``bidirectional`` is fixed to
        ``True`` by default, the case this project exists for.
    proj, dropout
        ``None`` draws whether LSTM cases get ``proj_size > 0`` / whether ``dropout > 0`` (eval
        mode, so it must change nothing); ``True`` always, ``False`` never.
    min_layers, max_layers, min_input_size, max_input_size, min_hidden_size, max_hidden_size, \
min_seq_len, max_seq_len, min_batch, max_batch
        Inclusive bounds for ``num_layers``, ``input_size``, ``hidden_size``, the sequence length
        and the batch (an unbatched case ignores the batch bounds; a packed sequence's lengths
        run from 1 to the sequence length).

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

    chosen_devices = available_devices() if devices is None else devices
    bounds = {"layers": (min_layers, max_layers), "input_size": (min_input_size, max_input_size),
              "hidden_size": (min_hidden_size, max_hidden_size), "seq_len": (min_seq_len, max_seq_len),
              "batch": (min_batch, max_batch)}
    _validate(modes=modes, forms=forms, dtypes=dtypes, devices=chosen_devices, scales=scales, bounds=bounds,
              proj=proj, flags={"bidirectional": bidirectional, "bias": bias, "batch_first": batch_first,
                                "proj": proj, "initial_state": initial_state, "dropout": dropout,
                                "onednn": onednn, "contiguous": contiguous})
    return _cases(modes=_strategy_of(modes, MODES, "modes"), bidirectional=bidirectional, bounds=bounds,
                  bias=bias, batch_first=batch_first, proj=proj, forms=_strategy_of(forms, FORMS, "forms"),
                  initial_state=initial_state, dropout=dropout, dtypes=_strategy_of(dtypes, DTYPES, "dtypes"),
                  devices=_strategy_of(chosen_devices, None, "devices"), onednn=onednn, contiguous=contiguous,
                  scales=_strategy_of(scales, None, "scales"))


@st.composite
def _cases(draw: st.DrawFn, *, modes: st.SearchStrategy[str], bidirectional: bool | None,
           bounds: dict[str, tuple[int, int]], bias: bool | None, batch_first: bool | None, proj: bool | None,
           forms: st.SearchStrategy[str], initial_state: bool | None, dropout: bool | None,
           dtypes: st.SearchStrategy[str], devices: st.SearchStrategy[str], onednn: bool | None,
           contiguous: bool | None, scales: st.SearchStrategy[float]) -> Case:
    """:func:`cases` once its arguments are validated (choices as strategies)."""
    mode = draw(modes)
    min_hidden, max_hidden = bounds["hidden_size"]
    with_proj = mode == "LSTM" and max_hidden >= 2 and _flag(draw, proj)
    input_size = draw(_integers(*bounds["input_size"]))
    hidden_size = draw(_integers(max(min_hidden, 2) if with_proj else min_hidden, max_hidden))
    config = Config(
        mode=mode,
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=draw(_integers(*bounds["layers"])),
        bias=_flag(draw, bias),
        batch_first=_flag(draw, batch_first),
        bidirectional=_flag(draw, bidirectional, simplest=True),
        proj_size=draw(_integers(1, hidden_size - 1)) if with_proj else 0,
        dropout=draw(_sampled_from(_DROPOUTS)) if _flag(draw, dropout) else 0.0,
    )

    form = draw(forms)
    seq_len = draw(_integers(*bounds["seq_len"]))
    # Drawn even when unbatched, so that "padded" stays the simplest form for the shrinker.
    drawn_batch = draw(_integers(*bounds["batch"]))
    batch_size = None if form == "unbatched" else drawn_batch
    lengths = None
    if form.startswith("packed"):
        assert batch_size is not None
        drawn = draw(_lengths(seq_len, batch_size))
        lengths = tuple(sorted(drawn, reverse=True) if form == "packed_sorted" else drawn)

    device = draw(devices)
    given_state = _flag(draw, initial_state)  # drawn in this order since the first release: seeds repeat
    dtype = draw(dtypes)
    if device == "mps" and dtype == "float64":
        reject()  # MPS has no float64
    inputs = Inputs(
        seq_len=seq_len,
        batch_size=batch_size,
        packed=lengths is not None,
        lengths=lengths,
        enforce_sorted=form != "packed_unsorted",
        unbatched=form == "unbatched",
        initial_state=given_state,
        dtype=dtype,
        device=device,
        onednn=_flag(draw, onednn, simplest=True) if device == "cpu" else True,
        contiguous=_flag(draw, contiguous, simplest=True),
        seed=draw(_integers(0, 2**32 - 1)),
        scale=draw(scales),
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


def _strategy_of(choices: Choices[Any], allowed: Sequence[Any] | None, name: str) -> st.SearchStrategy[Any]:
    """The choices as a strategy that shrinks towards the first; a strategy given is checked as it draws."""
    if not isinstance(choices, st.SearchStrategy):
        return _sampled_from(tuple(choices))
    if allowed is None:
        return choices

    def known(value: Any) -> Any:
        if value not in allowed:
            raise InvalidArgument(f"{name} drew {value!r}, which is not one of {list(allowed)}")
        return value
    return choices.map(known)


def _validate(*, modes: Choices[str], forms: Choices[str], dtypes: Choices[str], devices: Choices[str],
              scales: Choices[float], bounds: dict[str, tuple[int, int]], proj: bool | None,
              flags: dict[str, bool | None]) -> None:
    for name, values, allowed in (("modes", modes, MODES), ("forms", forms, FORMS), ("dtypes", dtypes, DTYPES)):
        if isinstance(values, st.SearchStrategy):
            continue
        if isinstance(values, str) or not values or any(v not in allowed for v in values):
            raise InvalidArgument(f"{name}={values!r} must be a non-empty sequence drawn from {list(allowed)}, "
                                  "or a strategy")
    if not isinstance(devices, st.SearchStrategy) and (
            isinstance(devices, str) or not devices or any(d.split(":")[0] not in DEVICE_TYPES for d in devices)):
        raise InvalidArgument(f"devices={devices!r} must be a non-empty sequence of cpu, cuda[:N], mps, or a strategy")
    if not isinstance(scales, st.SearchStrategy) and (isinstance(scales, str) or not scales or any(
            isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= 100 for s in scales)):
        raise InvalidArgument(f"scales={scales!r} must be a non-empty sequence of numbers in (0, 100], or a strategy")
    for what, (low, high) in bounds.items():
        lowest, highest = ("min_layers", "max_layers") if what == "layers" else (f"min_{what}", f"max_{what}")
        for name, value in ((lowest, low), (highest, high)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(f"{name}={value!r} must be an integer >= 1")
        if low > high:
            raise InvalidArgument(f"{lowest}={low} is larger than {highest}={high}")
    for name, flag in flags.items():
        if flag is not None and not isinstance(flag, bool):
            raise InvalidArgument(f"{name}={flag!r} must be True, False or None (draw both)")
    if (not isinstance(devices, st.SearchStrategy) and not isinstance(dtypes, st.SearchStrategy)
            and set(devices) == {"mps"} and set(dtypes) == {"float64"}):
        raise InvalidArgument(f"dtypes={list(dtypes)} leaves nothing to draw on device 'mps' (no float64 on MPS)")
    if proj is True and bounds["hidden_size"][1] < 2:
        raise InvalidArgument(f"proj=True needs hidden_size >= 2, but max_hidden_size={bounds['hidden_size'][1]}")
    if proj is True and not isinstance(modes, st.SearchStrategy) and "LSTM" not in modes:
        raise InvalidArgument(f"proj=True applies to LSTM only, but modes={list(modes)}")


@_defines_strategy
def invalid_calls(**case_kwargs: Any) -> st.SearchStrategy[tuple[Case, str]]:
    """A valid case and the name of a corruption that makes an invalid call of it
    (see :mod:`fuzz_birnn.properties.invalid`); ``case_kwargs`` go to :func:`cases`. Shrinks towards the
    simplest case and the first corruption that applies to it."""
    return _invalid_calls(cases(**case_kwargs))


@st.composite
def _invalid_calls(draw: st.DrawFn, valid_cases: st.SearchStrategy[Case]) -> tuple[Case, str]:

    case = draw(valid_cases)
    corruptions = applicable_corruptions(case)
    if not corruptions:  # the simplest cases have no state to corrupt: give them one
        case = Case(case.config, dataclasses.replace(case.inputs, initial_state=True))
        corruptions = applicable_corruptions(case)
    return case, draw(_sampled_from(tuple(corruptions)))
