"""Running a PackedSequence through a target that only takes padded tensors (the adapter's code).

Exporters take tensors, not ``PackedSequence``. This adapter runs each group of sequences of equal
length as its own padded batch (so no sequence ever sees padding), puts every output and final
state back at its sequence's place in the caller's batch order, and packs the output again with
the input's own ``sorted_indices``/``unsorted_indices``, which is what torch's fused module
returns. It is tested on its own against torch (``tests/test_targets.py``): a mistake here would
be the adapter's, not the target's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

__all__ = ["by_length_groups"]

Padded = Callable[[torch.nn.RNNBase, torch.Tensor, Any], tuple[torch.Tensor, Any]]


def by_length_groups(run_padded: Padded, module: torch.nn.RNNBase, packed: PackedSequence,
                     hx: Any = None) -> tuple[PackedSequence, Any]:
    """``run_padded(module, x, hx)`` on each group of equal lengths, reassembled as the fused
    module's result for ``packed``."""
    batch_dim = 0 if module.batch_first else 1
    padded, lengths = pad_packed_sequence(packed, batch_first=module.batch_first)  # caller's order
    full: torch.Tensor | None = None
    states: list[torch.Tensor] | None = None
    for length in sorted(set(lengths.tolist()), reverse=True):
        members = (lengths == length).nonzero().flatten()
        x = padded.index_select(batch_dim, members).narrow(1 - batch_dim, 0, length)
        h = None if hx is None else _states(hx, _select(members))
        output, hidden = run_padded(module, x, h)
        if full is None:  # shaped, typed and placed as the target returns them
            full = output.new_zeros((*padded.shape[:2], output.shape[-1]))
        if module.batch_first:
            full[members, :length] = output
        else:
            full[:length, members] = output
        parts = list(hidden) if isinstance(hidden, tuple) else [hidden]
        if states is None:
            states = [p.new_zeros((p.shape[0], len(lengths), p.shape[-1])) for p in parts]
        for state, part in zip(states, parts, strict=True):
            state[:, members] = part
    assert full is not None and states is not None
    order = packed.sorted_indices if packed.sorted_indices is not None else torch.arange(len(lengths))
    repacked = pack_padded_sequence(full.index_select(batch_dim, order.to(full.device)), lengths[order],
                                    batch_first=module.batch_first, enforce_sorted=True)
    result = PackedSequence(repacked.data, repacked.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    return result, (tuple(states) if len(states) == 2 else states[0])


def _select(members: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A state's columns of the sequences ``members`` (its batch is dimension 1)."""
    return lambda state: state.index_select(1, members)


def _states(hx: Any, change: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    return tuple(change(h) for h in hx) if isinstance(hx, tuple) else change(hx)
