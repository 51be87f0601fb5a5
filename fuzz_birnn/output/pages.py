"""Self-contained HTML pages: a report's (``show``), a configuration's (``explain``), a run's (``run --html``).

Each page is one file with its pictures inline (:mod:`fuzz_birnn.output.pictures`) and its style in a
``<style>`` element: nothing is fetched and nothing runs, so a page opens from a bug tracker or
a CI artifact as it is.

A report's heat maps come from the tensors it stores (``expected/*``, the float64 reference, and
``actual/*``, the candidate's result, both per direction); a report written before results were
stored is rerun when the user names the candidate (or it is a built-in), else the page says how.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

import torch

from fuzz_birnn.core.case import Case
from fuzz_birnn.core.isa import NATIVE
from fuzz_birnn.output.pictures import FaultyCell, heatmap_svg, stack_svg
from fuzz_birnn.output.reports import Report
from fuzz_birnn.output.run_record import RunRecord, heading, packages_text
from fuzz_birnn.properties import PROPERTIES
from fuzz_birnn.properties.relations import RELATION_WORDS

__all__ = ["explain_page", "report_page", "run_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 76rem; color: #222; padding: 0 1rem; }
h1 { font-size: 1.45rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.9em; }
pre { background: #f5f5f5; padding: 0.6rem; overflow-x: auto; }
table { border-collapse: collapse; } td, th { padding: 0.2rem 0.8rem 0.2rem 0; text-align: left; vertical-align: top; }
.diagnosis { background: #fff6e0; border-left: 4px solid #d08a00; padding: 0.6rem 0.9rem; }
.none { background: #f0f0f0; border-left-color: #999; }
.figure { overflow-x: auto; margin: 0.6rem 0; }
.bar { background: #5b7bb4; height: 0.9rem; display: inline-block; vertical-align: middle; }
.muted { color: #666; }
.searches td:nth-child(n+3) { text-align: right; }
.searches tr.failing td:nth-child(2), .searches tr.error td:nth-child(2) { color: #b00020; font-weight: 600; }
.searches tr.passing td:nth-child(2) { color: #2e7d32; }
"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


# -- a configuration -------------------------------------------------------------------------------


def explain_page(case: Case) -> str:
    """The drawing of ``case``'s stack, with the shapes a decomposition has to get right."""
    c, i = case.config, case.inputs
    directions = c.num_directions
    rows = c.num_layers * directions
    out = c.output_size
    batch = "" if i.unbatched else ", B"
    shapes = [("input", "(T, B, input_size)" if not c.batch_first or i.unbatched else "(B, T, input_size)"),
              ("h0, h_n", f"({rows}{batch}, {out}): row layer * {directions} + direction"),
              ("output", f"(T{batch}, {directions * out})" + (": [forward, reverse] features" if directions == 2
                                                               else ""))]
    if c.mode == "LSTM":
        shapes.insert(2, ("c0, c_n", f"({rows}{batch}, {c.hidden_size})"))
    if i.unbatched:
        shapes = [(name, shape.replace("(T, B, ", "(T, ").replace(", B,", ",")) for name, shape in shapes]
    if i.packed:
        shapes[0] = ("input", "a PackedSequence of B sequences of input_size features; output a PackedSequence too")
    table = "".join(f"<tr><th>{html.escape(n)}</th><td><code>{html.escape(s)}</code></td></tr>" for n, s in shapes)
    body = (f"<h1>{html.escape(c.describe())}</h1>"
            f"<p class=muted>{html.escape(case.describe())}</p>"
            "<h2>The stack</h2>"
            f'<div class="figure">{_stack(case, None)}</div>'
            "<h2>Shapes</h2>"
            f"<table>{table}</table>"
            "<h2>What a decomposition must do</h2><ul>"
            "<li>Layer <i>l</i>, direction <i>d</i> starts from row <code>l * num_directions + d</code> of "
            "<code>h0</code> (and <code>c0</code>) and writes its final state to the same row of "
            "<code>h_n</code> (and <code>c_n</code>).</li>"
            "<li>The reverse direction reads the sequence from its last step to its first (for a packed batch, "
            "from each sequence's own last step) and its output at step <i>t</i> belongs at time <i>t</i>: put "
            "it back in forward time order before anything else reads it.</li>"
            "<li>Layer <i>l</i> + 1 reads <code>[forward, reverse]</code> outputs of layer <i>l</i>, "
            "concatenated feature-wise at each time step.</li></ul>")
    return _page(f"fuzz-birnn explain: {c.describe()}", body)


