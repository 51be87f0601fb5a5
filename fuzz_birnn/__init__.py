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

import warnings

with warnings.catch_warnings():
    # torch without NumPy says so on import; nothing here needs NumPy, and the CLI's errors
    # must stay one line.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch  # noqa: F401

from .backends import check_backends
from .candidates import fused
from .case import DTYPES, MODES, Case, Config, Inputs
from .check import check, check_fused
from .compare import Mismatch
from .decomposition import DecomposedStack, decomposed
from .devices import available_devices
from .gradients import check_gradients
from .invalid import check_invalid
from .metamorphic import RELATIONS, check_relation
from .outcomes import Candidate, CheckFailure, Outcome, Unsupported
from .reference import CellReference, reference

__all__ = [
    "DTYPES",
    "MODES",
    "RELATIONS",
    "Candidate",
    "Case",
    "CellReference",
    "CheckFailure",
    "Config",
    "DecomposedStack",
    "Inputs",
    "Mismatch",
    "Outcome",
    "Unsupported",
    "available_devices",
    "check",
    "check_backends",
    "check_fused",
    "check_gradients",
    "check_invalid",
    "check_relation",
    "decomposed",
    "fused",
    "reference",
]

__version__ = "0.1.0"
