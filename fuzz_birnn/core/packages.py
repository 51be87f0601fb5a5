"""Which installed packages a target brought in, with their versions: for a finding in a runtime,
an exporter or a converter, the version that matters is that package's, not torch's.

:func:`loaded` names every installed distribution with a module in this process; :func:`of_target`
keeps those the harness itself does not need (fuzz-birnn's own requirements and those of the
extras it runs on: pytest, Redis, Ray, the linters), so that ``--candidate onnxruntime`` records
``onnxruntime``, ``onnx``, ``onnxscript``, ``numpy`` ... and a user's installed package records
itself and what it imports. A candidate that is a plain file, not an installed package, has no
version to record.
"""

from __future__ import annotations

import functools
import re
import sys
from importlib import metadata

__all__ = ["loaded", "of_target", "remember_harness"]

#: fuzz-birnn's extras that serve the harness, not a target (``onnx`` is a target's).
HARNESS_EXTRAS = ("test", "redis", "ray", "lint")

_before_target: frozenset[str] | None = None


def remember_harness() -> None:
    """Take the modules loaded now as the harness' own (the first call counts; a forked worker
    inherits it): call it before a candidate is imported."""
    global _before_target
    if _before_target is None:
        _before_target = frozenset(_top_level_modules())


def loaded() -> dict[str, str]:
    """Distribution -> version for every installed distribution with a module imported in this
    process, by name."""
    return _versions(_top_level_modules())


def of_target() -> dict[str, str]:
    """The target's packages of :func:`loaded` (see the module's docstring), with their versions."""
    modules = _top_level_modules()
    if _before_target is not None:
        modules -= _before_target
    harness, everything = _harness(), loaded()
    wanted = list(_versions(modules))
    found: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in everything and name not in found and name not in harness:
            found.add(name)
            wanted.extend(_normal(required) for required in _requires(name, ()))
    return {name: everything[name] for name in sorted(found)}


def _top_level_modules() -> set[str]:
    return {name.partition(".")[0] for name in list(sys.modules)}


def _versions(modules: set[str]) -> dict[str, str]:
    by_module = _distributions_by_module()
    found: dict[str, str] = {}
    for module in modules:
        for distribution in by_module.get(module, ()):
            version = _version(distribution)
            if version is not None:
                found[_normal(distribution)] = version
    return dict(sorted(found.items()))


def _distributions_by_module() -> dict[str, list[str]]:
    return _distributions_on(tuple(sys.path))


@functools.cache
def _distributions_on(path: tuple[str, ...]) -> dict[str, list[str]]:
    """Top-level module -> the distributions that install it, on ``path`` (a candidate's
    folder may join ``sys.path`` after the first call)."""
    return dict(metadata.packages_distributions())


@functools.cache
def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def _harness() -> frozenset[str]:
    """fuzz-birnn, pytest and its plugins, and everything they require (recursively), by name."""
    wanted = ["fuzz-birnn", "pytest"]
    wanted += [requirement for requirement in _requires("fuzz-birnn", HARNESS_EXTRAS)]
    wanted += [name for name in _installed() if name.startswith("pytest-")]
    seen: set[str] = set()
    while wanted:
        name = _normal(wanted.pop())
        if name not in seen:
            seen.add(name)
            wanted.extend(_requires(name, ()))
    return frozenset(seen)


def _requires(distribution: str, extras: tuple[str, ...]) -> list[str]:
    """The names ``distribution`` requires without extras, and with each of ``extras``."""
    try:
        lines = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return []
    names = []
    for line in lines:
        requirement, _, marker = line.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra is None or extra.group(1) in extras:
            names.append(re.split(r"[\s\[<>=!~(;]", requirement.strip(), maxsplit=1)[0])
    return names


def _installed() -> list[str]:
    return [_normal(d.metadata["Name"] or "") for d in metadata.distributions()]


def _normal(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``Pytest_XDist`` is ``pytest-xdist``)."""
    return re.sub(r"[-_.]+", "-", name).lower()
