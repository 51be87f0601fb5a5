"""Candidates written against the candidate contract alone, each with a layout mistake the harness
was never told about, plus two correct ones that compute in float64 and cast back.

They wrap torch's own module and then make the mistake, which is how such bugs look from outside.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence


def _map_states(hidden, fn):
    return tuple(fn(h) for h in hidden) if isinstance(hidden, tuple) else fn(hidden)


def h_n_left_in_sorted_order(module, input, hx=None):
    """Forgets to put h_n/c_n back in the caller's order after an unsorted pack."""
    output, hidden = module(input, hx)
    if isinstance(input, PackedSequence) and input.sorted_indices is not None:
        hidden = _map_states(hidden, lambda h: h.index_select(1, input.sorted_indices))
    return output, hidden


def output_directions_swapped(module, input, hx=None):
    """Concatenates the final output as [reverse, forward]."""
    output, hidden = module(input, hx)
    data = output.data if isinstance(output, PackedSequence) else output
    forward, reverse = data.chunk(2, dim=-1)
    data = torch.cat([reverse, forward], dim=-1)
    return (output._replace(data=data) if isinstance(output, PackedSequence) else data), hidden


def reverse_h_n_from_last_output_step(module, input, hx=None):
    """Believes h_n equals the output at the last time step for both directions."""
    output, hidden = module(input, hx)
    if isinstance(output, PackedSequence) or not module.bidirectional:
        return output, hidden
    last = output[..., -1, :] if module.batch_first or output.dim() == 2 else output[-1]
    h_n = hidden[0] if isinstance(hidden, tuple) else hidden
    h_n = h_n.clone()
    h_n[-1] = last[..., h_n.shape[-1]:]
    return output, ((h_n, hidden[1]) if isinstance(hidden, tuple) else h_n)


def initial_state_ignored(module, input, hx=None):
    """Drops the caller's h0/c0 and starts from zeros."""
    return module(input)


def c_n_direction_major(module, input, hx=None):
    """Returns LSTM c_n with rows ordered direction-major."""
    output, hidden = module(input, hx)
    if not isinstance(hidden, tuple) or not module.bidirectional:
        return output, hidden
    h_n, c_n = hidden
    rows = [direction * module.num_layers + layer for layer in range(module.num_layers) for direction in range(2)]
    order = sorted(range(len(rows)), key=lambda k: rows[k])
    return output, (h_n, c_n[order])


def torch_in_float64(module, input, hx=None):
    """Correct: torch itself in float64, cast back to the input's dtype."""
    dtype = module.weight_ih_l0.dtype
    wide = {name: p.double() for name, p in module.named_parameters()}
    double = type(module)(**_kwargs(module), dtype=torch.float64, device=module.weight_ih_l0.device)
    double.load_state_dict(wide)
    x = input._replace(data=input.data.double()) if isinstance(input, PackedSequence) else input.double()
    output, hidden = double(x, None if hx is None else _map_states(hx, torch.Tensor.double))
    cast = lambda t: t.to(dtype)  # noqa: E731
    output = output._replace(data=cast(output.data)) if isinstance(output, PackedSequence) else cast(output)
    return output, _map_states(hidden, cast)


def _kwargs(module):
    kwargs = {"input_size": module.input_size, "hidden_size": module.hidden_size, "num_layers": module.num_layers,
              "bias": module.bias, "batch_first": module.batch_first, "bidirectional": module.bidirectional}
    if isinstance(module, torch.nn.LSTM):
        kwargs["proj_size"] = module.proj_size
    if type(module) is torch.nn.RNN:
        kwargs["nonlinearity"] = module.nonlinearity
    return kwargs


# -- candidates that misbehave as processes ------------------------------------------------------


def segfaults_on_lstm(module, input, hx=None):
    """Kills its own process (as a segfault would) when given an LSTM; right otherwise."""
    if isinstance(module, torch.nn.LSTM):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
    return module(input, hx)


def hangs_on_gru(module, input, hx=None):
    """Never returns for a GRU; right otherwise."""
    if isinstance(module, torch.nn.GRU):
        import time

        while True:
            time.sleep(0.05)
    return module(input, hx)


def spins_on_gru(module, input, hx=None):
    """Never returns for a GRU, busy in pure Python (never sleeping); right otherwise."""
    if isinstance(module, torch.nn.GRU):
        count = 0
        while True:
            count += 1
    return module(input, hx)


def returns_nan(module, input, hx=None):
    """Right shapes and types, NaN values."""
    output, hidden = module(input, hx)
    data = output.data if isinstance(output, PackedSequence) else output
    data = torch.full_like(data, float("nan"))
    return (output._replace(data=data) if isinstance(output, PackedSequence) else data), hidden


def returns_a_tensor(module, input, hx=None):
    """Returns only the output, not (output, hidden)."""
    return module(input, hx)[0]


def returns_padded_for_packed(module, input, hx=None):
    """Returns a padded tensor where a PackedSequence is due."""
    output, hidden = module(input, hx)
    if isinstance(output, PackedSequence):
        output = torch.nn.utils.rnn.pad_packed_sequence(output)[0]
    return output, hidden


