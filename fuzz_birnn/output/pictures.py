"""Inline SVG: the drawing of a stack, and heat maps of a result's error.

**The stack** (:func:`stack_svg`) answers the seed thread's three questions for one configuration:
which ``h0``/``c0`` row and which weights each layer and direction uses, which way its time runs
(the reverse direction steps from the last time step to the first, and stores each output at its
own time step, so its output is already in forward time order), and what the next layer gets
(``[forward, reverse]``, concatenated per time step). A cell can be marked as the first faulty one.

**Heat maps** (:func:`heatmap_svg`) show ``|error| / tolerance`` per cell; a cell over 1 is wrong and
also carries a cross, and every cell has its value as a tooltip, so nothing depends on colour.

Plain strings in, plain strings out: no JavaScript, no fonts or files fetched.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FaultyCell", "heatmap_svg", "stack_svg"]

_FONT = 'font-family="system-ui, sans-serif"'
#: Time steps drawn one by one in a cell; longer sequences show the first and last few.
_STEPS_DRAWN = 8


@dataclass(frozen=True)
class FaultyCell:
    """Where a result first goes wrong: ``layer``, ``direction`` (0 forward, 1 reverse), ``time_step``."""

    layer: int
    direction: int
    time_step: int | None = None
    label: str = "first divergence"


def stack_svg(*, mode: str, num_layers: int, bidirectional: bool, input_size: int, hidden_size: int,
              proj_size: int = 0, bias: bool = True, seq_len: int = 4, form: str = "padded",
              fault: FaultyCell | None = None, suspect_joins: Sequence[int] = (), suspect: str = "") -> str:
    """The stack of one configuration, layer by layer and direction by direction; the joins after
    the layers in ``suspect_joins`` are marked as where the diagnosed mistake (``suspect``) sits."""
    directions = 2 if bidirectional else 1
    out = proj_size or hidden_size
    cell_w, cell_h, gap_x, gap_y = 270, 150, 78, 26
    left, top = 166, 64
    title = (f"{_module_name(mode)}: {num_layers} layer(s), {'bidirectional' if bidirectional else 'one direction'}, "
             f"hidden_size={hidden_size}" + (f", proj_size={proj_size}" if proj_size else ""))
    rows_line = (f"h0/c0 and h_n/c_n row of layer l, direction d: l * {directions} + d; each output is stored at its "
                 "own time step")
    steps_line = ("→ steps t = 0 … T-1 (forward);  ← steps t = T-1 … 0 (reverse). The next layer gets both "
                  "directions' outputs side by side at each t.")
    suspect_line = f"Orange: where the diagnosed mistake sits: {suspect}."
    fault_line = "" if fault is None else (
        f"Red: the {fault.label} (layer {fault.layer}, {'reverse' if fault.direction else 'forward'} direction"
        + ("" if fault.time_step is None else f", time step {fault.time_step}") + ").")
    captions = [(title, 14), (rows_line, 11), (steps_line, 11), (suspect_line if suspect_joins else "", 11),
                (fault_line, 11)]
    width = max(left + num_layers * (cell_w + gap_x) + 150,
                max(left + _text_width(text, size) for text, size in captions) + 16)
    height = top + directions * (cell_h + gap_y) + 96
    parts = [_svg(width, height, "the stack, layer by layer", 12),
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>']
    steps = "T" if form == "packed" else str(seq_len)
    shape = {"unbatched": f"({steps}, {input_size})", "packed": f"packed, {input_size} features"}.get(
        form, f"({steps}, B, {input_size})")
    middle = top + (directions * (cell_h + gap_y) - gap_y) / 2
    parts.append(_box(8, middle - 30, 128, 60, "#eef3fb", "#5b7bb4"))
    parts.append(_text(72, middle - 8, "input x", bold=True, anchor="middle"))
    parts.append(_text(72, middle + 10, shape, anchor="middle", size=10))
    parts.append(_text(left, 24, title, bold=True, size=14))
    parts.append(_text(left, 44, rows_line, size=11))
    for layer in range(num_layers):
        x = left + layer * (cell_w + gap_x)
        features = input_size if layer == 0 else directions * out
        for direction in range(directions):
            y = top + direction * (cell_h + gap_y)
            faulty = fault is not None and fault.layer == layer and fault.direction == direction
            parts.append(_cell(x, y, cell_w, cell_h, mode=mode, layer=layer, direction=direction,
                               directions=directions, features=features, out=out, bias=bias,
                               proj=proj_size > 0, seq_len=seq_len, packed=form == "packed",
                               fault=fault if faulty else None))
            source_x = 136 if layer == 0 else x - gap_x + 40
            parts.append(_arrow(source_x, middle, x, y + cell_h / 2))
        join_x = x + cell_w + 40
        marked = layer in suspect_joins
        parts.append(_box(join_x - 34, middle - 22, 68, 44, "#fff6e0" if marked else "#f7f7f7",
                          "#d08a00" if marked else "#777", width=3 if marked else 1.2,
                          title=f"the diagnosis: {suspect}" if marked else None))
        parts.append(_text(join_x, middle - 4, "concat" if directions == 2 else "output", anchor="middle",
                           size=11, bold=True))
        parts.append(_text(join_x, middle + 11, f"[{', '.join(['fwd', 'rev'][:directions])}]", anchor="middle",
                           size=10))
        for direction in range(directions):
            y = top + direction * (cell_h + gap_y)
            parts.append(_arrow(x + cell_w, y + cell_h / 2, join_x - 34, middle))
        what = "output" if layer == num_layers - 1 else f"input of layer {layer + 1}"
        parts.append(_text(join_x, middle + 36, what, anchor="middle", size=10))
        parts.append(_text(join_x, middle + 50, f"{directions * out} features", anchor="middle", size=10))
    last_x = left + num_layers * (cell_w + gap_x) - gap_x + 40
    end_x = left + num_layers * (cell_w + gap_x) + 138
    parts.append(_arrow(last_x + 34, middle, end_x, middle))
    parts.append(_text(end_x - 2, middle - 8, "output", anchor="end", bold=True))
    legend_y = height - 40
    parts.append(_text(left, legend_y, steps_line, size=11))
    if suspect_joins:
        parts.append(_text(left, legend_y - 18, suspect_line, size=11, colour="#8a5a00"))
    if fault is not None:
        parts.append(_text(left, legend_y + 18, fault_line, size=11, colour="#b00020"))
    parts.append("</svg>")
    return "\n".join(parts)


def _cell(x: float, y: float, w: float, h: float, *, mode: str, layer: int, direction: int, directions: int,
          features: int, out: int, bias: bool, proj: bool, seq_len: int, packed: bool, fault: FaultyCell | None) -> str:
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    row = layer * directions + direction
    stroke, fill = ("#b00020", "#fdecef") if fault else ("#5b7bb4", "#eef3fb")
    parts = [_box(x, y, w, h, fill, stroke, width=3 if fault else 1.2,
                  title=f"layer {layer}, {'reverse' if direction else 'forward'}: reads h0[{row}], writes h_n[{row}]")]
    name = f"layer {layer}, {'reverse' if direction else 'forward'}"
    parts.append(_text(x + 8, y + 17, name, bold=True))
    state = f"h0[{row}]" + (f", c0[{row}]" if mode == "LSTM" else "") + f" → h_n[{row}]" + (
        f", c_n[{row}]" if mode == "LSTM" else "")
    parts.append(_text(x + 8, y + 34, state, size=11))
    # one name a line: the longest, bias_ih_l3_reverse, bias_hh_l3_reverse, fits the cell's width
    lines = [f"weight_ih{suffix} ({features} in)", f"weight_hh{suffix}"]
    lines += [f"bias_ih{suffix}, bias_hh{suffix}"] if bias else []
    lines += [f"weight_hr{suffix}"] if proj else []
    for k, line in enumerate(lines):
        parts.append(_text(x + 8, y + 50 + 13 * k, line, size=10))
    # the time steps, in the order this direction visits them
    shown = list(range(seq_len)) if seq_len <= _STEPS_DRAWN else [0, 1, 2, None, seq_len - 2, seq_len - 1]
    box, step_y = 22, y + h - 40
    first_x = x + 10
    for k, t in enumerate(shown):
        bx = first_x + k * (box + 8)
        if t is None:
            parts.append(_text(bx + box / 2, step_y + 15, "…", anchor="middle"))
            continue
        hot = fault is not None and fault.time_step == t
        parts.append(_box(bx, step_y, box, box, "#fdecef" if hot else "#fff", "#b00020" if hot else "#888",
                          width=2.5 if hot else 1, title=f"time step {t}" + (" (first divergence)" if hot else "")))
        parts.append(_text(bx + box / 2, step_y + 15, str(t), anchor="middle", size=10))
    last_x = first_x + (len(shown) - 1) * (box + 8) + box
    arrow_y = step_y + box + 9
    start, end = (first_x, last_x) if direction == 0 else (last_x, first_x)
    parts.append(_arrow(start, arrow_y, end, arrow_y))
    order = "t = 0 … T-1" if direction == 0 else "t = T-1 … 0"
    parts.append(_text(x + w - 8, y + 17, order, anchor="end", size=10))
    if packed and direction:
        parts.append(_text(x + 8, y + 50 + 13 * len(lines), "each sequence from its own last step", size=9,
                           colour="#555"))
    return "\n".join(parts)


def heatmap_svg(title: str, ratios: Sequence[Sequence[float | None]], rows: Sequence[str],
                columns: Sequence[str], *, column_title: str) -> str:
    """A grid of ``|error| / tolerance`` (``None``: padding, not part of the result)."""
    cell = 28 if len(columns) <= 24 else 22 if len(columns) <= 48 else 14
    left, top = max(90, 7 * max((len(r) for r in rows), default=0)), 46
    width = max(left + len(columns) * cell + 20, left + 7 * _LEGEND_STEP + 20, _text_width(title, 13) + 12)
    height = top + len(rows) * cell + 58
    parts = [_svg(width, height, title, 11), _text(4, 16, title, bold=True, size=13)]
    every = max(1, math.ceil(len(columns) / 20))
    for j, label in enumerate(columns):
        if j % every == 0:
            parts.append(_text(left + j * cell + cell / 2, top - 6, label, anchor="middle", size=10))
    for i, label in enumerate(rows):
        y = top + i * cell
        parts.append(_text(left - 6, y + cell * 0.68, label, anchor="end", size=10))
        for j, ratio in enumerate(ratios[i]):
            x = left + j * cell
            if ratio is None:
                parts.append(_box(x, y, cell, cell, "#e6e6e6", "#fff", width=1,
                                  title=f"{label}, {column_title} {columns[j]}: padding (past this sequence's end)"))
                continue
            wrong = ratio > 1 or math.isnan(ratio)
            parts.append(_box(x, y, cell, cell, _colour(ratio), "#fff", width=1,
                              title=f"{label}, {column_title} {columns[j]}: |error| / tolerance = {_fmt(ratio)}"
                                    + (" (wrong)" if wrong else "")))
            if wrong:
                inset = cell * 0.28
                parts.append(f'<path d="M{x + inset},{y + inset} L{x + cell - inset},{y + cell - inset} '
                             f'M{x + cell - inset},{y + inset} L{x + inset},{y + cell - inset}" stroke="#fff" '
                             'stroke-width="1.6"/>')
    legend_y = top + len(rows) * cell + 22
    parts.append(_text(left, legend_y, f"columns: {column_title}; a cross marks |error| > tolerance; hover a cell for "
                                       "its value", size=10))
    for k, (ratio, label) in enumerate(_LEGEND):
        x = left + k * _LEGEND_STEP
        parts.append(_box(x, legend_y + 10, 14, 14, _colour(ratio), "#999", width=0.5))
        parts.append(_text(x + 18, legend_y + 21, label, size=10))
    parts.append("</svg>")
    return "\n".join(parts)


#: The heat maps' legend: within the tolerance, then every decade over it.
_LEGEND = ((0.0, "0"), (1.0, "1: the tolerance"), (10.0, "10"), (100.0, "100"), (1e3, "10³"), (1e4, "≥ 10⁴"),
           (float("nan"), "NaN"))
_LEGEND_STEP = 112


def _colour(ratio: float) -> str:
    """Greys within the tolerance, then orange to dark red by decades over it."""
    if math.isnan(ratio):
        return "#4a0010"
    if ratio <= 1:
        shade = int(245 - 60 * ratio)
        return f"rgb({shade},{shade},{shade})"
    strength = min(1.0, math.log10(ratio) / 4)
    red, green, blue = int(240 - 110 * strength), int(140 - 140 * strength), int(40 - 20 * strength)
    return f"rgb({red},{green},{blue})"


def _fmt(ratio: float) -> str:
    return "NaN" if math.isnan(ratio) else f"{ratio:.3g}"


def _module_name(mode: str) -> str:
    return {"RNN_TANH": "nn.RNN (tanh)", "RNN_RELU": "nn.RNN (relu)", "GRU": "nn.GRU", "LSTM": "nn.LSTM"}[mode]


def _svg(width: float, height: float, label: str, font_size: int) -> str:
    """An SVG that scales down to its column (never up), keeping its proportions: a deep stack is
    drawn whole in a narrow window, not cut off at the column's edge."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
            f'height="{height:.0f}" style="max-width: 100%; height: auto" role="img" '
            f'aria-label="{html.escape(label)}" {_FONT} font-size="{font_size}">')


def _text_width(text: str, size: float) -> float:
    """A generous estimate of a line's width in a sans-serif font (no font metrics are at hand)."""
    return 0.6 * size * len(text)


def _box(x: float, y: float, w: float, h: float, fill: str, stroke: str, *, width: float = 1.2,
         title: str | None = None) -> str:
    rect = (f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{width}"')
    return f"{rect}><title>{html.escape(title)}</title></rect>" if title else f"{rect}/>"


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, bold: bool = False,
          colour: str = "#222") -> str:
    weight = ' font-weight="600"' if bold else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}"{weight}>'
            f"{html.escape(text)}</text>")


def _arrow(x1: float, y1: float, x2: float, y2: float) -> str:
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#444" stroke-width="1.3" '
            'marker-end="url(#arrow)"/>')
