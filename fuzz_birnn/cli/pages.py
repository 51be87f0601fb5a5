"""``fuzz-birnn show`` and ``fuzz-birnn explain``: the command-line side of :mod:`fuzz_birnn.output.pages`.

``show REPORT`` writes the report's page (default ``REPORT/report.html``); ``explain`` draws a
configuration given by flags, with no failure (default ``./explain.html``). ``--png FILE`` also
renders the page with a headless Chromium, for a README or a bug tracker that shows no HTML.
Exit status 0, or 2 with one line for a report that cannot be read or a browser that is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from fuzz_birnn.cli.arguments import non_negative, positive
from fuzz_birnn.core.candidates import BUILTIN
from fuzz_birnn.core.case import MODES, Case, Config, Inputs
from fuzz_birnn.core.check import check
from fuzz_birnn.core.outcomes import CheckFailure
from fuzz_birnn.diagnosis import diagnose
from fuzz_birnn.output.files import write_whole
from fuzz_birnn.output.pages import explain_page, lacks_result, report_page, run_page, under
from fuzz_birnn.output.reports import Report, ReportError, load_report
from fuzz_birnn.output.run_record import RunRecord
from fuzz_birnn.portable.report_files import ReportRefused, load_tensors, tensor_file_limit
from fuzz_birnn.targets.naming import CandidateError, load_candidate

__all__ = ["BROWSERS", "add_parsers", "find_browser", "render_png", "screenshot", "write_report_page",
           "write_run_pages"]

#: Headless browsers tried for ``--png``, in order.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def add_parsers(commands: Any, usage_error: type[Exception]) -> None:
    show = commands.add_parser("show", help="write a report's page: the case, its diagnosis, the stack, heat maps")
    show.add_argument("report", metavar="REPORT", help="a report folder (or its case.json)")
    show.add_argument("--out", metavar="FILE.html", help="where to write the page (default REPORT/report.html)")
    show.add_argument("--png", metavar="FILE.png", help="also render the page to a PNG with headless Chromium")
    show.add_argument("--candidate", metavar="MODULE:ATTR",
                      help="rerun this candidate for the heat maps of a report that stores no result")
    show.add_argument("--allow-large", action="store_true", help="lift the size limits on the report's case")
    show.set_defaults(command=lambda args: _show(args, usage_error))

    explain = commands.add_parser("explain", help="draw the stack of a configuration: rows of h0, weights, time "
                                                  "order, what each layer reads")
    explain.add_argument("--mode", choices=[m.lower() for m in MODES], default="rnn_tanh")
    explain.add_argument("--layers", type=positive, default=2, metavar="N")
    explain.add_argument("--input-size", type=positive, default=3, metavar="N")
    explain.add_argument("--hidden-size", type=positive, default=4, metavar="N")
    explain.add_argument("--proj-size", type=non_negative, default=0, metavar="N", help="LSTM only")
    explain.add_argument("--seq-len", type=positive, default=4, metavar="N")
    explain.add_argument("--unidirectional", action="store_true")
    explain.add_argument("--no-bias", action="store_true")
    explain.add_argument("--batch-first", action="store_true")
    explain.add_argument("--form", choices=("padded", "unbatched", "packed"), default="padded")
    explain.add_argument("--out", metavar="FILE.html", default="explain.html")
    explain.add_argument("--png", metavar="FILE.png", help="also render the page to a PNG with headless Chromium")
    explain.set_defaults(command=lambda args: _explain(args, usage_error))


def _show(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    folder = Path(args.report)
    folder = folder.parent if folder.name == "case.json" else folder
    try:
        report = load_report(folder, allow_large=args.allow_large)
    except ReportError as error:
        raise usage_error(str(error)) from None
    out = write_report_page(report, Path(args.out) if args.out else None, args.candidate, usage_error)
    print(f"wrote {out}")
    if args.png:
        print(f"wrote {render_png(out, Path(args.png), usage_error)}")
    return 0


def write_report_page(report: Report, out: Path | None = None, candidate: str | None = None,
                      usage_error: type[Exception] = ValueError) -> Path:
    """Write a loaded report's page (default ``FOLDER/report.html``)."""

    case = report.case
    limit = tensor_file_limit(case.to_dict()["config"], case.to_dict()["inputs"])
    try:
        tensors = load_tensors(report.folder / "tensors.safetensors", max_bytes=limit)
    except ReportRefused:  # a version 1 report (tensors.pt, never unpickled): the page has no heat maps
        tensors = {}
    spec = candidate or report.candidate
    expected, actual = under(tensors, "expected"), under(tensors, "actual")
    if expected and not actual and lacks_result(report) and (candidate is not None or spec in BUILTIN):
        actual = _rerun(case, spec, usage_error)  # an old report: its candidate's result, run again
        tensors = {**tensors, **{f"actual/{name}": tensor for name, tensor in actual.items()}}
    if report.diagnosis is None and expected and actual and report.kind == "check":
        report = dataclasses.replace(report, diagnosis=diagnose(case, actual, report.tolerances).to_dict())
    return write_whole(out or report.folder / "report.html", report_page(report, tensors))


