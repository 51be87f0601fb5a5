"""A candidate as a user's native kernel might be: right everywhere, except that it reads past
the end of a buffer, and dies of it, when the batch is odd and the hidden size is a multiple of
three (about one GRU case in ten of the default space). Used by ``benchmarks/speed.py`` to price
a search that goes on past a crash."""

from __future__ import annotations

import os
import signal

from torch.nn.utils.rnn import PackedSequence


def odd_batch_segfault(module, input, hx=None):
    batch = (int(input.batch_sizes[0]) if isinstance(input, PackedSequence)
             else 1 if input.dim() == 2 else input.shape[0 if module.batch_first else 1])
    if batch % 2 == 1 and module.hidden_size % 3 == 0:
        os.kill(os.getpid(), signal.SIGSEGV)
    return module(input, hx)
