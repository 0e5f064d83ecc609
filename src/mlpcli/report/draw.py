"""The network as a picture in the notebook's style, from the config alone (no torch): one column
per layer (features, h1.., output), a circle per unit, a line per connection, labels. As SVG, or
as a Mermaid flowchart. `values` (from a run) colours the connections and units.

Bounded for any size: a layer wider than `max_units` shows its first and last units around an
ellipsis, and more than MAX_COLUMNS columns show their ends around a gap that gives the count.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

from mlpcli.model.config import Config
from mlpcli.model.results import Values
from mlpcli.model.units import arrows

MAX_COLUMNS = 12  # columns shown; more show the first 6 and last 5 around a gap
MAX_EDGES = 12_000  # lines in one SVG: under 2 MB with --values, quick to open anywhere
MAX_HEIGHT = 32_000  # px: rsvg-convert, Cairo and browsers' canvases stop at 32,767
MERMAID_UNIT_EDGES = 64  # a network of more connections is charted layer by layer
# Mermaid passes a title through an HTML sanitizer and then shows it as text, so `&` would
# show as `&amp;` and no escape in the chart undoes it: these show as their full-width forms.
MERMAID_TITLE = str.maketrans(
    {
        "&": "\N{FULLWIDTH AMPERSAND}",
        "<": "\N{FULLWIDTH LESS-THAN SIGN}",
        ">": "\N{FULLWIDTH GREATER-THAN SIGN}",
    }
)
GAP_X = 170  # between columns
GAP_Y = 46  # between units
RADIUS = 14
MARGIN = 90  # room for a column's label at either end
TOP = 125  # room for the title, the layer labels and the column labels
LEGEND = 95  # room below for the legend of `values`
TITLE_PX, LAYER_PX = 15, 11  # font sizes of the title and of the layer labels and legend
NEGATIVE, ZERO, POSITIVE = (33, 102, 172), (240, 240, 240), (178, 24, 43)  # a diverging scale
STYLE = (  # scoped to the picture, so that an HTML page that inlines it keeps its own styles
    ".mlpcli .edge{stroke:#9a9a9a;stroke-width:1}"
    ".mlpcli .unit{fill:#ffffff;stroke:#333333;stroke-width:1.5}"
    ".mlpcli .ellipsis{fill:#555555;font-size:20px}"
    ".mlpcli .label{fill:#222222;font-size:13px}"
    f".mlpcli .layer{{fill:#555555;font-size:{LAYER_PX}px}}"
    f".mlpcli .title{{fill:#111111;font-size:{TITLE_PX}px;font-weight:bold}}"
)


@dataclass(frozen=True)
class Column:
    """A shown column: its tensor's name, its size, and the units shown (None: the ellipsis)."""

    name: str
    size: int
    index: int  # 0 for features, k for hk (and output, k = L)
    units: tuple[int | None, ...]


def columns(config: Config, max_units: int) -> list[Column | None]:
    """The columns to draw, None where a run of columns is left out."""
    sizes = config.layers
    names = ["features", *(f"h{k}" for k in range(1, len(sizes) - 1)), "output"]
    shown: list[int | None] = list(range(len(sizes)))
    if len(sizes) > MAX_COLUMNS:
        shown = [*range(6), None, *range(len(sizes) - 5, len(sizes))]
    return [
        None if k is None else Column(names[k], sizes[k], k, _units(sizes[k], max_units))
        for k in shown
    ]


def _units(size: int, max_units: int) -> tuple[int | None, ...]:
    if size <= max_units:
        return tuple(range(size))
    first = max_units // 2
    return (*range(first), None, *range(size - (max_units - first), size))


def drawn_units(config: Config, max_units: int) -> dict[int, list[int]]:
    """The units a picture draws, by column (0 for the features): what `values` must hold."""
    return {
        column.index: [unit for unit in column.units if unit is not None]
        for column in columns(config, max_units)
        if column is not None
    }


def edges(config: Config, max_units: int) -> int:
    """How many connections a picture draws."""
    drawn = drawn_units(config, max_units)
    return sum(len(drawn[k - 1]) * len(units) for k, units in drawn.items() if k - 1 in drawn)


