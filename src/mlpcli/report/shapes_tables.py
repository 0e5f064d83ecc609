"""The tables of `mlpcli shapes`: the layers, runs of equal layers folded into one row and
columns left out whole to fit the width; the totals; the tensors; each rank's share of a plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from mlpcli.model.units import arrows, byte_size, count_column, count_text, counted
from mlpcli.report.render import cut_rows, runs_of, tensors_table

if TYPE_CHECKING:
    from mlpcli.model.plan import ParallelPlan
    from mlpcli.model.results import LayerShape, ShapesResult


def shapes_table(report: ShapesResult, width: int) -> tuple[RenderableType, list[str]]:
    """Header, the layers (runs of equal layers as one row), totals, and the tensors list.

    Columns of the layers table that do not fit `width` are left out whole, never cut, in the
    order of DROPPABLE; a note names them.
    """
    config = report.config
    header = Text.assemble(
        (config.name, "bold"),
        f"  layers {arrows(config.layers)}  dtype {config.dtype}  batch {config.batch}",
    )
    runs = runs_of(
        report.layers, lambda layer: (layer.n_in, layer.n_out, layer.bias, layer.activation)
    )
    counts = zip(
        count_column([first.params for first, _ in runs]),
        count_column([first.flops for first, _ in runs]),
        strict=True,
    )
    rows, layers_cut = cut_rows(
        [(*_layer_row(*run), *texts) for run, texts in zip(runs, counts, strict=True)], "layers"
    )
    columns = [name for name, _ in LAYER_COLUMNS]
    layers = _layers_table(columns, rows)
    dropped = []
    for name in DROPPABLE:
        if _natural_width(layers) <= width:
            break
        dropped.append(name)
        layers = _layers_table([c for c in columns if c not in dropped], rows)
    totals = Table.grid(padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    totals.add_row(
        "parameters", f"{report.total_params:,} ({byte_size(report.param_bytes)} in {config.dtype})"
    )
    totals.add_row("largest activation", f"{byte_size(report.largest_activation_bytes)}")
    flops = f"{report.total_flops:,}"
    if report.total_flops >= 10**6:
        flops += f" ({count_text(report.total_flops)})"
    totals.add_row("FLOPs per forward", flops)
    tensors, tensors_cut = tensors_table(report.tensors)
    views: list[RenderableType] = [header, layers, totals, tensors]
    if report.plan is not None:
        views.append(plan_table(report.plan))
    notes = [cut for cut in (layers_cut, tensors_cut) if cut]
    if dropped:
        notes.append(
            f"left out the layers table's columns {', '.join(dropped)} to fit {width} columns "
            "(a wider COLUMNS, or --format json or csv: everything)"
        )
    return Group(*views), notes


def plan_table(plan: ParallelPlan) -> RenderableType:
    """Each rank's share of a parallel run: what it holds, its bytes, what it sends."""
    if plan.device_memory is None:
        verdict = "fit unknown here (--device-memory SIZE tells)"
    else:
        fits = "fits" if plan.fits else "does not fit"
        verdict = f"{fits} in {byte_size(plan.device_memory)} a device"
    table = Table(
        title=f"parallel {plan.mode} over {counted(plan.world_size, 'rank')}: {verdict}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("rank", "weights", "activations", "float32 draw", "sent", "peak"):
        table.add_column(column, justify="right")
    holds = Table(box=box.SIMPLE_HEAD)
    holds.add_column("rank", justify="right")
    holds.add_column("holds")
    for rank in plan.ranks:
        table.add_row(
            str(rank.rank),
            byte_size(rank.weight_bytes),
            byte_size(rank.activation_bytes),
            byte_size(rank.draw_bytes) + ("" if rank.draw_on_device else " (host)"),
            byte_size(rank.sent_bytes),
            byte_size(rank.total_bytes),
        )
        holds.add_row(str(rank.rank), rank.holds)
    return Group(table, holds)


def _layer_row(first: LayerShape, last: LayerShape) -> tuple[str, ...]:
    """A run of equal layers, `first` to `last`, as one row of the layers table (but for its
    counts, which take one format a column)."""
    return (
        _span(first.index, last.index),
        f"{first.n_in} → {first.n_out}",
        _compact(first.weight),
        "-" if first.bias is None else _compact(first.bias),
        _compact(first.output),
        first.activation.value,
    )


def _layers_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """The layers table with only `columns` (of LAYER_COLUMNS)."""
    table = Table(title="layers", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
    keep = [index for index, (name, _) in enumerate(LAYER_COLUMNS) if name in columns]
    for index in keep:
        name, justify = LAYER_COLUMNS[index]
        table.add_column(name, justify=justify, no_wrap=True)
    for row in rows:
        table.add_row(*(row[index] for index in keep))
    return table


def _natural_width(table: Table) -> int:
    """The width `table` takes when nothing in it is wrapped or cut."""
    console = Console(width=1_000_000)
    return Measurement.get(console, console.options, table).maximum


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _compact(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape))


LAYER_COLUMNS: tuple[tuple[str, Literal["left", "right"]], ...] = (
    ("#", "right"),
    ("in → out", "right"),
    ("W", "left"),
    ("B", "left"),
    ("output", "left"),
    ("activation", "left"),
    ("params", "right"),
    ("FLOPs", "right"),
)
DROPPABLE = ("output", "B", "W", "in → out")  # the layers table's columns to leave out first