def returns_wrong_dtype(module, input, hx=None):
    output, hidden = module(input, hx)
    return (output.double() if not isinstance(output, PackedSequence) else output), hidden


def raises(module, input, hx=None):
    raise NotImplementedError("bidirectional stacks are not supported yet")


# -- candidates for campaigns: several faults, faults that need size, output -----------------


def two_faults(module, input, hx=None):
    """Two independent mistakes: the output's halves swapped for batch_first input, and h_n/c_n's
    two directions swapped when the stack has more than one layer."""
    output, hidden = module(input, hx)
    if module.batch_first and not isinstance(output, PackedSequence) and module.bidirectional:
        forward, reverse = output.chunk(2, dim=-1)
        output = torch.cat([reverse, forward], dim=-1)
    if module.num_layers > 1 and module.bidirectional:
        def swap(state):
            rows = state.unflatten(0, (module.num_layers, 2))
            return rows.flip(1).flatten(0, 1)
        hidden = _map_states(hidden, swap)
    return output, hidden


def two_final_state_faults(module, input, hx=None):
    """Two independent mistakes that both leave the final state wrong (one signature): the
    caller's h0/c0 dropped, and, with a bias, h_n's last row scaled."""
    output, hidden = module(input, None)  # the first: the given state is never passed on
    if module.bias:  # the second: whatever the state
        def scaled(state):
            state = state.clone()
            state[-1] *= 1.5
            return state
        hidden = (scaled(hidden[0]), hidden[1]) if isinstance(hidden, tuple) else scaled(hidden)
    return output, hidden


def wrong_on_a_non_contiguous_input(module, input, hx=None):
    """Right on contiguous input; a final state half again too large on a strided view (which a
    layout relation's transposed input is, and a contiguous case never)."""
    output, hidden = module(input, hx)
    if isinstance(input, torch.Tensor) and not input.is_contiguous():
        hidden = _map_states(hidden, lambda h: h * 1.5)
    return output, hidden


def scaled_and_wrong_on_a_non_contiguous_input(module, input, hx=None):
    """Two faults: every output 10% too large (which no relation sees: both sides are scaled), and
    a final state half again too large on a strided view (which only the layout relation sees)."""
    output, hidden = wrong_on_a_non_contiguous_input(module, input, hx)
    return output * 1.1, hidden


_FIRST_PID: list[int] = []


def hangs_in_a_forked_child(module, input, hx=None):
    """Drops the caller's h0/c0; and, like a runtime whose thread pools a fork does not copy, never
    returns in a child forked after its first call. It says so: ``fork_safe = False``."""
    import os
    import time

    if not _FIRST_PID:
        _FIRST_PID.append(os.getpid())
    elif os.getpid() != _FIRST_PID[0]:
        time.sleep(3600)
    return module(input)


hangs_in_a_forked_child.fork_safe = False


def segfaults_when_large(module, input, hx=None):
    """Kills its own process (as a segfault would) once hidden_size >= 4 and the sequence has 3
    or more steps; right on smaller cases."""
    steps = (input.batch_sizes.numel() if isinstance(input, PackedSequence)
             else input.shape[1 if module.batch_first and input.dim() == 3 else 0])
    if module.hidden_size >= 4 and steps >= 3:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
    return module(input, hx)


def chatty_and_swapped(module, input, hx=None):
    """Prints a line on every call (as some exporters print their graphs) and swaps the output's halves."""
    print(f"exporting graph for {type(module).__name__} with {module.num_layers} layer(s)")
    return output_directions_swapped(module, input, hx)


def swallows_the_time_limit_on_gru(module, input, hx=None):
    """Never returns for a GRU, and swallows every exception raised into it (the time limit's too),
    as a careless ``except BaseException`` or a destructor would; right otherwise."""
    if isinstance(module, torch.nn.GRU):
        import contextlib
        import time

        while True:
            with contextlib.suppress(BaseException):  # the point of this candidate
                time.sleep(0.05)
    return module(input, hx)


def slow_and_swapped(module, input, hx=None):
    """Output halves swapped once hidden_size >= 3, and a fifth of a second per call: shrinking it
    takes a while."""
    import time

    time.sleep(0.2)
    return output_directions_swapped(module, input, hx) if module.hidden_size >= 3 else module(input, hx)


def refuses_float16(module, input, hx=None):
    """Says float16 is unsupported (as a kernel without float16 would); right otherwise."""
    from fuzz_birnn import Unsupported

    data = input.data if isinstance(input, PackedSequence) else input
    if data.dtype == torch.float16:
        raise Unsupported("no float16 kernel")
    return module(input, hx)


# -- candidates that never return, in every way they can ---------------------------------------


def always_hangs(module, input, hx=None):
    """Never returns, for any case."""
    import time

    while True:
        time.sleep(0.05)


def exits_on_gru(module, input, hx=None):
    """Ends its process for a GRU (``os._exit``, no exception, no cleanup); right otherwise."""
    if isinstance(module, torch.nn.GRU):
        import os

        os._exit(3)
    return module(input, hx)


