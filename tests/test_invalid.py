"""Invalid calls: torch, the decomposition and the reference all refuse them clearly."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import torch
from hypothesis import assume, find, given
from torch import nn

from fuzz_birnn import CheckFailure, decomposed
from fuzz_birnn.core.case import MODES, Case, Config, Inputs
from fuzz_birnn.properties.invalid import CORRUPTIONS, KNOWN_TORCH_CRASHES, KNOWN_TORCH_ISSUES, check_invalid
from fuzz_birnn.strategies import cases, invalid_calls

from .searching import SEARCH, fails


@given(invalid_calls(bidirectional=None))
def test_invalid_calls_are_refused_clearly_by_everyone(call):
    case, corruption = call
    assume(check_invalid(case, corruption).skipped is None)


def _fails(corruption, **kwargs):
    return fails(lambda case: check_invalid(case, corruption, **kwargs))


@pytest.mark.parametrize("corruption", sorted(KNOWN_TORCH_ISSUES))
def test_known_torch_issues_are_still_present(corruption):
    """When this fails, torch has fixed the issue: remove it from KNOWN_TORCH_ISSUES."""
    _, applies, _ = CORRUPTIONS[corruption]
    still_mishandled = _fails(corruption, strict=True)
    crashing = KNOWN_TORCH_CRASHES.get(corruption, ((), ""))[0]  # those would kill this process
    modes = [mode for mode in MODES if mode not in crashing]
    case = find(cases(modes=modes, bidirectional=None, initial_state=True),
                lambda c: applies(c) and still_mishandled(c), settings=SEARCH)
    assert applies(case)


@pytest.mark.e2e
@pytest.mark.parametrize(("corruption", "mode"), [(c, m) for c, (modes, _) in sorted(KNOWN_TORCH_CRASHES.items())
                                                  for m in modes])
def test_known_torch_crashes_still_crash(corruption, mode):
    """When this fails, torch no longer crashes: remove the mode from KNOWN_TORCH_CRASHES. Smallest
    sizes (hidden_size 1, batch 1), in a child process: the crash would kill this one."""
    case = Case(Config(mode=mode, input_size=1, hidden_size=1, num_layers=1, bias=False),
                Inputs(seq_len=1, batch_size=1, dtype="float64"))
    script = ("from fuzz_birnn.core.case import Case; from fuzz_birnn.properties.invalid import check_invalid; "
              f"check_invalid(Case.from_dict({case.to_dict()!r}), {corruption!r}, strict=True)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGSEGV, (done.returncode, done.stderr[-500:])


def test_a_known_crash_is_not_called_outside_strict_mode():
    case = Case(Config(mode="LSTM", input_size=1, hidden_size=1, num_layers=1), Inputs(seq_len=1, batch_size=1))
    outcome = check_invalid(case, "cell_unbatched_input_batched_state")
    assert outcome.skipped.startswith("known torch issue: nn.GRUCell/nn.LSTMCell") and "(not called)" in outcome.skipped


def test_a_cell_that_accepts_a_state_of_the_wrong_size_is_caught(monkeypatch):
    """A cell that pads or cuts its state to fit never refuses a wrong hidden size: a finding."""
    forward = nn.GRUCell.forward

    def fitting(self, input, hx=None):
        if hx is not None:
            hx = torch.nn.functional.pad(hx, (0, self.hidden_size - hx.shape[-1]))
        return forward(self, input, hx)

    case = Case(Config(mode="GRU", input_size=2, hidden_size=3, num_layers=1), Inputs(seq_len=2, batch_size=2))
    assert check_invalid(case, "cell_hidden_size").skipped is None  # torch's own cell refuses it
    monkeypatch.setattr(nn.GRUCell, "forward", fitting)
    with pytest.raises(CheckFailure, match="cell_hidden_size: torch accepted the call"):
        check_invalid(case, "cell_hidden_size")


def test_an_implementation_that_accepts_a_wrong_state_is_caught(monkeypatch):
    """A decomposition that ignores the caller's h0 never notices that it has the wrong shape."""
    monkeypatch.setattr("fuzz_birnn.properties.invalid.decomposed",
                        lambda module, input, hx=None: decomposed(module, input))
    case = find(cases(), _fails("h0_rows"), settings=SEARCH)
    with pytest.raises(CheckFailure, match="h0_rows: torch refuses it, but decomposed accepted the call"):
        check_invalid(case, "h0_rows")
    assert (case.config.num_layers, case.inputs.seq_len, case.inputs.initial_state) == (1, 1, True)