def widest_fitting(config: Config) -> int:
    """The largest `max_units` whose picture draws at most MAX_EDGES connections."""
    widest = max(config.layers)
    fitting = range(2, widest + 1)
    return bisect.bisect_right(fitting, MAX_EDGES, key=lambda m: edges(config, m)) + 1


def svg(config: Config, max_units: int, values: Values | None = None) -> str:
    """The SVG picture; units are `circle.unit`, connections `line.edge`, left-out parts
    `.ellipsis`, all inside `svg.mlpcli`, so that CSS can restyle them. With `values`, lines
    are drawn thinnest first, so that the thick ones lie on top."""
    shown = columns(config, max_units)
    rows = _rows(shown)
    every = len(shown) == len(config.layers)  # every column drawn: every size in the title
    sizes = " → ".join(map(str, config.layers)) if every else arrows(config.layers)
    title = f"{config.name}: layers {sizes}"
    network_width = 2 * MARGIN + (len(shown) - 1) * GAP_X
    heading = _fitted_title(config.name, f": layers {sizes}", network_width - MARGIN)
    weight_top = _largest(values.weights.values()) if values else 0.0
    unit_top = _largest(values.units.values()) if values else 0.0
    weight_scale, unit_scale = weight_top or 1.0, unit_top or 1.0  # all 0: any scale will do
    legend: tuple[str, ...] = _legend_texts(weight_top, unit_top) if values else ()
    texts = [
        MARGIN / 2 + _text_width(heading, TITLE_PX, bold=True),
        *(MARGIN + _text_width(text, LAYER_PX) for text in legend),
    ]
    width = round(max(network_width, *(x + MARGIN / 2 for x in texts)))
    height = _height(rows, values=values is not None)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="mlpcli" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="DejaVu Sans, Arial, sans-serif">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text class="title" x="{MARGIN / 2}" y="24">{escape(heading)}</text>',
    ]
    at = _positions(shown, rows)
    lines: list[tuple[float, str]] = []  # (stroke width, markup) of each connection
    for left, right in itertools.pairwise(shown):
        if left is None or right is None:
            continue
        for i in (u for u in left.units if u is not None):
            for j in (u for u in right.units if u is not None):
                (x1, y1), (x2, y2) = at[left.index, i], at[right.index, j]
                line = f'<line class="edge" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"'
                if values is None:
                    lines.append((1.0, line + "/>"))
                    continue
                w = values.weights[right.index, i, j]
                share = min(1.0, abs(w) / weight_scale) if math.isfinite(w) else 0.0
                stroke = 0.5 + 3.5 * share
                style = f"stroke:{_colour(w, weight_scale)};stroke-width:{stroke:.2f}"
                named = f"W{right.index}[{i},{j}] = {w:.4g}"
                lines.append((stroke, f'{line} style="{style}"><title>{named}</title></line>'))
    parts += [markup for _, markup in sorted(lines, key=lambda drawn: drawn[0])]
    for position, column in enumerate(shown):
        x = MARGIN + position * GAP_X
        if column is None:
            left_out = len(config.layers) - sum(c is not None for c in shown)
            parts.append(
                f'<text class="ellipsis" x="{x}" y="{TOP + rows * GAP_Y / 2}" '
                f'text-anchor="middle">… {left_out} layers …</text>'
            )
            continue
        parts.append(
            f'<text class="label" x="{x}" y="{TOP - 22}" text-anchor="middle">'
            f"{column.name} ({column.size})</text>"
        )
        for unit in column.units:
            ux, uy = at[column.index, unit]
            if unit is None:
                hidden = column.size - sum(u is not None for u in column.units)
                parts.append(
                    f'<text class="ellipsis" x="{ux}" y="{uy + 7}" text-anchor="middle">⋮</text>'
                    f'<text class="ellipsis" x="{ux}" y="{TOP - 8}" text-anchor="middle" '
                    f'style="font-size:10px">{hidden:,} more</text>'
                )
                continue
            circle = f'<circle class="unit" cx="{ux}" cy="{uy}" r="{RADIUS}"'
            if values is None:
                parts.append(circle + "/>")
                continue
            value = values.units[column.index, unit]
            parts.append(
                f'{circle} style="fill:{_colour(value, unit_scale)}">'
                f"<title>{column.name}[{unit}] = {value:.4g}</title></circle>"
            )
        if column.index and shown[position - 1] is not None:  # not over the gap: no lines there
            parts.append(_layer_label(config, column, x - GAP_X / 2))
    if values:
        parts.append(_legend(height, legend))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def picture_height(config: Config, max_units: int, *, values: bool) -> int:
    """The SVG's height in pixels: the tallest column's units, the labels, and the legend."""
    return _height(_rows(columns(config, max_units)), values=values)