def kills_itself_on_gru(module, input, hx=None):
    """Sends itself SIGKILL for a GRU; right otherwise."""
    if isinstance(module, torch.nn.GRU):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    return module(input, hx)


def waits_for_a_thread_that_never_ends_on_gru(module, input, hx=None):
    """Computes in a thread that never ends, for a GRU, and waits for it; right otherwise."""
    if isinstance(module, torch.nn.GRU):
        import threading
        import time

        def forever():
            while True:
                time.sleep(0.05)

        worker = threading.Thread(target=forever, daemon=True)
        worker.start()
        worker.join()
    return module(input, hx)


def leaves_a_thread_running(module, input, hx=None):
    """Right, but leaves a thread behind on every call that never ends (and is not a daemon)."""
    import threading
    import time

    def forever():
        while True:
            time.sleep(1)

    threading.Thread(target=forever, daemon=False).start()
    return module(input, hx)


class _ShapeRaises:
    @property
    def shape(self):
        raise RuntimeError("no shape here")


def wrong_by_mode(module, input, hx=None):
    """A different wrong result for each mode: None, a generator, an output of the wrong rank, an
    object whose shape raises."""
    output, hidden = module(input, hx)
    mode = module.mode
    if mode == "RNN_TANH":
        return None
    if mode == "RNN_RELU":
        return (part for part in (output, hidden))
    if mode == "GRU":
        padded = torch.nn.utils.rnn.pad_packed_sequence(output)[0] if isinstance(output, PackedSequence) else output
        return padded.unsqueeze(0), hidden
    return _ShapeRaises(), hidden


def _logged(module, input, hx):
    """Append this call's shapes and its first weight to the file ``FUZZ_BIRNN_TEST_LOG`` names."""
    import json
    import os

    data = input.data if isinstance(input, PackedSequence) else input
    with open(os.environ["FUZZ_BIRNN_TEST_LOG"], "a") as log:
        log.write(json.dumps([list(data.shape), module.extra_repr(), float(module.weight_ih_l0.flatten()[0])]) + "\n")


def costly_per_shape(module, input, hx=None):
    """Right; its setup would be per shape, so it asks for four draws of values on each (and logs its calls)."""
    _logged(module, input, hx)
    return module(input, hx)


costly_per_shape.cases_per_shape = 4


def costly_per_shape_and_wrong_on_a_large_first_weight(module, input, hx=None):
    """Asks for four draws of values on each shape; its output is off by one where the first weight
    is above 0.9 of the largest weight's magnitude (a value-dependent bug: a case in twenty or so)."""
    output, hidden = module(input, hx)
    weights = torch.cat([p.detach().flatten() for p in module.parameters()])
    if weights[0] > 0.9 * weights.abs().max():
        data = (output.data if isinstance(output, PackedSequence) else output) + 1.0
        output = output._replace(data=data) if isinstance(output, PackedSequence) else data
    return output, hidden


costly_per_shape_and_wrong_on_a_large_first_weight.cases_per_shape = 4


_CALLS = [0]


def crashes_on_its_second_call(module, input, hx=None):
    """Dies of a segfault on the second case its process checks, whatever that case is: a fault
    one case leaves for the next (here a counter; in real code a corrupted heap)."""
    _CALLS[0] += 1
    if _CALLS[0] == 2:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
    return module(input, hx)


def wrong_at_the_baseline_level(module, input, hx=None):
    """Right where torch's kernels run at AVX2 or above, wrong at the baseline level (a kernel with
    a broken fallback path): only a search at ``--isa default`` can see it."""
    output, hidden = module(input, hx)
    if torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "NO AVX"):  # "NO AVX": torch before 2.5
        return output, _map_states(hidden, lambda h: h * 1.5)
    return output, hidden


# -- candidates a newcomer writes first ------------------------------------------------------------


def without_hx(module, input):
    """Leaves out the ``hx`` parameter: every call, which passes three arguments, raises TypeError."""
    return module(input)


def no_float16_kernel(module, input, hx=None):
    """Has no float16 kernel and says so the way code does, with numbers in its message; right otherwise."""
    data = input.data if isinstance(input, PackedSequence) else input
    if data.dtype == torch.float16:
        raise TypeError(f"kernel_v2 takes 3 dtypes but {data.dim() + 1} were given: float16 at index 0")
    return module(input, hx)


def drops_h0_with_layers(module, input, hx=None):
    """Drops the caller's h0/c0 with two layers or more; right with one."""
    return module(input, None if module.num_layers > 1 else hx)


def drops_h0_with_layers_and_dies_in_a_child(module, input, hx=None):
    """:func:`drops_h0_with_layers`, in a process that kills itself unless it is the one named by
    the environment's ``FUZZ_BIRNN_TEST_PID`` (a test's own: every forked child dies)."""
    import os
    import signal

    if str(os.getpid()) != os.environ.get("FUZZ_BIRNN_TEST_PID"):
        os.kill(os.getpid(), signal.SIGKILL)
    return drops_h0_with_layers(module, input, hx)
