"""Baselines: what torch computed on a fixed corpus, stored, and what changed since.

``fuzz-birnn baseline record DIR`` runs a deterministic corpus under the installed torch and
stores, per case, the fused module's ``output``, ``h_n``, ``c_n`` (in the case's dtype, per layer
and direction), the gradients of the input, ``h0``/``c0`` and every parameter (float64 and float32
cases), each tensor's allowance under the tolerance model, and, for invalid calls (and valid
calls torch refuses), the exception's type and message. ``check`` runs the same corpus again and
sorts every case (:data:`VERDICTS`); ``compare`` does it for two interpreters at once.

Files (``DIR/``): ``manifest.json`` (schema ``fuzz-birnn-baseline`` version 1: the environment,
the corpus, the tolerance model, each entry's outcome and allowances, the SHA-256 of every other
file, and a digest of the manifest itself) and ``results.safetensors`` (no pickle). Both are
written to a hidden folder first and renamed into place. Reading one back trusts nothing: an
unknown schema, a digest or checksum that does not match, a corpus whose digest is not that of its
cases, or a baseline recorded on another platform (the same torch computes differently on another
CPU architecture or OS) is refused in one line.

**The corpus** (:func:`corpus`) is drawn with its own ``random.Random(seed)``, not Hypothesis, so
that it is the same under every Hypothesis version: ``size`` cases in which every value of every
dimension (mode, form, dtype, bias, ``batch_first``, given ``h0``, oneDNN, scale, LSTM
projection) appears, plus one invalid call per corruption, plus every case of any reports folders
given. Only the stored cases are run again, never regenerated.

**Drift.** Tensors are compared bit for bit; where they differ, by how many units in the last
place of their dtype (ulps) and by the largest absolute difference, which is *within tolerance*
when it is at most the larger of the two recorded allowances (torch's own allowance on the case,
see :mod:`fuzz_birnn.core.compare`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fuzz_birnn import __version__
from fuzz_birnn.core.candidates import fused
from fuzz_birnn.core.case import DTYPES, FORMS, MODES, SCALES, Case, Config, Inputs, backend
from fuzz_birnn.core.compare import ACTIVATION_ULPS, RATIO
from fuzz_birnn.core.devices import available_devices
from fuzz_birnn.core.evaluation import evaluate
from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.output.files import staging_folder
from fuzz_birnn.portable.calls import per_direction
from fuzz_birnn.portable.report_files import MAX_JSON_BYTES, ReportRefused, load_tensors, read_json, save_tensors
from fuzz_birnn.properties.gradients import check_gradients, gradients_of
from fuzz_birnn.properties.invalid import CORRUPTIONS

__all__ = ["SCHEMA_VERSION", "VERDICTS", "BaselineError", "Comparison", "compare", "corpus", "load_baseline",
           "record", "write_baseline"]

SCHEMA = "fuzz-birnn-baseline"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
RESULTS = "results.safetensors"

#: Every verdict a case can get, mildest first; the ``FAILING`` ones make ``check`` exit 1.
VERDICTS = ("identical", "message changed", "drifted within tolerance", "beyond tolerance", "now raising",
            "no longer raising", "refusal type changed")
FAILING = ("beyond tolerance", "now raising", "no longer raising", "refusal type changed")
STRICT_FAILING = (*FAILING, "message changed", "drifted within tolerance")



class BaselineError(ValueError):
    """A baseline that cannot be trusted or used: one line saying why."""


# -- the corpus --------------------------------------------------------------------------------


def corpus(size: int, seed: int = 0, extra: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """``size`` forward cases covering every value of every dimension, one invalid call per
    corruption, then ``extra`` entries (cases from reports), as JSON-ready entries."""

    rng = random.Random(seed)
    dimensions = {"mode": MODES, "form": FORMS, "dtype": DTYPES, "bias": (False, True), "batch_first": (False, True),
                  "initial_state": (False, True), "onednn": (True, False), "scale": SCALES, "proj": (False, True)}
    offsets = {name: rng.randrange(len(values)) for name, values in dimensions.items()}
    entries = []
    for index in range(size):
        pick = {name: values[(index + offsets[name]) % len(values)] for name, values in dimensions.items()}
        # projection only matters for LSTM, which comes round every len(MODES) cases: alternate it there
        pick["proj"] = (index // len(MODES) + offsets["proj"]) % 2 == 1
        entries.append({"kind": "forward", "case": _case(pick, rng).to_dict()})
    for corruption, (_, applies, _) in CORRUPTIONS.items():
        for _ in range(1000):
            pick = {name: rng.choice(values) for name, values in dimensions.items()}
            candidate = _case(pick, rng)
            if applies(candidate):
                entries.append({"kind": "invalid", "corruption": corruption, "case": candidate.to_dict()})
                break
        else:  # pragma: no cover - every corruption applies to some case
            raise AssertionError(f"no case for {corruption} in 1000 draws")
    entries += list(extra)
    for number, entry in enumerate(entries):
        entry["id"] = f"e{number:04d}"
    return entries


def _case(pick: dict[str, Any], rng: random.Random) -> Case:
    mode, form = pick["mode"], pick["form"]
    hidden = rng.randint(2, 5)
    batch = None if form == "unbatched" else rng.randint(2 if form != "padded" else 1, 4)
    seq_len = rng.randint(1, 5)
    lengths = None
    if form.startswith("packed"):
        lengths = tuple(rng.randint(1, seq_len) for _ in range(batch or 1))
        if form == "packed_sorted":
            lengths = tuple(sorted(lengths, reverse=True))
    config = Config(mode, rng.randint(1, 4), hidden, rng.randint(1, 3), pick["bias"], pick["batch_first"], True,
                    rng.randint(1, hidden - 1) if mode == "LSTM" and pick["proj"] else 0)
    inputs = Inputs(seq_len, batch, form.startswith("packed"), lengths, form != "packed_unsorted", form == "unbatched",
                    pick["initial_state"], pick["dtype"], "cpu", pick["onednn"], True, rng.randrange(2**31),
                    pick["scale"])
    return Case(config, inputs)


def corpus_digest(entries: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps([{k: e[k] for k in sorted(e) if k in ("id", "kind", "corruption", "case")}
                                      for e in entries], sort_keys=True).encode()).hexdigest()


# -- recording -----------------------------------------------------------------------------------


def record(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Run every entry under the installed torch: each entry gains its ``outcome`` (and
    ``allowed`` per tensor); the tensors come back under ``ID/NAME`` names."""
    results: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    for entry in entries:
        case = Case.from_dict(entry["case"], allow_large=True)
        done = dict(entry)
        if entry["kind"] == "invalid":
            done["outcome"] = _invalid_outcome(case, entry["corruption"])
        else:
            outcome, found, allowed = _forward(case)
            done["outcome"], done["allowed"] = outcome, allowed
            tensors.update({f"{entry['id']}/{name}": t for name, t in found.items()})
        results.append(done)
    return results, tensors


