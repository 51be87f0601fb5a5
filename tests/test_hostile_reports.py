"""Reports from elsewhere: damaged or hostile files get a one-line refusal, never a traceback,
a hang, a huge allocation, or someone else's code run; and our readers are fuzzed by Hypothesis."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_birnn import Case, CheckFailure, Config, Inputs, check
from fuzz_birnn.cli import main
from fuzz_birnn.output.reports import write_report
from fuzz_birnn.portable.report_files import LIMITS, case_cost, load_tensors, save_tensors

from . import planted

ROOT = Path(__file__).resolve().parent.parent
CANDIDATE = "tests.planted:seed_missing_re_reversal"
CASE = Case(Config(num_layers=2), Inputs(seq_len=2, batch_size=1))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """One valid report (the seed's bug), written once; tests copy it before damaging it."""
    with pytest.raises(CheckFailure) as raised:
        check(planted.seed_missing_re_reversal, CASE, name=CANDIDATE)
    folder, _ = write_report(raised.value, tmp_path_factory.mktemp("reports"))
    return folder


def replay(folder: Path, capsys, *flags: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["replay", *flags, str(folder)])
    out, err = capsys.readouterr()
    return code, out, err


def edited(report: Path, tmp_path: Path, change) -> Path:
    folder = tmp_path / report.name
    shutil.copytree(report, folder)
    document = json.loads((folder / "case.json").read_text())
    new = change(document)
    if isinstance(new, dict):
        new = json.dumps(new)
    (folder / "case.json").write_bytes(new if isinstance(new, bytes) else new.encode())
    return folder


def config_field(name, value):
    return lambda d: {**d, "case": {**d["case"], "config": {**d["case"]["config"], name: value}}}


def inputs_field(name, value):
    return lambda d: {**d, "case": {**d["case"], "inputs": {**d["case"]["inputs"], name: value}}}


def each_plausible(d):
    """Sizes 4096, 4096 steps, batch 64, 8 layers: each fine alone, together hours and many GB."""
    d = config_field("input_size", 4096)(config_field("hidden_size", 4096)(config_field("num_layers", 8)(d)))
    return inputs_field("seq_len", 4096)(inputs_field("batch_size", 64)(d))


def nested(d):
    return json.dumps(d).replace('"property"', '"deep": ' + "[" * 200_000 + "]" * 200_000 + ', "property"', 1)


def duplicated(d):
    return json.dumps(d).replace('"candidate": ', '"candidate": "tests.planted:seed_missing_re_reversal", '
                                 '"candidate": ', 1)


# The table, and the other file-level damage: each refused in one line naming the problem.
HOSTILE = [
    (config_field("hidden_size", 1_000_000_000), "hidden_size=1000000000 is beyond the limit of 4096"),
    (inputs_field("seq_len", 10_000_000_000), "seq_len=10000000000 is beyond the limit of 100000"),
    (each_plausible, "elements, beyond the limit of 67,108,864"),
    (inputs_field("device", "cuda:7"), "runs on cuda:7, which this machine does not have"),
    (nested, "nested 200001 deep; at most 32 is read"),
    (lambda d: {**d, "candidate": "os:system"}, "names candidate os:system, from"),
    (duplicated, "duplicate key(s) 'candidate'"),
    (lambda d: json.dumps(d).encode() + b"\xff", "not UTF-8"),
    (lambda d: {**d, "padding": "x" * (1 << 20)}, "larger than 1048576 bytes"),
    (lambda d: json.dumps(d).replace("1.0", "NaN"), "NaN is not JSON"),
    # found by the reader fuzzing below (a list where a name belongs crashed the name check):
    (lambda d: {**d, "candidate": []}, "candidate [] must be MODULE:ATTR"),
]


@pytest.mark.parametrize(("change", "message"), HOSTILE, ids=[m for _, m in HOSTILE])
def test_a_hostile_report_is_refused_in_one_line(report, tmp_path, capsys, monkeypatch, change, message):
    monkeypatch.chdir(ROOT)
    code, out, err = replay(edited(report, tmp_path, change), capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("fuzz-birnn: error:"), (out, err)
    assert message in err, err
    assert "STILL FAILS" not in out and "FIXED" not in out  # nothing ran


@pytest.mark.e2e
def test_allow_large_lifts_the_size_limits(report, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    # Beyond the per-field limit, small in total: refused, then replayed with --allow-large.
    folder = edited(report, tmp_path, inputs_field("seq_len", LIMITS["seq_len"] + 1))
    assert replay(folder, capsys)[0] == 2
    code, out, _ = replay(folder, capsys, "--allow-large")
    assert code == 1 and "STILL FAILS" in out


def test_a_foreign_candidate_runs_only_when_the_user_names_it(report, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the report's candidate (in this repository's tests/) is now outside the project
    monkeypatch.syspath_prepend(str(ROOT))
    code, _, err = replay(report, capsys)
    assert code == 2 and f"names candidate {CANDIDATE}" in err and f"--candidate {CANDIDATE}" in err
    code, out, _ = replay(report, capsys, "--candidate", CANDIDATE)
    assert code == 1 and f"candidate {CANDIDATE} from {ROOT / 'tests'}" in out and "STILL FAILS" in out
    code, out, _ = replay(report, capsys, "--candidate", "decomposed")  # someone's fix, checked on the report
    assert code == 0 and "FIXED" in out


def test_a_folder_replay_counts_reports_for_devices_this_machine_lacks(report, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    folder = edited(report, tmp_path, inputs_field("device", "cuda:7"))
    shutil.copytree(report, tmp_path / "local")
    code, out, _ = replay(tmp_path, capsys)
    assert code == 1 and "NOT HERE" in out and "1 need a device this machine lacks" in out, out
    assert f"NOT HERE     {folder}" in out


def test_a_clean_run_replays_as_nothing_to_do(tmp_path, capsys):
    code, out, _ = replay(tmp_path, capsys)
    assert code == 0 and "no reports here" in out


@pytest.mark.e2e
@pytest.mark.parametrize(("change", "message"), [
    (config_field("hidden_size", 1_000_000_000), "hidden_size=1000000000 is beyond the limit"),
    (lambda d: {**d, "candidate": "os:system"}, "names candidate os:system"),
    (duplicated, "duplicate key(s)"),
], ids=["huge", "foreign candidate", "duplicate keys"])
def test_repro_py_refuses_the_same_in_one_line(report, tmp_path, change, message):
    folder = edited(report, tmp_path, change)
    done = subprocess.run([sys.executable, str(folder / "repro.py")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_the_modules_beside_repro_py_are_the_library_code(report):
    for name in ("report_files", "calls"):
        library = Path(sys.modules[f"fuzz_birnn.portable.{name}"].__file__)
        assert (report / f"{name}.py").read_bytes() == library.read_bytes()


@pytest.mark.e2e
def test_repro_py_runs_without_fuzz_birnn(tmp_path):
    """A bare torch install: importing fuzz_birnn (or hypothesis) fails, and repro.py still replays
    (here the seed thread's own decomposition, which needs only torch)."""
    from examples.seed_decomposition import seed_decomposition

    with pytest.raises(CheckFailure) as raised:
        check(seed_decomposition, CASE, name="examples.seed_decomposition:seed_decomposition")
    report, _ = write_report(raised.value, tmp_path)
    blocker = ("import sys, runpy\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] in ('fuzz_birnn', 'hypothesis'):\n"
               "            raise ImportError(f'{name} is not installed here')\n"
               "sys.meta_path.insert(0, Block())\n"
               f"sys.argv = ['repro.py']\n"
               f"runpy.run_path({str(report / 'repro.py')!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", blocker], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "STILL FAILS" in done.stdout, done.stdout + done.stderr


def test_the_tensor_file_round_trips_and_checks_every_field(tmp_path):
    import torch

    tensors = {"a": torch.arange(6, dtype=torch.float64).reshape(2, 3), "b/c": torch.ones(0, 4, dtype=torch.bfloat16),
               "lengths": torch.tensor([3, 1])}
    save_tensors(tmp_path / "t.safetensors", tensors)
    back = load_tensors(tmp_path / "t.safetensors", max_bytes=10_000)
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], v) and back[k].dtype == v.dtype
                                                 for k, v in tensors.items())
    with pytest.raises(ValueError, match="more than the 10 its case can need"):
        load_tensors(tmp_path / "t.safetensors", max_bytes=10)
    deep = b"[" * 100_000 + b"]" * 100_000
    (tmp_path / "deep.safetensors").write_bytes(len(deep).to_bytes(8, "little") + deep)
    with pytest.raises(ValueError, match=r"damaged header \(nested deeper than 32\)"):
        load_tensors(tmp_path / "deep.safetensors", max_bytes=1 << 20)


def test_case_cost_counts_what_torch_allocates():
    import torch

    case = Case(Config(mode="LSTM", input_size=3, hidden_size=5, num_layers=2, bias=True, proj_size=2),
                Inputs(seq_len=4, batch_size=3, initial_state=True))
    built = case.build()
    weights = sum(p.numel() for p in built.module.parameters())
    output, (h_n, c_n) = built.module(built.input, built.hx)
    states = sum(t.numel() for t in (*built.hx, h_n, c_n))
    counted = case_cost(case.to_dict()["config"], case.to_dict()["inputs"])["elements"]
    assert counted == weights + built.input.numel() + states + output.numel()
    assert isinstance(output, torch.Tensor)


# -- fuzzing the readers -------------------------------------------------------------------------

HOSTILE_VALUES = st.one_of(
    st.sampled_from([None, True, False, -1, 0, 1, 2**31, 2**63, 10**10, 10**400, 1e308, -0.5, 0.5, "", "cuda:7",
                     "mps", "os:system", "float128", "LSTM", [], {}, [1, 2], {"a": 1}, "x" * 5000]),
    st.integers(), st.floats(allow_nan=False), st.text(max_size=12),
)


def _paths(value, prefix=()):
    """Every path into a JSON document, parents before children."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _set(document, path, value, delete=False):
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


@st.composite
def mutations(draw, document: dict, tensor_file: bytes) -> tuple[bytes, bytes]:
    """A damaged ``(case.json, tensors.safetensors)``: fields removed, retyped, huge, negative,
    nested; the text truncated at any byte, random bytes, duplicate keys; the tensor file cut or
    overwritten. Shrinks towards the simplest damage of the first field."""
    text, tensors = json.dumps(document, indent=2).encode(), tensor_file
    kind = draw(st.sampled_from(["set", "delete", "truncate", "bytes", "duplicate", "nest", "tensors"]))
    paths = list(_paths(document))[1:]
    if kind in ("set", "delete"):
        path = draw(st.sampled_from(paths))
        changed = _set(json.loads(text), path, draw(HOSTILE_VALUES), delete=kind == "delete")
        text = json.dumps(changed).encode()
    elif kind == "truncate":
        text = text[:draw(st.integers(0, len(text)))]
    elif kind == "bytes":
        text = draw(st.binary(max_size=200))
    elif kind == "duplicate":
        key = draw(st.sampled_from([p[-1] for p in paths if isinstance(p[-1], str)]))
        text = text.replace(f'"{key}": '.encode(), f'"{key}": 1, "{key}": '.encode(), 1)
    elif kind == "nest":
        depth = draw(st.integers(2, 100_000))
        path = draw(st.sampled_from(paths))
        marker = "__nested__"
        text = json.dumps(_set(json.loads(text), path, marker)).replace(f'"{marker}"', "[" * depth + "]" * depth)
        text = text.encode()
    else:
        start = draw(st.integers(0, len(tensors)))
        tensors = tensors[:start] + draw(st.binary(max_size=64)) + tensors[start + draw(st.integers(0, 64)):]
    return text, tensors


def _address_space_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for the memory bound")
def test_fuzzed_reports_replay_or_are_refused_in_one_line(report, tmp_path_factory, capsys, monkeypatch):
    """Every mutation is a valid replay (exit 0 or 1) or one line on stderr with exit 2: never a
    traceback, never over 10 s, never more than 1 GiB of new memory (an address-space limit makes
    a runaway allocation fail here instead of on the machine)."""
    monkeypatch.chdir(ROOT)
    document = json.loads((report / "case.json").read_text())
    tensor_file = (report / "tensors.safetensors").read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space_bytes() + (4 << 30)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seen = {"replayed": 0, "refused": 0}

    @settings(deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(mutations(document, tensor_file))
    def replay_mutated(mutated):
        text, tensors = mutated
        folder = tmp_path_factory.mktemp("mutated") / report.name
        shutil.copytree(report, folder)
        (folder / "case.json").write_bytes(text)
        (folder / "tensors.safetensors").write_bytes(tensors)
        code, out, err = replay(folder, capsys, "--timeout", "10")
        if code == 2:
            assert err.count("\n") == 1 and err.startswith("fuzz-birnn: error: "), err
            seen["refused"] += 1
        else:
            assert code in (0, 1) and "1 report(s) replayed" in out and not err, (code, out, err)
            seen["replayed"] += 1

    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        replay_mutated()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 1 << 20, f"peak memory grew by {grown_kib} KiB"
    assert seen["refused"] and seen["replayed"], seen  # both outcomes were exercised


@pytest.mark.e2e
def test_repro_py_holds_the_result_to_its_dtype_not_only_its_values(tmp_path):
    from . import contract_bugs

    case = Case(Config(), Inputs(seq_len=2, batch_size=1, dtype="float32"))
    with pytest.raises(CheckFailure) as raised:
        check(contract_bugs.returns_wrong_dtype, case, name="tests.contract_bugs:returns_wrong_dtype")
    folder, _ = write_report(raised.value, tmp_path)
    done = subprocess.run([sys.executable, str(folder / "repro.py")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "output.dtype=torch.float64, but should be torch.float32" in done.stdout
