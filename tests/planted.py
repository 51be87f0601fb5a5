"""Candidates with one planted bug each, of the kinds users actually write.

Each is a correct implementation with a single step changed, so a test that catches it proves the
harness sees exactly that kind of mistake.
"""

from __future__ import annotations

import copy

import torch

from fuzz_birnn import CellReference, DecomposedStack
from fuzz_birnn.core.layout import Canonical


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

    def cell(self, mode, gi, h, c, w):
        if mode != "GRU" or w["bias_hh"] is None:
            return super().cell(mode, gi, h, c, w)
        gh = h @ w["weight_hh"].mT
        b_hr, b_hz, b_hn = w["bias_hh"].chunk(3, dim=-1)
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


# -- bugs for the metamorphic relations and the gradient property -------------------------------


def lengths_ignored(module, input, hx=None):
    """Runs a packed batch as if it were padded: short sequences keep stepping over the padding."""
    from fuzz_birnn.core.layout import canonical

    if not isinstance(input, torch.nn.utils.rnn.PackedSequence):
        return module(input, hx)
    call = canonical(module, input, hx)
    steps = call.sequences.transpose(0, 1) if module.batch_first else call.sequences
    output, hidden = module(steps, hx)
    return call.restore_output(output.transpose(0, 1) if module.batch_first else output), hidden


def unbatched_time_as_batch(module, input, hx=None):
    """Reads a 2-D input (T, F) as T sequences of one step each."""
    if input.dim() != 2:
        return module(input, hx)
    steps = input.unsqueeze(1 if module.batch_first else 0)  # (1, T, F) time-major: one step, batch T
    states = None if hx is None else _map(hx, lambda h: h.unsqueeze(1).expand(-1, input.shape[0], -1).contiguous())
    output, hidden = module(steps, states)
    output = output[:, 0] if module.batch_first else output[0]
    return output, _map(hidden, lambda h: h[:, -1])


def batch_first_output_left_time_major(module, input, hx=None):
    """Computes time-major internally and forgets to transpose the output back for batch_first."""
    if not module.batch_first or input.dim() != 3:
        return module(input, hx)
    module.batch_first = False
    try:
        return module(input.transpose(0, 1), hx)
    finally:
        module.batch_first = True


class ReverseReadsForwardH0(DecomposedStack):
    """Starts both directions of a layer from the forward direction's row of h0/c0."""

    def initial_state(self, call, layer, direction, directions, num_layers):
        row = layer * directions
        return call.h0[row], None if call.c0 is None else call.c0[row]


def dropout_in_eval(module, input, hx=None):
    """Applies dropout between layers even in eval mode (seeded, so the bug is repeatable)."""
    was_training = module.training
    module.train()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return module(input, hx)
    finally:
        module.train(was_training)


def missing_state_is_ones(module, input, hx=None):
    """Starts from ones, not zeros, when no h0/c0 is given."""
    if hx is None:
        from fuzz_birnn.core.layout import canonical

        call = canonical(module, input, None)
        ones = torch.ones_like(call.h0)
        unbatched = not isinstance(input, torch.nn.utils.rnn.PackedSequence) and input.dim() == 2
        h0 = ones[:, 0] if unbatched else ones
        c0 = None if call.c0 is None else (torch.ones_like(call.c0)[:, 0] if unbatched else torch.ones_like(call.c0))
        hx = h0 if c0 is None else (h0, c0)
    return module(input, hx)


def reverse_output_detached(module, input, hx=None):
    """Forward values exactly right; no gradient flows through the reverse half of the output."""
    output, hidden = module(input, hx)
    if not module.bidirectional:
        return output, hidden
    data = output.data if isinstance(output, torch.nn.utils.rnn.PackedSequence) else output
    forward, reverse = data.chunk(2, dim=-1)
    data = torch.cat([forward, reverse.detach()], dim=-1)
    return (output._replace(data=data) if isinstance(output, torch.nn.utils.rnn.PackedSequence) else data), hidden


def _map(hidden, fn):
    return tuple(fn(h) for h in hidden) if isinstance(hidden, tuple) else fn(hidden)


reverse_reads_forward_h0 = ReverseReadsForwardH0()


def computed_in(low: torch.dtype, inner=None):
    """A candidate right in every step (or ``inner``, with whatever it gets wrong) but computed in
    ``low`` (the module cast to it), its result handed back in the input's dtype: what a runtime's
    precision setting, or a kernel that rounds to a lower precision, does to an implementation."""

    def candidate(module, input, hx=None):
        given = module.weight_ih_l0.dtype
        output, hidden = (inner or _call)(copy.deepcopy(module).to(low), _cast(input, low), _cast(hx, low))
        return _cast(output, given), _cast(hidden, given)

    candidate.__name__ = f"computed_in_{str(low).removeprefix('torch.')}" + (f"_{inner.__name__}" if inner else "")
    return candidate


def _call(module, input, hx=None):
    return module(input, hx)


def _cast(value, dtype):
    if value is None:
        return None
    if isinstance(value, torch.nn.utils.rnn.PackedSequence):  # a tuple too: before the tuples
        return value._replace(data=value.data.to(dtype))
    if isinstance(value, tuple):
        return tuple(_cast(v, dtype) for v in value)
    return value.to(dtype)


def weights_rounded_to(low: torch.dtype):
    """A candidate that computes in the input's dtype from weights stored in ``low`` (a converter
    that writes its initializers in a lower precision): its values are not numbers of ``low``."""

    def candidate(module, input, hx=None):
        rounded = copy.deepcopy(module)
        with torch.no_grad():
            for weight in rounded.parameters():
                weight.copy_(weight.to(low).to(weight.dtype))
        return rounded(input, hx)

    candidate.__name__ = f"weights_rounded_to_{str(low).removeprefix('torch.')}"
    return candidate
