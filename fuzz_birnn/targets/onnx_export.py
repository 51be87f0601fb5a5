"""Exporting a module to ONNX for the ONNX targets, in two forms.

``dynamo``: the default exporter of the installed torch (``torch.onnx.export(..., dynamo=True)``);
``torchscript``: the TorchScript-based exporter (``dynamo=False``), where the installed torch still
has it.

**The deployed form** (:func:`onnx_model`) is what users ship: the module exported as it is, its
weights folded into derived initializers (the ONNX RNN ops take all gates of a direction in one
tensor). ``ONNXProgram.apply_weights`` was seen not to reach those (a 2-layer batch_first GRU kept
the weights it was exported with), so a deployed model serves only the weights it was exported
with: one export per case, 0.2 s (TorchScript) to 4 s (dynamo) each.

**The shared form** (:func:`shared_model`) is the same call, ``torch.lstm``/``torch.gru``/
``torch.rnn_tanh``/``torch.rnn_relu`` as ``nn.RNNBase.forward`` makes it, with the weights as graph
inputs instead of constants: one export serves every case of the configuration (and, for the
TorchScript exporter, of every sequence length and batch size, as dynamic axes; the dynamo exporter
was seen to bake the export's sequence length into a ``Reshape`` even when told it is dynamic, so
its shared form is per shape). Each case feeds its own weights, so no case is ever checked with
another's.

A case runs the deployed form when its weights say so (:func:`runs_deployed`, one case in
:data:`DEPLOYED_EVERY`), else the shared form: chosen by the case itself, so its report's
``repro.py`` and ``replay`` run the form the search ran, and the deployed form's own bugs (its
constant folding, its initializer layout) are still searched for.

Refusals translated to :class:`~fuzz_birnn.Unsupported`: ``torch.onnx.errors.UnsupportedOperatorError``
and ``torch.onnx.errors.OnnxExporterError`` whose message says an operator or dtype is not
supported (the exporters' own explicit refusals). Anything else is a finding.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from collections.abc import Hashable, Iterator
from typing import Any

import torch
from torch.onnx import errors

from fuzz_birnn.core.check import Unsupported
from fuzz_birnn.targets.adapter import ExportCache, arguments, export_key

__all__ = ["DEPLOYED_EVERY", "input_names", "onnx_model", "runs_deployed", "shared_inputs", "shared_model"]

#: One case in this many runs the deployed form (see the module docstring).
DEPLOYED_EVERY = 8

_MODELS = ExportCache()
_SHARED = ExportCache()


def input_names(hx: Any) -> list[str]:
    states = [] if hx is None else ["h0", "c0"] if isinstance(hx, tuple) else ["h0"]
    return ["input", *states]


def onnx_model(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any, *, exporter: str) -> bytes:
    """The serialized ONNX model of ``module(x, hx)`` with this module's weights."""
    key = (exporter, export_key(module, x, hx), weights_digest(module))
    return _MODELS.get(key, lambda: _serialized(_export(module, arguments(x, hx), dynamo=exporter == "dynamo",
                                                        names=input_names(hx))))


def runs_deployed(module: torch.nn.Module) -> bool:
    """Whether this case (known by its weights) runs the deployed form."""
    return int(weights_digest(module)[:8], 16) % DEPLOYED_EVERY == 0


def shared_model(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any, *, exporter: str) -> tuple[bytes, list[str]]:
    """The serialized ONNX model of ``module(x, hx)`` with the initial state and the weights as graph
    inputs, and the names of its inputs in the order of :func:`shared_inputs`: one export per
    configuration (and shapes, for dynamo)."""
    dynamo = exporter == "dynamo"
    key = (exporter, export_key(module, x, hx) if dynamo else _configuration_key(module, x, hx))
    names = [*input_names(_states(module, x, hx)), *module._flat_weights_names]
    return _SHARED.get(key, lambda: (_serialized(_export_shared(module, x, hx, names, dynamo=dynamo)), names))


