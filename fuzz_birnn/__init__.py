"""fuzz-birnn: property-based testing of PyTorch's recurrent layers.

Check any implementation of ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` semantics (a *candidate*,
``candidate(module, input, hx=None) -> (output, hidden)``) against torch's fused module::

    from hypothesis import given
    from fuzz_birnn import check
    from fuzz_birnn.strategies import cases

    @given(cases())
    def test_my_stack(case):
        check(my_stack, case)
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from fuzz_birnn import _moved

# torch without NumPy says so when it is imported (and lazily later); nothing here needs NumPy, and
# the command's errors must stay one line. Every module of the package imports this one first.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

__version__ = "0.1.0"

#: Each public name and the module it lives in. Imported on first use, so that ``import
#: fuzz_birnn`` (and pytest loading the plugin in every project that installs fuzz-birnn) costs
#: nothing until something is checked.
_PUBLIC = {
    "Candidate": "core.outcomes",
    "Case": "core.case",
    "CellReference": "core.reference",
    "CheckFailure": "core.outcomes",
    "Config": "core.case",
    "DTYPES": "core.case",
    "DecomposedStack": "core.decomposition",
    "Inputs": "core.case",
    "MODES": "core.case",
    "Mismatch": "core.compare",
    "Outcome": "core.outcomes",
    "RELATIONS": "properties.relations",
    "Unsupported": "core.outcomes",
    "available_devices": "core.devices",
    "check": "core.check",
    "check_backends": "properties.backends",
    "check_fused": "core.check",
    "check_gradients": "properties.gradients",
    "check_invalid": "properties.invalid",
    "check_relation": "properties.relations",
    "decomposed": "core.decomposition",
    "fused": "core.candidates",
    "reference": "core.reference",
    "run": "campaign.api",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from fuzz_birnn.campaign.api import run
    from fuzz_birnn.core.candidates import fused
    from fuzz_birnn.core.case import DTYPES, MODES, Case, Config, Inputs
    from fuzz_birnn.core.check import check, check_fused
    from fuzz_birnn.core.compare import Mismatch
    from fuzz_birnn.core.decomposition import DecomposedStack, decomposed
    from fuzz_birnn.core.devices import available_devices
    from fuzz_birnn.core.outcomes import Candidate, CheckFailure, Outcome, Unsupported
    from fuzz_birnn.core.reference import CellReference, reference
    from fuzz_birnn.properties.backends import check_backends
    from fuzz_birnn.properties.gradients import check_gradients
    from fuzz_birnn.properties.invalid import check_invalid
    from fuzz_birnn.properties.relations import RELATIONS, check_relation


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


_moved.install()
