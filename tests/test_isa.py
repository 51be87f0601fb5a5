"""Instruction-set levels: workers started with the caps of a lower level really run there, the
searches at each level are counted apart, and a fault that shows only at one level is found there."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fuzz_birnn.campaign.api import RunError, run
from fuzz_birnn.core.isa import NATIVE, caps, levels_here, native_level
from fuzz_birnn.core.space import CaseSpace
from tests.test_campaigns import ROOT, fuzz

SMALL = CaseSpace(dtypes=("float64",), max_layers=2, max_seq_len=3, max_batch=2, forms=("padded",))


@pytest.mark.e2e
def test_a_process_started_with_a_levels_caps_runs_at_that_level():
    if "default" not in levels_here()[1:]:
        pytest.skip("this CPU's own level is the baseline: nothing lower to emulate")
    script = "from fuzz_birnn.core.isa import levels_here, native_level; print(native_level(), levels_here())"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **caps("default")})
    assert done.stdout.split() == ["default", "['default']"], done.stdout + done.stderr


def test_an_unreachable_or_unknown_level_is_one_line(tmp_path):
    with pytest.raises(RunError, match="choose from native,avx512,avx2,default"):
        run(None, properties=["fused-vs-reference"], reports=tmp_path, isa=["sse2"])
    if native_level() != "avx512":
        with pytest.raises(RunError, match="this CPU runs at that level"):
            run(None, properties=["fused-vs-reference"], reports=tmp_path, isa=["avx512"])


@pytest.mark.e2e
def test_a_fault_that_shows_only_at_the_baseline_level_is_found_there_and_only_there(tmp_path):
    if "default" not in levels_here()[1:]:
        pytest.skip("this CPU's own level is the baseline: nothing lower to emulate")
    record = run("tests.contract_bugs:wrong_at_the_baseline_level", properties=["agreement"], modes=["GRU"],
                 space=SMALL, max_examples=120, seed=4, reports=tmp_path, isa=[NATIVE, "default"], workers=2)
    assert not record.errors, record.errors  # a worker that did not run at its level would say so
    assert {(s.isa, s.cases > 0) for s in record.cases.by_search} == {(NATIVE, True), ("default", True)}
    assert record.findings and all(seen.isa == "default" for f in record.findings for seen in f.seen_in)
    assert record.options.isa == [NATIVE, "default"]
    assert record.cases.by_dimension["isa"].keys() == {NATIVE, "default"}
    # replay and the report's repro.py re-run the case at its level, and say so (at the machine's own, it passes)
    report = tmp_path / record.findings[0].smallest.report
    replayed = fuzz("replay", report)
    assert replayed.returncode == 1 and "instruction-set level default" in replayed.stdout, replayed.stdout
    repro = subprocess.run([sys.executable, report / "repro.py"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert repro.returncode == 1, repro.stdout + repro.stderr
    assert "re-running in a process started at instruction-set level default" in repro.stdout


@pytest.mark.e2e
def test_torch_searched_at_a_lower_level_passes_counted_under_it(tmp_path):
    if "default" not in levels_here()[1:]:
        pytest.skip("this CPU's own level is the baseline: nothing lower to emulate")
    record = run(None, properties=["fused-vs-reference", "agreement"], modes=["LSTM"], space=SMALL,
                 max_examples=90, seed=5, reports=tmp_path, isa=["default"], workers=1)
    assert record.exit_code == 0 and not record.errors, record.errors
    # the level applies to what checks torch's kernels; the decomposition's agreement runs at the machine's own
    assert sorted((s.property, s.isa) for s in record.cases.by_search) == [("agreement", NATIVE),
                                                                          ("fused-vs-reference", "default")]