#: Kinds of mistake that sit in a join of the directions (what the next layer gets; at the last
#: layer, the output), and what to say there.
_JOINS = {
    "not-re-reversed": "the reverse half must be back in forward time order here",
    "halves-swapped": "the directions must be joined as [forward, reverse] here",
    "forward-output-twice": "both directions must be joined here",
}
#: Reports written before diagnoses had places name these: their kind, and whether the inner joins
#: (those feeding a next layer) or the output's.
_FIRST_NAMES = {
    "seed-missing-re-reversal": ("not-re-reversed", "inner"),
    "next-layer-halves-swapped": ("halves-swapped", "inner"),
    "next-layer-forward-only": ("forward-output-twice", "inner"),
    "output-halves-swapped": ("halves-swapped", "last"),
}


def _joins(diagnosis: Mapping[str, Any] | None, num_layers: int) -> tuple[list[int], list[str]]:
    """The joins the diagnosed mistakes sit in (layer indices), and what to say there."""
    slips = [slip for mistake in (diagnosis or {}).get("mistakes") or [] for slip in mistake.get("slips", [])]
    if not slips:  # a report from before diagnoses had places
        for name in (diagnosis or {}).get("names", []):
            if name in _FIRST_NAMES:
                kind, which = _FIRST_NAMES[name]
                slips.append({"kind": kind, "layers": list(range(num_layers - 1)) if which == "inner"
                              else [num_layers - 1]})
    joins: list[int] = []
    said: list[str] = []
    for slip in slips:
        if slip.get("kind") in _JOINS:
            joins += [int(layer) for layer in slip.get("layers", []) if 0 <= int(layer) < num_layers]
            said.append(_JOINS[slip["kind"]])
    return sorted(set(joins)), list(dict.fromkeys(said))


def _stack(case: Case, fault: FaultyCell | None, diagnosis: Mapping[str, Any] | None = None) -> str:
    c, i = case.config, case.inputs
    joins, said = _joins(diagnosis, c.num_layers)
    return stack_svg(mode=c.mode, num_layers=c.num_layers, bidirectional=c.bidirectional,
                     input_size=c.input_size, hidden_size=c.hidden_size, proj_size=c.proj_size, bias=c.bias,
                     seq_len=i.seq_len, form="packed" if i.packed else i.form, fault=fault,
                     suspect_joins=joins, suspect="; ".join(said))


# -- a report ----------------------------------------------------------------------------------------


def report_page(report: Report, tensors: Mapping[str, torch.Tensor]) -> str:
    """A report's page: the case in words, its diagnosis, its stack with the first faulty cell
    marked, and heat maps of ``|error| / tolerance``. ``tensors`` are the report's stored tensors
    (``expected/*``, ``actual/*``: whatever :mod:`fuzz_birnn.cli.pages` could add for an old report
    that lacks them). Only draws: nothing is run or diagnosed here."""
    case, mismatch = report.case, report.mismatch
    expected = under(tensors, "expected")
    actual = under(tensors, "actual")
    note = _no_heatmap(report, expected, actual)
    fault = None
    if mismatch.get("layer") is not None and mismatch.get("direction") is not None:
        fault = FaultyCell(mismatch["layer"], 1 if mismatch["direction"] == "reverse" else 0, mismatch.get("time_step"))
    diagnosis = report.diagnosis
    parts = [f"<h1>fuzz-birnn report <code>{html.escape(report.id)}</code></h1>",
             f"<p>{html.escape(_what_failed(report))}</p>",
             "<h2>The case</h2>", _case_table(report)]
    if diagnosis:
        named = bool(diagnosis.get("names"))
        parts += ["<h2>Diagnosis</h2>",
                  f'<p class="diagnosis{"" if named else " none"}">{html.escape(diagnosis["summary"])}</p>']
    parts += ["<h2>The stack</h2>", f'<div class="figure">{_stack(case, fault, diagnosis)}</div>']
    if actual and expected:
        parts += ["<h2>Where it is wrong</h2>",
                  "<p class=muted>|candidate - reference| / tolerance, the worst feature of each cell; the "
                  "reference is the float64 cell equations on the case's own weights and inputs.</p>"]
        parts += [f'<div class="figure">{svg}</div>' for svg in _heatmaps(case, expected, actual, report.tolerances)]
    parts.append(note)
    document = report.document
    if document.get("traceback"):
        parts += ["<h2>Where it raised</h2>", f"<pre>{html.escape(str(document['traceback']))}</pre>"]
    parts += ["<h2>Reproduce</h2>",
              f"<pre>python {html.escape(str(report.folder / 'repro.py'))}\n"
              f"fuzz-birnn replay {html.escape(str(report.folder))}</pre>",
              f"<p class=muted>Found with torch {html.escape(str((document.get('environment') or {}).get('torch')))}"
              f"{html.escape(_with_packages((document.get('environment') or {}).get('target_packages')))}, "
              f"{html.escape(str(document.get('created', '')))}; {html.escape(str(document.get('origin') or ''))}.</p>"]
    return _page(f"fuzz-birnn report {report.id}", "\n".join(parts))


