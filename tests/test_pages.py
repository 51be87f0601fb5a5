"""The pages: ``show``, ``explain`` and ``run --html`` write self-contained HTML whose pictures are
well-formed at every size, say what is wrong without colour, and render in a real browser."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings

from examples.seed_decomposition import seed_decomposition
from fuzz_birnn import Case, CheckFailure, Config, Inputs, check
from fuzz_birnn.cli import main
from fuzz_birnn.cli.pages import find_browser, screenshot
from fuzz_birnn.output.pages import explain_page, report_page
from fuzz_birnn.output.reports import Report, write_report
from fuzz_birnn.strategies import cases

ROOT = Path(__file__).resolve().parent.parent
SEED_CASE = Case(Config(num_layers=2), Inputs(seq_len=2))


@pytest.fixture(scope="module")
def seed_report(tmp_path_factory) -> Path:
    with pytest.raises(CheckFailure) as raised:
        check(seed_decomposition, SEED_CASE, name="examples.seed_decomposition:seed_decomposition")
    folder, _ = write_report(raised.value, tmp_path_factory.mktemp("reports"))
    return folder


def svgs(page: str) -> list[ET.Element]:
    """Every inline SVG of a page, parsed (a malformed one raises)."""
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, flags=re.DOTALL)]


def assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page fetches something"


def test_the_seed_report_page_names_the_missing_re_reversal(seed_report, capsys):
    assert main(["show", str(seed_report)]) == 0
    page = (seed_report / "report.html").read_text()
    assert_self_contained(page)
    assert "not put back in forward time order before it is fed to the next layer" in page
    assert "not put back in forward time order" in (seed_report / "summary.md").read_text()
    pictures = svgs(page)
    assert len(pictures) == 3  # the stack, output and h_n heat maps
    # without colour: every cell says its value, and the wrong ones carry a cross
    titles = [t.text for svg in pictures[1:] for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert any("(wrong)" in t for t in titles) and any("(wrong)" not in t for t in titles)
    assert "first divergence (layer 1, forward direction, time step 0)" in page
    assert "where the diagnosed mistake sits: the reverse half must be back in forward time order" in page


@pytest.mark.parametrize("case", [
    Case(Config(bidirectional=False), Inputs()),
    Case(Config(mode="LSTM", input_size=8, hidden_size=8, num_layers=4, bias=True, proj_size=7, batch_first=True),
         Inputs(seq_len=8, batch_size=8, packed=True, lengths=(8, 1, 5, 8, 2, 3, 7, 4), enforce_sorted=False,
                initial_state=True)),
    Case(Config(mode="GRU", num_layers=3), Inputs(seq_len=300, batch_size=None, unbatched=True)),
], ids=["one layer, one direction", "the largest generated stack", "a long replayed sequence"])
def test_explain_draws_every_size(case):
    page = explain_page(case)
    assert_self_contained(page)
    [stack] = svgs(page)
    width = float(stack.get("width"))
    assert 400 < width < 2000
    texts = " ".join(t.text or "" for t in stack.iter("{http://www.w3.org/2000/svg}text"))
    for layer in range(case.config.num_layers):
        assert f"layer {layer}, forward" in texts
        assert (f"layer {layer}, reverse" in texts) == case.config.bidirectional
    rows = case.config.num_layers * case.config.num_directions
    assert f"h0[{rows - 1}]" in texts


def test_explain_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "stack.html"
    assert main(["explain", "--mode", "lstm", "--layers", "3", "--proj-size", "2", "--form", "packed",
                 "--out", str(out)]) == 0
    assert "weight_hr_l2_reverse" in out.read_text()
    assert main(["explain", "--mode", "gru", "--proj-size", "2", "--out", str(out)]) == 2
    assert "proj_size=2 is only valid for LSTM" in capsys.readouterr().err


@pytest.mark.e2e
def test_run_html_links_every_finding_to_its_page(tmp_path):
    reports = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "fuzz_birnn", "run", "--candidate",
                           "examples.seed_decomposition:seed_decomposition", "--modes", "rnn_tanh",
                           "--no-packed", "--no-unbatched", "--properties", "agreement", "--dtypes", "float64",
                           "--max-examples", "300", "--seed", "1", "--workers", "1", "--html",
                           "--reports", str(reports)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "diagnosis: behaves like a stack whose reverse direction's output is not put back" in done.stdout
    index = (reports / "index.html").read_text()
    assert_self_contained(index)
    links = re.findall(r'href="([0-9a-f]{12}/report.html)"', index)
    assert links and all((reports / link).exists() for link in links)
    assert "What was covered" in index and "RNN_TANH" in index
    # a table of the searches with their status, as pytest-html and coverage.py give
    assert re.search(r'<tr class="failing"><td>agreement \(RNN_TANH\)</td><td>failing</td><td>\d+</td>', index)


@settings(max_examples=25, deadline=None)
@given(cases(bidirectional=None))
def test_every_drawn_configuration_is_drawn_well_formed(case):
    [stack] = svgs(explain_page(case))
    assert stack.get("role") == "img"


def test_a_huge_replayed_case_makes_a_page_of_ordinary_size(tmp_path):
    """A report from elsewhere may hold 100,000 steps: the heat maps show blocks, worst cell each,
    with the padding of a packed batch still marked as padding."""
    case = Case(Config(num_layers=3, hidden_size=2), Inputs(seq_len=5000, batch_size=70, packed=True,
                                                         lengths=tuple([5000] + [10] * 69), enforce_sorted=True))
    shape = {"output": (5000, 70, 2, 2), "h_n": (3, 2, 70, 2)}
    expected = {f"expected/{k}": torch.zeros(v, dtype=torch.float64) for k, v in shape.items()}
    actual = {f"actual/{k}": torch.zeros(v, dtype=torch.float64) for k, v in shape.items()}
    actual["actual/output"][4999, 0, 1, 0] = 1.0  # one wrong cell, at the very end of the long sequence
    report = Report(tmp_path, "0" * 12, "check", "fused", "agreement", case, {},
                    {"message": "output differs", "layer": 2, "direction": "reverse", "time_step": 4999},
                    {"output": 1e-6, "h_n": 1e-6}, {"names": [], "summary": "none"}, {})
    page = report_page(report, {**expected, **actual})
    assert len(page) < 2_000_000
    _, output, _ = svgs(page)
    titles = [t.text for t in output.iter("{http://www.w3.org/2000/svg}title")]
    assert len(titles) <= 32 * 96
    assert sum("(wrong)" in t for t in titles) == 1 and any("padding" in t for t in titles)
    [wrong] = [t for t in titles if "(wrong)" in t]
    assert re.search(r"L2 rev b0-4, time step \d+-4999: ", wrong), wrong  # blocks of 5 sequences, 53 steps


# -- in a real browser --------------------------------------------------------------------------------


def non_blank(png: Path) -> bool:
    """Whether a PNG shows anything: its pixel rows (unfiltered or not) are far from one colour."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at += 12 + length
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    return len(set(raw)) > 32 and sum(1 for b in raw if b not in (0, 255)) > len(raw) // 200


