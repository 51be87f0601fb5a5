"""One test case: a recurrent-layer configuration plus the exact inputs it is called with.

A :class:`Case` is plain data (JSON-compatible through :meth:`Case.to_dict`), and
:meth:`Case.build` turns it into a module and input tensors deterministically: every weight
and every input value comes from ``torch.Generator().manual_seed(inputs.seed)``, drawn on the
CPU in float64 and only then cast to the case's dtype and moved to its device, so a replay on
another machine (or another torch version) builds bit-identical tensors, and the global RNG is
never advanced.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from fuzz_birnn.core.devices import DEVICE_TYPES
from fuzz_birnn.portable.calls import constructor_kwargs, cpu_backend, module_for, placed
from fuzz_birnn.portable.report_files import check_limits

__all__ = [
    "DTYPES",
    "FORMS",
    "MODES",
    "SCALES",
    "Built",
    "Case",
    "Config",
    "Inputs",
    "backend",
]

#: Recurrent modes, simplest first (strategies shrink towards the start).
MODES = ("RNN_TANH", "RNN_RELU", "GRU", "LSTM")
#: Floating dtypes, simplest (most exact) first.
DTYPES = ("float64", "float32", "bfloat16", "float16")
#: Input forms, simplest first.
FORMS = ("padded", "unbatched", "packed_sorted", "packed_unsorted")
#: Value scales (multiplying the default weight bound and the input range), simplest first:
#: 0.25 keeps every nonlinearity near linear, 4.0 saturates tanh/sigmoid and lets relu grow.
SCALES = (1.0, 0.25, 4.0)


@dataclass(frozen=True)
class Config:
    """Constructor arguments of an ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM``."""

    mode: str = "RNN_TANH"
    input_size: int = 1
    hidden_size: int = 1
    num_layers: int = 1
    bias: bool = False
    batch_first: bool = False
    bidirectional: bool = True
    proj_size: int = 0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        _require(self.mode in MODES, f"mode={self.mode!r} is not one of {', '.join(MODES)}")
        for name in ("input_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            _require(_is_int(value) and value >= 1, f"{name}={value!r} must be an integer >= 1")
        _require(_is_int(self.proj_size) and self.proj_size >= 0,
                 f"proj_size={self.proj_size!r} must be an integer >= 0")
        _require(self.proj_size == 0 or self.mode == "LSTM",
                 f"proj_size={self.proj_size} is only valid for LSTM, not {self.mode}")
        _require(self.proj_size < self.hidden_size,
                 f"proj_size={self.proj_size} must be smaller than hidden_size={self.hidden_size}")
        _require(isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0,
                 f"dropout={self.dropout!r} must be a number in [0, 1)")
        for name in ("bias", "batch_first", "bidirectional"):
            _require(isinstance(getattr(self, name), bool), f"{name}={getattr(self, name)!r} must be a bool")

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features per direction in ``output`` and ``h_n``: ``proj_size`` if set, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    def describe(self) -> str:
        """``GRU(input_size=2, hidden_size=3, num_layers=2, bidirectional=True)``, non-defaults only."""
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(self.mode, self.mode)
        parts = [f"input_size={self.input_size}", f"hidden_size={self.hidden_size}",
                 f"num_layers={self.num_layers}"]
        if self.mode == "RNN_RELU":
            parts.append("nonlinearity='relu'")
        parts.append(f"bias={self.bias}")
        if self.batch_first:
            parts.append("batch_first=True")
        parts.append(f"bidirectional={self.bidirectional}")
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        return f"{name}({', '.join(parts)})"

    def constructor_kwargs(self) -> dict[str, Any]:
        return constructor_kwargs(dataclasses.asdict(self))


@dataclass(frozen=True)
class Inputs:
    """What the module is called with, and where and how it runs.

    ``lengths`` are per-sequence lengths in the caller's batch order (only when ``packed``);
    ``scale`` multiplies the default weight bound ``1/sqrt(hidden_size)`` and the input range,
    so that large scales saturate tanh/sigmoid and let relu grow.
    """

    seq_len: int = 1
    batch_size: int | None = 1
    packed: bool = False
    lengths: tuple[int, ...] | None = None
    enforce_sorted: bool = True
    unbatched: bool = False
    initial_state: bool = False
    dtype: str = "float64"
    device: str = "cpu"
    onednn: bool = True
    contiguous: bool = True
    seed: int = 0
    scale: float = 1.0

    def __post_init__(self) -> None:
        _require(_is_int(self.seq_len) and self.seq_len >= 1, f"seq_len={self.seq_len!r} must be an integer >= 1")
        _require(self.dtype in DTYPES, f"dtype={self.dtype!r} is not one of {', '.join(DTYPES)}")
        _require(isinstance(self.device, str) and self.device.split(":")[0] in DEVICE_TYPES,
                 f"device={self.device!r} must be cpu, cuda[:N] or mps")
        _require(_is_int(self.seed) and 0 <= self.seed < 2**63, f"seed={self.seed!r} must be an integer in [0, 2**63)")
        _require(isinstance(self.scale, (int, float)) and not isinstance(self.scale, bool)
                 and 0 < self.scale <= 100 and math.isfinite(self.scale),
                 f"scale={self.scale!r} must be a number in (0, 100]")
        for name in ("packed", "enforce_sorted", "unbatched", "initial_state", "onednn", "contiguous"):
            _require(isinstance(getattr(self, name), bool), f"{name}={getattr(self, name)!r} must be a bool")
        if self.unbatched:
            _require(self.batch_size is None, "an unbatched case has batch_size=None")
            _require(not self.packed, "an unbatched case cannot be packed")
        else:
            _require(_is_int(self.batch_size) and self.batch_size >= 1,
                     f"batch_size={self.batch_size!r} must be an integer >= 1 (or null when unbatched)")
        if self.packed:
            lengths = self.lengths
            _require(isinstance(lengths, tuple) and len(lengths) == self.batch_size,
                     f"lengths={lengths!r} must list one length per sequence (batch_size={self.batch_size})")
            assert lengths is not None
            _require(all(_is_int(n) and 1 <= n <= self.seq_len for n in lengths),
                     f"lengths={list(lengths)} must each be in 1..seq_len={self.seq_len}")
            _require(not self.enforce_sorted or list(lengths) == sorted(lengths, reverse=True),
                     f"lengths={list(lengths)} must be sorted longest first when enforce_sorted=True")
        else:
            _require(self.lengths is None, "lengths are only given for packed input")

    @property
    def form(self) -> str:
        """``padded``, ``unbatched``, ``packed_sorted`` or ``packed_unsorted``."""
        if self.unbatched:
            return "unbatched"
        if self.packed:
            return "packed_sorted" if self.enforce_sorted else "packed_unsorted"
        return "padded"

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


@dataclass(frozen=True)
class Built:
    """A case made concrete: call ``module(input, hx)``."""

    module: nn.RNNBase
    input: torch.Tensor | PackedSequence
    hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


@dataclass(frozen=True)
class Case:
    """A configuration and its inputs; build it with :meth:`build`, store it with :meth:`to_dict`."""

    config: Config = dataclasses.field(default_factory=Config)
    inputs: Inputs = dataclasses.field(default_factory=Inputs)

    def describe(self) -> str:
        """One line: the module, the input form and sizes, dtype, device and backend."""
        i = self.inputs
        shape = f"T={i.seq_len}" + ("" if i.unbatched else f", B={i.batch_size}")
        if i.packed:
            shape += f", lengths={list(i.lengths or ())}"
        extras = [i.dtype, i.device]
        if i.device == "cpu" and not i.onednn:
            extras.append("oneDNN off")
        if i.initial_state:
            extras.append("given h0" + ("/c0" if self.config.mode == "LSTM" else ""))
        if not i.contiguous:
            extras.append("non-contiguous")
        if i.scale != 1.0:
            extras.append(f"scale={i.scale}")
        return f"{self.config.describe()} on {i.form} input ({shape}), {', '.join(extras)}"

    def with_values(self, number: int) -> Case:
        """This configuration and these shapes with the ``number``-th other draw of values (weights,
        input, initial state: everything the seed decides); ``with_values(0)`` is this case."""
        if number == 0:
            return self
        seed = (self.inputs.seed * 1_000_003 + number) % 2**63
        return dataclasses.replace(self, inputs=dataclasses.replace(self.inputs, seed=seed))

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        inputs = dataclasses.asdict(self.inputs)
        if inputs["lengths"] is not None:
            inputs["lengths"] = list(inputs["lengths"])
        return {"config": dataclasses.asdict(self.config), "inputs": inputs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, allow_large: bool = False) -> Case:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming the first bad field.

        A case beyond :data:`fuzz_birnn.portable.report_files.LIMITS` (sizes, steps, batch, layers, and
        what it would allocate and compute) is refused before anything is allocated, unless
        ``allow_large``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a case must be a JSON object with 'config' and 'inputs', not {type(data).__name__}")
        parts: dict[str, Any] = {}
        for key, kind in (("config", Config), ("inputs", Inputs)):
            section = data.get(key)
            if not isinstance(section, Mapping):
                raise ValueError(f"case[{key!r}] is missing or not an object")
            known = {f.name for f in dataclasses.fields(kind)}
            unknown = sorted(set(section) - known)
            if unknown:
                raise ValueError(f"case[{key!r}] has unknown field(s) {', '.join(unknown)}")
            values = dict(section)
            if key == "inputs" and isinstance(values.get("lengths"), list):
                values["lengths"] = tuple(values["lengths"])
            parts[key] = kind(**values)
        case = cls(parts["config"], parts["inputs"])
        if not allow_large:
            check_limits(dataclasses.asdict(case.config), dataclasses.asdict(case.inputs))
        return case

    # -- building ------------------------------------------------------------------------

    def build(self) -> Built:
        """Build the module (eval mode) and the exact ``input`` and ``hx`` tensors."""
        c, i = self.config, self.inputs
        generator = torch.Generator().manual_seed(i.seed)
        dtype, device = i.torch_dtype, torch.device(i.device)

        def uniform(*shape: int, bound: float) -> torch.Tensor:
            values = torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1
            return (values * bound).to(dtype)

        module = copy.deepcopy(_module_template(c, dtype))
        bound = i.scale / math.sqrt(c.hidden_size)
        params = [getattr(module, name) for name in module._flat_weights_names]
        # One draw for every parameter: the generator's stream is the same as one draw each.
        values = uniform(sum(p.numel() for p in params), bound=bound).split([p.numel() for p in params])
        with torch.no_grad():
            for param, value in zip(params, values, strict=True):
                param.copy_(value.view(param.shape))  # exact: already rounded to dtype
        if device.type != "cpu":
            module = module.to(device=device)
        module.eval()

        batch = 1 if i.unbatched else i.batch_size
        assert batch is not None
        x = uniform(i.seq_len, batch, c.input_size, bound=i.scale)
        hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None
        if i.initial_state:
            rows = c.num_layers * c.num_directions
            h0 = uniform(rows, batch, c.output_size, bound=1.0)
            c0 = uniform(rows, batch, c.hidden_size, bound=1.0) if c.mode == "LSTM" else None
            if i.unbatched:
                h0 = h0[:, 0]
                c0 = None if c0 is None else c0[:, 0]
            h0 = placed(h0, device, i.contiguous)
            hx = h0 if c0 is None else (h0, placed(c0, device, i.contiguous))

        if i.unbatched:
            return Built(module, placed(x[:, 0], device, i.contiguous), hx)
        if c.batch_first:
            x = x.transpose(0, 1)
        x = placed(x, device, i.contiguous)
        if i.packed:
            assert i.lengths is not None
            packed = pack_padded_sequence(x, torch.tensor(i.lengths), batch_first=c.batch_first,
                                          enforce_sorted=i.enforce_sorted)
            return Built(module, packed, hx)
        return Built(module, x, hx)


def backend(inputs: Inputs) -> contextlib.AbstractContextManager[None]:
    """Run the enclosed code with the case's CPU backend (oneDNN on or off), then restore it."""
    return cpu_backend(inputs.device, inputs.onednn)


@functools.lru_cache(maxsize=256)
def _module_template(config: Config, dtype: torch.dtype) -> nn.RNNBase:
    """A module in ``dtype`` on the CPU that :meth:`Case.build` copies (a copy costs half a
    construction) and overwrites every parameter of; never handed out itself. The global RNG is
    left as it was: initialisation draws under ``fork_rng``, which restores the CPU generator.

    Constructed the ordinary way: building on ``meta`` and ``to_empty()`` instead costs 8x as
    much, in torch's Python reference ops for every parameter.
    """
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        # dropout with num_layers=1 is legal and must be a no-op in eval mode, which is what we test.
        warnings.filterwarnings("ignore", message="dropout option adds dropout after all but last")
        return module_for(dataclasses.asdict(config), dtype)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
