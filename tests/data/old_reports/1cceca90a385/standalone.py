"""The torch-only core of checking one call: what the library and every report's ``repro.py`` share.

Needs nothing but the standard library and torch. The library imports this file; the report
writer copies the same file beside ``repro.py`` (with :mod:`~fuzz_birnn.repro_support`, which reads
the report safely), so a report replays its case with the library's own code and the two cannot
drift apart:

* **Building**: a module's constructor arguments from a case's ``config`` (:func:`module_for`),
  tensors placed on a device, contiguous or as a stride-2 view (:func:`placed`), and the CPU
  backend switch (:func:`cpu_backend`).
* **Reading a result**: its structure against torch's own result (:func:`structure_problem`:
  types, shapes, dtypes, devices, a ``PackedSequence``'s indices), then its values per layer and
  direction (:func:`per_direction`), compared with NaN counted as infinitely wrong
  (:func:`abs_error`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

__all__ = ["abs_error", "constructor_kwargs", "cpu_backend", "max_abs_difference", "module_for", "per_direction",
           "placed", "structure_problem"]

_MODULE_CLASSES: dict[str, type[nn.RNNBase]] = {"RNN_TANH": nn.RNN, "RNN_RELU": nn.RNN, "GRU": nn.GRU,
                                                "LSTM": nn.LSTM}


# -- building ------------------------------------------------------------------------------------


def constructor_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """``nn.RNN``/``nn.GRU``/``nn.LSTM`` keyword arguments from a case's ``config`` fields."""
    kwargs: dict[str, Any] = {
        "input_size": config["input_size"], "hidden_size": config["hidden_size"],
        "num_layers": config["num_layers"], "bias": config["bias"], "batch_first": config["batch_first"],
        "bidirectional": config["bidirectional"], "dropout": float(config["dropout"]),
    }
    if config["mode"] == "LSTM":
        kwargs["proj_size"] = config["proj_size"]
    if config["mode"].startswith("RNN"):
        kwargs["nonlinearity"] = config["mode"][4:].lower()
    return kwargs


def module_for(config: Mapping[str, Any], dtype: torch.dtype) -> nn.RNNBase:
    """A freshly initialised module of ``config`` in ``dtype`` on the CPU."""
    return _MODULE_CLASSES[config["mode"]](**constructor_kwargs(config), dtype=dtype)


def placed(tensor: torch.Tensor, device: torch.device | str, contiguous: bool) -> torch.Tensor:
    """``tensor`` on ``device``; if not ``contiguous``, the same values as a view with stride 2
    in the last dimension (which torch still calls contiguous when that dimension has size 1)."""
    tensor = tensor.to(device)
    if contiguous:
        return tensor.contiguous()
    doubled = torch.zeros(*tensor.shape[:-1], 2 * tensor.shape[-1], dtype=tensor.dtype, device=tensor.device)
    view = doubled[..., ::2]
    view.copy_(tensor)
    return view


@contextlib.contextmanager
def cpu_backend(device: str, onednn: bool) -> Iterator[None]:
    """Run the enclosed code with oneDNN on or off (on the CPU; other devices keep it as it is),
    then restore it."""
    previous = torch.backends.mkldnn.enabled
    # torch declares the flag as its descriptor type (ContextProp); assigning a bool is how it is set
    torch.backends.mkldnn.enabled = onednn if device == "cpu" else previous  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


# -- reading a result ----------------------------------------------------------------------------


def structure_problem(actual: object, expected: Any) -> tuple[str, str] | None:
    """``(tensor, message)`` for the first way ``actual`` differs from torch's ``expected``
    ``(output, hidden)`` in types, shapes, dtypes or devices (``tensor`` is ``output``, ``h_n``,
    ``c_n`` or ``result``), or ``None`` when the structure is right."""
    if not isinstance(actual, (tuple, list)) or len(actual) != 2:
        return "result", f"result is {_kind(actual)}, but should be a pair (output, hidden)"
    output, hidden = actual
    want_output, want_hidden = expected
    if isinstance(want_output, PackedSequence) != isinstance(output, PackedSequence):
        return "output", f"output is {_kind(output)}, but should be {_kind(want_output)}"
    if isinstance(want_output, PackedSequence):
        for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            got, want = getattr(output, field), getattr(want_output, field)
            if (got is None) != (want is None) or (want is not None and not torch.equal(got.cpu(), want.cpu())):
                return "output", f"output.{field}={_short(got)}, but should be {_short(want)}"
        problem = _tensor_problem("output.data", output.data, want_output.data)
    else:
        problem = _tensor_problem("output", output, want_output)
    if problem:
        return "output", problem
    if isinstance(want_hidden, tuple):
        if not isinstance(hidden, (tuple, list)) or len(hidden) != 2:
            return "result", f"hidden is {_kind(hidden)}, but should be a pair (h_n, c_n)"
        pairs = list(zip(("h_n", "c_n"), hidden, want_hidden, strict=True))
    else:
        if not isinstance(hidden, torch.Tensor):
            return "h_n", f"hidden is {_kind(hidden)}, but should be a tensor h_n"
        pairs = [("h_n", hidden, want_hidden)]
    for name, got, want in pairs:
        problem = _tensor_problem(name, got, want)
        if problem:
            return name, problem
    return None


def per_direction(result: Any, *, num_layers: int, bidirectional: bool, batch_first: bool,
                  unbatched: bool) -> dict[str, torch.Tensor]:
    """``output`` as ``(T, B, directions, F)`` and ``h_n``/``c_n`` as ``(layers, directions, B, F)``,
    batch in the caller's order, from ``(output, hidden)`` of the right structure (see
    :func:`structure_problem`). Views of the result: still differentiable, on its device and dtype."""
    output, hidden = result
    if isinstance(output, PackedSequence):
        output, _ = pad_packed_sequence(output)
    elif unbatched:
        output = output.unsqueeze(1)
    elif batch_first:
        output = output.transpose(0, 1)
    directions = 2 if bidirectional else 1
    tensors = {"output": output.unflatten(-1, (directions, -1))}
    states = hidden if isinstance(hidden, tuple) else (hidden,)
    for name, state in zip(("h_n", "c_n"), states, strict=False):
        if unbatched:
            state = state.unsqueeze(1)
        tensors[name] = state.unflatten(0, (num_layers, directions))
    return tensors


def abs_error(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """``|actual - expected|`` element by element, with NaN counted as infinitely wrong."""
    return (actual - expected).abs().nan_to_num(nan=float("inf"))


def max_abs_difference(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest :func:`abs_error` (0 when empty)."""
    return float(abs_error(actual, expected).max()) if actual.numel() else 0.0


def _tensor_problem(name: str, got: object, want: torch.Tensor) -> str | None:
    if not isinstance(got, torch.Tensor):
        return f"{name} is {_kind(got)}, but should be a tensor"
    for field in ("shape", "dtype", "device"):
        have, should = getattr(got, field), getattr(want, field)
        if have != should:
            return f"{name}.{field}={_short(have)}, but should be {_short(should)}"
    return None


def _kind(value: object) -> str:
    if isinstance(value, PackedSequence):
        return "a PackedSequence"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"a {type(value).__name__}"


def _short(value: object) -> str:
    if isinstance(value, torch.Size):
        return str(tuple(value))
    if isinstance(value, torch.Tensor):
        return str(value.tolist())
    return str(value)
