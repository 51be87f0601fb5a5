"""What every built-in target shares: one export reused for every case of the same configuration
and shapes, with each case's weights fed in (never baked from another case), and packed input
through :mod:`~fuzz_birnn.targets.packing`."""

from __future__ import annotations

import collections
import warnings
from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence

from fuzz_birnn.targets.packing import by_length_groups

__all__ = ["CASES_PER_SHAPE", "ExportCache", "candidate_from", "export_key"]


def export_key(module: torch.nn.RNNBase, x: torch.Tensor, hx: Any) -> Hashable:
    """What an export depends on: the module's class and constructor arguments, and the shapes,
    dtypes and devices of what it is called with (values never)."""
    states = () if hx is None else tuple((tuple(h.shape), h.dtype) for h in (hx if isinstance(hx, tuple) else (hx,)))
    return (type(module).__name__, module.extra_repr(), getattr(module, "nonlinearity", None),
            tuple(x.shape), x.dtype, str(x.device), states)


class ExportCache:
    """The last ``size`` exports, by :func:`export_key`."""

    def __init__(self, size: int = 32) -> None:
        self._entries: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._size = size

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = self._entries[key] = make()
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value


#: Draws of values a search checks on each drawn configuration and shapes, for a target whose
#: setup (an export, a session) is per configuration and shapes: one setup then serves several
#: cases (see ``cases_per_shape`` in :mod:`fuzz_birnn.campaign.engine`).
CASES_PER_SHAPE = 8


def candidate_from(run_padded: Callable[[torch.nn.RNNBase, torch.Tensor, Any], Any], *,
                   cases_per_shape: int = 1, differentiable: bool = False) -> Callable[..., Any]:
    """A candidate ``(module, input, hx=None)`` from a runner of padded (or unbatched) input;
    ``differentiable``: called with gradients enabled (``--grad``), it keeps them, so that the
    gradients property reaches the module's parameters, input and states through the runner."""
    def candidate(module: torch.nn.RNNBase, input: Any, hx: Any = None) -> Any:
        grad = differentiable and torch.is_grad_enabled()
        # exporters warn freely (deprecations, tracer notes): their warnings are not findings
        with torch.set_grad_enabled(grad), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(input, PackedSequence):
                return by_length_groups(run_padded, module, input, hx)
            return run_padded(module, input, hx)
    candidate.cases_per_shape = cases_per_shape  # type: ignore[attr-defined]
    return candidate


def arguments(x: torch.Tensor, hx: Any) -> tuple[Any, ...]:
    """The positional arguments of ``module(x, hx)`` as an exporter takes them."""
    return (x,) if hx is None else (x, hx)
