#!/usr/bin/env python
"""Reproduce one fuzz-birnn report: run its candidate on its exact case, compare, exit 1 while it fails.

Written beside ``case.json``, ``tensors.safetensors``, ``report_files.py`` and ``calls.py``
(fuzz-birnn's own code for reading a report and for checking a call: copies of
``fuzz_birnn/portable/``) by ``fuzz-birnn``.
It needs only torch and the candidate's own import (run it from the directory the candidate
imports from), and checks the way the library does: the result's structure against torch's own
result on this machine, then its values against the stored float64 reference. Nothing read from
the report is unpickled or executed unchecked: the files are bounded and validated, a case
beyond the size limits is refused (``--allow-large`` lifts them), and the candidate is imported
only from inside the current project unless you name it yourself (``--candidate MODULE:ATTR``,
also to try your own fix).

Usage: ``python repro.py [--candidate MODULE:ATTR] [--allow-large]``. Exit status: 0 when the
candidate now agrees with the stored float64 reference within the stored tolerance, 1 while it
does not, 2 when the report cannot be read, is refused, or the candidate cannot be imported.
"""

import argparse
import importlib
import os
import sys
import traceback
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without NumPy says so
import torch  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from calls import cpu_backend, max_abs_difference, module_for, per_direction, placed, structure_problem  # noqa: E402
from report_files import (  # noqa: E402
    ISA_CAPS,
    ReportRefused,
    candidate_origin,
    check_limits,
    device_available,
    load_tensors,
    read_json,
    tensor_file_limit,
)

BUILTIN = {"decomposed": "fuzz_birnn.core.decomposition:decomposed", "cells": "fuzz_birnn.core.cells:cells",
           "reference": "fuzz_birnn.core.reference:reference"}


def fail(message):
    print(f"repro: {message}", file=sys.stderr)
    sys.exit(2)


def load_candidate(spec, named_by_user):
    if spec == "fused":
        return lambda module, input, hx=None: module(input, hx)
    spec = BUILTIN.get(spec, spec)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        where = candidate_origin(spec, Path.cwd(), named_by_user=named_by_user or spec in BUILTIN.values())
    except ReportRefused as error:
        fail(str(error))
    print(f"importing candidate {spec} from {where}")
    module_name, attrs = spec.split(":")
    try:
        target = importlib.import_module(module_name)
        for attr in attrs.split("."):
            target = getattr(target, attr)
    except Exception as error:
        fail(f"cannot import candidate {spec}: {type(error).__name__}: {error}")
    return target


def build(config, inputs, tensors):
    """The module and the exact call arguments stored in the report."""
    device = torch.device(inputs["device"])
    module = module_for(config, getattr(torch, inputs["dtype"])).to(device)
    module.load_state_dict(tensors_under(tensors, "parameters"))
    module.eval()
    x = placed(tensors["input"], device, inputs["contiguous"])
    if inputs["packed"]:
        x = pack_padded_sequence(x, tensors["lengths"], batch_first=config["batch_first"],
                                 enforce_sorted=inputs["enforce_sorted"])
    hx = None
    if "h0" in tensors:
        h0 = placed(tensors["h0"], device, inputs["contiguous"])
        hx = h0 if "c0" not in tensors else (h0, placed(tensors["c0"], device, inputs["contiguous"]))
    return module, x, hx


def replay_with_fuzz_birnn(report, args):
    """Properties other than plain agreement (relations, gradients, backends, invalid calls)
    need fuzz-birnn's own machinery to re-run."""
    try:
        from fuzz_birnn.cli import main as fuzz_birnn
    except ImportError:
        fail(f"property {report.get('property')!r} replays with fuzz-birnn installed: pip install fuzz-birnn")
    extra = ["--candidate", args.candidate] if args.candidate else []
    extra += ["--allow-large"] if args.allow_large else []
    return fuzz_birnn(["replay", *extra, str(HERE)])


