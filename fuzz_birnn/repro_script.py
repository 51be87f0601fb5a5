#!/usr/bin/env python
"""Reproduce one fuzz-birnn report: run its candidate on its exact case, compare, exit 1 while it fails.

Written beside ``case.json`` and ``tensors.pt`` by ``fuzz-birnn``. It needs only torch and the
candidate's own import (run it from the directory the candidate imports from); it never executes
anything read from the report: the candidate name is checked to be ``MODULE:ATTR`` and the
tensors load with ``weights_only=True``.

Exit status: 0 when the candidate now agrees with the stored float64 reference within the stored
tolerance, 1 while it does not, 2 when the report cannot be read or the candidate not imported.
"""

import importlib
import json
import os
import re
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without NumPy says so
import torch  # noqa: E402
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence  # noqa: E402

HERE = Path(__file__).resolve().parent
BUILTIN = {"decomposed": "fuzz_birnn.decomposition:decomposed", "reference": "fuzz_birnn.reference:reference"}
SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def fail(message):
    print(f"repro: {message}", file=sys.stderr)
    sys.exit(2)


def load_candidate(spec):
    if spec == "fused":
        return lambda module, input, hx=None: module(input, hx)
    spec = BUILTIN.get(spec, spec)
    if not isinstance(spec, str) or not SPEC.match(spec):
        fail(f"candidate {spec!r} is not MODULE:ATTR")
    module_name, attrs = spec.split(":")
    sys.path.insert(0, os.getcwd())
    try:
        target = importlib.import_module(module_name)
        for attr in attrs.split("."):
            target = getattr(target, attr)
    except Exception as error:
        fail(f"cannot import candidate {spec}: {type(error).__name__}: {error}")
    return target


def build(config, inputs, tensors):
    """The module and the exact call arguments stored in the report."""
    kind = {"RNN_TANH": torch.nn.RNN, "RNN_RELU": torch.nn.RNN, "GRU": torch.nn.GRU, "LSTM": torch.nn.LSTM}
    kwargs = {k: config[k] for k in ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                                      "bidirectional", "dropout")}
    if config["mode"] == "LSTM":
        kwargs["proj_size"] = config["proj_size"]
    if config["mode"].startswith("RNN"):
        kwargs["nonlinearity"] = config["mode"][4:].lower()
    device = torch.device(inputs["device"])
    module = kind[config["mode"]](**kwargs, dtype=getattr(torch, inputs["dtype"]), device=device)
    module.load_state_dict(tensors["parameters"])
    module.eval()

    def placed(tensor):
        tensor = tensor.to(device)
        if inputs["contiguous"]:
            return tensor
        doubled = torch.zeros(*tensor.shape[:-1], 2 * tensor.shape[-1], dtype=tensor.dtype, device=device)
        doubled[..., ::2] = tensor
        return doubled[..., ::2]

    x = placed(tensors["input"])
    if inputs["packed"]:
        x = pack_padded_sequence(x, tensors["lengths"], batch_first=config["batch_first"],
                                 enforce_sorted=inputs["enforce_sorted"])
    hx = None
    if "h0" in tensors:
        hx = placed(tensors["h0"]) if "c0" not in tensors else (placed(tensors["h0"]), placed(tensors["c0"]))
    return module, x, hx


def canonical(result, config, inputs):
    """output as (T, B, D, F), h_n/c_n as (L, D, B, F), float64 on the CPU."""
    output, hidden = result
    if isinstance(output, PackedSequence):
        output, _ = pad_packed_sequence(output)
    elif inputs["unbatched"]:
        output = output.unsqueeze(1)
    elif config["batch_first"]:
        output = output.transpose(0, 1)
    directions = 2 if config["bidirectional"] else 1
    tensors = {"output": output.unflatten(-1, (directions, -1))}
    for name, state in zip(("h_n", "c_n"), hidden if isinstance(hidden, tuple) else (hidden,), strict=False):
        state = state.unsqueeze(1) if inputs["unbatched"] else state
        tensors[name] = state.unflatten(0, (config["num_layers"], directions))
    return {name: t.detach().to("cpu", torch.float64) for name, t in tensors.items()}


def replay_with_fuzz_birnn(report):
    """Properties other than plain agreement (relations, gradients, backends, invalid calls)
    need fuzz-birnn's own machinery to re-run."""
    try:
        from fuzz_birnn.cli import main as fuzz_birnn
    except ImportError:
        fail(f"property {report['property']!r} replays with fuzz-birnn installed: pip install fuzz-birnn")
    return fuzz_birnn(["replay", str(HERE)])


def main():
    try:
        report = json.loads((HERE / "case.json").read_text())
        if report.get("property") not in ("agreement", "fused-vs-reference"):
            return replay_with_fuzz_birnn(report)
        config, inputs = report["case"]["config"], report["case"]["inputs"]
        tolerances = report["tolerances"]
        tensors = torch.load(HERE / "tensors.pt", weights_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        fail(f"cannot read the report in {HERE}: {type(error).__name__}: {error}")
    candidate = load_candidate(report["candidate"])
    module, x, hx = build(config, inputs, tensors)
    print(f"torch {torch.__version__}; candidate {report['candidate']}; {report.get('summary', '')}")
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = inputs["onednn"] if inputs["device"] == "cpu" else previous
    try:
        with torch.no_grad():
            result = candidate(module, x, hx)
        actual = canonical(result, config, inputs)
    except Exception as error:
        print(f"STILL FAILS: the candidate raised or returned the wrong structure: {type(error).__name__}: {error}")
        return 1
    finally:
        torch.backends.mkldnn.enabled = previous
    failed = False
    for name, expected in tensors["expected"].items():
        got = actual.get(name)
        if got is None or got.shape != expected.shape:
            print(f"STILL FAILS: {name}.shape={None if got is None else tuple(got.shape)}, "
                  f"but should be {tuple(expected.shape)} (canonical layout)")
            failed = True
            continue
        error = (got - expected).abs().nan_to_num(nan=float("inf"))
        worst = float(error.max()) if error.numel() else 0.0
        if worst > tolerances[name]:
            print(f"STILL FAILS: {name} max abs error {worst:.3g} > tolerance {tolerances[name]:.3g}")
            failed = True
        else:
            print(f"ok: {name} max abs error {worst:.3g} <= tolerance {tolerances[name]:.3g}")
    print("STILL FAILS" if failed else "FIXED: the candidate agrees with the reference on this case")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
