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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from html import escape

from mlpcli.model.config import Config
from mlpcli.model.results import Values
from mlpcli.model.units import arrows

MAX_COLUMNS = 8  # columns shown; more show the first 4 and last 3 around a gap
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
GAP_X = 170  # between columns, where they fit
MAX_WIDTH = 1000  # px: more columns narrow their gaps (to 117 px for 8) to stay within it
GAP_Y = 46  # between units
RADIUS = 14
MARGIN = 90  # room for a column's label at either end
TOP = 125  # room for the title, the layer labels and the column labels
LEGEND_ROW = 48  # a legend's caption, its bars and their ticks
# Font sizes: none under 11 px, so that a picture at most MAX_WIDTH wide shown in a page column
# 880 px wide (a README's) shows no text under 9.6 px.
TITLE_PX, LABEL_PX, SMALL_PX = 15, 13, 11
VALUES_SHOWN = 8  # a column showing at most this many units prints their values beside them
NEGATIVE, ZERO, POSITIVE = (33, 102, 172), (240, 240, 240), (178, 24, 43)  # a diverging scale
STYLE = (  # scoped to the picture, so that an HTML page that inlines it keeps its own styles
    ".mlpcli .edge{stroke:#9a9a9a;stroke-width:1}"
    ".mlpcli .unit{fill:#ffffff;stroke:#333333;stroke-width:1.5}"
    ".mlpcli .ellipsis{fill:#555555;font-size:20px}"
    f".mlpcli .more{{fill:#555555;font-size:{SMALL_PX}px}}"
    f".mlpcli .label{{fill:#222222;font-size:{LABEL_PX}px}}"
    f".mlpcli .layer{{fill:#555555;font-size:{SMALL_PX}px}}"
    f".mlpcli .value{{fill:#111111;font-size:{SMALL_PX}px;"
    "stroke:#ffffff;stroke-width:3px;paint-order:stroke}"  # a halo over the lines it crosses
    ".mlpcli .tick{stroke:#555555;stroke-width:1}"
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
        shown = [*range(4), None, *range(len(sizes) - 3, len(sizes))]
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
    `.ellipsis`, all inside `svg.mlpcli`, so that CSS can restyle them. With `values`, each
    weight layer and each column is coloured on its own scale (a legend gives each), lines are
    drawn thinnest first, so that the thick ones lie on top, and a column of at most
    VALUES_SHOWN units prints their values."""
    shown = columns(config, max_units)
    every = len(shown) == len(config.layers)  # every column drawn: every size in the title
    sizes = " → ".join(map(str, config.layers)) if every else arrows(config.layers)
    title = f"{config.name}: layers {sizes}"
    layout = _Layout.of(shown, values is not None)
    heading = _fitted_title(config.name, f": layers {sizes}", layout.network_width - MARGIN)
    scales = _Scales.of(values) if values else None
    texts = [MARGIN / 2 + _text_width(heading, TITLE_PX, bold=True)]
    if scales:
        texts += [MARGIN / 2 + _text_width(caption, SMALL_PX) for caption in LEGEND_CAPTIONS]
    layout = layout.widened(max(texts) + MARGIN / 2)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="mlpcli" '
        f'viewBox="0 0 {layout.width} {layout.height}" width="{layout.width}" '
        f'height="{layout.height}" font-family="DejaVu Sans, Arial, sans-serif">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f'<rect width="{layout.width}" height="{layout.height}" fill="#ffffff"/>',
        f'<text class="title" x="{MARGIN / 2}" y="24">{escape(heading)}</text>',
        *_edges(layout, values, scales),
    ]
    for position, column in enumerate(shown):
        x = layout.x(position)
        if column is None:
            left_out = len(config.layers) - sum(c is not None for c in shown)
            parts.append(
                f'<text class="ellipsis" x="{x}" y="{TOP + layout.rows * GAP_Y / 2}" '
                f'text-anchor="middle">… {left_out} layers …</text>'
            )
            continue
        parts.append(
            f'<text class="label" x="{x}" y="{TOP - 22}" text-anchor="middle">'
            f"{column.name} ({column.size})</text>"
        )
        parts += _units_drawn(layout, position, column, values, scales)
        if column.index and shown[position - 1] is not None:  # not over the gap: no lines there
            parts.append(_layer_label(config, column, x - layout.gap / 2))
    if scales:
        parts += _legend(layout, scales)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class _Layout:
    """Where a picture's columns go: `gap` apart, the network centred in a canvas `width` wide."""

    shown: Sequence[Column | None]
    rows: int  # the tallest column's units (an ellipsis counts as one)
    gap: float
    width: int
    height: int

    @classmethod
    def of(cls, shown: Sequence[Column | None], values: bool) -> _Layout:
        gap = min(GAP_X, (MAX_WIDTH - 2 * MARGIN) / max(1, len(shown) - 1))
        rows = _rows(shown)
        width = math.ceil(2 * MARGIN + (len(shown) - 1) * gap)
        return cls(shown, rows, gap, width, _height(rows, values=values))

    @property
    def network_width(self) -> float:
        return 2 * MARGIN + (len(self.shown) - 1) * self.gap

    def widened(self, width: float) -> _Layout:
        """The layout on a canvas at least `width` wide (for a title or caption)."""
        return replace(self, width=max(self.width, math.ceil(width)))

    def x(self, position: float) -> float:
        """The centre of the column at `position` (a fraction: between two columns)."""
        return round((self.width - self.network_width) / 2 + MARGIN + position * self.gap, 1)

    def at(self, position: int, column: Column, row: int) -> tuple[float, float]:
        """The centre of the unit in `row` of `column`, the column centred vertically."""
        offset = (self.rows - len(column.units)) / 2
        return self.x(position), TOP + (row + offset + 0.5) * GAP_Y


@dataclass(frozen=True)
class _Scales:
    """The largest finite magnitude of each weight layer k and of each column k drawn (None
    where none is finite): each is coloured from -top to +top."""

    weights: Mapping[int, float | None]
    units: Mapping[int, float | None]

    @classmethod
    def of(cls, values: Values) -> _Scales:
        return cls(_tops(values.weights.items()), _tops(values.units.items()))


def _tops(numbered: Iterable[tuple[tuple[int, ...], float]]) -> dict[int, float | None]:
    """The largest finite magnitude of the numbers of each k, the first part of their key
    (a weight's layer, a unit's column)."""
    tops: dict[int, float | None] = {}
    for (k, *_), number in numbered:
        top = tops.setdefault(k, None)
        if math.isfinite(number):
            tops[k] = max(top or 0.0, abs(number))
    return tops


def _edges(layout: _Layout, values: Values | None, scales: _Scales | None) -> list[str]:
    """A line per connection drawn; with values, coloured and as thick as its weight's share of
    its layer's largest, thinnest first."""
    lines: list[tuple[float, str]] = []  # (stroke width, markup) of each connection
    for position, (left, right) in enumerate(itertools.pairwise(layout.shown)):
        if left is None or right is None:
            continue
        ends = [
            (i, layout.at(position, left, a), j, layout.at(position + 1, right, b))
            for a, i in enumerate(left.units)
            for b, j in enumerate(right.units)
            if i is not None and j is not None
        ]
        for i, (x1, y1), j, (x2, y2) in ends:
            line = f'<line class="edge" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"'
            if values is None or scales is None:
                lines.append((1.0, line + "/>"))
                continue
            w, top = values.weights[right.index, i, j], scales.weights[right.index] or 0.0
            share = min(1.0, abs(w) / top) if math.isfinite(w) and top else 0.0
            stroke = 0.5 + 3.5 * share
            style = f"stroke:{_colour(w, top)};stroke-width:{stroke:.2f}"
            named = f"W{right.index}[{i},{j}] = {w:.4g}"
            lines.append((stroke, f'{line} style="{style}"><title>{named}</title></line>'))
    return [markup for _, markup in sorted(lines, key=lambda drawn: drawn[0])]


def _units_drawn(
    layout: _Layout,
    position: int,
    column: Column,
    values: Values | None,
    scales: _Scales | None,
) -> list[str]:
    """A column's circles (coloured by value, and the value printed below each when the column
    shows at most VALUES_SHOWN), and its ellipsis with the count it stands for; `position`:
    where the column is drawn."""
    parts = []
    for row, unit in enumerate(column.units):
        ux, uy = layout.at(position, column, row)
        if unit is None:
            hidden = column.size - sum(u is not None for u in column.units)
            parts.append(
                f'<text class="ellipsis" x="{ux}" y="{uy + 7}" text-anchor="middle">⋮</text>'
                f'<text class="more" x="{ux}" y="{TOP - 8}" text-anchor="middle">'
                f"{hidden:,} more</text>"
            )
            continue
        circle = f'<circle class="unit" cx="{ux}" cy="{uy}" r="{RADIUS}"'
        if values is None or scales is None:
            parts.append(circle + "/>")
            continue
        value = values.units[column.index, unit]
        parts.append(
            f'{circle} style="fill:{_colour(value, scales.units[column.index] or 0.0)}">'
            f"<title>{column.name}[{unit}] = {value:.4g}</title></circle>"
        )
        if len(column.units) - (None in column.units) <= VALUES_SHOWN:
            parts.append(
                f'<text class="value" x="{ux}" y="{uy + RADIUS + SMALL_PX}" '
                f'text-anchor="middle">{value:.4g}</text>'
            )
    return parts


def picture_height(config: Config, max_units: int, *, values: bool) -> int:
    """The SVG's height in pixels: the tallest column's units, the labels, and the legend."""
    return _height(_rows(columns(config, max_units)), values=values)


def tallest_fitting(*, values: bool) -> int:
    """The largest `max_units` whose picture is at most MAX_HEIGHT tall (an elided column draws
    its units and an ellipsis)."""
    return (MAX_HEIGHT - _height(0, values=values)) // GAP_Y - 1


def _height(rows: int, *, values: bool) -> int:
    return TOP + rows * GAP_Y + 20 + (2 * LEGEND_ROW if values else 0)


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


LEGEND_CAPTIONS = (
    "weights: each layer on its own scale (and line width)",
    "units, row 0 of the features: each column on its own scale; black: not finite",
)


def _legend(layout: _Layout, scales: _Scales) -> list[str]:
    """Two rows under the picture, each a caption and a colour bar with its range under each
    weight layer (between its columns) and under each column."""
    y = layout.height - 2 * LEGEND_ROW + 12
    stops = "".join(
        f'<stop offset="{o}" stop-color="{c}"/>'
        for o, c in (("0", _rgb(NEGATIVE)), ("0.5", _rgb(ZERO)), ("1", _rgb(POSITIVE)))
    )
    parts = [f'<defs><linearGradient id="mlpcli-scale">{stops}</linearGradient></defs>']
    layers: list[tuple[float, float | None]] = [
        (position + 0.5, scales.weights[right.index])
        for position, (left, right) in enumerate(itertools.pairwise(layout.shown))
        if left is not None and right is not None
    ]
    units: list[tuple[float, float | None]] = [
        (position, scales.units[column.index])
        for position, column in enumerate(layout.shown)
        if column is not None
    ]
    for row, (caption, bars) in enumerate(zip(LEGEND_CAPTIONS, (layers, units), strict=True)):
        top = y + row * LEGEND_ROW
        parts.append(f'<text class="layer" x="{MARGIN / 2}" y="{top}">{escape(caption)}</text>')
        parts += [_scale_bar(layout, layout.x(position), top + 6, end) for position, end in bars]
    return parts


def _scale_bar(layout: _Layout, x: float, y: float, top: float | None) -> str:
    """A colour bar centred at `x` from -top to +top, ticks at its ends and 0, and the labels
    of as many of them as fit (`±top` when neither end's does)."""
    half = min(70.0, layout.gap / 2 - 10)
    left, right = round(x - half, 1), round(x + half, 1)
    bar = (
        f'<rect class="legend" x="{left}" y="{y}" width="{2 * half:g}" height="10" '
        'fill="url(#mlpcli-scale)"/>'
    )
    ticks = "".join(
        f'<line class="tick" x1="{t}" y1="{y + 10}" x2="{t}" y2="{y + 14}"/>'
        for t in (left, x, right)
    )
    labels = _tick_labels(left, x, right, top)
    texts = "".join(
        f'<text class="layer" x="{at}" y="{y + 25}" text-anchor="{anchor}">{text}</text>'
        for at, anchor, text in labels
    )
    return bar + ticks + texts


def _tick_labels(
    left: float, middle: float, right: float, top: float | None
) -> list[tuple[float, str, str]]:
    """(x, text-anchor, text) of the labels under a bar: both ends and 0 where they fit, else
    both ends, else one `±top` in the middle."""
    if top is None or top == 0:
        return [(middle, "middle", "not finite" if top is None else "all 0")]
    end = f"{top:.2g}"
    width = {text: _text_width(text, SMALL_PX) + 4 for text in (f"-{end}", end, "0")}
    room = (middle - left) - width["0"] / 2
    if max(width[f"-{end}"], width[end]) <= room:
        return [(left, "start", f"-{end}"), (middle, "middle", "0"), (right, "end", end)]
    if width[f"-{end}"] + width[end] <= right - left:
        return [(left, "start", f"-{end}"), (right, "end", end)]
    return [(middle, "middle", f"±{end}")]


def _text_width(text: str, size_px: int, *, bold: bool = False) -> float:
    """A conservative width of `text` in DejaVu Sans, the font named first (bold: its widest
    glyphs, m and W, are about 1.05 em; capitals up to 0.87; other letters and digits at most
    0.72; regular text is narrower)."""
    ems = sum(
        1.1 if c in "MWmw@%" else 0.9 if c.isupper() or not c.isascii() else 0.72 for c in text
    )
    return ems * size_px * (1.0 if bold else 0.92)


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