def render(page: Path, png: Path) -> str:
    """Screenshot ``page`` as ``--png`` does; returns what the browser logged, console messages included."""
    done = screenshot(find_browser(), page, png)
    assert done.returncode == 0 and png.exists(), done.stderr[-2000:]
    return done.stderr


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line
            or "Failed to load resource" in line]


@pytest.mark.e2e
@pytest.mark.skipif(find_browser() is None, reason="no Chromium here: apt-get install chromium")
def test_the_pages_render_in_a_headless_browser(seed_report, tmp_path):
    main(["show", str(seed_report)])
    main(["explain", "--out", str(tmp_path / "explain.html")])
    for page in (seed_report / "report.html", tmp_path / "explain.html"):
        png = tmp_path / f"{page.stem}.png"
        log = render(page, png)
        assert non_blank(png), f"{page} rendered blank"
        assert console_errors(log) == [], console_errors(log)


@pytest.mark.e2e
@pytest.mark.skipif(find_browser() is None, reason="no Chromium here: apt-get install chromium")
def test_the_browser_checks_catch_a_blank_page_and_a_console_error(tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    render(blank, tmp_path / "blank.png")
    assert not non_blank(tmp_path / "blank.png")
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><p>text</p><script>undefined_function()</script></body></html>")
    assert console_errors(render(broken, tmp_path / "broken.png"))


def test_a_crash_report_has_a_page_with_the_drawing_and_no_heat_map(tmp_path, capsys):
    from fuzz_birnn.output.reports import write_crash

    record = {"candidate": "tests.contract_bugs:segfaults_on_lstm", "property": "agreement",
              "case": Case(Config(mode="LSTM"), Inputs()).to_dict(), "details": {}}
    folder, _, _ = write_crash(record, "the worker process died (SIGSEGV) while checking this case", tmp_path,
                               kind="crash")
    assert main(["show", str(folder)]) == 0
    page = (folder / "report.html").read_text()
    assert "crash: the worker process died (SIGSEGV)" in page and "Where it is wrong" not in page
    assert len(svgs(page)) == 1


def test_a_report_without_a_stored_result_is_rerun_when_the_user_names_the_candidate(seed_report, tmp_path):
    from fuzz_birnn.portable.report_files import load_tensors, save_tensors

    old = tmp_path / seed_report.name
    shutil.copytree(seed_report, old)
    tensors = load_tensors(old / "tensors.safetensors", max_bytes=1 << 24)
    save_tensors(old / "tensors.safetensors", {k: v for k, v in tensors.items() if not k.startswith("actual/")})
    assert main(["show", str(old)]) == 0
    page = (old / "report.html").read_text()
    assert "Where it is wrong" not in page and "fuzz-birnn show --candidate MODULE:ATTR" in page
    assert main(["show", str(old), "--candidate", "examples.seed_decomposition:seed_decomposition"]) == 0
    assert len(svgs((old / "report.html").read_text())) == 3


@pytest.mark.parametrize(("candidate", "prop", "says"), [
    ("tests.contract_bugs:raises", "agreement", "The candidate raised"),
    ("tests.planted:lengths_ignored", "relation:batch_independence",
     "every sequence of a batch, run alone, must give its own slice"),
], ids=["the candidate raised", "a relation"])
def test_a_page_without_heat_maps_says_why_truly(candidate, prop, says, tmp_path, capsys):
    """Not "written before reports did" for a report written a moment ago: the reason of this report."""
    from fuzz_birnn.properties import PROPERTIES
    from fuzz_birnn.targets.naming import load_candidate

    case = Case(Config(num_layers=1), Inputs(seq_len=3, batch_size=2, packed=True, lengths=(3, 1)))
    with pytest.raises(CheckFailure) as raised:
        PROPERTIES[prop].run(load_candidate(candidate), case, candidate, {})
    folder, _ = write_report(raised.value, tmp_path)
    assert main(["show", str(folder)]) == 0
    page = (folder / "report.html").read_text()
    assert says in page and "No heat maps." in page and "written before" not in page


def decoded(png: Path) -> tuple[int, int, int, list[bytes]]:
    """A PNG's width, height, channels and pixel rows (8-bit RGB or RGBA, as Chromium writes)."""
    data = png.read_bytes()
    chunks, at = {}, 8
    idat = b""
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"IDAT":
            idat += body
        chunks.setdefault(kind, body)
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8 and colour in (2, 6)
    channels = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                near = min((abs(p - left), 0), (abs(p - up), 1), (abs(p - corner), 2))[1]
                line[i] = (line[i] + (left, up, corner)[near]) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


@pytest.mark.e2e
@pytest.mark.skipif(find_browser() is None, reason="no Chromium here: apt-get install chromium")
@pytest.mark.parametrize("layers", [1, 2, 4])
def test_the_faulty_cell_and_the_page_bottom_are_in_the_screenshot(layers, tmp_path, capsys):
    """``show --png`` of a report whose fault is in the last layer: the faulty cell (its fill) is in
    the picture however deep the stack, and the page ends before the picture does."""
    from tests import contract_bugs

    case = Case(Config(mode="LSTM", input_size=3, hidden_size=4, num_layers=layers, bias=True),
                Inputs(seq_len=3, batch_size=2, initial_state=True))
    with pytest.raises(CheckFailure) as raised:
        check(contract_bugs.output_directions_swapped, case, name="tests.contract_bugs:output_directions_swapped")
    assert raised.value.mismatch.layer == layers - 1
    folder, _ = write_report(raised.value, tmp_path)
    png = tmp_path / "page.png"
    assert main(["show", str(folder), "--png", str(png)]) == 0
    width, _, channels, rows = decoded(png)
    faulty_fill = (253, 236, 239)  # #fdecef: the faulty cell's fill (its border and the caption are red too)
    filled = sum(1 for row in rows for x in range(0, width * channels, channels)
                 if all(abs(row[x + k] - faulty_fill[k]) <= 3 for k in range(3)))
    assert filled > 2000, f"the faulty cell is not in the screenshot ({filled} pixels of its fill)"
    assert all(set(row[:width * channels]) <= {255} for row in rows[-40:]), "the page is cut off at the bottom"


@pytest.mark.parametrize("layers", [1, 2, 4])
def test_every_caption_and_name_fits_inside_its_picture(layers):
    """Captions are not clipped at the picture's edge, and weight names stay inside their cells."""
    from fuzz_birnn.output.pictures import FaultyCell, _text_width, stack_svg

    svg = stack_svg(mode="LSTM", num_layers=layers, bidirectional=True, input_size=16, hidden_size=8, proj_size=4,
                    bias=True, seq_len=12, form="packed", fault=FaultyCell(layers - 1, 1, 3),
                    suspect_joins=[0], suspect="the reverse half must be back in forward time order here")
    root = ET.fromstring(svg)
    width = float(root.get("viewBox").split()[2])
    ns = "{http://www.w3.org/2000/svg}"
    cells = [r for r in root.iter(f"{ns}rect") if float(r.get("width")) >= 200]
    for text in root.iter(f"{ns}text"):
        x, size, words = float(text.get("x")), float(text.get("font-size")), text.text or ""
        right = x + _text_width(words, size) if text.get("text-anchor") == "start" else x
        assert right <= width, words
        inside = [c for c in cells if float(c.get("x")) <= x <= float(c.get("x")) + float(c.get("width"))
                  and float(c.get("y")) <= float(text.get("y")) <= float(c.get("y")) + float(c.get("height"))]
        for cell in inside:
            assert right <= float(cell.get("x")) + float(cell.get("width")), words
