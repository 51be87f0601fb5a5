"""Reading a report safely: the torch-only pieces that ``fuzz-birnn`` and a report's ``repro.py`` share.

Reports travel (bug trackers, CI artifacts), so whatever reads one treats it as hostile until
checked. This module needs nothing but the standard library and torch: the report writer copies
it beside ``repro.py``, and the library imports the same file, so the two can never drift.

* **Files**: ``case.json`` is at most :data:`MAX_JSON_BYTES`, UTF-8, nested at most
  :data:`MAX_JSON_DEPTH` deep, without duplicate keys (:func:`read_json`). Tensors are stored in
  the `safetensors <https://github.com/huggingface/safetensors>`_ layout (an 8-byte header size,
  a JSON header, raw little-endian data), read here with plain torch and checked field by field
  (:func:`load_tensors`): nothing from a report is ever unpickled.
* **Cost**: a case states its cost before anything is allocated (:func:`case_cost`); beyond
  :data:`LIMITS` it is refused (:func:`check_limits`), unless the user says ``--allow-large``.
* **Whose code runs**: a report names a candidate as ``MODULE:ATTR``. It is imported only if its
  top-level package lives inside the current project (the working directory), or the user named
  it themselves (:func:`candidate_origin`). Finding where a module lives imports nothing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import math
import re
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["CANDIDATE_SPEC", "ISA_CAPS", "LIMITS", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "ReportRefused",
           "candidate_origin", "case_cost", "check_limits", "device_available", "load_tensors", "read_json",
           "save_tensors", "tensor_file_limit"]

#: Instruction-set level -> the environment that caps torch's kernels (ATen) and oneDNN at it, read
#: once when torch loads (:mod:`fuzz_birnn.core.isa`); a report found at a level replays under it.
ISA_CAPS = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "DNNL_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "DNNL_MAX_CPU_ISA": "SSE41"},
}

#: The largest case a report may describe without ``--allow-large``: far above what the
#: strategies draw (sizes 8, 4 layers), generous for real layers, and small enough that the
#: checks of one case fit in a few GiB and a few seconds.
LIMITS = {
    "input_size": 4096,
    "hidden_size": 4096,
    "num_layers": 64,
    "seq_len": 100_000,
    "batch_size": 65_536,
    # weights, input, initial and final states and output, counted once each
    "elements": 1 << 26,
    # multiply-adds of one forward pass
    "multiply_adds": 1 << 32,
}
MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
#: ``tensors.safetensors`` may hold this many bytes per element the case's cost allows, plus slack.
_TENSOR_FILE_SLACK = 1 << 16

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16,
           "I64": torch.int64}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
#: ``MODULE:ATTR``, how a report (and the command line) names a candidate.
CANDIDATE_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class ReportRefused(ValueError):
    """A report (or a part of one) that is not read: the message says why, in one line."""


# -- files ---------------------------------------------------------------------------------------


def read_json(path: Path, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``path`` as JSON, refusing what is too large, too deep, not UTF-8, or has duplicate keys."""
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as error:
        raise ReportRefused(f"{path}: cannot read it ({error.strerror or error})") from None
    if len(data) > max_bytes:
        raise ReportRefused(f"{path}: larger than {max_bytes} bytes; a report's case.json is a few kB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ReportRefused(f"{path}: not UTF-8 (byte {error.start})") from None
    depth = _depth(text)
    if depth > max_depth:
        raise ReportRefused(f"{path}: nested {depth} deep; at most {max_depth} is read")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise ReportRefused(f"{path}: not valid JSON (truncated?): {error}") from None
    except ValueError as error:
        raise ReportRefused(f"{path}: {error}") from None


def _depth(text: str) -> int:
    """How deeply brackets nest outside strings (linear, no recursion)."""
    deepest = depth = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate key(s) {', '.join(map(repr, duplicates))}")
    return dict(pairs)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write ``tensors`` (names to CPU tensors) in the safetensors layout."""
    header: dict[str, Any] = {}
    blobs = []
    offset = 0
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        raw = _bytes(tensor)
        header[name] = {"dtype": _NAMES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(encoded)))
        file.write(encoded)
        for raw in blobs:
            file.write(raw)


def load_tensors(path: Path, *, max_bytes: int) -> dict[str, torch.Tensor]:
    """Read a safetensors file of at most ``max_bytes``, checking every field before using it."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ReportRefused(f"{path}: {size} bytes, more than the {max_bytes} its case can need")
        data = path.read_bytes()
    except OSError as error:
        raise ReportRefused(f"{path}: cannot read it ({error.strerror or error})") from None
    if len(data) < 8:
        raise ReportRefused(f"{path}: truncated (no header)")
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > min(len(data) - 8, MAX_JSON_BYTES):
        raise ReportRefused(f"{path}: damaged (header of {header_size} bytes in a file of {len(data)})")
    try:
        text = data[8:8 + header_size].decode("utf-8")
        if _depth(text) > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH}")
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as error:
        raise ReportRefused(f"{path}: damaged header ({error})") from None
    if not isinstance(header, dict):
        raise ReportRefused(f"{path}: damaged header (not an object)")
    body = memoryview(data)[8 + header_size:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = _tensor(path, name, entry, body)
    return tensors


def _tensor(path: Path, name: str, entry: Any, body: memoryview) -> torch.Tensor:
    def bad(what: str) -> ReportRefused:
        return ReportRefused(f"{path}: tensor {name!r} is damaged ({what})")

    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise bad("its entry needs exactly dtype, shape and data_offsets")
    dtype = _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    shape, offsets = entry["shape"], entry["data_offsets"]
    if dtype is None:
        raise bad(f"dtype {entry['dtype']!r} is not one of {', '.join(_DTYPES)}")
    if not isinstance(shape, list) or not all(_natural(n) for n in shape) or len(shape) > 8:
        raise bad(f"shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_natural(n) for n in offsets)
            or not offsets[0] <= offsets[1] <= len(body)):
        raise bad(f"data_offsets {offsets!r} outside the {len(body)} bytes of data")
    itemsize = torch.empty((), dtype=dtype).element_size()
    if offsets[1] - offsets[0] != math.prod(shape) * itemsize:
        raise bad(f"{offsets[1] - offsets[0]} bytes for shape {shape} of {entry['dtype']}")
    raw = bytearray(body[offsets[0]:offsets[1]])
    if not raw:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(shape).clone()


def _bytes(tensor: torch.Tensor) -> bytes:
    """The tensor's elements as raw bytes (machine order; little-endian on every platform torch ships for)."""
    raw = tensor.clone().reshape(-1).view(torch.uint8)
    if not raw.numel():
        return b""
    try:
        return bytes(raw.untyped_storage())
    except TypeError:  # a storage without the buffer protocol
        return bytes(raw.tolist())


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 62


# -- cost ----------------------------------------------------------------------------------------


def case_cost(config: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, int]:
    """What a case would allocate and compute, from its (already type-checked) fields."""
    gates = _GATES[config["mode"]]
    hidden, layers = config["hidden_size"], config["num_layers"]
    projected = config.get("proj_size") or 0
    out = projected or hidden
    directions = 2 if config["bidirectional"] else 1
    steps = inputs["seq_len"]
    batch = 1 if inputs.get("unbatched") else inputs["batch_size"]
    weights = work = 0
    for layer in range(layers):
        features = config["input_size"] if layer == 0 else directions * out
        per_direction = gates * hidden * (features + out) + (2 * gates * hidden if config["bias"] else 0) \
            + projected * hidden
        weights += directions * per_direction
        work += directions * steps * batch * (gates * hidden * (features + out) + projected * hidden)
    states = layers * directions * batch * (out + (hidden if config["mode"] == "LSTM" else 0))
    elements = weights + steps * batch * config["input_size"] + 2 * states + steps * batch * directions * out
    return {"elements": elements, "multiply_adds": work}


def check_limits(config: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
    """Refuse a case beyond :data:`LIMITS`, naming the field and the limit."""
    fields = {**config, **inputs}
    for name in ("input_size", "hidden_size", "num_layers", "seq_len", "batch_size"):
        value = fields.get(name)
        if isinstance(value, int) and value > LIMITS[name]:
            raise ReportRefused(f"{name}={value} is beyond the limit of {LIMITS[name]} "
                                "(--allow-large lifts the limits)")
    for name, value in case_cost(config, inputs).items():
        if value > LIMITS[name]:
            raise ReportRefused(f"the case needs {value:,} {name.replace('_', '-')}, beyond the limit of "
                                f"{LIMITS[name]:,} (--allow-large lifts the limits)")


def tensor_file_limit(config: Mapping[str, Any], inputs: Mapping[str, Any]) -> int:
    """The most bytes a report's tensor file may hold for this case (8 bytes an element, x4)."""
    return 4 * 8 * case_cost(config, inputs)["elements"] + _TENSOR_FILE_SLACK


# -- devices -------------------------------------------------------------------------------------


def device_available(device: str) -> bool:
    """Whether ``cpu``, ``cuda[:N]`` or ``mps`` exists on this machine (``cuda:7`` needs 8 GPUs)."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return not index
    if kind == "cuda":
        return torch.cuda.is_available() and (not index or (index.isdigit() and int(index) < torch.cuda.device_count()))
    mps = getattr(torch.backends, "mps", None)
    return kind == "mps" and not index and mps is not None and mps.is_available()


# -- whose code runs -----------------------------------------------------------------------------


def candidate_origin(spec: str, project: Path, *, named_by_user: bool) -> str:
    """Where ``MODULE:ATTR`` would be imported from; refuses one outside ``project`` that the
    user did not name. Imports nothing (only the top-level package is looked up)."""
    if not isinstance(spec, str) or not CANDIDATE_SPEC.match(spec):
        raise ReportRefused(f"candidate {spec!r} is not MODULE:ATTR")
    top = spec.split(":")[0].split(".")[0]
    try:  # where the import will look: the project first, then the path (built-in modules last)
        found = importlib.machinery.PathFinder.find_spec(top, [str(project), *sys.path]) or \
            importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ReportRefused(f"candidate {spec}: no module {top!r} here (run from the project it imports from)")
    places = list(found.submodule_search_locations or []) or [found.origin or ""]
    where = places[0] if places else ""
    inside = any(_inside(Path(place), project) for place in places if place)
    if not inside and not named_by_user:
        raise ReportRefused(f"the report names candidate {spec}, from {where or 'a built-in module'}, outside "
                            f"this project ({project}); replay it with --candidate {spec} if you trust it")
    return where or "built-in"


def _inside(path: Path, project: Path) -> bool:
    try:
        return path.resolve().is_relative_to(project.resolve())
    except OSError:
        return False
