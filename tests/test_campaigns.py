"""Campaigns: a time budget shared fairly, the search going on past the first fault, one finding per
fault, crashes and hangs shrunk, candidate output kept, and memory across runs and machines."""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzz_birnn.campaign.engine import plan_searches
from fuzz_birnn.campaign.scheduler import shard_of
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.output.reports import OUTPUT_FILE
from fuzz_birnn.properties import PROPERTIES
from tests.slices import NoCapture

ROOT = Path(__file__).resolve().parent.parent
MODES = ("RNN_TANH", "RNN_RELU", "GRU", "LSTM")


def fuzz(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "fuzz_birnn", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def run_record(folder):
    return json.loads((Path(folder) / "run.json").read_text())


def documents(folder):
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*/case.json"))]


def calibrated_budget(folder, floor, *run_args):
    """A time budget this machine can meet now, however loaded: ``floor`` seconds, or twice what the
    same run takes here now to check one case of every search (start-up included), if longer; and
    that probe's own time. A budget is wall time by definition, so a test of one must size it to the
    machine it runs on rather than assume a quiet one."""
    started = time.monotonic()
    probe = fuzz("run", *run_args, "--max-examples", 1, "--database", "none", "--reports", folder)
    assert probe.returncode in (0, 1), probe.stdout + probe.stderr
    took = time.monotonic() - started
    return max(floor, round(2 * took)), took


@pytest.mark.e2e
def test_a_time_budget_covers_every_property_and_mode_even_when_every_case_fails(tmp_path):
    run_args = ("--candidate", "tests.contract_bugs:returns_nan", "--workers", 2, "--seed", 0)
    budget, probe = calibrated_budget(tmp_path / "probe", 20, *run_args)
    started = time.monotonic()
    done = fuzz("run", *run_args, "--time-budget", budget, "--reports", tmp_path / "reports")
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    record = run_record(tmp_path / "reports")
    searches = record["cases"]["by_search"]
    assert {(s["property"], s["mode"]) for s in searches} == {
        (p, m) for p in record["options"]["properties"] for m in MODES}
    assert all(s["cases"] > 0 for s in searches), [s for s in searches if not s["cases"]]
    # the run ends at its budget: the parent stops a case in flight within seconds of it
    assert record["options"]["time_budget"] == budget and record["seconds"] < budget + 15
    assert elapsed < budget + max(45, probe)  # start-up and the summary, as slow as the probe's
    assert record["exit_code"] == 1 and record["findings"]
    # the same fault, found by many searches, is one finding seen in many places
    [nan] = [f for f in record["findings"] if f["signature"] == "output wrong, final state right, both directions"]
    assert {s["mode"] for s in nan["seen_in"]} == set(MODES)
    assert len(nan["reports"]) == len(nan["seen_in"])


@pytest.mark.e2e
def test_a_slow_candidate_under_a_short_budget_still_reaches_every_search(tmp_path):
    run_args = ("--candidate", "tests.contract_bugs:slow_and_swapped", "--properties",
                "agreement,relation:layout,relation:zero_state,relation:unbatched", "--modes", "gru,lstm",
                "--workers", 1, "--seed", 0)
    budget, _ = calibrated_budget(tmp_path / "probe", 24, *run_args)
    done = fuzz("run", *run_args, "--time-budget", budget, "--reports", tmp_path / "reports")
    assert done.returncode == 1, done.stdout + done.stderr  # it swaps the output halves
    searches = run_record(tmp_path / "reports")["cases"]["by_search"]
    assert len(searches) == 8 and all(s["cases"] > 0 for s in searches), searches


@pytest.mark.e2e
def test_two_independent_faults_in_one_mode_are_two_findings_each_reported_once(tmp_path):
    done = fuzz("run", "--candidate", "tests.contract_bugs:two_faults", "--properties", "agreement",
                "--modes", "gru", "--max-examples", 600, "--seed", 3, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    record = run_record(tmp_path)
    assert sorted(f["signature"] for f in record["findings"]) == [
        "final state wrong", "output wrong, final state right, both directions"]
    # a report per fault, however often each was seen: at most one more where two slices of the search
    # (two workers) met it at once, and every report listed under its fault
    assert sorted(r for f in record["findings"] for r in f["reports"]) == sorted(d["id"] for d in documents(tmp_path))
    assert all(1 <= len(f["reports"]) <= 2 for f in record["findings"])
    [search] = record["cases"]["by_search"]
    assert search["known"] > 10  # both kept turning up, and were recognised
    assert "2 distinct fault(s), " in done.stdout
    for finding in record["findings"]:
        assert finding["signature"] in done.stdout and finding["smallest"]["report"] in done.stdout


@pytest.mark.e2e
def test_a_crash_on_larger_cases_is_reported_with_a_shrunk_case(tmp_path):
    done = fuzz("run", "--candidate", "tests.contract_bugs:segfaults_when_large", "--properties", "agreement",
                "--modes", "lstm", "--max-examples", 300, "--seed", 1, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    [document] = documents(tmp_path)
    assert document["kind"] == "crash" and "SIGSEGV" in document["mismatch"]["message"]
    config, inputs = document["case"]["config"], document["case"]["inputs"]
    # the smallest case that still crashes: hidden_size 4 and 3 steps, everything else at its simplest
    assert (config["hidden_size"], inputs["seq_len"]) == (4, 3)
    assert (config["num_layers"], config["input_size"], inputs["batch_size"], config["bias"]) == (1, 1, 1, False)
    assert document["shrink"].startswith("complete")
    assert run_record(tmp_path)["cases"]["by_search"][0]["cases"] >= 300  # the search went on after the crash
    replay = fuzz("replay", tmp_path)
    assert replay.returncode == 1 and "killed by SIGSEGV" in replay.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("candidate", ["hangs_on_gru", "swallows_the_time_limit_on_gru"])
def test_a_hang_is_shrunk_and_does_not_end_its_search(tmp_path, candidate):
    started = time.monotonic()
    done = fuzz("run", "--candidate", f"tests.contract_bugs:{candidate}", "--properties", "agreement",
                "--modes", "gru,rnn_tanh", "--max-examples", 60, "--timeout", 2, "--workers", 2, "--seed", 0,
                "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 90
    [document] = documents(tmp_path)
    assert document["kind"] == "timeout"
    config, inputs = document["case"]["config"], document["case"]["inputs"]
    assert (config["mode"], config["num_layers"], config["hidden_size"], inputs["seq_len"]) == ("GRU", 1, 1, 1)
    searches = {s["mode"]: s for s in run_record(tmp_path)["cases"]["by_search"]}
    assert searches["GRU"]["cases"] == 30 and searches["RNN_TANH"]["cases"] == 30  # both ran their share


@pytest.mark.e2e
def test_a_seed_repeats_a_run_whatever_the_load(tmp_path):
    def once(folder, workers):
        done = fuzz("run", "--candidate", "tests.contract_bugs:two_faults", "--properties", "agreement,relation:layout",
                    "--modes", "gru,lstm", "--max-examples", 500, "--seed", 5, "--workers", workers,
                    "--database", "none", "--reports", tmp_path / folder)
        assert done.returncode == 1, done.stdout + done.stderr
        record = run_record(tmp_path / folder)
        counts = [{k: v for k, v in search.items() if k != "seconds"} for search in record["cases"]["by_search"]]
        return counts, sorted(r for f in record["findings"] for r in f["reports"])

    assert once("first", 2) == once("second", 1)


@pytest.mark.e2e
def test_a_candidates_output_stays_off_the_console_and_goes_with_its_report(tmp_path):
    done = fuzz("run", "--candidate", "tests.contract_bugs:chatty_and_swapped", "--properties", "agreement",
                "--modes", "gru", "--max-examples", 50, "--seed", 0, "--reports", tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "exporting graph" not in done.stdout + done.stderr
    [folder] = [p.parent for p in Path(tmp_path).glob("*/case.json")]
    assert (folder / OUTPUT_FILE).read_text() == "exporting graph for GRU with 1 layer(s)\n"
    assert "Candidate output" in (folder / "summary.md").read_text()


@pytest.mark.e2e
def test_junit_xml_has_a_test_case_per_search_and_a_failure_per_fault(tmp_path):
    import xml.etree.ElementTree as ElementTree

    done = fuzz("run", "--candidate", "tests.contract_bugs:two_faults", "--properties", "agreement,relation:layout",
                "--modes", "gru,rnn_tanh", "--max-examples", 300, "--seed", 3, "--reports", tmp_path / "reports",
                "--junit-xml", tmp_path / "junit.xml")
    assert done.returncode == 1, done.stdout + done.stderr
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()
    record = run_record(tmp_path / "reports")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert set(cases) == {(s["property"], s["mode"]) for s in record["cases"]["by_search"]}
    sightings = [(s["property"], s["mode"], f["signature"]) for f in record["findings"] for s in f["seen_in"]]
    assert int(suite.get("failures")) == len(sightings) > 0
    for prop, mode, signature in sightings:  # the message: the signature, its '#'s as the smallest case's numbers
        messages = [f.get("message") for f in cases[(prop, mode)].iter("failure")]
        assert any(m == signature or ("#" in signature and m.startswith(signature.split("#")[0]) and " # " not in m)
                   for m in messages), (signature, messages)
    clean = fuzz("run", "--candidate", "reference", "--properties", "agreement", "--modes", "gru", "--max-examples",
                 40, "--seed", 0, "--reports", tmp_path / "clean", "--junit-xml", tmp_path / "clean.xml")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert ElementTree.parse(tmp_path / "clean.xml").getroot().get("failures") == "0"


@pytest.mark.e2e
def test_a_rerun_first_replays_what_the_database_remembers(tmp_path):
    database = tmp_path / "db"
    common = ["--candidate", "tests.contract_bugs:two_faults", "--properties", "agreement", "--modes", "gru",
              "--database", database]
    first = fuzz("run", *common, "--max-examples", 400, "--seed", 3, "--reports", tmp_path / "first")
    assert first.returncode == 1, first.stdout + first.stderr
    # one example is the simplest case (one layer), which shows neither fault; only the database can
    again = fuzz("run", *common, "--max-examples", 1, "--seed", 99, "--reports", tmp_path / "again")
    forgetful = fuzz("run", *common[:-2], "--database", "none", "--max-examples", 1, "--seed", 99,
                     "--reports", tmp_path / "forgetful")
    assert forgetful.returncode == 0, forgetful.stdout + forgetful.stderr
    assert again.returncode == 1, again.stdout + again.stderr
    assert {f["signature"] for f in run_record(tmp_path / "again")["findings"]} == \
        {f["signature"] for f in run_record(tmp_path / "first")["findings"]}


def test_shards_split_the_searches_deterministically_and_completely():
    properties = list(PROPERTIES)

    def plan(levels):  # the searches a machine whose CPU reaches ``levels`` plans
        return plan_searches(None, properties, list(MODES), CaseSpace(), seed=0, reports=Path("r"), timeout=1,
                             database=None, levels=levels)[0]

    everything = plan((None, "avx512", "avx2", "default"))
    for shards in (1, 2, 3, 7):
        owned = [[s.name for s in everything if shard_of(s.plan_index, shards) == k] for k in range(1, shards + 1)]
        assert sorted(itertools.chain(*owned)) == sorted(s.name for s in everything)  # every search, exactly once
        assert max(map(len, owned)) - min(map(len, owned)) <= 1
    # machines of other CPUs plan other levels, but a search they share has the same number, seed and shard
    older, newer = plan((None, "default")), plan((None, "avx2", "default"))
    numbers = {s.name: (s.plan_index, s.seed) for s in newer}
    assert all(numbers[s.name] == (s.plan_index, s.seed) for s in older)
    assert [s.index for s in older] == list(range(len(older)))


@pytest.mark.e2e
@pytest.mark.parametrize(("flags", "says"), [
    (["--shard", "3/2"], "is not K/N with 1 <= K <= N"),
    (["--shard", "1-2"], "is not K/N"),
    (["--time-budget", "0"], "must be a positive number of seconds"),
    (["--time-budget", "soon"], "is not a number of seconds"),
    (["--database", "ftp://example.org/db"], "not understood"),
    (["--database", "redis://localhost"], "expected redis://HOST:PORT"),
])
def test_bad_campaign_flags_are_one_line_and_exit_2(tmp_path, flags, says):
    done = fuzz("run", *flags, "--reports", tmp_path)
    assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "run.json").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.e2e
def test_an_unreachable_redis_is_named_before_any_search_starts(tmp_path):
    pytest.importorskip("redis", reason="the redis extra is not installed")
    port = _free_port()
    done = fuzz("run", "--database", f"redis://127.0.0.1:{port}", "--reports", tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot reach Redis at 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
    assert "checking" not in done.stdout


@pytest.mark.e2e
def test_a_missing_redis_package_is_one_line_naming_the_install_command(tmp_path):
    script = ("import sys\nsys.modules['redis'] = None  # as if not installed\nfrom fuzz_birnn.cli import main\n"
              "sys.exit(main(['run', '--database', 'redis://127.0.0.1:6379', '--reports', sys.argv[1]]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "needs the redis package: pip install 'fuzz-birnn[redis]'" in done.stderr


@pytest.fixture
def redis_url(tmp_path):
    pytest.importorskip("redis", reason="the redis extra is not installed")
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.e2e
def test_two_shards_with_one_redis_database_are_one_campaign(tmp_path, redis_url):
    common = ["--candidate", "tests.contract_bugs:two_faults", "--properties", "agreement,relation:layout",
              "--modes", "gru,lstm", "--database", redis_url, "--workers", 1]
    found = {}
    for shard in ("1/2", "2/2"):  # two machines, each with its own reports folder
        done = fuzz("run", *common, "--shard", shard, "--max-examples", 300, "--seed", 3,
                    "--reports", tmp_path / f"machine-{shard[0]}")
        assert done.returncode == 1, done.stdout + done.stderr
        record = run_record(tmp_path / f"machine-{shard[0]}")
        assert record["options"]["shard"] == shard
        found[shard] = {(s["property"], s["mode"]) for f in record["findings"] for s in f["seen_in"]}
    searches = {(p, m) for p in ("agreement", "relation:layout") for m in ("GRU", "LSTM")}
    owned = {shard: {(s["property"], s["mode"]) for s in run_record(tmp_path / f"machine-{shard[0]}")["cases"]
                     ["by_search"]} for shard in found}
    assert owned["1/2"] | owned["2/2"] == searches and not owned["1/2"] & owned["2/2"]
    # shard 1 again, on a third machine: one example per search, yet it finds what machine 1 found
    rerun = fuzz("run", *common, "--shard", "1/2", "--max-examples", 2, "--seed", 77, "--reports", tmp_path / "third")
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    refound = {(s["property"], s["mode"]) for f in run_record(tmp_path / "third")["findings"] for s in f["seen_in"]}
    assert refound == found["1/2"]



def test_a_failure_whose_shrinking_the_budget_cuts_short_is_still_written(tmp_path):
    from fuzz_birnn.campaign.engine import run_slice
    from fuzz_birnn.campaign.scheduler import Slice
    from fuzz_birnn.campaign.writeahead import WriteAhead

    [spec] = plan_searches("tests.contract_bugs:slow_and_swapped", ["agreement"], ["GRU"], CaseSpace(), seed=0,
                           reports=tmp_path, timeout=60, database=None)[0]
    job = Slice(spec, 2, 200, 123, (), False, 1.0, time.time() + 2.0, 60.0, reuse=False)
    with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
        result = run_slice(job, NoCapture(), ahead, lambda counts, generated: None)
    [finding] = result.findings
    assert finding.shrink == "shrinking cut short: the time budget ran out"
    [document] = documents(tmp_path)
    assert document["shrink"] == finding.shrink
    assert "Shrinking" in (tmp_path / document["id"] / "summary.md").read_text()
