"""The forum thread's decomposition of a bidirectional ``nn.RNN``, written as a fuzz-birnn candidate.

Each layer and direction is its own one-layer ``nn.RNN`` with weights copied from the fused
module, exactly as in ``shared/seed-forum-thread.txt``. ``seed_decomposition`` is the first
attempt from the thread: the next layer is fed ``[forward, backward]`` with the backward output
still in the reversed order it was computed in. ``fixed_decomposition`` is the thread's solution:
put it back in forward time order first. It supports what the seed did: ``nn.RNN`` (tanh or
relu) on padded batched input, with or without ``batch_first`` and ``h0``::

    fuzz-birnn run --candidate examples.seed_decomposition:seed_decomposition \\
        --modes rnn_tanh,rnn_relu --no-packed --no-unbatched
"""

import torch


def seed_decomposition(module, input, hx=None):
    return _stack(module, input, hx, re_reverse_between_layers=False)


def fixed_decomposition(module, input, hx=None):
    return _stack(module, input, hx, re_reverse_between_layers=True)


def _stack(module, input, hx, re_reverse_between_layers):
    time = 1 if module.batch_first else 0
    directions = 2 if module.bidirectional else 1
    batch = input.shape[1 - time]
    if hx is None:
        hx = input.new_zeros(module.num_layers * directions, batch, module.hidden_size)
    layer_input, h_n = input, []
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(directions):
            rnn = _one_layer(module, layer, direction, layer_input.shape[-1])
            steps = layer_input.flip(time) if direction else layer_input
            out, h = rnn(steps, hx[layer * directions + direction].unsqueeze(0))
            last_layer = layer == module.num_layers - 1
            if direction and (last_layer or re_reverse_between_layers):
                out = out.flip(time)  # back into forward time order
            outputs.append(out)
            h_n.append(h[0])
        layer_input = torch.cat(outputs, dim=-1)
    return layer_input, torch.stack(h_n)


def _one_layer(module, layer, direction, input_size):
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    weight = module.weight_ih_l0
    rnn = torch.nn.RNN(input_size, module.hidden_size, 1, nonlinearity=module.nonlinearity, bias=module.bias,
                       batch_first=module.batch_first, dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if module.bias else ()):
            getattr(rnn, f"{name}_l0").copy_(getattr(module, name + suffix))
    return rnn
