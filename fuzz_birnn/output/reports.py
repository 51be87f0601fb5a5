"""Writing a failure to ``DIR/<id>/`` whole or not at all, and reading it back.

A report folder holds ``case.json`` (the case, the mismatch, the environment),
``tensors.safetensors`` (parameters, inputs, the float64 reference; no pickle), ``repro.py`` (a
standalone reproducer) with ``report_files.py`` and ``calls.py`` beside it (the library's
own code for reading a report and checking a call, copied), and ``summary.md``. Reading one
back (:func:`load_report`) treats it as hostile until checked: see :mod:`fuzz_birnn.portable.report_files`
for the limits and the trust rule. The id hashes the candidate, the property and the case, so
the same failure found by two workers or two runs is one report. A report is assembled in a
hidden temporary folder and renamed into place, so no reader ever sees half of one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import platform
import shutil
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hypothesis
import torch

from fuzz_birnn import __version__
from fuzz_birnn.core import packages
from fuzz_birnn.core.case import Case
from fuzz_birnn.core.compare import Mismatch
from fuzz_birnn.core.devices import cpu_dispatch
from fuzz_birnn.core.evaluation import evaluate
from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.diagnosis.diagnose import diagnose, diagnose_relation
from fuzz_birnn.output.files import staging_folder
from fuzz_birnn.portable import calls, report_files
from fuzz_birnn.portable.report_files import ReportRefused, load_tensors, read_json, save_tensors, tensor_file_limit
from fuzz_birnn.properties import PROPERTIES
from fuzz_birnn.properties.invalid import CORRUPTIONS
from fuzz_birnn.targets.naming import CandidateError, load_candidate, validate_spec

__all__ = ["KINDS", "OUTPUT_FILE", "REPORT_FILES", "SCHEMA_VERSION", "Report", "ReportError", "case_key",
           "check_failures", "load_report", "report_id", "write_crash", "write_drift", "write_failures", "write_report"]

#: Version 2 stores tensors as ``tensors.safetensors``; version 1 reports (``tensors.pt``, never
#: loaded) still replay, since a case rebuilds its tensors from its seed.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
_REPRO = Path(report_files.__file__).with_name("repro.py")
#: The library's own modules that ``repro.py`` imports, copied beside it (see :mod:`~fuzz_birnn.portable.calls`).
_SUPPORT = (Path(report_files.__file__), Path(calls.__file__))
#: The files every report of the current schema holds.
REPORT_FILES = ("calls.py", "case.json", "report_files.py", "repro.py", "summary.md", "tensors.safetensors")
#: What the candidate printed while checking the case (bounded; only when it printed anything).
OUTPUT_FILE = "output.txt"


#: What a report is of: a property that does not hold (``check``), a case that killed its worker
#: (``crash``) or ran past the time limit (``timeout``), or a result that changed between two
#: torch versions (``drift``, from ``fuzz-birnn baseline``).
KINDS = ("check", "crash", "timeout", "drift")


class ReportError(ValueError):
    """A report that cannot be read: the message names the file and what is wrong."""


def report_id(candidate: str, prop: str, what: dict[str, Any]) -> str:
    key = json.dumps([candidate, prop, what], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def case_key(candidate: str, prop: str, case: Case, details: dict[str, Any]) -> str:
    """What identifies a failure: who, which property, which case (and corruption)."""
    return report_id(candidate, prop, {"case": case.to_dict(), **details})


def write_report(failure: CheckFailure, directory: Path, *, origin: str | None = None,
                 extra: dict[str, Any] | None = None, output: str = "") -> tuple[Path, bool]:
    """Write ``failure`` under ``directory``; returns its folder and whether it is new.

    ``origin`` says what found it (``fuzz-birnn run``, a pytest node id), for the reader;
    ``extra`` adds fields to ``case.json`` (a run adds the fault's ``signature`` and how its
    shrinking ended); ``output`` is what the candidate printed on the case, kept as ``output.txt``.
    """
    candidate = validate_spec(failure.candidate)
    case = failure.case
    ident = case_key(candidate, failure.prop, case, failure.details)
    if (directory / ident).exists():
        return directory / ident, False  # written before: no need to evaluate or diagnose it again
    ref, allowed = _reference(failure, candidate)
    actual = failure.actual if ref and PROPERTIES[failure.prop].diagnosed else None
    diagnosis = None
    try:
        if actual is not None:
            diagnosis = diagnose(case, actual, allowed, _callable(candidate)).to_dict()
        elif failure.prop.startswith("relation:") and failure.mismatch.max_abs_error is not None:
            # a relation that fails because the candidate computes in a lower precision is that finding
            follows = diagnose_relation(case, failure.mismatch.max_abs_error, _callable(candidate))
            diagnosis = None if follows is None else follows.to_dict()
    except Exception as error:  # the report matters more than its diagnosis
        diagnosis = {"names": [], "tried": 0, "confirmed_on": 0,
                     "summary": f"not diagnosed: {type(error).__name__}: {error}".splitlines()[0]}
    return _assemble(directory, ident, case, ref, {
        "kind": "check", "candidate": candidate, "property": failure.prop, "details": failure.details,
        "origin": origin, "mismatch": asdict(failure.mismatch), "tolerances": allowed, "diagnosis": diagnosis,
        "summary": f"{failure.mismatch.message} [{case.describe()}]", "output": bool(output),
        "traceback": raised_where(failure), **(extra or {})},
        output, actual=actual)


def raised_where(failure: BaseException) -> str | None:
    """Where the candidate raised, when it did: the traceback of the exception the failure was
    raised from, without the harness' own frames above the candidate (its first frame is the
    candidate's own line, or the line that called into what raised); ``None`` when nothing raised."""
    cause = failure.__cause__
    if cause is None or cause.__traceback__ is None:
        return None
    frames = traceback.extract_tb(cause.__traceback__)
    harness = str(Path(__file__).resolve().parent.parent)
    while len(frames) > 1 and str(Path(frames[0].filename).resolve()).startswith(harness):
        frames = traceback.StackSummary.from_list(frames[1:])
    lines = [*traceback.format_list(frames[-MOST_FRAMES:]), *traceback.format_exception_only(cause)]
    skipped = len(frames) - MOST_FRAMES
    return ("Traceback (most recent call last):\n" + (f"  ... {skipped} frame(s) ...\n" if skipped > 0 else "")
            + "".join(lines)).rstrip()


