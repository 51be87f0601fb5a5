"""Slow-target mode: once a candidate takes seconds a case under a time budget, agreement comes
first, small cases first, a new fault's shrinking gets more time, and cases that have what a known
fault needs are not checked."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings

from fuzz_birnn.campaign.engine import plan_searches, run_slice
from fuzz_birnn.campaign.scheduler import Scheduler, Search, Slice
from fuzz_birnn.campaign.slow import SKIPPED_AS_KNOWN, SLOW_CASE_SECONDS, SMALL_SLICES, is_slow, small_space
from fuzz_birnn.campaign.writeahead import WriteAhead
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.strategies import cases
from tests.slices import NoCapture

FINAL_STATE = "final state wrong"


def _scheduler(tmp_path, *, budget):
    specs, _ = plan_searches("tests.contract_bugs:two_final_state_faults", ["agreement", "relation:layout"],
                             ["GRU"], CaseSpace(), seed=0, reports=tmp_path, timeout=60, database=None)
    deadline = None if budget is None else time.time() + budget
    return Scheduler([Search(spec, 10_000) for spec in specs], deadline=deadline, reduce_seconds=60, workers=1)


def test_a_candidate_is_slow_from_a_quarter_second_a_case():
    assert is_slow(SLOW_CASE_SECONDS * 10, 10) and not is_slow(SLOW_CASE_SECONDS * 9.9, 10)
    assert not is_slow(0.0, 0)


def test_under_a_budget_a_slow_candidates_agreement_searches_come_first_and_draw_small_cases(tmp_path):
    scheduler = _scheduler(tmp_path, budget=600)
    agreement, layout = scheduler.next_job(), scheduler.next_job()
    assert (agreement.search.prop, layout.search.prop) == ("agreement", "relation:layout")
    assert not agreement.slow and not agreement.small  # nothing known of its speed yet
    scheduler.slice_ended(agreement, examples=10, seconds=10.0, checked=(10, 10.0))  # 1 s a case
    scheduler.slice_ended(layout, examples=8, seconds=8.0, checked=(8, 8.0))
    served = [scheduler.next_job() for _ in range(2)]
    assert all(job.slow for job in served)
    assert served[0].search.prop == "agreement"  # it had more time, but its time counts less
    assert served[0].small and served[0].shrink_seconds >= scheduler.share
    for job in served:
        scheduler.slice_ended(job, examples=5, seconds=5.0, checked=(5, 5.0))
    later = []
    for _ in range(3 * SMALL_SLICES):
        job = scheduler.next_job()
        later.append(job)
        scheduler.slice_ended(job, examples=5, seconds=5.0, checked=(5, 5.0))
    agreement_slices = [job for job in later if job.search.prop == "agreement"]
    assert len(agreement_slices) > len(later) - len(agreement_slices)
    assert not agreement_slices[-1].small  # past its first slices, the whole space


def test_without_a_budget_or_for_a_fast_candidate_nothing_changes(tmp_path):
    for budget, seconds in ((None, 10.0), (600, 0.1)):
        scheduler = _scheduler(tmp_path, budget=budget)
        first, second = scheduler.next_job(), scheduler.next_job()
        scheduler.slice_ended(first, examples=10, seconds=seconds, checked=(10, seconds))
        scheduler.slice_ended(second, examples=10, seconds=seconds, checked=(10, seconds))
        job = scheduler.next_job()
        assert not job.slow and not job.small and job.shrink_seconds == scheduler.shrink_seconds


@settings(max_examples=60)
@given(cases(**small_space(CaseSpace()).arguments()))
def test_the_small_corner_draws_small_cases(case):
    c, i = case.config, case.inputs
    assert c.num_layers <= 2 and i.seq_len <= 3 and (i.batch_size or 1) <= 2
    assert c.input_size <= 3 and c.hidden_size <= 3


def test_a_fixed_minimum_above_the_small_corner_stands():
    assert small_space(CaseSpace(min_layers=3, max_layers=4)).max_layers == 3



def test_a_slow_slice_does_not_check_cases_that_have_what_a_known_fault_needs(tmp_path):
    [spec], _ = plan_searches("tests.contract_bugs:two_final_state_faults", ["agreement"], ["GRU"],
                              CaseSpace(dtypes=("float64",), bias=False), seed=0, reports=tmp_path, timeout=60,
                              database=None)
    known = ((FINAL_STATE, (("given h0",),)),)
    reasons = []

    def tally(counts, generated):
        reasons.extend((key.verdict, key.reason, key.h0) for key in counts)

    for slow in (False, True):
        reasons.clear()
        job = Slice(spec, 2, 80, 3, (FINAL_STATE,), False, 1.0, None, 60.0, reuse=False, needs=known, slow=slow)
        with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
            result = run_slice(job, NoCapture(), ahead, tally)
        tally(result.counts, 0)
        assert result.findings == []  # no bias: the other fault cannot show
        assert result.checked > 0 and result.checked_seconds > 0  # what tells the scheduler it is slow
        checked_with_h0 = {verdict for verdict, reason, h0 in reasons if h0 == "h0 given" and verdict != "skipped"}
        if slow:
            assert not checked_with_h0 and ("skipped", SKIPPED_AS_KNOWN, "h0 given") in reasons
        else:
            assert checked_with_h0 == {"known"}


def test_a_slow_slice_never_skips_more_cases_than_it_checks(tmp_path):
    [spec], _ = plan_searches("tests.contract_bugs:two_final_state_faults", ["agreement"], ["GRU"],
                              CaseSpace(dtypes=("float64",), bias=False), seed=0, reports=tmp_path, timeout=60,
                              database=None)
    job = Slice(spec, 2, 60, 5, (FINAL_STATE,), False, 1.0, None, 60.0, reuse=False,
                needs=((FINAL_STATE, (("seq_len > 1",),)),), slow=True)  # a need most cases have
    with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
        result = run_slice(job, NoCapture(), ahead, lambda counts, generated: None)
    skipped = sum(n for key, n in result.counts.items() if key.reason == SKIPPED_AS_KNOWN)
    assert 0 < skipped <= result.checked + 1


def test_a_slow_candidates_fault_found_in_one_layer_type_is_known_in_the_others(tmp_path):
    specs, _ = plan_searches("tests.contract_bugs:two_final_state_faults", ["agreement"], ["GRU", "LSTM"],
                             CaseSpace(), seed=0, reports=tmp_path, timeout=60, database=None)
    for budget, shared in ((600, True), (None, False)):
        deadline = None if budget is None else time.time() + budget
        scheduler = Scheduler([Search(spec, 10_000) for spec in specs], deadline=deadline, reduce_seconds=60)
        gru, lstm = scheduler.next_job(), scheduler.next_job()
        scheduler.slice_ended(gru, examples=10, seconds=10.0, checked=(10, 10.0), signatures=[FINAL_STATE],
                              needs=[(FINAL_STATE, ("given h0",))])
        scheduler.slice_ended(lstm, examples=10, seconds=10.0, checked=(10, 10.0))
        later = [scheduler.next_job() for _ in range(2)]
        [lstm_later] = [job for job in later if job.search.mode == "LSTM"]
        assert (FINAL_STATE in lstm_later.known) is shared
        assert (lstm_later.needs == ((FINAL_STATE, (("given h0",),)),)) is shared


def test_a_slow_candidates_fault_whose_shrinking_was_cut_short_stays_unknown_to_be_shrunk_again(tmp_path):
    from fuzz_birnn.campaign.engine import Campaign, _Busy
    from fuzz_birnn.campaign.events import Counts, SliceEnded, SliceResult
    from fuzz_birnn.output.run_record import Finding

    specs, _ = plan_searches("tests.contract_bugs:two_final_state_faults", ["agreement"], ["GRU"], CaseSpace(),
                             seed=0, reports=tmp_path, timeout=60, database=None)
    for shrink, known in (("shrinking cut short: its search's share of the time budget ran out", False),
                          ("complete", True)):
        campaign = Campaign(specs, max_examples=10_000, workers=1, time_budget=600)
        job = campaign.scheduler.next_job()
        campaign._busy[0] = _Busy(job)
        finding = Finding(FINAL_STATE, "agreement", "GRU", str(tmp_path / "r"), True, "s", shrink, 10, None,
                          needs=("given h0",))
        campaign._handle(SliceEnded(0, SliceResult(Counts(), 5, 1.0, [finding], checked=5, checked_seconds=5.0)))
        assert (FINAL_STATE in campaign.scheduler.searches[0].known) is known
        assert campaign.findings == [finding]  # its report stands either way


def _reduced_slice(tmp_path, *, slow, budget, isolate=False, candidate="two_final_state_faults", shrink=300.0):
    """One agreement slice of GRU cases with a given h0 (the dropped h0 shows on nearly every one)."""
    tmp_path.mkdir(exist_ok=True)
    [spec], _ = plan_searches(f"tests.contract_bugs:{candidate}", ["agreement"], ["GRU"],
                              CaseSpace(dtypes=("float64",), bias=False, initial_state=True), seed=0,
                              reports=tmp_path, timeout=60, database=None)
    deadline = None if budget is None else time.time() + budget
    job = Slice(spec, 1, 40, 7, (), isolate, 1.0, deadline, 60.0, reuse=False, shrink_seconds=shrink, slow=slow)
    with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
        return run_slice(job, NoCapture(), ahead, lambda counts, generated: None)


def _smallest(finding):
    return json.loads((Path(finding.folder) / "case.json").read_text())["case"]


def test_a_slow_candidates_new_fault_is_reduced_field_by_field_to_the_simplest_case(tmp_path):
    result = _reduced_slice(tmp_path, slow=True, budget=600)
    [finding] = result.findings
    assert finding.shrink.startswith("complete (slow target: reduced field by field")
    case = _smallest(finding)
    assert {k: case["config"][k] for k in ("num_layers", "input_size", "hidden_size", "bias", "batch_first")} == {
        "num_layers": 1, "input_size": 1, "hidden_size": 1, "bias": False, "batch_first": False}
    assert (case["inputs"]["seq_len"], case["inputs"]["batch_size"], case["inputs"]["initial_state"]) == (1, 1, True)
    assert finding.needs == ("given h0",)


def test_a_slice_that_measures_its_candidate_slow_reduces_its_fault_itself(tmp_path, monkeypatch):
    import fuzz_birnn.campaign.slow as slow

    monkeypatch.setattr(slow, "SLOW_CASE_SECONDS", 1e-9)  # any candidate measures slow
    [finding] = _reduced_slice(tmp_path / "slow", slow=False, budget=600).findings
    assert "reduced field by field" in finding.shrink  # the scheduler did not know yet; the slice did
    [finding] = _reduced_slice(tmp_path / "no-budget", slow=False, budget=None).findings
    assert finding.shrink == "complete"  # without a budget, every search runs to its quota: Hypothesis shrinks


def test_a_slow_candidates_fault_is_reduced_in_a_search_that_isolates_its_cases_too(tmp_path):
    [finding] = _reduced_slice(tmp_path, slow=True, budget=600, isolate=True).findings
    assert finding.shrink.startswith("complete (slow target: reduced field by field")
    assert _smallest(finding)["config"]["num_layers"] == 1


def test_a_reduction_proposal_that_kills_its_process_costs_a_child_not_the_fault(tmp_path, monkeypatch):
    monkeypatch.setenv("FUZZ_BIRNN_TEST_PID", str(os.getpid()))
    result = _reduced_slice(tmp_path, slow=True, budget=600, candidate="drops_h0_with_layers_and_dies_in_a_child")
    [finding] = result.findings  # written, with the first failing case: every simpler one died in its child
    assert "reduced field by field" in finding.shrink and result.fault is None
    assert _smallest(finding)["inputs"]["seq_len"] > 1  # checked in this process, one step would have shown it
    assert finding.needs is None  # measured in a child too, which died


def test_two_stopped_faults_of_a_final_replay_stop_the_slice_once():
    from fuzz_birnn.campaign.engine import _Stop, _stopped_once

    def replay():
        raise BaseExceptionGroup("two faults", [_Stop("first"), _Stop("second")])

    with pytest.raises(_Stop, match="first"):
        _stopped_once(replay)

    def other():
        raise BaseExceptionGroup("a stop and an error", [_Stop("first"), KeyboardInterrupt()])

    with pytest.raises(BaseExceptionGroup):
        _stopped_once(other)


def test_a_slice_that_finds_its_candidate_slow_itself_reduces_within_the_ordinary_share(tmp_path, monkeypatch):
    import fuzz_birnn.campaign.slow as slow

    monkeypatch.setattr(slow, "SLOW_CASE_SECONDS", 1e-9)
    [finding] = _reduced_slice(tmp_path, slow=False, budget=600, shrink=0.0,  # the scheduler's share: none
                               candidate="drops_h0_with_layers").findings
    assert finding.shrink.startswith("shrinking cut short: its search's share of the time budget ran out")
    assert "(slow target: reduced field by field, 0 attempts)" in finding.shrink
