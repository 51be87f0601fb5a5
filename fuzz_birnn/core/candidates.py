"""The built-in candidates (torch's fused module, the decomposition, the stack of cells, the reference) and the name a
report can import a candidate by (:func:`candidate_label`).

Turning a name back into a candidate, targets and ``MODULE:ATTR`` included, is
:mod:`fuzz_birnn.targets.naming`'s job: a level up, since it needs the targets."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from torch import nn

from fuzz_birnn.core.cells import cells
from fuzz_birnn.core.decomposition import decomposed
from fuzz_birnn.core.reference import reference

__all__ = ["BUILTIN", "candidate_label", "fused"]


def fused(module: nn.RNNBase, input: Any, hx: Any = None) -> Any:
    """Torch's own fused module, as a candidate: ``module(input, hx)``."""
    return module(input, hx)


#: Built-in candidates by name.
BUILTIN: dict[str, Callable[..., Any]] = {"decomposed": decomposed, "cells": cells, "reference": reference,
                                          "fused": fused}


def candidate_label(candidate: Callable[..., Any]) -> str:
    """``fused``, or ``module:attr`` where the candidate is importable under that name, else its repr."""
    if candidate is fused:
        return "fused"
    module = getattr(candidate, "__module__", None) or type(candidate).__module__
    qualname = getattr(candidate, "__qualname__", None)
    if qualname is None:  # an instance: find the module-level name bound to it
        namespace = vars(sys.modules.get(module, object()))
        qualname = next((k for k, v in namespace.items() if v is candidate), None)
    return f"{module}:{qualname}" if qualname and "<" not in qualname else repr(candidate)