def _invalid_outcome(case: Case, corruption: str) -> dict[str, Any]:
    _, _, make = CORRUPTIONS[corruption]
    try:
        with backend(case.inputs), torch.no_grad():
            make(case)(lambda module, input, hx: module(input, hx))
    except Exception as error:
        return {"raised": type(error).__name__, "message": str(error).strip()}
    return {"accepted": True}


def _forward(case: Case) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, float]]:
    built = case.build()
    try:
        evaluation = evaluate(case, built)
    except CheckFailure as failure:  # torch refused a valid call: that is its outcome
        cause = failure.__cause__
        return ({"raised": type(cause).__name__ if cause else "CheckFailure",
                 "message": str(cause).strip() if cause else str(failure)}, {}, {})
    c = case.config
    found = {name: t.detach().cpu().contiguous() for name, t in per_direction(
        evaluation.fused_result, num_layers=c.num_layers, bidirectional=c.bidirectional,
        batch_first=c.batch_first, unbatched=case.inputs.unbatched).items()}
    allowed = dict(evaluation.tolerances.fused) if not evaluation.skipped else {}
    if case.inputs.dtype in ("float64", "float32"):
        grads = gradients_of(fused, case)
        found.update({f"grad/{name}": g.to(case.inputs.torch_dtype) for name, g in grads.items()})
        with contextlib.suppress(CheckFailure):
            outcome = check_gradients(fused, case)
            allowed.update({f"grad/{name}": a for name, a in outcome.allowed.items()})
    return {"result": sorted(found)}, found, allowed