def _rerun(case: Case, spec: str, usage_error: type[Exception]) -> dict[str, Any]:
    """The candidate's result, checked the way the report was: a failure's per-direction values
    (none if it now passes, raises, or returns the wrong structure: no heat map to draw)."""
    try:
        check(load_candidate(spec), case, name=spec)
    except CandidateError as error:
        raise usage_error(str(error)) from None
    except CheckFailure as failure:
        return failure.actual or {}
    return {}


def _explain(args: argparse.Namespace, usage_error: type[Exception]) -> int:
    form = args.form
    try:
        config = Config(mode=args.mode.upper(), input_size=args.input_size, hidden_size=args.hidden_size,
                        num_layers=args.layers, bias=not args.no_bias, batch_first=args.batch_first,
                        bidirectional=not args.unidirectional, proj_size=args.proj_size)
        inputs = Inputs(seq_len=args.seq_len, batch_size=None if form == "unbatched" else 2,
                        unbatched=form == "unbatched", packed=form == "packed",
                        lengths=(args.seq_len, max(1, args.seq_len - 1)) if form == "packed" else None)
    except ValueError as error:
        raise usage_error(str(error)) from None
    out = write_whole(Path(args.out), explain_page(Case(config, inputs)))
    print(f"wrote {out}")
    if args.png:
        print(f"wrote {render_png(out, Path(args.png), usage_error)}")
    return 0


def write_run_pages(record: RunRecord, reports: Path) -> Path:
    """``REPORTS/index.html`` for a run, and the page of every report its findings name."""

    for finding in record.findings:
        for report in finding.reports:
            try:
                write_report_page(load_report(reports / report, allow_large=True))
            except (ReportError, OSError, ValueError) as error:  # one bad page must not cost the others
                print(f"no page for {reports / report}: {error}")
    return write_whole(reports / "index.html", run_page(record))


def find_browser() -> str | None:
    """The first headless-capable browser on the PATH (see :data:`BROWSERS`)."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def screenshot(browser: str, page: Path, png: Path, *, width: int = 1280,
               height: int = 1600) -> subprocess.CompletedProcess[str]:
    """Render ``page`` to ``png`` with a headless ``browser`` in a throwaway profile; its log
    (console messages included) is the result's ``stderr``."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                               f"--window-size={width},{height}", f"--screenshot={png.resolve()}",
                               page.resolve().as_uri()], capture_output=True, text=True, timeout=120)


def page_height(text: str, width: int = 1280) -> int:
    """A generous estimate of how tall one of our pages is at ``width`` pixels (headless Chromium
    screenshots its window only, and has no full-page flag): every picture at the scale the
    column draws it, and a line for each block of text. Too tall costs blank space at the bottom;
    too short would cut the page off."""
    column = min(width, 76 * 16) - 64
    height = 320.0
    for w, h in re.findall(r'<svg [^>]*viewBox="0 0 ([\d.]+) ([\d.]+)"', text):
        height += float(h) * min(1.0, column / float(w)) + 40
    height += 30 * len(re.findall(r"<(?:p|tr|li|h1|h2|h3)\b", text))
    for block in re.findall(r"<pre>(.*?)</pre>", text, flags=re.DOTALL):
        height += 20 * (block.count("\n") + 1) + 24
    return int(min(max(height, 800), 20000))


def render_png(page: Path, png: Path, usage_error: type[Exception] = ValueError) -> Path:
    """A screenshot of the whole of ``page`` by a headless Chromium (one line naming the package
    where there is none): a window tall enough for everything on it, the bottom included."""
    browser = find_browser()
    if browser is None:
        raise usage_error("--png needs Chromium: apt-get install chromium (or put chromium on the PATH)")
    done = screenshot(browser, page, png, height=page_height(page.read_text(encoding="utf-8")))
    if done.returncode != 0 or not png.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise usage_error(f"{browser} could not render {page}: {last}")
    return png
