"""Candidates with one planted bug each, of the kinds users actually write.

Each is a correct implementation with a single step changed, so a test that catches it proves the
harness sees exactly that kind of mistake.
"""

from __future__ import annotations

import torch

from fuzz_birnn import CellReference, DecomposedStack
from fuzz_birnn.layout import Canonical


class SeedMissingReReversal(DecomposedStack):
    """The seed thread's bug: the reverse direction's output is fed to the next layer still in
    reversed (processing) time order instead of being put back in forward time order."""

    def next_layer_input(self, outputs: list[torch.Tensor], call: Canonical) -> torch.Tensor:
        forward, *rest = outputs
        return torch.cat([forward, *(self.reverse(o, call) for o in rest)], dim=2)


class H0DirectionMajor(DecomposedStack):
    """Reads ``h0``/``c0`` row ``direction * num_layers + layer`` instead of ``layer * 2 + direction``
    (``h_n`` is still written layer-major)."""

    def initial_state(self, call: Canonical, layer: int, direction: int, directions: int,
                      num_layers: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        row = direction * num_layers + layer
        return call.h0[row], None if call.c0 is None else call.c0[row]


class PackedReverseFromPaddedEnd(DecomposedStack):
    """Runs the reverse direction on the whole padded time axis flipped, so a short sequence of a
    packed batch starts from padding instead of from its own last step."""

    def reverse(self, sequences: torch.Tensor, call: Canonical) -> torch.Tensor:
        return sequences.flip(0)


class GruBiasOutsideReset(CellReference):
    """GRU with ``b_hn`` added outside the reset gate: ``tanh(W_in x + b_in + r * (W_hn h) + b_hn)``
    (the Keras/cuDNN ``reset_after=False``-style mistake)."""

    def cell(self, mode, x, h, c, w):
        if mode != "GRU" or w["bias_hh"] is None:
            return super().cell(mode, x, h, c, w)
        gi = x @ w["weight_ih"].T + w["bias_ih"]
        gh = h @ w["weight_hh"].T
        b_hr, b_hz, b_hn = w["bias_hh"].chunk(3)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r + b_hr)
        z = torch.sigmoid(i_z + h_z + b_hz)
        n = torch.tanh(i_n + r * h_n + b_hn)
        return (1 - z) * n + z * h, None


seed_missing_re_reversal = SeedMissingReReversal()
h0_direction_major = H0DirectionMajor()
packed_reverse_from_padded_end = PackedReverseFromPaddedEnd()
gru_bias_outside_reset = GruBiasOutsideReset()