def _with_packages(found: Any) -> str:
    """`` and the target's onnx 1.19.0, ...`` (nothing for none, or a report written before they were kept)."""
    return f" and the target's {packages_text(found)}" if isinstance(found, dict) and found else ""


def _what_failed(report: Report) -> str:
    kind = "" if report.kind == "check" else f"{report.kind}: "
    return f"{report.candidate} ({report.prop}): {kind}{report.mismatch.get('message', '')}"


def _case_table(report: Report) -> str:
    case = report.case
    rows = [("in words", case.describe()), ("candidate", report.candidate), ("property", report.prop)]
    for key, label in (("signature", "fault signature (what its reports share; # stands for a number)"),
                       ("shrink", "shrinking"), ("needs", "shows only with")):
        value = report.document.get(key)
        if value:
            rows.append((label, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    config = ", ".join(f"{k}={v}" for k, v in case.to_dict()["config"].items())
    inputs = ", ".join(f"{k}={v}" for k, v in case.to_dict()["inputs"].items())
    rows += [("config", config), ("inputs", inputs)]
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in rows) + "</table>"


def lacks_result(report: Report) -> bool:
    """A report of wrong values of a property whose reports store the candidate's result (the
    heat maps' other half), which it may lack: written before reports stored it."""
    return (report.kind == "check" and report.prop in PROPERTIES and PROPERTIES[report.prop].diagnosed
            and report.mismatch.get("tensor") in ("output", "h_n", "c_n"))


def _no_heatmap(report: Report, expected: Mapping[str, torch.Tensor], actual: Mapping[str, torch.Tensor]) -> str:
    """Why the page has no heat maps, in a sentence that is true of this report (empty when it has them)."""
    if expected and actual:
        return ""
    relation = report.prop.removeprefix("relation:")
    if relation in RELATION_WORDS:
        why = (f"The relation {relation}: {RELATION_WORDS[relation]}. It compares two calls of the candidate "
               "with each other, not with the reference, so there is no map of errors against the reference.")
    elif report.kind in ("crash", "timeout"):
        why = "The case never returned (see what happened above), so there are no values to map."
    elif report.mismatch.get("tensor") not in ("output", "h_n", "c_n"):
        why = ("The candidate raised, or returned a result of the wrong structure (see above), so there are no "
               "values to map.")
    elif lacks_result(report):
        why = ("This report stores no result of its candidate (it was written before reports did): "
               "<code>fuzz-birnn show --candidate MODULE:ATTR</code> reruns it for the heat maps.")
    else:
        why = "Its values are not compared with the reference's (see above), so there is no map of errors."
    return f"<p class=muted>No heat maps. {why}</p>"


def under(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key.split("/", 1)[1]: value.to(torch.float64) for key, value in tensors.items()
            if key.startswith(prefix + "/")}


#: Larger grids are drawn in blocks (the worst cell of each), so a replayed 100,000-step case
#: still makes a page of ordinary size.
_MAX_COLUMNS, _MAX_ROWS = 96, 32


def _heatmaps(case: Case, expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor],
              tolerances: Mapping[str, float]) -> list[str]:
    maps = []
    c, i = case.config, case.inputs
    names = ["fwd", "rev"][: c.num_directions]
    if "output" in expected and "output" in actual and actual["output"].shape == expected["output"].shape:
        ratio = _ratio(actual["output"], expected["output"], tolerances.get("output", 0.0))  # (T, B, D)
        steps, batch, directions = ratio.shape
        valid = torch.ones(steps, batch, dtype=torch.bool)
        if i.packed and i.lengths:
            valid = torch.arange(steps).unsqueeze(1) < torch.tensor(i.lengths).unsqueeze(0)
        rows: list[str] = []
        grid: list[list[float | None]] = []
        for d in range(directions):
            values, batches, times = _blocks(ratio[:, :, d].T, valid.T, max(1, _MAX_ROWS // directions))
            rows += [f"L{c.num_layers - 1} {names[d]}" + (f" b{_span(b)}" if batch > 1 else "") for b in batches]
            grid += values
        maps.append(heatmap_svg("output: the last layer, by time step", grid, rows, [_span(t) for t in times],
                                column_title="time step"))
    for name in ("h_n", "c_n"):
        if name in expected and name in actual and actual[name].shape == expected[name].shape:
            ratio = _ratio(actual[name], expected[name], tolerances.get(name, 0.0))  # (L, D, B)
            directions = ratio.shape[1]
            flat = ratio.flatten(0, 1)  # rows layer * D + direction
            values, row_spans, batches = _blocks(flat, torch.ones_like(flat, dtype=torch.bool), _MAX_ROWS)
            labels = [f"L{lo // directions} {names[lo % directions]}" if lo == hi else f"rows {lo}-{hi}"
                      for lo, hi in row_spans]
            maps.append(heatmap_svg(f"{name}: every layer and direction, by sequence in the batch", values, labels,
                                    [_span(b) for b in batches], column_title="batch index"))
    return maps


def _blocks(matrix: torch.Tensor, valid: torch.Tensor, max_rows: int,
            ) -> tuple[list[list[float | None]], list[tuple[int, int]], list[tuple[int, int]]]:
    """``matrix`` (rows x columns) in at most ``max_rows`` x :data:`_MAX_COLUMNS` blocks, each its
    worst valid cell (``None``: nothing valid in it, i.e. padding); with each block's row and
    column span."""
    rows, columns = matrix.shape
    row_step, column_step = math.ceil(rows / max_rows), math.ceil(columns / _MAX_COLUMNS)
    row_spans = [(r, min(r + row_step, rows) - 1) for r in range(0, rows, row_step)]
    column_spans = [(k, min(k + column_step, columns) - 1) for k in range(0, columns, column_step)]
    masked = torch.where(valid, matrix, torch.full_like(matrix, -math.inf))
    grid: list[list[float | None]] = []
    for r0, r1 in row_spans:
        line: list[float | None] = []
        for c0, c1 in column_spans:
            block = masked[r0:r1 + 1, c0:c1 + 1]
            worst = float(block.max())  # NaN if any cell is NaN; -inf if every cell is padding
            line.append(None if worst == -math.inf else worst)
        grid.append(line)
    return grid, row_spans, column_spans


def _span(span: tuple[int, int]) -> str:
    low, high = span
    return str(low) if low == high else f"{low}-{high}"


def _ratio(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> torch.Tensor:
    """``|actual - expected| / tolerance``, the worst feature of each cell (NaN stays NaN)."""
    error = (actual - expected).abs()
    worst = error.amax(dim=-1)
    worst = torch.where(error.isnan().any(dim=-1), torch.full_like(worst, math.nan), worst)
    return worst / tolerance if tolerance > 0 else torch.where(worst > 0, math.inf, 0.0)


# -- a run -------------------------------------------------------------------------------------------


def run_page(record: RunRecord) -> str:
    """What a run covered (cases per property, mode, dtype, form and backend), what it did not compare
    and why, and every finding with a link to its report's page (``ID/report.html``)."""
    cases, options = record.cases, record.options
    what = f"candidate {options.candidate}" if options.candidate else "torch's own recurrent modules"
    parts = [f"<h1>fuzz-birnn run: {html.escape(what)}</h1>",
             f"<p>{cases.total} cases in {record.seconds:.0f} s, seed {options.seed}; torch "
             f"{html.escape(str(record.environment.get('torch')))}"
             f"{html.escape(_with_packages(record.environment.get('target_packages')))}; "
             f"exit status {record.exit_code}.</p>"]
    findings = record.findings
    parts.append(f"<h2>Findings ({len(findings)})</h2>")
    if not findings:
        parts.append("<p>No failures.</p>")
    for number, finding in enumerate(findings, 1):
        smallest = finding.smallest
        link = f"{smallest.report}/report.html"
        parts.append(f"<h3>{number}. {html.escape(heading(finding))}</h3>"
                     f"<p><a href=\"{html.escape(link)}\">{html.escape(smallest.report)}</a>: "
                     f"{html.escape(smallest.summary)}</p>")
        if finding.also:
            parts.append("<p class=muted>The same mistake, also seen as: "
                         + "; ".join(html.escape(s) for s in finding.also) + "</p>")
        if smallest.diagnosis:
            parts.append(f'<p class="diagnosis">{html.escape(smallest.diagnosis)}</p>')
        others = [r for r in finding.reports if r != smallest.report]
        if others:
            parts.append("<p class=muted>Also: " + ", ".join(
                f'<a href="{html.escape(r)}/report.html">{html.escape(r)}</a>' for r in others) + "</p>")

    parts += ["<h2>Searches</h2>", _searches(record)]
    parts.append("<h2>What was covered</h2>")
    for dimension in ("property", "mode", "dtype", "form", "backend"):
        counts = cases.by_dimension.get(dimension, {})
        parts.append(f"<h3>{dimension}</h3>" + _bars(counts))
    not_compared = record.not_compared
    parts.append(f"<h2>Not compared ({sum(not_compared.values())})</h2>")
    if not_compared:
        parts.append("<table>" + "".join(f"<tr><td>{n}</td><td>{html.escape(reason)}</td></tr>"
                                         for reason, n in not_compared.items()) + "</table>")
    else:
        parts.append("<p>Every case drawn was compared.</p>")
    for title, lines in (("Errors", record.errors), ("Notes", record.notes)):
        if lines:
            parts.append(f"<h2>{title}</h2><pre>" + html.escape("\n".join(lines)) + "</pre>")
    return _page(f"fuzz-birnn run: {what}", "\n".join(parts))


def _searches(record: RunRecord) -> str:
    """A row per search: what it checked, how that went, and its status in a word."""
    errors = " ".join(record.errors)
    head = ("<tr><th>search</th><th>status</th><th>cases</th><th>passed</th><th>failed</th><th>known</th>"
            "<th>unsupported</th><th>not compared</th><th>seconds</th></tr>")
    rows = []
    for s in record.cases.by_search:
        name = f"{s.property} ({s.mode})" + ("" if s.isa == NATIVE else f" at {s.isa}")
        status = ("error" if f"{s.property} ({s.mode})" in errors else "failing" if s.failed or s.known
                  else "no case checked" if not s.cases else "passing")
        rows.append(f'<tr class="{status.replace(" ", "-")}"><td>{html.escape(name)}</td><td>{status}</td>'
                    + "".join(f"<td>{n}</td>" for n in (s.cases, s.passed, s.failed, s.known, s.unsupported,
                                                       s.not_compared))
                    + f"<td>{s.seconds:.1f}</td></tr>")
    return f"<table class=searches>{head}{''.join(rows)}</table>"


def _bars(counts: Mapping[str, int]) -> str:
    if not counts:
        return "<p class=muted>none</p>"
    most = max(counts.values()) or 1
    return "<table>" + "".join(
        f'<tr><td>{html.escape(value)}</td><td><span class="bar" style="width:{max(1, round(24 * n / most))}rem" '
        f'title="{n} cases"></span> {n}</td></tr>' for value, n in counts.items()) + "</table>"
