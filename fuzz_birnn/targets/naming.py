"""A candidate by name: a built-in (``decomposed``), a target (``onnxruntime``) or a user's own
``MODULE:ATTR``, imported the way pytest imports test modules (the current directory first)."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from fuzz_birnn.core import packages
from fuzz_birnn.core.candidates import BUILTIN
from fuzz_birnn.portable.report_files import CANDIDATE_SPEC
from fuzz_birnn.targets import TARGETS, TargetUnavailable, load_target

__all__ = ["CandidateError", "load_candidate", "validate_spec"]


class CandidateError(ValueError):
    """A candidate that cannot be named, imported or called; the message says what to do."""


def validate_spec(spec: str) -> str:
    """``spec`` itself if it is a built-in name, a target's name or a well-formed ``MODULE:ATTR``."""
    if isinstance(spec, str) and (spec in BUILTIN or spec in TARGETS or CANDIDATE_SPEC.match(spec)):
        return spec
    raise CandidateError(f"candidate {spec!r} must be MODULE:ATTR (like mypkg.rnn:my_stack) "
                         f"or one of {', '.join([*BUILTIN, *TARGETS])}")


def load_candidate(spec: str) -> Callable[..., Any]:
    """Import ``MODULE:ATTR`` with the current directory on the path, as pytest does."""
    validate_spec(spec)
    packages.remember_harness()  # what is imported from here on is the candidate's
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
    problem = call_problem(target)
    if problem is not None:
        raise CandidateError(f"candidate {spec!r} {problem}")
    return target


def call_problem(candidate: Callable[..., Any]) -> str | None:
    """Why ``candidate`` cannot be called as every check calls it, ``candidate(module, input, hx)``
    (three arguments by position), or ``None``: said once, before a run, not in every report."""
    try:
        signature = inspect.signature(candidate)
    except (TypeError, ValueError):
        return None  # nothing to read (a function written in C): the first case will tell
    try:
        signature.bind(None, None, None)
    except TypeError:
        return (f"takes {signature}, but is called as candidate(module, input, hx): give it the parameters "
                "(module, input, hx=None)")
    return None
