"""The part of the case space a campaign's search draws from: the arguments of
:func:`fuzz_birnn.strategies.cases` as one frozen, typed value.

``fuzz-birnn run`` builds one :class:`CaseSpace` from its flags; each property narrows it to the
cases it needs (:meth:`CaseSpace.narrowed`); the search draws from ``cases(**space.arguments())``,
the crash reducer proposes only cases inside it, and the example database is keyed by it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fuzz_birnn.core.case import DTYPES, FORMS

__all__ = ["CaseSpace"]

#: Fields that list allowed values (a property's needs intersect them).
_CHOICES = ("dtypes", "forms", "devices")


@dataclass(frozen=True)
class CaseSpace:
    """``cases()``'s arguments, with its defaults; ``None`` for a flag means either value."""

    dtypes: tuple[str, ...] = DTYPES
    #: ``None``: every device this machine has
    devices: tuple[str, ...] | None = None
    forms: tuple[str, ...] = FORMS
    bidirectional: bool | None = True
    bias: bool | None = None
    batch_first: bool | None = None
    proj: bool | None = None
    initial_state: bool | None = None
    dropout: bool | None = None
    onednn: bool | None = None
    contiguous: bool | None = None
    min_layers: int = 1
    max_layers: int = 4
    min_input_size: int = 1
    max_input_size: int = 8
    min_hidden_size: int = 1
    max_hidden_size: int = 8
    min_seq_len: int = 1
    max_seq_len: int = 8
    min_batch: int = 1
    max_batch: int = 8

    def arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``cases()`` (and the example database's key)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def narrowed(self, needs: Mapping[str, Any]) -> CaseSpace | None:
        """This space cut down to what a property ``needs`` (``{"forms": [...], "min_batch": 2}``):
        allowed values intersect, lower bounds rise, a fixed flag must agree. ``None`` when nothing
        is left."""
        changes: dict[str, Any] = {}
        for name, needed in needs.items():
            mine = getattr(self, name)
            if name in _CHOICES:
                kept = tuple(value for value in (needed if mine is None else mine) if value in needed)
                if not kept:
                    return None
                changes[name] = kept
            elif name.startswith("min_"):
                changes[name] = max(mine, needed)
                if changes[name] > getattr(self, f"max_{name[4:]}"):
                    return None
            elif mine is None or mine == needed:
                changes[name] = needed
            else:
                return None
        return dataclasses.replace(self, **changes)