#: The deepest frames of a candidate's traceback that a report keeps.
MOST_FRAMES = 20


def write_crash(in_flight: dict[str, Any], message: str, directory: Path, *, kind: str,
                extra: dict[str, Any] | None = None, output: str = "") -> tuple[Path, bool, str]:
    """Write a ``crash`` or ``timeout`` report from a case written ahead (nothing is run: the case
    may crash this process too). Returns the folder, whether it is new, and the case's key."""
    case = Case.from_dict(in_flight["case"])
    candidate, prop = validate_spec(in_flight["candidate"]), in_flight["property"]
    details = in_flight.get("details", {})
    key = case_key(candidate, prop, case, details)
    ident = report_id(candidate, prop, {"case": case.to_dict(), **details, "kind": kind})
    folder, new = _assemble(directory, ident, case, {}, {
        "kind": kind, "candidate": candidate, "property": prop, "details": details, "origin": "fuzz-birnn run",
        "mismatch": asdict(Mismatch("result", message)), "tolerances": {},
        "summary": f"{kind}: {message} [{case.describe()}]", "output": bool(output), **(extra or {})}, output)
    return folder, new, key


def write_drift(case: Case, message: str, directory: Path, *, details: dict[str, Any], tensor: str) -> Path:
    """Write a case whose result changed between two torch versions (``fuzz-birnn baseline``);
    ``replay`` runs it as ``fused-vs-reference`` (or ``invalid-calls`` for a corruption)."""
    prop = "invalid-calls" if details.get("corruption") else "fused-vs-reference"
    ident = report_id("fused", prop, {"case": case.to_dict(), **details, "kind": "drift"})
    folder, _ = _assemble(directory, ident, case, {}, {
        "kind": "drift", "candidate": "fused", "property": prop, "details": details, "origin": "fuzz-birnn baseline",
        "mismatch": asdict(Mismatch(tensor, message)), "tolerances": {},
        "summary": f"{message} [{case.describe()}]"})
    return folder