def shared_inputs(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> list[torch.Tensor]:
    """What :func:`shared_model`'s graph takes for ``module(x, hx)``: the input, the initial state
    (zeros where ``hx`` is ``None``, as ``nn.RNNBase`` makes them), and the parameters."""
    states = _states(module, x, hx)
    return [x, *(states if isinstance(states, tuple) else (states,)),
            *(getattr(module, name).detach() for name in module._flat_weights_names)]


def _states(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> Any:
    """``hx``, or the zeros ``nn.RNNBase`` starts from. Always given to the shared form: a state the
    graph makes itself would be traced with the export's batch size as a constant."""
    if hx is not None:
        return hx
    rows = module.num_layers * (2 if module.bidirectional else 1)
    batch = () if x.dim() == 2 else (x.size(0 if module.batch_first else 1),)
    lstm = isinstance(module, torch.nn.LSTM)
    h0 = x.new_zeros(rows, *batch, module.proj_size if lstm and module.proj_size else module.hidden_size)
    return (h0, x.new_zeros(rows, *batch, module.hidden_size)) if lstm else h0


class _WeightsAsInputs(torch.nn.Module):
    """``module(x, hx)`` as ``nn.RNNBase.forward`` computes it for padded (or unbatched) input,
    with the initial state and the parameters as arguments: the exporters make them graph inputs."""

    def __init__(self, module: torch.nn.RNNBase) -> None:
        super().__init__()
        self.mode = type(module).__name__
        self.nonlinearity = getattr(module, "nonlinearity", "tanh")
        self.flags = (module.bias, module.num_layers, 0.0, False, module.bidirectional, module.batch_first)

    def forward(self, x: torch.Tensor, *rest: Any) -> Any:
        *hx, weights = rest
        unbatched = x.dim() == 2
        batch_dim = 0 if self.flags[-1] else 1  # batch_first
        if unbatched:
            x, hx = x.unsqueeze(batch_dim), [h.unsqueeze(1) for h in hx]
        if self.mode == "LSTM":
            output, h_n, c_n = torch.lstm(x, (hx[0], hx[1]), list(weights), *self.flags)
            results = [output, h_n, c_n]
        else:
            call = torch.gru if self.mode == "GRU" else getattr(torch, f"rnn_{self.nonlinearity}")
            output, h_n = call(x, hx[0], list(weights), *self.flags)
            results = [output, h_n]
        if unbatched:
            results = [results[0].squeeze(batch_dim), *(h.squeeze(1) for h in results[1:])]
        return tuple(results)


def _configuration_key(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> Hashable:
    """:func:`~fuzz_birnn.targets.adapter.export_key` without the sequence length and batch size."""
    states = () if hx is None else tuple((h.dim(), h.dtype) for h in (hx if isinstance(hx, tuple) else (hx,)))
    return (type(module).__name__, module.extra_repr(), getattr(module, "nonlinearity", None),
            x.dim(), x.dtype, str(x.device), states)


def _export_shared(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any, names: list[str], *, dynamo: bool) -> Any:
    x, *rest = shared_inputs(module, x, hx)
    split = len(rest) - len(module._flat_weights_names)
    states, weights = rest[:split], rest[split:]
    args = (x, *states, tuple(weights))
    if dynamo:  # static shapes (see the module docstring)
        return _export(_WeightsAsInputs(module), args, dynamo=True, names=names)
    time_axis, batch_axis = (0, None) if x.dim() == 2 else (1, 0) if module.batch_first else (0, 1)
    outputs = ["output", "h_n", "c_n"][:1 + len(states)]
    axes: dict[str, dict[int, str]] = {"input": {time_axis: "T"}, "output": {time_axis: "T"}}
    if batch_axis is not None:
        for name in ("input", "output"):
            axes[name][batch_axis] = "B"
        axes.update({name: {1: "B"} for name in [*names[1:1 + len(states)], *outputs[1:]]})
    return _export(_WeightsAsInputs(module), args, dynamo=False, names=names, outputs=outputs, axes=axes)


def weights_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _serialized(exported: Any) -> bytes:
    return exported.getvalue() if isinstance(exported, io.BytesIO) else exported.model_proto.SerializeToString()


def _export(model: torch.nn.Module, args: tuple[Any, ...], *, dynamo: bool, names: list[str],
            outputs: list[str] | None = None, axes: dict[str, dict[int, str]] | None = None) -> Any:
    target = io.BytesIO() if not dynamo else None
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), \
                _registry_built_once():
            warnings.simplefilter("ignore")
            # torch types ``f`` as a path; the TorchScript exporter writes to a file object as well
            program = torch.onnx.export(model, args, target,  # type: ignore[arg-type]
                                        dynamo=dynamo, verbose=False, input_names=names, output_names=outputs,
                                        dynamic_axes=axes)
    except errors.UnsupportedOperatorError as refusal:
        raise Unsupported(f"torch.onnx ({'dynamo' if dynamo else 'torchscript'}): {_first(refusal)}") from refusal
    except errors.OnnxExporterError as error:
        if "not supported" in str(error).lower() or "unsupported" in str(error).lower():
            raise Unsupported(f"torch.onnx ({'dynamo' if dynamo else 'torchscript'}): {_first(error)}") from error
        raise
    return program if dynamo else target


_REGISTRIES: dict[Any, Any] = {}


@contextlib.contextmanager
def _registry_built_once() -> Iterator[None]:
    """The dynamo exporter's table of ATen-to-ONNX functions, built once a process instead of on
    every export. ``torch.onnx.export`` rebuilds it each call (``ONNXRegistry.from_torchlib``: the
    source of some 500 onnxscript functions parsed again), half of a small module's export; the
    table depends only on the opset and the installed packages, and an export without a
    ``custom_translation_table`` (ours never have one) only reads it. Exported bytes are the same
    either way (``tests/test_targets.py``). Where the installed torch has no such method, nothing
    changes."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        yield
        return
    registry = getattr(_registration, "ONNXRegistry", None)
    build = getattr(registry, "from_torchlib", None)
    if registry is None or build is None:
        yield
        return

    def built_once(cls: Any, *args: Any, **kwargs: Any) -> Any:
        key = (args, tuple(sorted(kwargs.items())))
        if key not in _REGISTRIES:
            _REGISTRIES[key] = build(*args, **kwargs)
        return _REGISTRIES[key]

    original = vars(registry).get("from_torchlib")  # the classmethod itself, to put back as it was
    registry.from_torchlib = classmethod(built_once)
    try:
        yield
    finally:
        if original is None:
            del registry.from_torchlib
        else:
            registry.from_torchlib = original


def _first(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
