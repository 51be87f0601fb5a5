"""A relation's fault that follows from an agreement fault (a case of its family shows it) is part
of that finding, not one of its own: the family, the slice that measures it, the record that
merges it, and a relation fault that follows from nothing, which stays its own."""

from __future__ import annotations

import json
from pathlib import Path

from fuzz_birnn import Case, Config, Inputs
from fuzz_birnn.campaign.engine import plan_searches, run_slice
from fuzz_birnn.campaign.needs import family
from fuzz_birnn.campaign.scheduler import Slice
from fuzz_birnn.campaign.writeahead import WriteAhead
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.output.run_record import FindingGroup, Seen, Smallest, onto_agreement
from tests.slices import NoCapture


def test_a_cases_family_has_its_other_layout_and_its_plainer_forms():
    packed = Case(Config("GRU", batch_first=True), Inputs(3, 2, True, (1, 3), False))
    relatives = family(packed)
    assert relatives[0] == packed and any(not r.config.batch_first for r in relatives)
    assert any(not r.inputs.packed for r in relatives) and any(r.inputs.enforce_sorted for r in relatives)
    single = Case(Config("GRU"), Inputs(2, 1))
    assert any(r.inputs.unbatched for r in family(single))
    assert any(r.inputs.batch_size == 1 for r in family(Case(Config("GRU"), Inputs(2, 3, unbatched=False))))



def _relation_finding(tmp_path, candidate):
    space = CaseSpace(dtypes=("float64",), forms=("padded",), contiguous=True)
    [spec], _ = plan_searches(candidate, ["relation:layout"], ["GRU"], space, seed=0, reports=tmp_path, timeout=60,
                              database=None)
    job = Slice(spec, 1, 100, 0, (), False, 1.0, None, 60.0, reuse=False)
    with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
        result = run_slice(job, NoCapture(), ahead, lambda counts, generated: None)
    [finding] = result.findings
    return finding


def test_a_relation_fault_that_the_agreement_property_shows_on_its_family_follows_from_it(tmp_path):
    # two_faults swaps the output's directions for batch_first input: the layout relation fails, and
    # agreement on the batch_first member of the family shows the same mistake
    finding = _relation_finding(tmp_path, "tests.contract_bugs:two_faults")
    assert finding.signature == "layout: results differ"  # whichever tensor and variant
    assert finding.follows == "output wrong, final state right, both directions"
    assert json.loads((Path(finding.folder) / "case.json").read_text())["follows"] == finding.follows


def test_a_relation_fault_that_agreement_never_shows_follows_from_nothing(tmp_path):
    # wrong only on a strided view, which the relation's follow-up call hands it and no contiguous case does
    assert _relation_finding(tmp_path, "tests.contract_bugs:wrong_on_a_non_contiguous_input").follows is None


def test_a_relation_fault_on_a_case_that_is_wrong_already_follows_from_nothing(tmp_path):
    # the scaling is an agreement fault on every case, but it is not what breaks the layout relation
    assert _relation_finding(tmp_path, "tests.contract_bugs:scaled_and_wrong_on_a_non_contiguous_input").follows \
        is None


def _group(signature, prop, follows=None, report="r"):
    return FindingGroup(signature, Smallest(report, "s", "complete", None, [], None), [report],
                        [Seen(prop, "GRU", report, True)], follows=follows)


def test_the_record_makes_a_following_relation_finding_part_of_the_agreement_one():
    agreement = _group("output wrong, final state right, both directions", "agreement", report="a")
    follows = _group("layout: results differ", "relation:layout", agreement.signature, "b")
    other = _group("sorting: results differ", "relation:sorting", None, "c")
    orphan = _group("unbatched: output differs", "relation:unbatched", "final state wrong", "d")
    [merged, kept, alone] = onto_agreement([agreement, follows, other, orphan])
    assert merged.reports == ["a", "b"] and merged.also == [follows.signature]
    assert merged.smallest.report == "a" and {s.property for s in merged.seen_in} == {"agreement", "relation:layout"}
    assert (kept, alone) == (other, orphan)  # follows from nothing, or from a fault the run did not find


def test_an_autocast_fault_the_agreement_property_shows_on_its_case_follows_from_it(tmp_path):
    space = CaseSpace(dtypes=("float32",), forms=("padded",), initial_state=True)
    [spec], _ = plan_searches("tests.contract_bugs:initial_state_ignored", ["autocast"], ["GRU"], space, seed=0,
                              reports=tmp_path, timeout=60, database=None)
    job = Slice(spec, 1, 60, 0, (), False, 1.0, None, 60.0, reuse=False)
    with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
        result = run_slice(job, NoCapture(), ahead, lambda counts, generated: None)
    assert result.findings and {f.follows for f in result.findings} == {"final state wrong"}
    assert all("oneDNN o" not in f.signature for f in result.findings)  # one fault with the backend on and off


def test_a_finding_that_follows_one_fault_is_not_joined_with_another_that_shares_its_wording():
    """As a slow target's run had it: the swapped directions of batch_first input (agreement, two
    layer types) and the dropped h0, which at scale 0.25 leaves the same words under autocast."""
    from fuzz_birnn.output.run_record import Finding
    from fuzz_birnn.output.run_record import _group as group_findings

    def finding(signature, prop, mode, folder, cost, needs, follows=None):
        return Finding(signature, prop, mode, f"/r/{folder}", True, "s", "complete", cost, None, needs=needs,
                       follows=follows)

    both = "output wrong, final state right, both directions"
    findings = [finding("final state wrong", "agreement", "RNN_TANH", "h0", 4, ("given h0",)),
                finding(both, "agreement", "GRU", "swap-gru", 8, ("batch_first",)),
                finding(both, "agreement", "LSTM", "swap-lstm", 9, ("batch_first",)),
                finding(both, "autocast", "RNN_TANH", "h0-small", 2, ("given h0", "scale 0.25", "seq_len > 1"),
                        follows="final state wrong")]
    h0, swap = group_findings(findings)
    assert (h0.signature, swap.signature) == ("final state wrong", both)
    assert sorted(h0.reports) == ["h0", "h0-small"] and h0.also == [both]
    assert sorted(swap.reports) == ["swap-gru", "swap-lstm"] and swap.needs == ["batch_first"]


def test_a_finding_whose_source_was_not_measured_still_joins_its_signature():
    """No time left to check what a re-found fault follows (``follows`` unmeasured) says nothing:
    it joins the findings of its signature, and with them the agreement finding they follow."""
    from fuzz_birnn.output.run_record import Finding
    from fuzz_birnn.output.run_record import _group as group_findings

    autocast = "under autocast: output wrong"
    findings = [Finding("final state wrong", "agreement", "GRU", "/r/a", True, "s", "complete", 4, None,
                        needs=("given h0",)),
                Finding(autocast, "autocast", "GRU", "/r/x1", True, "s", "complete", 5, None, needs=("given h0",),
                        follows="final state wrong"),
                Finding(autocast, "autocast", "LSTM", "/r/x2", True, "s", "shrinking cut short", 9, None)]
    [one] = group_findings(findings)
    assert sorted(one.reports) == ["a", "x1", "x2"] and one.also == [autocast]