def main():
    parser = argparse.ArgumentParser(description="Reproduce this fuzz-birnn report.")
    parser.add_argument("--candidate", metavar="MODULE:ATTR", help="check this candidate instead of the report's")
    parser.add_argument("--allow-large", action="store_true", help="lift the size limits on the case")
    args = parser.parse_args()
    try:
        report = read_json(HERE / "case.json")
        if not isinstance(report, dict) or not isinstance(report.get("case"), dict):
            raise ReportRefused("case.json: not a fuzz-birnn report")
        details = report.get("details")
        level = details.get("isa") if isinstance(details, dict) else None
        if level is not None:
            at_level = under_level(level)
            if at_level is not None:
                return at_level
        if report.get("property") not in ("agreement", "fused-vs-reference"):
            return replay_with_fuzz_birnn(report, args)
        config, inputs = report["case"]["config"], report["case"]["inputs"]
        tolerances = report["tolerances"]
        if not args.allow_large:
            check_limits(config, inputs)
        if not device_available(inputs["device"]):
            raise ReportRefused(f"the case runs on {inputs['device']}, which this machine does not have")
        tensors = load_tensors(HERE / "tensors.safetensors", max_bytes=tensor_file_limit(config, inputs))
    except ReportRefused as error:
        fail(str(error))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        fail(f"cannot read the report in {HERE}: {type(error).__name__}: {error}")
    candidate = load_candidate(args.candidate or report["candidate"], named_by_user=args.candidate is not None)
    try:
        module, x, hx = build(config, inputs, tensors)
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        fail(f"the report's tensors do not fit its case: {type(error).__name__}: {error}")
    print(f"torch {torch.__version__}; candidate {args.candidate or report['candidate']}; {report.get('summary', '')}")
    with cpu_backend(inputs["device"], inputs["onednn"]), torch.no_grad():
        try:
            expected_structure = module(x, hx)  # torch's own result on this machine: the structure to match
        except Exception as error:
            print(f"STILL FAILS: torch's fused module raised {type(error).__name__}: {error}".splitlines()[0])
            return 1
        try:
            result = candidate(module, x, hx)
        except Exception as error:
            print(f"STILL FAILS: the candidate raised {type(error).__name__}: {error}".splitlines()[0])
            traceback.print_exc(file=sys.stdout)  # where, in the candidate's own code
            return 1
    problem = structure_problem(result, expected_structure)
    if problem is not None:
        print(f"STILL FAILS: {problem[1]}")
        return 1
    actual = per_direction(result, num_layers=config["num_layers"], bidirectional=config["bidirectional"],
                           batch_first=config["batch_first"], unbatched=inputs["unbatched"])
    failed = False
    for name, expected in tensors_under(tensors, "expected").items():
        got = actual[name].detach().to("cpu", torch.float64)
        worst = max_abs_difference(got, expected)
        if worst > tolerances[name]:
            print(f"STILL FAILS: {name} max abs error {worst:.3g} > tolerance {tolerances[name]:.3g}")
            failed = True
        else:
            print(f"ok: {name} max abs error {worst:.3g} <= tolerance {tolerances[name]:.3g}")
    print("STILL FAILS" if failed else "FIXED: the candidate agrees with the reference on this case")
    return 1 if failed else 0


def under_level(level):
    """A case found at an instruction-set level replays there: this script again, in a process
    started with the level's caps (``None`` once in it); one line where this CPU cannot reach it."""
    if level not in ISA_CAPS:
        raise ReportRefused(f"case.json: unknown instruction-set level {level!r}")
    capability = str(torch.backends.cpu.get_cpu_capability()).lower().replace("no avx", "default")
    if os.environ.get("FUZZ_BIRNN_REPRO_LEVEL") == level:
        if capability != level:
            fail(f"the case ran at instruction-set level {level}; this CPU runs at {capability} at most: "
                 f"reproduce it on a CPU that reaches {level}")
        return None
    caps = ISA_CAPS[level]
    print(f"re-running in a process started at instruction-set level {level}: "
          + " ".join(f"{name}={value}" for name, value in caps.items()))
    import subprocess

    return subprocess.run([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]],
                          env={**os.environ, **caps, "FUZZ_BIRNN_REPRO_LEVEL": level}).returncode


def tensors_under(tensors, prefix):
    """``{name: tensor}`` of the stored tensors named ``prefix/name``."""
    return {key.split("/", 1)[1]: value for key, value in tensors.items() if key.startswith(prefix + "/")}


if __name__ == "__main__":
    sys.exit(main())
