"""The one canonical layout that implementations work in, and the way back to the caller's.

``nn.RNN`` accepts three input forms (a padded tensor, time- or batch-major; an unbatched 2-D
tensor; a ``PackedSequence`` whose batch may be sorted or not). Implementations here first bring
a call into *canonical* form, a time-major padded tensor ``(T, B, F)`` in the caller's batch order
with each sequence's length, and put their results back into the form the caller used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

__all__ = ["Canonical", "as_tensor", "canonical", "each_state", "reverse_within_lengths"]

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Canonical:
    """A call in canonical form, and what is needed to restore the caller's form."""

    sequences: torch.Tensor  # (T, B, F), caller's batch order
    lengths: torch.Tensor  # (B,), int64 on the CPU
    h0: torch.Tensor  # (layers * directions, B, output_size)
    c0: torch.Tensor | None  # (layers * directions, B, hidden_size), LSTM only
    form: str  # "padded", "unbatched" or "packed"
    batch_first: bool
    packed: PackedSequence | None

    def restore_output(self, output: torch.Tensor) -> torch.Tensor | PackedSequence:
        """``(T, B, F)`` time-major output back to the caller's form (zeros at padded steps)."""
        if self.form == "unbatched":
            return output[:, 0]
        if self.form == "padded":
            return output.transpose(0, 1) if self.batch_first else output
        assert self.packed is not None
        batch_sizes = self.packed.batch_sizes.tolist()
        order = self.packed.sorted_indices
        if order is not None:
            output = output.index_select(1, order.to(output.device))
        data = torch.cat([output[t, :size] for t, size in enumerate(batch_sizes)])
        return PackedSequence(data, self.packed.batch_sizes, self.packed.sorted_indices,
                              self.packed.unsorted_indices)

    def restore_hidden(self, h_n: torch.Tensor, c_n: torch.Tensor | None) -> Hidden:
        """``(rows, B, F)`` final states back to the caller's form (``(h_n, c_n)`` for LSTM)."""
        if self.form == "unbatched":
            h_n = h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        return h_n if c_n is None else (h_n, c_n)


def canonical(module: nn.RNNBase, input: torch.Tensor | PackedSequence, hx: Hidden | None) -> Canonical:
    """Bring ``module(input, hx)`` into canonical form; missing initial states become zeros.

    Refuses what ``nn.RNNBase`` refuses (wrong rank, feature size, dtype, state shape or kind),
    with ``ValueError``/``RuntimeError`` messages in torch's words.
    """
    name = type(module).__name__
    packed = input if isinstance(input, PackedSequence) else None
    data = packed.data if packed is not None else input
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"{name}: input must be a Tensor or PackedSequence, not {type(input).__name__}")
    if not data.is_floating_point() or data.dtype != module.weight_ih_l0.dtype:
        raise ValueError(f"RNN input dtype ({data.dtype}) does not match weight dtype ({module.weight_ih_l0.dtype})")
    if packed is not None:
        sequences, lengths = pad_packed_sequence(packed)
        form, batch_first = "packed", False
    elif data.dim() == 2:
        sequences, form, batch_first = data.unsqueeze(1), "unbatched", False
    elif data.dim() == 3:
        batch_first = module.batch_first
        sequences, form = (data.transpose(0, 1) if batch_first else data), "padded"
    else:
        raise ValueError(f"{name}: Expected input to be 2D or 3D, got {data.dim()}D instead")
    if sequences.shape[-1] != module.input_size:
        raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {module.input_size}, "
                           f"got {sequences.shape[-1]}")
    if packed is None:
        lengths = torch.full((sequences.shape[1],), sequences.shape[0], dtype=torch.int64)

    rows = module.num_layers * (2 if module.bidirectional else 1)
    batch = sequences.shape[1]
    is_lstm = isinstance(module, nn.LSTM)
    if hx is not None and is_lstm != isinstance(hx, tuple):
        raise TypeError(f"{name}: hx must be {'a tuple (h0, c0)' if is_lstm else 'a tensor'}, "
                        f"not {type(hx).__name__}")
    h0, c0 = (hx if isinstance(hx, tuple) else (hx, None)) if hx is not None else (None, None)
    states = {"hidden[0]": (h0, module.proj_size or module.hidden_size), "hidden[1]": (c0, module.hidden_size)}
    for label, (state, features) in states.items():
        if state is None:
            continue
        want = (rows, features) if form == "unbatched" else (rows, batch, features)
        if tuple(state.shape) != want:
            raise RuntimeError(f"Expected {label} size {want}, got {list(state.shape)}")
        if state.dtype != data.dtype:
            raise RuntimeError(f"Expected {label} dtype {data.dtype}, got {state.dtype}")
    if h0 is None:
        h0 = sequences.new_zeros(rows, batch, module.proj_size or module.hidden_size)
    if c0 is None and is_lstm:
        c0 = sequences.new_zeros(rows, batch, module.hidden_size)
    if form == "unbatched":
        h0 = h0 if h0.dim() == 3 else h0.unsqueeze(1)
        c0 = c0 if c0 is None or c0.dim() == 3 else c0.unsqueeze(1)
    return Canonical(sequences, lengths.to(torch.int64).cpu(), h0, c0, form, batch_first, packed)


def reverse_within_lengths(sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``(T, B, F)`` in time within its own length; padding stays put.

    ``[a, b, c, pad]`` with length 3 becomes ``[c, b, a, pad]``. It is its own inverse.
    """
    steps = torch.arange(sequences.shape[0]).unsqueeze(1)  # (T, 1)
    lengths = lengths.unsqueeze(0)  # (1, B)
    source = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (T, B)
    index = source.to(sequences.device).unsqueeze(2).expand_as(sequences)
    return sequences.gather(0, index)


def each_state(hx: Hidden | None, change: Callable[[torch.Tensor], torch.Tensor]) -> Hidden | None:
    """``change`` applied to ``h0`` (and to ``c0``: a pair stays a pair); ``None`` stays ``None``."""
    if hx is None:
        return None
    if isinstance(hx, tuple):
        return change(hx[0]), change(hx[1])
    return change(hx)


def as_tensor(input: torch.Tensor | PackedSequence) -> torch.Tensor:
    """An input known to be a plain tensor (the case's form says so)."""
    assert isinstance(input, torch.Tensor), "this case's input is a PackedSequence"
    return input
