"""The network as a picture in the notebook's style, from the config alone (no torch): one column
per layer (features, h1.., output), a circle per unit, a line per connection, labels. As SVG, or
as a Mermaid flowchart. `values` (from a run) colours the connections and units.

Bounded for any size: a layer wider than `max_units` shows its first and last units around an
ellipsis, and more than MAX_COLUMNS columns show their ends around a gap that gives the count.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape

from mlpcli.config import Config
from mlpcli.units import arrows

MAX_COLUMNS = 12  # columns shown; more show the first 6 and last 5 around a gap
GAP_X = 170  # between columns
GAP_Y = 46  # between units
RADIUS = 14
MARGIN = 50
TOP = 125  # room for the title, the layer labels and the column labels
LEGEND = 95  # room below for the legend of `values`
NEGATIVE, ZERO, POSITIVE = (33, 102, 172), (240, 240, 240), (178, 24, 43)  # a diverging scale
STYLE = (
    ".edge{stroke:#9a9a9a;stroke-width:1}"
    ".unit{fill:#ffffff;stroke:#333333;stroke-width:1.5}"
    ".ellipsis{fill:#555555;font-size:20px}"
    ".label{fill:#222222;font-size:13px}"
    ".layer{fill:#555555;font-size:11px}"
    ".title{fill:#111111;font-size:15px;font-weight:bold}"
)


@dataclass(frozen=True)
class Values:
    """A run's numbers for `draw --values`: each weight matrix, and each column's first row."""

    weights: tuple[tuple[tuple[float, ...], ...], ...]  # Wk[i][j]: (n(k-1), nk)
    units: tuple[tuple[float, ...], ...]  # features, h1.., output: row 0


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


def shows_every_unit(config: Config, max_units: int) -> bool:
    """Whether nothing is left out, as `draw --values` needs."""
    return len(config.layers) <= MAX_COLUMNS and max(config.layers) <= max_units


def svg(config: Config, max_units: int, values: Values | None = None) -> str:
    """The SVG picture; units are `circle.unit`, connections `line.edge`, left-out parts
    `.ellipsis`, so that CSS can restyle them."""
    shown = columns(config, max_units)
    rows = max(len(column.units) for column in shown if column is not None)
    width = 2 * MARGIN + (len(shown) - 1) * GAP_X
    height = TOP + rows * GAP_Y + (LEGEND if values else 20)
    title = f"{config.name}: layers {arrows(config.layers)}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="DejaVu Sans, Arial, sans-serif">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text class="title" x="{MARGIN}" y="24">{escape(title)}</text>',
    ]
    place = _placer(shown, rows)
    weight_scale = _largest(w for m in values.weights for r in m for w in r) if values else 1.0
    for left, right in itertools.pairwise(shown):
        if left is None or right is None:
            continue
        for i in (u for u in left.units if u is not None):
            for j in (u for u in right.units if u is not None):
                (x1, y1), (x2, y2) = place(left, i), place(right, j)
                style = ""
                if values:
                    w = values.weights[right.index - 1][i][j]
                    stroke = 0.5 + 3.5 * abs(w) / (weight_scale or 1)
                    style = f' style="stroke:{_colour(w, weight_scale)};stroke-width:{stroke:.2f}"'
                parts.append(f'<line class="edge" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"{style}/>')
    unit_scale = _largest(v for row in values.units for v in row) if values else 1.0
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
            if unit is None:
                (ux, uy) = place(column, None)
                hidden = column.size - sum(u is not None for u in column.units)
                parts.append(
                    f'<text class="ellipsis" x="{ux}" y="{uy + 7}" text-anchor="middle">⋮</text>'
                    f'<text class="ellipsis" x="{ux + 12}" y="{uy + 4}" style="font-size:10px">'
                    f"{hidden:,} more</text>"
                )
                continue
            cx, cy = place(column, unit)
            fill = ""
            if values:
                fill = f' style="fill:{_colour(values.units[column.index][unit], unit_scale)}"'
            parts.append(f'<circle class="unit" cx="{cx}" cy="{cy}" r="{RADIUS}"{fill}/>')
        if column.index:
            parts.append(_layer_label(config, column, x - GAP_X / 2))
    if values:
        parts.append(_legend(height, weight_scale, unit_scale))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


Placer = Callable[["Column", int | None], tuple[float, float]]


def _placer(shown: list[Column | None], rows: int) -> Placer:
    """Where each unit (or a column's ellipsis, for None) is drawn: centred in its column."""
    positions = {id(c): p for p, c in enumerate(shown) if c is not None}

    def place(column: Column, unit: int | None) -> tuple[float, float]:
        row = column.units.index(unit)
        offset = (rows - len(column.units)) / 2
        return MARGIN + positions[id(column)] * GAP_X, TOP + (row + offset + 0.5) * GAP_Y

    return place


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


def _legend(height: int, weight_scale: float, unit_scale: float) -> str:
    """Two colour bars: weights and values, each from -max to +max."""
    top = height - LEGEND + 25
    stops = "".join(
        f'<stop offset="{o}" stop-color="{c}"/>'
        for o, c in (("0", _rgb(NEGATIVE)), ("0.5", _rgb(ZERO)), ("1", _rgb(POSITIVE)))
    )
    bars = []
    for n, (label, scale) in enumerate((("weights", weight_scale), ("values", unit_scale))):
        y = top + n * 36
        bars.append(
            f'<text class="layer" x="{MARGIN}" y="{y - 6}">'
            f"{label}: {-scale:.3g} … {scale:.3g}</text>"
            f'<rect class="legend" x="{MARGIN}" y="{y}" width="200" height="12" '
            'fill="url(#scale)"/>'
        )
    return f'<defs><linearGradient id="scale">{stops}</linearGradient></defs>' + "".join(bars)


def _largest(numbers: Iterable[float]) -> float:
    """The largest magnitude among `numbers` (1 when there are none or all are 0)."""
    return max((abs(n) for n in numbers if math.isfinite(n)), default=0.0) or 1.0


def _colour(value: float, scale: float) -> str:
    """`value` on the diverging scale from -scale (blue) through 0 (grey) to +scale (red)."""
    t = max(-1.0, min(1.0, value / scale)) if scale else 0.0
    end = POSITIVE if t > 0 else NEGATIVE
    return _rgb(tuple(round(z + abs(t) * (e - z)) for z, e in zip(ZERO, end, strict=True)))


def _rgb(colour: tuple[int, ...]) -> str:
    return "#" + "".join(f"{c:02x}" for c in colour)


def mermaid(config: Config, max_units: int) -> str:
    """A Mermaid flowchart: a subgraph per column, a node per shown unit, an edge per shown
    connection (GitHub renders it in Markdown and CI job summaries)."""
    shown = columns(config, max_units)
    lines = ["---", f"title: {json.dumps(config.name)}", "---", "flowchart LR"]
    for position, column in enumerate(shown):
        if column is None:
            left_out = len(config.layers) - sum(c is not None for c in shown)
            lines.append(f'  gap{position}["… {left_out} layers …"]')
            continue
        lines.append(f'  subgraph c{column.index}["{column.name} ({column.size})"]')
        for unit in column.units:
            node = _node(column, unit)
            lines.append(f'    {node}["⋮"]' if unit is None else f"    {node}(({unit}))")
        lines.append("  end")
    for left, right in itertools.pairwise(shown):
        if left is None or right is None:
            continue
        k = right.index
        label = f"W{k} {config.layers[k - 1]}×{right.size}, {config.activations[k - 1].value}"
        lines.append(f'  c{left.index} -- "{label}" --> c{right.index}')
        for i in (u for u in left.units if u is not None):
            for j in (u for u in right.units if u is not None):
                lines.append(f"  {_node(left, i)} --- {_node(right, j)}")
    return "\n".join(lines) + "\n"


def _node(column: Column, unit: int | None) -> str:
    return f"c{column.index}e" if unit is None else f"c{column.index}u{unit}"
