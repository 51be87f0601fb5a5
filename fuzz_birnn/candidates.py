"""Naming candidates: the built-ins, targets, and ``MODULE:ATTR`` for a user's own, both ways
(a name to a callable, and a callable to the name a report can import it by)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from torch import nn

from .decomposition import decomposed
from .reference import reference
from .repro_support import CANDIDATE_SPEC

__all__ = ["BUILTIN", "CandidateError", "candidate_label", "fused", "load_candidate", "validate_spec"]


def fused(module: nn.RNNBase, input: Any, hx: Any = None) -> Any:
    """Torch's own fused module, as a candidate: ``module(input, hx)``."""
    return module(input, hx)


#: Built-in candidates by name.
BUILTIN: dict[str, Callable[..., Any]] = {"decomposed": decomposed, "reference": reference, "fused": fused}


class CandidateError(ValueError):
    """A candidate that cannot be named, imported or called; the message says what to do."""


def validate_spec(spec: str) -> str:
    """``spec`` itself if it is a built-in name, a target's name or a well-formed ``MODULE:ATTR``."""
    from .targets import TARGETS

    if isinstance(spec, str) and (spec in BUILTIN or spec in TARGETS or CANDIDATE_SPEC.match(spec)):
        return spec
    raise CandidateError(f"candidate {spec!r} must be MODULE:ATTR (like mypkg.rnn:my_stack) "
                         f"or one of {', '.join([*BUILTIN, *TARGETS])}")


def load_candidate(spec: str) -> Callable[..., Any]:
    """Import ``MODULE:ATTR`` with the current directory on the path, as pytest does."""
    from .targets import TARGETS, TargetUnavailable, load_target

    validate_spec(spec)
    if spec in BUILTIN:
        return BUILTIN[spec]
    if spec in TARGETS:
        try:
            return load_target(spec)
        except TargetUnavailable as error:
            raise CandidateError(str(error)) from None
    module_name, attr_path = spec.split(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:
        raise CandidateError(f"candidate {spec!r}: cannot import {module_name!r}: "
                             f"{type(error).__name__}: {error}".splitlines()[0]) from error
    for attr in attr_path.split("."):
        if not hasattr(target, attr):
            raise CandidateError(f"candidate {spec!r}: {module_name!r} has no attribute {attr_path!r}")
        target = getattr(target, attr)
    if not callable(target):
        raise CandidateError(f"candidate {spec!r} is a {type(target).__name__}, not callable as "
                             "candidate(module, input, hx=None)")
    return target


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
