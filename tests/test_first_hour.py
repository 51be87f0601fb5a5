"""What a newcomer meets in the first hour, run as they run it: a command line that says what to
do, mistakes caught before a run, no placeholder where a reader expects their own numbers, files
others can read, a repro command that works as written, and a run page that is never stale."""

from __future__ import annotations

import html
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

pytestmark = pytest.mark.e2e  # every test here starts processes

ROOT = Path(__file__).resolve().parent.parent
GRU_ONLY = ["--modes", "gru", "--properties", "agreement", "--workers", 1]


def fuzz(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "fuzz_birnn", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_the_command_line_says_what_to_do():
    bare = fuzz()
    assert bare.returncode == 2 and bare.stdout == ""
    assert bare.stderr.count("\n") == 1 and "name a command: run" in bare.stderr and "--help" in bare.stderr
    version = fuzz("--version")
    assert version.returncode == 0 and re.match(r"fuzz-birnn \S+ \(torch \S+\)", version.stdout)
    # an abbreviated flag is refused (pytest refuses it too), with the flag meant and the command's help
    abbreviated = fuzz("run", "--max-example", 3)
    assert abbreviated.returncode == 2 and abbreviated.stderr.count("\n") == 1
    assert "did you mean --max-examples?" in abbreviated.stderr and "fuzz-birnn run --help" in abbreviated.stderr
    assert "required: action" not in fuzz("baseline").stderr


def test_a_candidate_that_cannot_be_called_as_the_contract_says_stops_the_run_before_it_starts(tmp_path):
    done = fuzz("run", "--candidate", "tests.contract_bugs:without_hx", *GRU_ONLY, "--reports", tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stdout + done.stderr
    assert "takes (module, input)" in done.stderr and "hx=None" in done.stderr
    assert "cases checked" not in done.stdout and not list(tmp_path.glob("*/case.json"))


def test_what_a_reader_sees_has_their_numbers_not_placeholders_and_a_way_out(tmp_path):
    junit = tmp_path / "junit.xml"
    reports = tmp_path / "reports"
    done = fuzz("run", "--candidate", "tests.contract_bugs:no_float16_kernel", *GRU_ONLY, "--max-examples", 300,
                "--seed", 0, "--reports", reports, "--html", "--junit-xml", junit)
    assert done.returncode == 1, done.stdout + done.stderr
    headings = [line for line in done.stdout.splitlines() if re.match(r"  \d+\. ", line)]
    assert headings and not any("#" in line for line in headings), headings
    assert any("takes 3 dtypes but" in line for line in headings)
    messages = [f.get("message") for f in ElementTree.parse(junit).iter("failure")]
    assert messages and not any("#" in m for m in messages)
    index = (reports / "index.html").read_text()
    assert not re.search(r"<h3>[^<]*#", index)
    # every float16 case failed and the rest passed: the summary says how to leave it out
    assert re.search(r"hint: every compared case with dtype float16 failed .*--dtypes", done.stdout), done.stdout


def test_reports_are_readable_by_others_and_repro_runs_as_summary_md_says(tmp_path):
    reports = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", "run", "--candidate",
                           "examples.seed_decomposition:seed_decomposition", "--modes", "rnn_tanh", "--no-packed",
                           "--no-unbatched", "--properties", "agreement", "--seed", "1", "--max-examples", "300",
                           "--workers", "1", "--reports", str(reports)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, umask=0o022)
    assert done.returncode == 1, done.stdout + done.stderr
    [report] = [p.parent for p in reports.glob("*/case.json")]
    assert stat.S_IMODE(report.stat().st_mode) == 0o755  # what mkdir makes under this umask, not 0700
    said = (report / "summary.md").read_text()
    folder, command = re.search(r"Reproduce, from `([^`]+)`.*?`python ([^`]+)`", said).groups()
    assert Path(folder) == ROOT
    repro = subprocess.run([sys.executable, *command.split()[0:1]], cwd=folder, capture_output=True, text=True)
    assert repro.returncode == 1 and "STILL FAILS" in repro.stdout, repro.stdout + repro.stderr


def test_a_run_page_from_an_earlier_run_is_brought_up_to_date(tmp_path):
    first = fuzz("run", *GRU_ONLY, "--max-examples", 20, "--seed", 0, "--reports", tmp_path, "--html")
    assert first.returncode == 0, first.stdout + first.stderr
    before = (tmp_path / "index.html").read_text()
    second = fuzz("run", *GRU_ONLY, "--max-examples", 30, "--seed", 1, "--reports", tmp_path)
    assert second.returncode == 0 and "run page:" in second.stdout
    after = (tmp_path / "index.html").read_text()
    assert after != before and "seed 1" in after


def test_a_candidate_that_raises_is_reported_with_its_own_line(tmp_path):
    """Outside pytest too: the console, case.json, summary.md, the page and repro.py say which line
    of the candidate raised, not only the exception's message."""
    import json

    done = fuzz("run", "--candidate", "tests.contract_bugs:raises", *GRU_ONLY, "--max-examples", 20, "--seed", 0,
                "--reports", tmp_path, "--html")
    assert done.returncode == 1, done.stdout + done.stderr
    where = 'contract_bugs.py", line'
    assert re.search(r"raised at: File \".*contract_bugs.py\", line \d+, in raises: raise NotImplementedError",
                     done.stdout), done.stdout
    [report] = [p.parent for p in tmp_path.glob("*/case.json")]
    traceback = json.loads((report / "case.json").read_text())["traceback"]
    assert where in traceback and "fuzz_birnn" not in traceback  # the harness' frames left out
    assert traceback.endswith("NotImplementedError: bidirectional stacks are not supported yet")
    assert where in (report / "summary.md").read_text() and html.escape(where) in (report / "report.html").read_text()
    repro = subprocess.run([sys.executable, report / "repro.py"], cwd=ROOT, capture_output=True, text=True)
    assert repro.returncode == 1 and where in repro.stdout


def _readme_snippet() -> str:
    """The README's first pytest example, as written."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### From your own tests"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]


@pytest.mark.parametrize("as_written", [True, False], ids=["as written", "without its deadline line"])
def test_the_readme_pytest_example_runs_as_written(tmp_path, as_written):
    """Copied into a test file with a correct candidate that takes longer than Hypothesis' default
    deadline (as a check does on a loaded machine), the README's example passes; the control
    without its ``deadline=None`` gives the false failure it is there to prevent."""
    snippet = _readme_snippet()
    assert "@settings(deadline=None)" in snippet
    if not as_written:
        snippet = snippet.replace("@settings(deadline=None)\n", "")
    (tmp_path / "test_snippet.py").write_text(
        "import time\n"
        "from hypothesis import Phase as _Phase, settings as _settings\n"
        "from fuzz_birnn import decomposed\n"
        "_settings.register_profile('few', _settings.get_profile('default'), max_examples=4,\n"
        "                           phases=[_Phase.generate])  # no shrinking: the test is about the deadline\n"
        "_settings.load_profile('few')\n\n"
        "def my_lstm(module, input, hx=None):  # right, and slower than the default deadline of 200 ms\n"
        "    time.sleep(0.3)\n"
        "    return decomposed(module, input, hx)\n\n" + snippet)
    environment = {k: v for k, v in os.environ.items() if k != "FUZZ_BIRNN_PROFILE"}  # as a user's shell
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=environment)
    if as_written:
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        assert done.returncode == 1 and "DeadlineExceeded" in done.stdout, done.stdout + done.stderr
