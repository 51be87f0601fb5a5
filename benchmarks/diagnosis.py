"""How often diagnosis names the right mistake, a wrong one, or none, on bugs it was not written from.

The bugs here are switches in one port of the layers written for this benchmark alone: plain
tensor arithmetic, a time-step loop per layer and direction, the way someone porting
``nn.RNN``/``nn.GRU``/``nn.LSTM`` to another framework writes it. It shares no code with the
catalogue (:mod:`fuzz_birnn.diagnosis.mistakes`, built on the decomposition and the float64 reference) nor with
the tests' planted bugs. Some switches make a catalogued mistake (the expected name is given), the
others make mistakes the catalogue does not hold, for which the only right answer is "none".

For each bug the benchmark draws cases (Hypothesis, seeded) until it has ``N`` on which the port
fails, diagnoses each (confirming on more cases, as reports do), and also diagnoses the case
Hypothesis shrinks to, which is what a report holds. It prints, per bug, how many were named
right, named wrong (a name, but not the expected one; for an uncatalogued bug, any name), or named
nothing.

Usage: ``python benchmarks/diagnosis.py [N] [--no-confirm]`` (default 20; ``--no-confirm``
diagnoses from the one case alone, to show what the confirmation on more cases is worth).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import torch
from hypothesis import HealthCheck, Phase, find, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz_birnn import CheckFailure, check
from fuzz_birnn.diagnosis.diagnose import diagnose
from fuzz_birnn.strategies import cases

#: switch -> (the catalogue's name for it, or None when it is not catalogued; the modes it can show in)
BUGS: dict[str, tuple[str | tuple[str, ...] | None, list[str]]] = {
    "no-re-reverse": ("seed-missing-re-reversal", ["RNN_TANH", "GRU", "LSTM"]),
    "h0-direction-major": ("h0-rows-direction-major", ["RNN_TANH", "GRU", "LSTM"]),
    "output-swapped": ("output-halves-swapped", ["RNN_TANH", "GRU", "LSTM"]),
    "next-layer-swapped": ("next-layer-halves-swapped", ["RNN_TANH", "GRU", "LSTM"]),
    "h_n-direction-major": ("h_n-rows-direction-major", ["RNN_TANH", "GRU", "LSTM"]),
    "reverse-in-forward-time": ("reverse-runs-forward", ["RNN_TANH", "GRU", "LSTM"]),
    "h0-ignored": ("initial-state-ignored", ["RNN_TANH", "GRU", "LSTM"]),
    "reverse-with-forward-weights": ("reverse-uses-forward-weights", ["RNN_TANH", "GRU", "LSTM"]),
    "lstm-tensorflow-gates": ("lstm-gates-tensorflow-order", ["LSTM"]),
    "gru-z-first": ("gru-gates-onnx-order", ["GRU"]),
    "relu-for-tanh": ("tanh-relu-confused", ["RNN_TANH"]),
    # not in the catalogue: "none" is the only right answer
    "reverse-one-step-late": (None, ["RNN_TANH", "GRU", "LSTM"]),
    # h0 given to the first layer only: not in the first catalogue, a place of "h0-ignored" since
    # the catalogue has places (named by its first wording: at two layers, the last layer)
    "h0-for-layer-0-only": (("h0-ignored@every-layer-but-first", "h0-ignored@last-layer"), ["RNN_TANH", "GRU"]),
    "h0-for-layer-0-only (LSTM)": (("h0-ignored[h]@every-layer-but-first", "h0-ignored[h]@last-layer"), ["LSTM"]),
    "hidden-bias-twice": (None, ["RNN_TANH", "GRU", "LSTM"]),
    "last-h_n-copied-from-layer-0": (None, ["RNN_TANH", "GRU", "LSTM"]),
    "lstm-forget-bias-plus-one": (None, ["LSTM"]),
    "gru-new-gate-reset-by-z": (None, ["GRU"]),
    "sigmoid-for-tanh": (None, ["RNN_TANH"]),
}


def port(bug: str):
    """A time-step-loop port of ``module(input, hx)`` (padded input), with one switch turned on."""
    def candidate(module, input, hx=None):
        mode = type(module).__name__
        x = input.transpose(0, 1) if module.batch_first else input
        steps, batch = x.shape[:2]
        layers, directions, size = module.num_layers, 2 if module.bidirectional else 1, module.hidden_size
        lstm = mode == "LSTM"
        if hx is None or bug == "h0-ignored":
            h0 = x.new_zeros(layers * directions, batch, size)
            c0 = x.new_zeros(layers * directions, batch, size) if lstm else None
        else:
            h0, c0 = hx if lstm else (hx, None)
        h_n, c_n = torch.empty_like(h0), None if c0 is None else torch.empty_like(c0)
        layer_input = x
        for layer in range(layers):
            outputs = []
            for direction in range(directions):
                row = direction * layers + layer if bug == "h0-direction-major" else layer * directions + direction
                h = h0[row] if not (bug == "h0-for-layer-0-only" and layer > 0) else torch.zeros_like(h0[row])
                c = None if c0 is None else c0[row]
                own = "_reverse" if direction and bug != "reverse-with-forward-weights" else ""
                weights = [getattr(module, f"{name}_l{layer}{own}", None)
                           for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                backwards = direction == 1 and bug != "reverse-in-forward-time"
                sequence = layer_input.flip(0) if backwards else layer_input
                ys = []
                for t in range(steps):
                    h, c = step(mode, module, bug, sequence[t], h, c, *weights)
                    ys.append(h)
                y = torch.stack(ys)
                last = layer == layers - 1
                if backwards and not (bug == "no-re-reverse" and not last):
                    y = y.flip(0)
                if bug == "reverse-one-step-late" and direction == 1:
                    y = torch.cat([y[:1], y[:-1]])
                outputs.append(y)
                written = direction * layers + layer if bug == "h_n-direction-major" else layer * directions + direction
                h_n[written] = h
                if c_n is not None:
                    c_n[written] = c
            swap = (bug == "next-layer-swapped" and layer < layers - 1) or (bug == "output-swapped" and
                                                                             layer == layers - 1)
            layer_input = torch.cat(outputs[::-1] if swap else outputs, dim=-1)
        if bug == "last-h_n-copied-from-layer-0" and layers > 1:
            h_n[-directions:] = h_n[:directions]
        output = layer_input.transpose(0, 1) if module.batch_first else layer_input
        return output, ((h_n, c_n) if lstm else h_n)
    return candidate


def step(mode, module, bug, x, h, c, w_ih, w_hh, b_ih, b_hh):
    gi = x @ w_ih.T + (b_ih if b_ih is not None else 0)
    gh = h @ w_hh.T + (b_hh if b_hh is not None else 0)
    if bug == "hidden-bias-twice" and b_hh is not None:
        gh = gh + b_hh
    if mode == "RNN":
        act = {"tanh": torch.tanh, "relu": torch.relu}[module.nonlinearity]
        if module.nonlinearity == "tanh" and bug == "relu-for-tanh":
            act = torch.relu
        if module.nonlinearity == "tanh" and bug == "sigmoid-for-tanh":
            act = torch.sigmoid
        return act(gi + gh), None
    if mode == "GRU":
        (a_r, a_z, a_n), (b_r, b_z, b_n) = gi.chunk(3, -1), gh.chunk(3, -1)
        if bug == "gru-z-first":
            a_r, a_z, b_r, b_z = a_z, a_r, b_z, b_r
        r, z = torch.sigmoid(a_r + b_r), torch.sigmoid(a_z + b_z)
        n = torch.tanh(a_n + (z if bug == "gru-new-gate-reset-by-z" else r) * b_n)
        return (1 - z) * n + z * h, None
    gates = gi + gh
    i, f, g, o = gates.chunk(4, -1)
    if bug == "lstm-tensorflow-gates":
        i, g, f, o = gates.chunk(4, -1)
    if bug == "lstm-forget-bias-plus-one":
        f = f + 1.0
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def verdict(names: tuple[str, ...], expected: str | tuple[str, ...] | None) -> str:
    """``expected`` is the name, or the names of which any is right (one place, worded per depth)."""
    if not names:
        return "none"
    if expected is None:
        return "wrong"
    return "right" if set(names) & ({expected} if isinstance(expected, str) else set(expected)) else "wrong"


def measure(bug: str, expected: str | None, modes: list[str], wanted: int,
            confirm: bool = True) -> tuple[dict[str, int], str]:
    """Verdicts on ``wanted`` failing drawn cases, and on the shrunk case."""
    candidate = port(bug.removesuffix(" (LSTM)"))
    confirming = candidate if confirm else None
    strategy = cases(modes=modes, forms=["padded"], proj=False, dtypes=["float64", "float32"],
                     initial_state=True if "h0" in bug else None, min_layers=2 if "layer" in bug else 1)
    counts = {"right": 0, "wrong": 0, "none": 0}

    def failure_of(case):
        try:
            check(candidate, case)
        except CheckFailure as failure:
            return failure if failure.actual is not None else None
        return None

    @settings(max_examples=3000, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @seed(0)
    @given(strategy)
    def draw(case):
        failure = None if sum(counts.values()) >= wanted else failure_of(case)
        if failure is not None:
            names = diagnose(case, failure.actual, failure.allowed, confirming).names
            counts[verdict(names, expected)] += 1

    draw()
    shrunk = find(strategy, lambda case: failure_of(case) is not None,
                  settings=settings(max_examples=3000, database=None, deadline=None,
                                    suppress_health_check=list(HealthCheck)))
    failure = failure_of(shrunk)
    assert failure is not None
    names = diagnose(shrunk, failure.actual, failure.allowed, confirming).names
    return counts, verdict(names, expected)


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    numbers = [a for a in sys.argv[1:] if a.isdigit()]
    wanted = int(numbers[0]) if numbers else 20
    confirm = "--no-confirm" not in sys.argv
    print(f"torch {torch.__version__}; {wanted} failing drawn cases per bug, and the shrunk one; "
          f"{'confirmed on more cases' if confirm else 'from the one case alone'}")
    print(f"{'bug':<30} {'catalogued as':<28} {'right':>5} {'wrong':>5} {'none':>5}   shrunk   seconds")
    totals = {True: {"right": 0, "wrong": 0, "none": 0}, False: {"right": 0, "wrong": 0, "none": 0}}
    for bug, (expected, modes) in BUGS.items():
        started = time.monotonic()
        counts, shrunk_verdict = measure(bug, expected, modes, wanted, confirm)
        for key, n in counts.items():
            totals[expected is not None][key] += n
        named = " or ".join(expected) if isinstance(expected, tuple) else expected
        print(f"{bug:<30} {named or '(not catalogued)':<28} {counts['right']:>5} {counts['wrong']:>5} "
              f"{counts['none']:>5}   {shrunk_verdict:<7} {time.monotonic() - started:7.1f}", flush=True)
    for catalogued, t in totals.items():
        n = sum(t.values()) or 1
        label = "catalogued bugs" if catalogued else "uncatalogued bugs"
        print(f"{label}: named right {t['right']}/{n} ({100 * t['right'] / n:.0f}%), named wrong {t['wrong']}/{n} "
              f"({100 * t['wrong'] / n:.0f}%), none {t['none']}/{n} ({100 * t['none'] / n:.0f}%)")


if __name__ == "__main__":
    main()
