"""``--candidate quantizable-lstm``: ``torch.ao.nn.quantizable.LSTM``, the float-mode module that
quantization workflows swap in for ``nn.LSTM`` (eager-mode ``prepare``/``convert``), built from
the case's ``nn.LSTM`` with ``from_float`` (``default_qconfig``; observers record, they do not
change a float result) and called as the ``nn.LSTM`` would be.

Its docstring refers to :class:`torch.nn.LSTM` "for the description and the argument types", so
every call ``nn.LSTM`` takes is held to ``nn.LSTM``'s result. The one refusal reported as
:class:`~fuzz_birnn.Unsupported` is the module's reason to exist: it quantizes LSTMs only, so a
GRU or RNN case is not compared. Anything else that fails (a ``proj_size`` it drops, an input
form it cannot read) is a finding.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

from torch import nn

from fuzz_birnn.core.check import Unsupported

__all__ = ["quantizable_lstm"]


def quantizable_lstm(module: nn.RNNBase, input: Any, hx: Any = None) -> Any:
    from torch.ao.nn.quantizable import LSTM
    from torch.ao.quantization import default_qconfig

    if not isinstance(module, nn.LSTM):
        raise Unsupported(f"torch.ao.nn.quantizable has LSTM only, not {type(module).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # prepare()'s notes on observers, once per case
        quantizable = LSTM.from_float(copy.deepcopy(module), qconfig=default_qconfig)
    return quantizable(input, hx)
