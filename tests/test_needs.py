"""Two faults of one signature are told apart by what each needs in order to show: the features,
taking each away, the probe that measures them, what a slice counts as known, and the run that
writes both (the second used to be counted as known and never written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given

from fuzz_birnn import Case, CheckFailure, Config, Inputs, check
from fuzz_birnn.campaign.engine import plan_searches, run_slice
from fuzz_birnn.campaign.needs import DRAWS, MAX_CAUSES, features, is_known, needs_of, without_feature
from fuzz_birnn.campaign.scheduler import Scheduler, Search, Slice
from fuzz_birnn.campaign.writeahead import WriteAhead
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.output.run_record import Finding, build_record
from fuzz_birnn.strategies import cases
from tests import contract_bugs
from tests.slices import NoCapture

ROOT = Path(__file__).resolve().parent.parent
FINAL_STATE = "final state wrong"


@given(cases())
def test_each_feature_taken_away_leaves_a_valid_case_without_it_and_with_the_rest(case):
    have = features(case)
    for name in have:
        simpler = without_feature(case, name)
        if simpler is None:  # only a projection forbids hidden_size 1
            assert name == "hidden_size > 1" and case.config.proj_size
            continue
        left = features(simpler)
        assert name not in left, (name, case)
        # what goes with it: unsorted lengths with packing, the backend's flip, a scale for another
        assert have - {name, "unsorted lengths", "oneDNN on", "oneDNN off"} <= left | {"batch > 1"}, (name, case)
        simpler.build()


def test_a_feature_is_needed_when_without_it_the_fault_shows_on_no_draw():
    case = Case(Config("GRU", 2, 2, 2, bias=True, batch_first=True), Inputs(3, 2, initial_state=True, seed=4))
    tried = []

    def shows(candidate_case):  # a fault that needs two layers and a given h0, whatever else
        tried.append(candidate_case)
        return candidate_case.config.num_layers > 1 and candidate_case.inputs.initial_state
    assert needs_of(case, shows) == ("given h0", "num_layers > 1")
    # a needed feature is tried on DRAWS draws of values before it counts as needed
    assert sum(1 for c in tried if not c.inputs.initial_state) == DRAWS


def test_a_fault_that_shows_on_one_draw_of_values_without_a_feature_does_not_need_it():
    case = Case(Config("GRU", bias=True), Inputs(2, 1, seed=9))
    seeds = {case.with_values(k).inputs.seed for k in range(DRAWS)}
    last = max(seeds)
    assert needs_of(case, lambda c: c.config.bias or c.inputs.seed == last) == ()


def test_a_measurement_cut_short_is_no_measurement():
    case = Case(Config("GRU", bias=True, num_layers=2), Inputs(2, 1))
    assert needs_of(case, lambda c: False, deadline=0.0) is None  # not (): that would say it needs nothing


def test_a_failure_is_known_when_it_has_what_some_known_fault_needs():
    with_h0 = Case(Config("GRU"), Inputs(2, 1, initial_state=True))
    with_bias = Case(Config("GRU", bias=True), Inputs(2, 1))
    assert is_known(with_h0, [("given h0",)]) and not is_known(with_bias, [("given h0",)])
    assert is_known(with_bias, [("given h0",), ("bias",)])
    assert is_known(with_bias, []) and is_known(with_bias, [()])  # needs not measured, or nothing needed
    assert is_known(with_bias, [("proj_size",)] * MAX_CAUSES)  # past the cap, a signature is one finding


def _shows(candidate, signature):
    def shows(case):
        try:
            check(candidate, case)
        except CheckFailure as failure:
            return failure.mismatch.pattern == signature
        return False
    return shows


def test_each_of_two_faults_of_one_signature_is_measured_to_need_its_own_feature():
    both = contract_bugs.two_final_state_faults
    h0_case = Case(Config("GRU"), Inputs(1, 1, initial_state=True))
    bias_case = Case(Config("GRU", bias=True), Inputs(1, 1))
    assert _shows(both, FINAL_STATE)(h0_case) and _shows(both, FINAL_STATE)(bias_case)
    assert needs_of(h0_case, _shows(both, FINAL_STATE)) == ("given h0",)
    assert needs_of(bias_case, _shows(both, FINAL_STATE)) == ("bias",)
    # a correct candidate never shows anything, so a fault that is not there needs everything it is tried on
    assert needs_of(bias_case, _shows(contract_bugs.torch_in_float64, FINAL_STATE)) == ("bias", "oneDNN on")



def test_a_slice_writes_a_fault_of_a_known_signature_that_lacks_what_the_known_one_needs(tmp_path):
    [spec], _ = plan_searches("tests.contract_bugs:two_final_state_faults", ["agreement"], ["GRU"],
                              CaseSpace(dtypes=("float64",)), seed=0, reports=tmp_path, timeout=60, database=None)
    known = (FINAL_STATE,)
    job = Slice(spec, 2, 150, 3, known, False, 1.0, None, 60.0, reuse=False, needs=((FINAL_STATE, (("given h0",),)),))
    with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
        result = run_slice(job, NoCapture(), ahead, lambda counts, generated: None)
        lines = [json.loads(line) for line in ahead.path.read_text().splitlines()]
    # each case the probe checks is written ahead: the parent times a case from its line, and would
    # take a probe's cases, one after another, for one case that hangs
    assert sum(1 for line in lines if line.get("probing")) >= DRAWS
    [finding] = result.findings
    assert (finding.signature, finding.needs) == (FINAL_STATE, ("bias",))
    written = json.loads((Path(finding.folder) / "case.json").read_text())
    assert written["needs"] == ["bias"] and written["case"]["config"]["bias"] is True
    assert not written["case"]["inputs"]["initial_state"]  # shrunk away from the known fault's need
    assert "Shows only with" in (Path(finding.folder) / "summary.md").read_text()
    assert sum(n for key, n in result.counts.items() if key.verdict == "known") > 0  # the h0 fault, seen again

    # once both are known, neither is written again
    both = Slice(spec, 3, 150, 4, known, False, 1.0, None, 60.0, reuse=False,
                 needs=((FINAL_STATE, (("given h0",), ("bias",))),))
    with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
        assert run_slice(both, NoCapture(), ahead, lambda counts, generated: None).findings == []


def test_a_candidate_that_cannot_be_forked_is_probed_in_process(tmp_path):
    [spec], _ = plan_searches("tests.contract_bugs:hangs_in_a_forked_child", ["agreement"], ["GRU"],
                              CaseSpace(dtypes=("float64",)), seed=0, reports=tmp_path, timeout=2, database=None)
    job = Slice(spec, 1, 60, 3, (), False, 1.0, None, 60.0, reuse=False)
    try:
        with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
            result = run_slice(job, NoCapture(), ahead, lambda counts, generated: None)
    finally:
        from fuzz_birnn.processes import forked
        forked._NO_FORK = None  # this test's process goes on forking for the other tests
    [finding] = result.findings
    assert finding.needs == ("given h0",)  # measured in-process: a forked probe would have hung


def test_the_scheduler_hands_each_signatures_needs_to_later_slices(tmp_path):
    [spec], _ = plan_searches(None, ["agreement"], ["GRU"], CaseSpace(), seed=0, reports=tmp_path, timeout=60,
                              database=None)
    scheduler = Scheduler([Search(spec, 1000)], deadline=None, reduce_seconds=60)
    first = scheduler.next_job()
    scheduler.slice_ended(first, examples=20, seconds=1.0, signatures=[FINAL_STATE],
                          needs=[(FINAL_STATE, ("given h0",))])
    second = scheduler.next_job()
    scheduler.slice_ended(second, examples=20, seconds=1.0, signatures=[FINAL_STATE], needs=[(FINAL_STATE, ("bias",))])
    third = scheduler.next_job()
    assert FINAL_STATE in third.known and third.needs == ((FINAL_STATE, (("given h0",), ("bias",))),)


def _finding(needs, mode="GRU", folder="a"):
    return Finding(FINAL_STATE, "agreement", mode, f"/r/{folder}", True, "s", "complete", 10, None, needs=needs)


def test_the_record_keeps_two_faults_one_search_told_apart_and_joins_what_nothing_tells_apart(monkeypatch):
    import platform
    monkeypatch.setattr(platform, "platform", lambda: "Linux")

    def grouped(findings):
        return [sorted(g.reports) for g in build_record(searches=[], counts={}, findings=findings, errors=[], notes=[],
                                                        seconds=1.0, options=None, started=_NOW,
                                                        interrupted=False).findings]
    # one search, two needs: two findings; another search's finding joins the one whose needs it shares
    assert grouped([_finding(("given h0",), folder="a"), _finding(("bias",), folder="b"),
                    _finding(("bias",), "LSTM", folder="c")]) == [["a"], ["b", "c"]]
    # one fault that needs other features in another layer type: one finding, as before needs
    assert grouped([_finding(("given h0",), folder="a"), _finding(("given h0", "seq_len > 1"), "LSTM", folder="b")]) \
        == [["a", "b"]]
    # two slices of one search that each found the same fault first, one measuring a need more: one fault
    assert grouped([_finding(("given h0",), folder="a"), _finding(("given h0", "seq_len > 1"), folder="b")]) \
        == [["a", "b"]]
    # what one search told apart stays apart, whatever order the others come in
    assert grouped([_finding(("given h0",), "LSTM", folder="a"), _finding(("bias",), folder="b"),
                    _finding(("given h0",), folder="c")]) == [["a", "c"], ["b"]]


_NOW = __import__("datetime").datetime(2026, 1, 1)


@pytest.mark.e2e
def test_a_run_writes_two_faults_of_one_signature_as_two_findings(tmp_path):
    arguments = ["run", "--candidate", "tests.contract_bugs:two_final_state_faults", "--properties", "agreement",
                 "--modes", "gru", "--max-examples", "600", "--seed", "1", "--database", "none",
                 "--reports", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", *arguments], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    assert sorted(tuple(f["needs"]) for f in record["findings"]) == [("bias",), ("given h0",)], done.stdout
    assert {f["signature"] for f in record["findings"]} == {FINAL_STATE}
    assert "shows only with: bias" in done.stdout and "shows only with: given h0" in done.stdout