# -- files -------------------------------------------------------------------------------------


def write_baseline(directory: Path, entries: list[dict[str, Any]], tensors: dict[str, torch.Tensor],
                   corpus_info: dict[str, Any]) -> None:
    """Write the baseline whole or not at all (a hidden folder renamed into place); an existing
    baseline in ``directory`` is replaced only once the new one is complete."""

    directory = directory.resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(directory.parent, f".{directory.name}-")
    try:
        save_tensors(staging / RESULTS, tensors)
        manifest = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "environment": environment(),
                    "corpus": {**corpus_info, "digest": corpus_digest(entries)},
                    "tolerance": {"model": "fuzz_birnn.core.compare.Tolerances (torch's own allowance per case)",
                                  "ratio": RATIO, "activation_ulps": ACTIVATION_ULPS},
                    "entries": entries, "files": {RESULTS: _sha256(staging / RESULTS)}}
        manifest["digest"] = _digest(manifest)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}-old-", dir=directory.parent))
            os.rename(directory, old / "baseline")
            os.rename(staging, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_baseline(directory: Path, *, any_platform: bool = False) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The manifest and tensors of a baseline, every check passed; raises :class:`BaselineError`."""

    path = directory / MANIFEST
    if not path.exists():
        raise BaselineError(f"{directory}: no {MANIFEST} here (record one: fuzz-birnn baseline record {directory})")
    try:
        manifest = read_json(path, max_bytes=64 * MAX_JSON_BYTES)
    except ReportRefused as error:
        raise BaselineError(str(error)) from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise BaselineError(f"{path}: not a fuzz-birnn baseline")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(f"{path}: schema_version={manifest.get('schema_version')!r} is not understood "
                            f"(this fuzz-birnn reads version {SCHEMA_VERSION})")
    if manifest.get("digest") != _digest(manifest):
        raise BaselineError(f"{path}: damaged or edited (its digest does not match its content)")
    entries = manifest.get("entries")
    if not isinstance(entries, list) or manifest["corpus"].get("digest") != corpus_digest(entries):
        raise BaselineError(f"{path}: its entries are not the corpus it names (from another corpus?)")
    for name, checksum in manifest["files"].items():
        if name != RESULTS or not (directory / name).exists():
            raise BaselineError(f"{directory / name}: missing (the baseline is incomplete)")
        if _sha256(directory / name) != checksum:
            raise BaselineError(f"{directory / name}: damaged (its SHA-256 is not the one recorded)")
    here, there = _platform_key(environment()), _platform_key(manifest["environment"])
    if here != there and not any_platform:
        raise BaselineError(f"{directory}: recorded on {there}, this is {here}: results are only comparable on "
                            "the same platform (--any-platform to compare anyway)")
    try:
        tensors = load_tensors(directory / RESULTS, max_bytes=(directory / RESULTS).stat().st_size)
    except ReportRefused as error:
        raise BaselineError(str(error)) from None
    return manifest, tensors


def environment() -> dict[str, Any]:
    return {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "system": platform.system(), "implementation": sys.implementation.name,
            "fuzz_birnn": __version__, "devices": list(available_devices()),
            "onednn": torch.backends.mkldnn.is_available()}


def _platform_key(env: dict[str, Any]) -> str:
    return f"{env.get('system')} {env.get('machine')}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# -- comparing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One entry's verdict, and per tensor what changed."""

    entry: dict[str, Any]
    verdict: str
    tensors: dict[str, str]  # tensor -> its own verdict (only where not identical)
    detail: str


def compare(old: tuple[dict[str, Any], dict[str, torch.Tensor]],
            new: tuple[dict[str, Any], dict[str, torch.Tensor]]) -> list[Comparison]:
    """Every entry of ``old`` against the same entry of ``new``."""
    (old_manifest, old_tensors), (new_manifest, new_tensors) = old, new
    if old_manifest["corpus"]["digest"] != new_manifest["corpus"]["digest"]:
        raise BaselineError("the two baselines ran different corpora")
    found = {e["id"]: e for e in new_manifest["entries"]}
    return [_compare_entry(e, found[e["id"]], old_tensors, new_tensors) for e in old_manifest["entries"]]


def _compare_entry(old: dict[str, Any], new: dict[str, Any], old_tensors: dict[str, torch.Tensor],
                   new_tensors: dict[str, torch.Tensor]) -> Comparison:
    was, now = old["outcome"], new["outcome"]
    if "raised" in was or "raised" in now:
        if "raised" not in now:
            return Comparison(old, "no longer raising", {}, f"was {was['raised']}: {was['message'][:100]}")
        if "raised" not in was:
            return Comparison(old, "now raising", {}, f"{now['raised']}: {now['message'][:100]}")
        if was["raised"] != now["raised"]:
            return Comparison(old, "refusal type changed", {}, f"{was['raised']} -> {now['raised']}")
        if was["message"] != now["message"]:
            return Comparison(old, "message changed", {}, f"{was['message'][:80]!r} -> {now['message'][:80]!r}")
        return Comparison(old, "identical", {}, "")
    if "accepted" in was or "accepted" in now:
        return Comparison(old, "identical", {}, "")
    verdicts: dict[str, str] = {}
    details = []
    for name in sorted(set(was["result"]) | set(now["result"])):
        key = f"{old['id']}/{name}"
        a, b = old_tensors.get(key), new_tensors.get(key)
        if a is None or b is None or a.shape != b.shape or a.dtype != b.dtype:
            verdicts[name] = "beyond tolerance"
            details.append(f"{name}: {_form(a)} -> {_form(b)}")
            continue
        if torch.equal(_integers(a), _integers(b)):  # bit for bit (NaN payloads and -0.0 included)
            continue
        difference = float((b.double() - a.double()).abs().nan_to_num(nan=float("inf")).max())
        allowed = max(old.get("allowed", {}).get(name, 0.0), new.get("allowed", {}).get(name, 0.0))
        verdicts[name] = "drifted within tolerance" if difference <= allowed else "beyond tolerance"
        details.append(f"{name}: {ulps(a, b)} ulps, max abs {difference:.3g} (allowed {allowed:.3g})")
    if not verdicts:
        return Comparison(old, "identical", {}, "")
    worst = max(verdicts.values(), key=VERDICTS.index)
    return Comparison(old, worst, verdicts, "; ".join(details[:4]) + (" ..." if len(details) > 4 else ""))


def ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """The largest distance between ``a`` and ``b`` in units in the last place of their dtype."""
    def ordered(t: torch.Tensor) -> torch.Tensor:
        i = _integers(t).to(torch.int64)
        top = 1 << (torch.finfo(t.dtype).bits - 1)
        return torch.where(i < 0, -(i + top), i)  # sign-magnitude onto a monotone integer line

    if not a.numel():
        return 0
    return int((ordered(a) - ordered(b)).abs().max())


def _integers(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bits, as integers of its width."""
    width = {8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()]
    return t.contiguous().view(width)


def _form(t: torch.Tensor | None) -> str:
    return "absent" if t is None else f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def dimensions(entry: dict[str, Any]) -> dict[str, str]:
    """The dimensions a summary sorts an entry by."""
    case = Case.from_dict(entry["case"], allow_large=True)
    return {"mode": case.config.mode, "dtype": case.inputs.dtype, "form": case.inputs.form,
            "backend": "oneDNN on" if case.inputs.onednn else "oneDNN off",
            "kind": entry["kind"] if entry["kind"] == "forward" else f"invalid: {entry['corruption']}"}
