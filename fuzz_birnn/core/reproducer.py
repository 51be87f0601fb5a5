"""The copy-paste snippet a failure carries (as a note on the exception) that re-runs its check."""

from __future__ import annotations

import json
from typing import Any

from fuzz_birnn.core.case import Case

__all__ = ["reproducer"]

_CALLS = {
    "agreement": ("fuzz_birnn", "check", "check({candidate}, case)"),
    "fused-vs-reference": ("fuzz_birnn", "check_fused", "check_fused(case)"),
    "gradients": ("fuzz_birnn", "check_gradients", "check_gradients({candidate}, case)"),
    "backends": ("fuzz_birnn", "check_backends", "check_backends(case)"),
    "invalid-calls": ("fuzz_birnn", "check_invalid", "check_invalid(case, {corruption!r}, strict=True)"),
    "relation": ("fuzz_birnn", "check_relation", "check_relation({relation!r}, {candidate}, case)"),
}


def reproducer(case: Case, candidate: str, prop: str = "agreement", details: dict[str, Any] | None = None) -> str:
    """``Reproduce with:`` and the lines that re-run property ``prop`` of ``candidate`` on ``case``."""
    family, _, relation = prop.partition(":")
    module, function, call = _CALLS.get(family, _CALLS["agreement"])
    imports = ["from fuzz_birnn import Case", f"from {module} import {function}"]
    if candidate == "fused":
        name = "fused"
        imports.append("from fuzz_birnn import fused")
    elif ":" in candidate:
        source, attr = candidate.split(":", 1)
        imports.append(f"from {source} import {attr.split('.')[0]}")
        name = attr
    else:
        name = "candidate"
    call = call.format(candidate=name, relation=relation, corruption=(details or {}).get("corruption"))
    lines = [*imports, f"case = Case.from_dict({json.dumps(case.to_dict())})", call]
    return "Reproduce with:\n" + "\n".join("    " + line for line in lines)
