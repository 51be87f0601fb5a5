"""The pieces behind crash and hang shrinking: forked cases, the reducer, output capture."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import subprocess
import sys
import time

import pytest

from fuzz_birnn import Case, CheckFailure, Config, Inputs
from fuzz_birnn.campaign.reducer import proposals, reduce_case, within_space
from fuzz_birnn.core.compare import Mismatch
from fuzz_birnn.core.space import CaseSpace
from fuzz_birnn.processes.capture import KEEP_BYTES, read_file
from fuzz_birnn.processes.fork_server import ForkServer
from fuzz_birnn.processes.forked import can_fork, run_forked

needs_fork = pytest.mark.skipif(not can_fork(), reason="needs os.fork")

BIG = Case(Config("LSTM", 5, 6, 3, True, True, True, 3),
           Inputs(7, 4, True, (7, 5, 3, 2), True, False, True, "float16", seed=99, scale=4.0))


@needs_fork
def test_a_forked_case_reports_how_it_ended():
    assert run_forked(lambda: 42, 5).value == 42
    assert run_forked(lambda: 42, 5).kind == "passed"

    def fails():
        raise CheckFailure(Mismatch("output", "wrong"), Case(), "fused")
    assert run_forked(fails, 5).kind == "failed"
    raised = run_forked(lambda: 1 / 0, 5)
    assert (raised.kind, raised.detail) == ("raised", "ZeroDivisionError: division by zero")
    crashed = run_forked(lambda: (faulthandler.disable(), os.kill(os.getpid(), signal.SIGSEGV)), 5)
    assert (crashed.kind, crashed.detail) == ("crashed", "killed by SIGSEGV")
    assert run_forked(lambda: os._exit(7), 5).detail == "exit status 7"


@needs_fork
def test_a_forked_case_that_hangs_is_killed_at_its_limit_whatever_it_catches():
    def swallows_everything():
        while True:
            with contextlib.suppress(BaseException):  # no exception can stop it
                time.sleep(0.01)
    started = time.monotonic()
    verdict = run_forked(swallows_everything, 0.5)
    assert verdict.kind == "hung"
    assert 0.5 <= time.monotonic() - started < 5


PARALLEL_PARENT = """
import torch
from fuzz_birnn.processes.fork_server import ForkServer
from fuzz_birnn.processes.forked import run_forked
torch.set_num_threads(2)
work = lambda _=None: float(torch.ones(2_000_000).sin().sum() + (torch.ones(300, 300) @ torch.ones(300, 300)).sum())
work()  # the parent's OpenMP threads are up: a child that asked for them would wait for ever
print(run_forked(work, 60).kind, ForkServer(work).run(None, 60).kind)
"""


@needs_fork
@pytest.mark.e2e
def test_a_forked_case_runs_torch_after_a_parent_that_used_several_threads():
    """A user's process runs torch on every core: its forked cases (crash shrinking, the
    diagnosis' confirmations) must still run, not hang."""
    done = subprocess.run([sys.executable, "-c", PARALLEL_PARENT], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["passed", "passed"], done.stdout + done.stderr


def test_every_proposal_is_a_valid_simpler_case():
    for proposal in proposals(BIG):
        assert proposal != BIG
        Case.from_dict(proposal.to_dict())  # valid
        c, i = proposal.config, proposal.inputs
        assert c.num_layers <= 3 and c.hidden_size <= 6 and c.input_size <= 5 and i.seq_len <= 7


def test_the_reducer_finds_the_smallest_case_that_still_fails():
    def crashes(case):  # crashes once hidden_size >= 4 and there are 5 steps in float16
        return case.config.hidden_size >= 4 and case.inputs.seq_len >= 5 and case.inputs.dtype == "float16"

    reduction = reduce_case(BIG, crashes, within=within_space(CaseSpace()), deadline=time.monotonic() + 30)
    assert reduction.complete
    c, i = reduction.case.config, reduction.case.inputs
    assert (c.hidden_size, i.seq_len, i.dtype) == (4, 5, "float16")
    assert (c.num_layers, c.input_size, c.proj_size, i.batch_size, c.bias, i.form) == (1, 1, 0, 1, False, "padded")
    assert crashes(reduction.case)


def test_the_reducer_stays_inside_the_search_and_says_when_its_budget_ran_out():
    packed_only = within_space(CaseSpace(forms=("packed_sorted", "packed_unsorted"), dtypes=("float16",)))
    reduction = reduce_case(BIG, lambda case: True, within=packed_only, deadline=time.monotonic() + 30)
    assert reduction.case.inputs.packed and reduction.case.inputs.dtype == "float16"
    cut = reduce_case(BIG, lambda case: True, within=within_space(CaseSpace()), deadline=time.monotonic() - 1)
    assert (cut.case, cut.complete, cut.attempts) == (BIG, False, 0)


@pytest.mark.e2e
def test_a_candidates_output_is_captured_and_bounded(tmp_path):
    script = (
        "import sys, os\n"
        "from pathlib import Path\n"
        "from fuzz_birnn.processes.capture import OutputCapture\n"
        "capture = OutputCapture(Path(sys.argv[1]))\n"
        "print('first case'); os.write(2, b'from C\\n')\n"
        "capture.reset()\n"
        "print('second case'); os.write(1, b'x' * 200000)\n"
        "sys.__stdout__.flush()\n"
        "kept = capture.read()\n"
        "capture.close()\n"
        "print(len(kept), 'second case' in kept, 'first case' in kept, 'bytes left out' in kept)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out.log")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    size, second, first, cut = done.stdout.split()
    assert (second, first, cut) == ("True", "False", "True")
    assert int(size) < KEEP_BYTES + 100
    assert "first case" not in done.stdout  # it went to the file, not the console
    assert not (tmp_path / "out.log").exists()
    assert read_file(tmp_path / "missing.log") == ""


def _fails():
    raise CheckFailure(Mismatch("output", "wrong"), Case(), "fused")


def _crash_on(argument):
    if argument == "segv":
        faulthandler.disable()
        os.kill(os.getpid(), signal.SIGSEGV)
    if argument == "exit":
        os._exit(7)
    if argument == "hang":
        while True:
            with contextlib.suppress(BaseException):
                time.sleep(0.01)
    if argument == "fail":
        _fails()
    if argument == "raise":
        return 1 / 0
    return argument


@needs_fork
def test_a_fork_server_reports_each_case_as_a_fresh_child_would():
    with ForkServer(_crash_on) as server:
        assert (server.run(42, 5).kind, server.run(42, 5).value) == ("passed", 42)
        assert server.run("fail", 5).kind == "failed"
        raised = server.run("raise", 5)
        assert (raised.kind, raised.detail) == ("raised", "ZeroDivisionError: division by zero")
        crashed = server.run("segv", 5)
        assert (crashed.kind, crashed.detail) == ("crashed", "killed by SIGSEGV")
        assert server.run("exit", 5).detail == "exit status 7"
        started = time.monotonic()
        hung = server.run("hang", 0.5)
        assert (hung.kind, hung.detail) == ("hung", "ran past the 0.5s limit")
        assert time.monotonic() - started >= 0.5  # killed at its limit, not before (no upper bound: load)
        assert server.run("after", 5).value == "after"  # a new child takes the next case


@needs_fork
def test_a_fork_server_keeps_one_child_warm_until_a_case_kills_it():
    seen = []

    def remembers(argument):  # state that lives in the child, case after case
        if argument == "segv":
            _crash_on("segv")
        seen.append(argument)
        return (os.getpid(), len(seen))

    with ForkServer(remembers) as server:
        first = [server.run(n, 5).value for n in range(5)]
        assert {pid for pid, _ in first} == {first[0][0]} != {os.getpid()}
        assert [count for _, count in first] == [1, 2, 3, 4, 5]
        assert server.started == 1
        assert server.run("segv", 5).kind == "crashed"
        pid, count = server.run(5, 5).value
        assert pid != first[0][0] and count == 1 and server.started == 2
    assert seen == []  # nothing ran in this process
    assert server.pid is None  # closed: no child left behind


@needs_fork
def test_what_a_served_case_prints_is_in_the_capture_file_before_its_ending(tmp_path, capsys, monkeypatch):
    from fuzz_birnn.processes.capture import OutputCapture

    with capsys.disabled():
        capture = OutputCapture(tmp_path / "out.log")
        # print() to fd 1 through a block buffer, as in a worker whose stdout is not a terminal
        monkeypatch.setattr(sys, "stdout", open(1, "w", buffering=8192, closefd=False))  # noqa: SIM115
        try:
            with ForkServer(lambda argument: print(f"case {argument}")) as server:
                for n in range(3):
                    capture.reset()
                    server.run(n, 5)
                    assert capture.read() == f"case {n}\n"
        finally:
            monkeypatch.undo()
            capture.close()


@needs_fork
def test_a_fork_server_says_how_much_cpu_its_live_child_has_used():
    def busy(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    with ForkServer(busy) as server:
        server.run(0.3, 10)
        # a slice's CPU-time cap counts the child's work (os.times ticks are coarser than process_time's)
        assert server.cpu_seconds >= 0.2
        assert server.run("not a number", 10).kind == "raised"
    assert server.cpu_seconds == 0.0  # reaped: its time is in os.times()'s children's now
