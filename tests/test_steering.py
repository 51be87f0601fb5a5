"""A search stops drawing what its candidate refuses on every case: which values, the narrowed
space, the slices that no longer draw them, and the run that says so."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz_birnn import Case, Config, Inputs
from fuzz_birnn.campaign.engine import plan_searches, run_slice
from fuzz_birnn.campaign.scheduler import Scheduler, Search, Slice
from fuzz_birnn.campaign.steering import REFUSALS_TO_STEER, refused_values, without
from fuzz_birnn.campaign.writeahead import WriteAhead
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.output.run_record import count_key
from tests.slices import NoCapture

ROOT = Path(__file__).resolve().parent.parent


def _counts(*rows):
    """Counts of the agreement (GRU) search: (dtype, packed, verdict, n) rows."""
    counts = collections.Counter()
    for dtype, packed, verdict, n in rows:
        inputs = Inputs(seq_len=2, batch_size=2, dtype=dtype, packed=packed, lengths=(2, 1) if packed else None)
        reason = f"unsupported: no {dtype} kernel" if verdict == "unsupported" else None
        counts[count_key("agreement", "GRU", Case(Config(mode="GRU"), inputs), verdict, reason)] += n
    return counts


def test_a_value_refused_on_every_case_while_others_are_compared_is_steered_away():
    counts = _counts(("float16", False, "unsupported", 3), ("float16", True, "unsupported", REFUSALS_TO_STEER - 3),
                     ("float32", False, "passed", 4), ("float64", True, "failed", 1))
    [refused] = refused_values(counts, "agreement", "GRU", "native")
    assert (refused.dimension, refused.value, refused.cases) == ("dtype", "float16", REFUSALS_TO_STEER)
    assert "no float16 kernel" in refused.describe("agreement (GRU)") and "--dtypes" in refused.describe("x")
    assert refused_values(counts, "agreement", "LSTM", "native") == []  # another search's counts are its own


@pytest.mark.parametrize(("rows", "why"), [
    ([("float16", False, "unsupported", REFUSALS_TO_STEER - 1), ("float32", False, "passed", 9)], "too few refusals"),
    ([("float16", False, "unsupported", 9), ("float16", True, "passed", 1), ("float32", False, "passed", 9)],
     "float16 was compared once: refused with something else, not for itself"),
    ([("float16", False, "unsupported", 9), ("float32", False, "unsupported", 9)], "nothing was compared"),
])
def test_a_value_is_not_steered_away_on_too_little_evidence(rows, why):
    found = refused_values(_counts(*rows), "agreement", "GRU", "native")
    assert ("dtype", "float16") not in {(r.dimension, r.value) for r in found}, why


def test_the_narrowed_space_leaves_the_values_out_but_never_a_whole_dimension():
    space = CaseSpace(dtypes=("float32", "float16"))
    narrowed = without(space, [("dtype", "float16"), ("h0", "h0 given"), ("backend", "oneDNN off")])
    assert (narrowed.dtypes, narrowed.initial_state, narrowed.onednn) == (("float32",), False, True)
    assert without(space, [("dtype", "float16"), ("dtype", "float32")]).dtypes == ("float32",)
    fixed = CaseSpace(batch_first=True)
    assert without(fixed, [("layout", "batch_first")]).batch_first is True  # the user's own choice stands


def test_a_search_hands_what_it_refuses_to_its_later_slices(tmp_path):
    [spec], _ = plan_searches(None, ["agreement"], ["GRU"], CaseSpace(), seed=0, reports=tmp_path, timeout=60,
                              database=None)
    scheduler = Scheduler([Search(spec, 1000)], deadline=None, reduce_seconds=60)
    first = scheduler.next_job()
    assert isinstance(first, Slice) and first.refused == ()
    scheduler.slice_ended(first, examples=first.max_examples, seconds=1.0)
    scheduler.searches[0].refused.add(("dtype", "float16"))
    second = scheduler.next_job()
    assert isinstance(second, Slice) and second.refused == (("dtype", "float16"),)



def test_a_slice_never_draws_a_refused_value(tmp_path):
    [spec], _ = plan_searches("tests.contract_bugs:refuses_float16", ["agreement"], ["GRU"], CaseSpace(), seed=0,
                              reports=tmp_path, timeout=60, database=None)
    drawn = collections.Counter()

    def tally(counts, generated):
        for key, n in counts.items():
            drawn[key.dtype] += n

    for refused, dtypes in [((), {"float16", "float32"}), ((("dtype", "float16"),), {"float32"})]:
        drawn.clear()
        job = Slice(spec, 2, 120, 5, (), False, 1.0, None, 60.0, reuse=False, refused=refused)
        with WriteAhead(tmp_path / ".inflight-0.json") as ahead:
            result = run_slice(job, NoCapture(), ahead, tally)
        tally(result.counts, 0)
        assert dtypes <= set(drawn) and (not refused or "float16" not in drawn), drawn


@pytest.mark.e2e
def test_a_run_stops_drawing_a_dtype_its_candidate_refuses_and_says_so(tmp_path):
    arguments = ["run", "--candidate", "tests.contract_bugs:refuses_float16", "--properties", "agreement",
                 "--modes", "gru", "--max-examples", "700", "--seed", "0", "--workers", "1", "--reports", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", *arguments], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    refused = record["support"]["dtype"]["float16"]["unsupported"]
    # one worker: every float16 case was refused before the note, none drawn after it
    note = (f"agreement (GRU): stopped drawing dtype float16: the candidate refused all {refused} cases with it "
            "(no float16 kernel); --dtypes leaves it out of a run from the start")
    assert note in record["notes"] and f"note: {note}" in done.stdout
    assert record["cases"]["total"] - refused >= 700


def _joint(*rows):
    """Counts of the zero_state (LSTM) search: (dtype, batch_first, verdict, reason, n) rows."""
    counts = collections.Counter()
    for dtype, batch_first, verdict, reason, n in rows:
        case = Case(Config(mode="LSTM", batch_first=batch_first), Inputs(seq_len=2, batch_size=2, dtype=dtype))
        counts[count_key("relation:zero_state", "LSTM", case, verdict, reason)] += n
    return counts


def test_a_value_refused_only_because_its_cases_had_another_refused_value_is_not_steered():
    # seen in a run of onnxruntime-torchscript: every time-major case drawn was float64 or bfloat16
    # (both refused, for two reasons), so time-major was refused on every case while batch_first passed
    double, bfloat = "unsupported: LSTM operator does not support double yet", "unsupported: no bfloat16 export"
    counts = _joint(("float64", False, "unsupported", double, 30), ("float64", True, "unsupported", double, 3),
                    ("bfloat16", False, "unsupported", bfloat, 16), ("float32", True, "passed", None, 40))
    steered = {(r.dimension, r.value) for r in refused_values(counts, "relation:zero_state", "LSTM", "native")}
    assert ("layout", "time-major") not in steered and ("dtype", "float64") in steered
    # bfloat16's refusals are all time-major too: which of the two is refused, later cases will tell
    assert ("dtype", "bfloat16") not in steered
    counts.update(_joint(("bfloat16", True, "unsupported", bfloat, 2)))
    steered = {(r.dimension, r.value) for r in refused_values(counts, "relation:zero_state", "LSTM", "native")}
    assert steered == {("dtype", "float64"), ("dtype", "bfloat16")}


def test_a_value_refused_everywhere_is_steered_though_another_dtype_is_refused_for_the_same_reason_sometimes():
    # float16 refused on each of its cases; bfloat16 refused (same words) on packed cases only, compared padded
    reason = "unsupported: dtype not supported"
    counts = collections.Counter()
    for dtype, packed, verdict, n in (("float16", False, "unsupported", 10), ("float16", True, "unsupported", 10),
                                      ("bfloat16", True, "unsupported", 5), ("bfloat16", False, "passed", 20),
                                      ("float32", True, "passed", 20)):
        inputs = Inputs(seq_len=2, batch_size=2, dtype=dtype, packed=packed, lengths=(2, 1) if packed else None)
        counts[count_key("agreement", "GRU", Case(Config(mode="GRU"), inputs), verdict,
                         reason if verdict == "unsupported" else None)] += n
    assert [(r.dimension, r.value) for r in refused_values(counts, "agreement", "GRU", "native")] == \
        [("dtype", "float16")]
