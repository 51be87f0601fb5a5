"""Built-in targets: implementations of these layers that nobody on this project wrote, checked
as candidates (``fuzz-birnn run --candidate NAME``).

Each sits behind an optional extra and is imported only when named; a missing package is one
line naming the install command. See each module for what it runs and which of the target's
refusals it reports as :class:`~fuzz_birnn.Unsupported`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["TARGETS", "Target", "TargetUnavailable", "load_target"]


@dataclass(frozen=True)
class Target:
    module: str
    attr: str
    needs: tuple[str, ...]
    extra: str
    timeout: float
    about: str


TARGETS: dict[str, Target] = {
    "torch-export": Target("torch_export", "torch_export", (), "", 300,
                           "torch.export + run_decompositions(), run as the exported program"),
    "torch-export-dynamic": Target("torch_export", "torch_export_dynamic", (), "", 300,
                                   "torch.export with the batch size (and sequence length) as Dims, one export "
                                   "per configuration"),
    "onnxruntime": Target("onnxruntime", "onnxruntime", ("onnx", "onnxscript", "onnxruntime"), "onnx", 300,
                          "torch.onnx.export (the default exporter) run on ONNX Runtime's CPU provider"),
    "onnxruntime-torchscript": Target("onnxruntime", "onnxruntime_torchscript", ("onnx", "onnxruntime"), "onnx", 300,
                                      "torch.onnx.export(dynamo=False) run on ONNX Runtime's CPU provider"),
    "onnx-reference": Target("onnx_reference", "onnx_reference", ("onnx", "onnxscript"), "onnx", 300,
                             "torch.onnx.export run by onnx.reference.ReferenceEvaluator"),
    "openvino": Target("openvino_cpu", "openvino", ("openvino",), "openvino", 300,
                       "openvino.convert_model run on OpenVINO's CPU plugin, INFERENCE_PRECISION_HINT=f32; "
                       "float64 held to float32 (documented)"),
    "openvino-default": Target("openvino_cpu", "openvino_default", ("openvino",), "openvino", 300,
                               "the same at the plugin's default settings: held to the precision it infers "
                               "float32 in here (bfloat16 on CPUs with it)"),
    "quantizable-lstm": Target("quantizable", "quantizable_lstm", (), "", 60,
                               "torch.ao.nn.quantizable.LSTM.from_float, the module quantization swaps in"),
    "torch-compile": Target("torch_compile", "torch_compile", (), "", 600,
                            "torch.compile (inductor, CPU); opt-in and slow"),
}


class TargetUnavailable(ImportError):
    """A target whose packages are not installed: the message names the install command."""


def load_target(name: str) -> Callable[..., Any]:
    target = TARGETS[name]
    missing = [package for package in target.needs if importlib.util.find_spec(package) is None]
    if missing:
        raise TargetUnavailable(f"candidate {name} needs {', '.join(missing)}: "
                                f"pip install 'fuzz-birnn[{target.extra}]'")
    module = importlib.import_module(f"{__name__}.{target.module}")
    return getattr(module, target.attr)
