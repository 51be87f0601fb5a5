"""The run's record and its console summary: what it counts, and what it shows at a glance."""

from __future__ import annotations

import datetime
import platform

import pytest

from fuzz_birnn.core.case import Case, Config, Inputs
from fuzz_birnn.output.run_record import RunOptions, SearchTime, build_record, count_key, print_summary, telling_support


@pytest.fixture(autouse=True)
def _no_uname(monkeypatch):
    monkeypatch.setattr(platform, "platform", lambda: "Linux")  # the real one asks uname -p, a process


OPTIONS = RunOptions(None, ["agreement"], ["GRU"], 0, 100, None, 60.0, 1, "none", None, "reports")


def record_of(verdicts):
    """A run's record from ``(dtype, verdict, reason)`` counts of GRU agreement cases."""
    counts = {}
    for (dtype, verdict, reason), n in verdicts.items():
        case = Case(Config("GRU"), Inputs(dtype=dtype))
        counts[count_key("agreement", "GRU", case, verdict, reason)] = n
    return build_record(searches=[SearchTime("agreement", "GRU", 1.0)], counts=counts, findings=[], errors=[],
                        notes=[], seconds=1.0, options=OPTIONS, started=datetime.datetime.now(), interrupted=False)


def test_a_value_failing_on_every_compared_case_shows_its_dimension(capsys, tmp_path):
    record = record_of({("float32", "passed", None): 40, ("bfloat16", "failed", None): 1,
                        ("bfloat16", "known", None): 30})
    assert telling_support(record) == ["dtype"]
    print_summary(record, tmp_path)
    shown = capsys.readouterr().out
    assert "support (cases checked / unsupported / failing)" in shown
    assert "dtype      bfloat16 31/0/31  float32 40/0/0" in shown
    assert "  mode" not in shown.split("support")[1]  # GRU alone, the only mode: it stands apart from nothing


def test_a_value_refused_on_every_case_shows_its_dimension():
    record = record_of({("float32", "passed", None): 40, ("float16", "unsupported", "unsupported: no kernel"): 9})
    assert telling_support(record) == ["dtype"]


def test_nothing_stands_apart_where_every_value_passes_or_every_value_fails(capsys, tmp_path):
    assert telling_support(record_of({("float32", "passed", None): 40, ("float64", "failed", None): 1,
                                      ("float64", "passed", None): 9})) == []
    everywhere = record_of({("float32", "known", None): 40, ("float64", "failed", None): 1})
    assert telling_support(everywhere) == []
    print_summary(everywhere, tmp_path)
    assert "support (" not in capsys.readouterr().out


def test_a_finding_shows_a_report_whose_shrinking_ran_to_its_end_before_a_smaller_cut_short_one():
    from fuzz_birnn.output.run_record import Finding
    from fuzz_birnn.output.run_record import _group as group_findings

    cut_short = Finding("final state wrong", "agreement", "RNN_TANH", "/r/67b6", True, "s",
                        "shrinking cut short: its search's share of the time budget ran out", 4, None,
                        needs=("given h0",))
    complete = Finding("final state wrong", "agreement", "LSTM", "/r/cb80", True, "s", "complete", 27, None,
                       needs=("given h0",))
    [finding] = group_findings([cut_short, complete])
    assert finding.smallest.report == "cb80" and finding.smallest.complete