def tallest_fitting(*, values: bool) -> int:
    """The largest `max_units` whose picture is at most MAX_HEIGHT tall (an elided column draws
    its units and an ellipsis)."""
    return (MAX_HEIGHT - _height(0, values=values)) // GAP_Y - 1


def _height(rows: int, *, values: bool) -> int:
    return TOP + rows * GAP_Y + (LEGEND if values else 20)


def _rows(shown: Sequence[Column | None]) -> int:
    return max(len(column.units) for column in shown if column is not None)


def _fitted_title(name: str, rest: str, room: float) -> str:
    """`name` and `rest` as the picture's heading: the name shortened in the middle where the
    whole would be wider than `room` (the network's width), never below 12 characters; the
    SVG's `<title>` keeps it whole."""
    shown = name
    while len(shown) > 12 and _text_width(shown + rest, TITLE_PX, bold=True) > room:
        keep = len(shown) - 2  # one character fewer, and the ellipsis for the cut
        shown = name[: keep - keep // 3] + "…" + name[len(name) - keep // 3 :]
    return shown + rest


def _positions(
    shown: list[Column | None], rows: int
) -> dict[tuple[int, int | None], tuple[float, float]]:
    """Where each shown unit (and each column's ellipsis, None) is drawn: centred in its column."""
    at: dict[tuple[int, int | None], tuple[float, float]] = {}
    for position, column in enumerate(shown):
        if column is None:
            continue
        offset = (rows - len(column.units)) / 2
        for row, unit in enumerate(column.units):
            at[column.index, unit] = (MARGIN + position * GAP_X, TOP + (row + offset + 0.5) * GAP_Y)
    return at


def _layer_label(config: Config, column: Column, x: float) -> str:
    """`W1 (3×2)`, `B1 (1×2)` and the activation, above the gap before `column`."""
    k, n_in, n_out = column.index, config.layers[column.index - 1], column.size
    lines = [f"W{k} ({n_in}×{n_out})"]
    if config.bias:
        lines.append(f"B{k} (1×{n_out})")
    lines.append(config.activations[k - 1].value)
    spans = "".join(
        f'<tspan x="{x}" dy="{0 if n == 0 else 13}">{escape(text)}</tspan>'
        for n, text in enumerate(lines)
    )
    return f'<text class="layer" x="{x}" y="{TOP - 78}" text-anchor="middle">{spans}</text>'


def _legend_texts(weight_top: float, unit_top: float) -> tuple[str, str]:
    """The two scales' captions, each naming its range (`_largest` of what it shows)."""
    return (
        f"weights drawn: {_range_text(weight_top)}",
        f"units (row 0): {_range_text(unit_top)}, one scale for all; black: not finite",
    )


def _range_text(top: float) -> str:
    """`-0.464 … 0.464`, for a scale whose largest magnitude is `top`."""
    return f"{-top:.3g} … {top:.3g}" if top else "no finite value but 0"


def _legend(height: int, texts: tuple[str, ...]) -> str:
    """The colour scales of weights and of units, each a bar under its caption."""
    y = height - LEGEND + 25
    stops = "".join(
        f'<stop offset="{o}" stop-color="{c}"/>'
        for o, c in (("0", _rgb(NEGATIVE)), ("0.5", _rgb(ZERO)), ("1", _rgb(POSITIVE)))
    )
    bars = "".join(
        f'<text class="layer" x="{MARGIN}" y="{top - 6}">{escape(text)}</text>'
        f'<rect class="legend" x="{MARGIN}" y="{top}" width="200" height="12" '
        'fill="url(#mlpcli-scale)"/>'
        for top, text in zip((y, y + 40), texts, strict=True)
    )
    return f'<defs><linearGradient id="mlpcli-scale">{stops}</linearGradient></defs>{bars}'


def _text_width(text: str, size_px: int, *, bold: bool = False) -> float:
    """A conservative width of `text` in DejaVu Sans, the font named first (bold: its widest
    glyphs, m and W, are about 1.05 em; capitals up to 0.87; other letters and digits at most
    0.72; regular text is narrower)."""
    ems = sum(
        1.1 if c in "MWmw@%" else 0.9 if c.isupper() or not c.isascii() else 0.72 for c in text
    )
    return ems * size_px * (1.0 if bold else 0.92)


def _largest(numbers: Iterable[float]) -> float:
    """The largest finite magnitude among `numbers` (0 when there is none)."""
    return max((abs(n) for n in numbers if math.isfinite(n)), default=0.0)


def _colour(value: float, scale: float) -> str:
    """`value` on the diverging scale from -scale (blue) through 0 (grey) to +scale (red);
    black when it is NaN or infinite."""
    if not math.isfinite(value):
        return "#000000"
    t = max(-1.0, min(1.0, value / scale)) if scale else 0.0
    end = POSITIVE if t > 0 else NEGATIVE
    return _rgb(tuple(round(z + abs(t) * (e - z)) for z, e in zip(ZERO, end, strict=True)))


def _rgb(colour: tuple[int, ...]) -> str:
    return "#" + "".join(f"{c:02x}" for c in colour)


MERMAID_ACROSS = 4  # nodes of a layer-by-layer chart drawn left to right; more run top to bottom


def mermaid(config: Config, max_units: int) -> str:
    """A Mermaid flowchart (GitHub renders it in Markdown and CI job summaries). A small network
    whole, unit by unit: a subgraph per column, a node per unit, an edge per connection. Any
    other as Mermaid reads best, layer by layer: a node per tensor (features, h1.., output) and
    an edge per weight layer with its shape and activation, the middle of a long network left
    out as the SVG leaves it out."""
    shown = columns(config, max_units)
    title = json.dumps(config.name.translate(MERMAID_TITLE), ensure_ascii=False)
    lines = ["---", f"title: {title}", "---"]
    whole = all(column is not None and None not in column.units for column in shown)
    connections = sum(a * b for a, b in itertools.pairwise(config.layers))
    if whole and connections <= MERMAID_UNIT_EDGES:  # the notebook's columns, left to right
        return "\n".join([*lines, "flowchart LR", *_unit_chart(config, shown)]) + "\n"
    # a chain of more than a few nodes runs down the page: across, it shrinks to fit its width
    lines.append("flowchart LR" if len(shown) <= MERMAID_ACROSS else "flowchart TB")
    for position, column in enumerate(shown):
        if column is None:
            left_out = len(config.layers) - sum(c is not None for c in shown)
            lines.append(f'  gap{position}["… {left_out} layers …"]')
        else:
            lines.append(f'  c{column.index}["{column.name} ({column.size:,})"]')
    for position, (left, right) in enumerate(itertools.pairwise(shown)):
        if left is None and right is not None:  # the gap stands between its neighbours
            lines.append(f"  gap{position} --> c{right.index}")
        elif right is None and left is not None:
            lines.append(f"  c{left.index} --> gap{position + 1}")
        elif left is not None and right is not None:
            lines.append(_layer_edge(config, left, right))
    return "\n".join(lines) + "\n"


def _unit_chart(config: Config, shown: list[Column | None]) -> list[str]:
    """Every unit of a small network and every connection, a subgraph per column."""
    lines = []
    drawn = [column for column in shown if column is not None]
    for column in drawn:
        lines.append(f'  subgraph c{column.index}["{column.name} ({column.size})"]')
        lines += [f"    {_node(column, unit)}(({unit}))" for unit in column.units]
        lines.append("  end")
    for left, right in itertools.pairwise(drawn):
        lines.append(_layer_edge(config, left, right))
        lines += [
            f"  {_node(left, i)} --- {_node(right, j)}" for i in left.units for j in right.units
        ]
    return lines


def _layer_edge(config: Config, left: Column, right: Column) -> str:
    """The edge of weight layer k between its columns: `c1 -- "W2 256×128, relu" --> c2`."""
    k = right.index
    text = f"W{k} {config.layers[k - 1]}×{right.size}, {config.activations[k - 1].value}"
    return f'  c{left.index} -- "{text}" --> c{right.index}'


def _node(column: Column, unit: int | None) -> str:
    return f"c{column.index}e" if unit is None else f"c{column.index}u{unit}"