def _reference(failure: CheckFailure, candidate: str) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The float64 reference of the failure's case and the tolerance its candidate was held to:
    the check's own, where it compared values, else evaluated here."""
    if failure.reference is not None:
        return failure.reference, failure.allowed or {}
    try:
        evaluation = evaluate(failure.case)
    except CheckFailure:  # torch itself raised on the case: nothing to compare against
        return {}, {}
    if evaluation.skipped:
        return {}, {}
    return evaluation.ref, evaluation.tolerances.fused if candidate == "fused" else evaluation.tolerances.candidate


def _callable(candidate: str) -> Any:
    """The candidate, to confirm a diagnosis on more cases; ``None`` where it cannot be loaded here."""
    try:
        return load_candidate(candidate)
    except CandidateError:
        return None


def _assemble(directory: Path, ident: str, case: Case, ref: dict[str, torch.Tensor],
              fields: dict[str, Any], output: str = "", *, actual: dict[str, torch.Tensor] | None = None,
              ) -> tuple[Path, bool]:
    """Build the report in a hidden folder, then rename it into place (atomic; first one wins)."""
    final = directory / ident
    if final.exists():
        return final, False
    directory.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(directory, f".{ident}-")
    try:
        document = {"schema_version": SCHEMA_VERSION, "id": ident, **fields, "case": case.to_dict(),
                    "environment": _environment(),
                    "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        (staging / "case.json").write_text(json.dumps(_strict(document), indent=2, allow_nan=False) + "\n")
        save_tensors(staging / "tensors.safetensors", _tensors(case, ref, actual))
        shutil.copyfile(_REPRO, staging / "repro.py")
        for support in _SUPPORT:
            shutil.copyfile(support, staging / support.name)
        (staging / "summary.md").write_text(_markdown(document, final))
        if output:
            (staging / OUTPUT_FILE).write_text(output)
        try:
            staging.rename(final)  # atomic; fails if another writer got there first
        except OSError:
            if not final.exists():
                raise
            return final, False
        return final, True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_failures(raised: BaseException) -> tuple[list[CheckFailure], list[BaseException]]:
    """Split what a search raised into found bugs (CheckFailures) and anything else."""
    if isinstance(raised, BaseExceptionGroup):
        failures: list[CheckFailure] = []
        others: list[BaseException] = []
        for inner in raised.exceptions:
            found, other = check_failures(inner)
            failures += found
            others += other
        return failures, others
    return ([raised], []) if isinstance(raised, CheckFailure) else ([], [raised])


def write_failures(raised: BaseException, directory: Path, *, origin: str | None = None) -> list[str]:
    """Write a report for every CheckFailure in ``raised`` (one exception or a group); one line
    for each says where it went, or why it could not be written."""
    lines = []
    for failure in check_failures(raised)[0]:
        try:
            folder, _ = write_report(failure, directory, origin=origin)
        except CandidateError:  # a lambda or local function: nothing a report could import
            lines.append(f"not written: candidate {failure.candidate} has no importable name; "
                         "pass check(..., name='MODULE:ATTR') to get a replayable report")
        else:
            lines.append(f"written to {folder}")
    return lines


@dataclass(frozen=True)
class Report:
    """A report read back and checked (:func:`load_report`): what replay, ``show`` and baselines
    act on, typed; ``document`` is the whole ``case.json`` for what they only display."""

    folder: Path
    id: str
    kind: str  # one of KINDS
    candidate: str
    prop: str
    case: Case
    details: dict[str, Any]
    mismatch: dict[str, Any]  # as stored: tensor, layer, direction, time_step, ..., message
    tolerances: dict[str, float]
    diagnosis: dict[str, Any] | None
    document: dict[str, Any]


def load_report(folder: Path, *, allow_large: bool = False) -> Report:
    """A report's ``case.json``, checked enough to replay it; raises :class:`ReportError`.

    Refused in one line: a file too large, too deep, not UTF-8 or with duplicate keys; an
    unknown schema or property; a case beyond the size limits (unless ``allow_large``); a
    missing or damaged tensor file.
    """
    path = folder / "case.json" if folder.is_dir() else folder
    if not path.exists():
        raise ReportError(f"{path}: no such report file")
    try:
        document = read_json(path)
    except ReportRefused as error:
        raise ReportError(str(error)) from None
    if not isinstance(document, dict):
        raise ReportError(f"{path}: a report is a JSON object, not {type(document).__name__}")
    version = document.get("schema_version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ReportError(f"{path}: schema_version={version!r} is not understood by this fuzz-birnn "
                          f"{__version__} (it reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    for key in ("candidate", "property", "case", "mismatch"):
        if key not in document:
            raise ReportError(f"{path}: missing {key!r}")
    if not isinstance(document["mismatch"], dict) or not isinstance(document["mismatch"].get("tensor"), str):
        raise ReportError(f"{path}: mismatch={document['mismatch']!r} is not an object naming its tensor")
    # reports before "kind" was written said crash and timeout in place of the mismatch's tensor
    legacy = document["mismatch"]["tensor"] if document["mismatch"]["tensor"] in ("crash", "timeout") else "check"
    if document.setdefault("kind", legacy) not in KINDS:
        raise ReportError(f"{path}: kind={document['kind']!r} is not one of {', '.join(KINDS)}")

    if not isinstance(document["property"], str) or document["property"] not in PROPERTIES:
        raise ReportError(f"{path}: property={document['property']!r} is not one of {', '.join(PROPERTIES)}")
    details = document.setdefault("details", {})
    if not isinstance(details, dict) or (document["property"] == "invalid-calls"
                                         and details.get("corruption") not in _corruptions()):
        raise ReportError(f"{path}: details={details!r} does not name a known corruption")
    try:
        validate_spec(document["candidate"])
        document["case"] = case = Case.from_dict(document["case"], allow_large=allow_large)
    except ValueError as error:
        raise ReportError(f"{path}: {error}") from None
    tensors = path.parent / ("tensors.pt" if version == 1 else "tensors.safetensors")
    if not tensors.exists():
        raise ReportError(f"{tensors}: missing (the report is incomplete)")
    if version > 1:
        try:
            load_tensors(tensors, max_bytes=tensor_file_limit(asdict(case.config), asdict(case.inputs)))
        except ReportRefused as error:
            raise ReportError(str(error)) from None
    tolerances = document.get("tolerances") or {}
    diagnosis = document.get("diagnosis")
    if not isinstance(tolerances, dict) or not all(isinstance(k, str) and _number(v) is not None
                                                    for k, v in tolerances.items()):
        raise ReportError(f"{path}: tolerances={tolerances!r} is not an object of numbers")
    if diagnosis is not None and not (isinstance(diagnosis, dict) and isinstance(diagnosis.get("summary"), str)
                                      and isinstance(diagnosis.get("names", []), list)):
        raise ReportError(f"{path}: diagnosis={diagnosis!r} is not an object with a summary")
    return Report(path.parent, str(document.get("id", path.parent.name)), document["kind"], document["candidate"],
                  document["property"], case, details, document["mismatch"],
                  {k: float(v) for k, v in tolerances.items()}, diagnosis, document)


def _number(value: object) -> float | None:
    """A stored number: a JSON number, or "inf"/"nan" as strict JSON writes them (see :func:`_strict`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if value in ("inf", "-inf", "nan"):
        return float(str(value))
    return None


def _corruptions() -> list[str]:
    return list(CORRUPTIONS)


def _strict(value: Any) -> Any:
    """``value`` as strict JSON: an infinite or NaN number (a result full of NaN has an infinite
    error) becomes the string ``"inf"``, ``"-inf"`` or ``"nan"``, which every JSON reader takes."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def _tensors(case: Case, ref: dict[str, torch.Tensor],
             actual: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """The exact call as plain tensors (the padded input before packing), the reference and the
    candidate's result (per direction, float64), under flat names (``parameters/weight_ih_l0``,
    ``expected/output``, ``actual/h_n``, ``input``, ``h0``...)."""
    built = case.build()
    tensors = {f"parameters/{k}": v.detach().cpu() for k, v in built.module.state_dict().items()}
    tensors.update({f"expected/{k}": v for k, v in ref.items()})
    tensors.update({f"actual/{k}": v.contiguous() for k, v in (actual or {}).items()})
    x = built.input
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        x, _ = torch.nn.utils.rnn.pad_packed_sequence(x, batch_first=case.config.batch_first,
                                                      total_length=case.inputs.seq_len)  # caller's order
        tensors["lengths"] = torch.tensor(case.inputs.lengths)
    tensors["input"] = x.detach().cpu().contiguous()
    if built.hx is not None:
        h0, c0 = built.hx if isinstance(built.hx, tuple) else (built.hx, None)
        tensors["h0"] = h0.cpu().contiguous()
        if c0 is not None:
            tensors["c0"] = c0.cpu().contiguous()
    return tensors


def _environment() -> dict[str, Any]:
    return {"torch": torch.__version__, "hypothesis": hypothesis.__version__,
            "python": platform.python_version(), "platform": _platform(),
            "fuzz_birnn": __version__, "cpu_dispatch": cpu_dispatch(),
            "target_packages": packages.of_target(), "packages": packages.loaded()}


def _platform() -> str:
    """``platform.platform()`` without the processor name, which costs a ``uname -p`` process
    the first time (a worker that writes a report must not fork one from inside a case)."""
    uname = platform.uname()
    return f"{uname.system}-{uname.release}-{uname.machine}"


def _packages_line(found: Any) -> str:
    """The target's packages as one line of summary.md (empty for none, or a report written before they were kept)."""
    if not isinstance(found, dict) or not found:
        return ""
    return f"- **Target's packages**: {', '.join(f'{name} {version}' for name, version in found.items())}\n"


def _dispatch_line(dispatch: Any) -> str:
    """The CPU kernels' dispatch as one line of summary.md (empty for a report written before it was kept)."""
    if not isinstance(dispatch, dict):
        return ""
    caps = ", ".join(f"{name}={value}" for name, value in (dispatch.get("caps") or {}).items()) or "none"
    bf16 = {True: "has", False: "has no", None: "may have"}.get(dispatch.get("onednn_bf16"), "may have")
    return (f"- **CPU dispatch**: torch's kernels at {dispatch.get('cpu_capability')}, oneDNN {bf16} bfloat16, "
            f"{dispatch.get('threads')} thread(s); caps: {caps}\n")


def _markdown(document: dict[str, Any], folder: Path) -> str:
    mismatch = document["mismatch"]
    compared = document.get("kind", "check") in ("check", "drift")
    happened = "the case crashed its process" if document.get("kind") == "crash" else "the case ran too long"
    where = f"`{mismatch['tensor']}`" if compared else happened
    if mismatch["layer"] is not None:
        where += (f" at layer {mismatch['layer']}, {mismatch['direction']} direction"
                  + ("" if mismatch["time_step"] is None else f", time step {mismatch['time_step']}")
                  + ("" if mismatch["batch_index"] is None else f", batch index {mismatch['batch_index']}"))
    case = Case.from_dict(document["case"])
    return (f"# fuzz-birnn report {document['id']}\n\n"
            f"- **Candidate**: `{document['candidate']}` ({document['property']})\n"
            f"- **Case**: {case.describe()}\n"
            f"- **{'First divergence' if compared else 'What happened'}**: {where}\n"
            f"- **Error**: {mismatch['message']}\n"
            + (f"- **Diagnosis**: {document['diagnosis']['summary']}\n" if document.get("diagnosis") else "")
            + (f"- **Fault signature** (what its reports share; # stands for a number): {document['signature']}\n"
               if document.get("signature") else "")
            + (f"- **Shrinking**: {document['shrink']}\n" if document.get("shrink") else "")
            + (f"- **Shows only with** (without any one of them, it shows on none of 3 draws of values): "
               f"{', '.join(map(str, document['needs']))}\n" if document.get("needs") else "")
            + (f"- **Candidate output**: `{OUTPUT_FILE}`\n" if document.get("output") else "")
            + (f"- **Where it raised**:\n\n```\n{document['traceback']}\n```\n\n" if document.get("traceback") else "")
            + f"- **Found with**: torch {document['environment']['torch']}, {document['created']}\n"
            + _packages_line(document['environment'].get("target_packages"))
            + _dispatch_line(document['environment'].get("cpu_dispatch")) + "\n"
            + _reproduce(str(document["candidate"]), folder))


def _reproduce(candidate: str, folder: Path) -> str:
    """How to run the report's ``repro.py``: a candidate of the user's imports from the folder the
    run started in, so the command says that folder (the report's own would not find it)."""
    if ":" not in candidate:
        return "Reproduce: `python repro.py` (exit 1 while it fails), or `fuzz-birnn replay` on this folder.\n"
    here = Path.cwd()
    where = folder.absolute()
    if where.is_relative_to(here):
        where = where.relative_to(here)
    return (f"Reproduce, from `{here}` (where `{candidate}` imports from): `python {where / 'repro.py'}` "
            f"(exit 1 while it fails), or `fuzz-birnn replay {where}`.\n")
