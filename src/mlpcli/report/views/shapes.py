"""The view of `shapes`' result: a record (each rank's share of a plan too) and a CSV row per
layer; the tables: the layers, runs of equal layers folded into one row and columns left out
whole to fit the width, the totals, the tensors, each rank's share of a plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table

from mlpcli.model.results import ShapesResult
from mlpcli.model.units import (
    arrows,
    byte_column,
    byte_size,
    count_column,
    count_text,
    counted,
)
from mlpcli.report import records, style
from mlpcli.report.records import Record, Rows, header
from mlpcli.report.render import cut_rows, runs_of, tensors_table
from mlpcli.report.style import Column
from mlpcli.report.view import View

if TYPE_CHECKING:
    from mlpcli.model.plan import ParallelPlan, RankPlan
    from mlpcli.model.results import LayerShape


def shapes_table(report: ShapesResult, width: int) -> tuple[RenderableType, list[str]]:
    """Header, the layers (runs of equal layers as one row), totals, and the tensors list.

    Columns of the layers table that do not fit `width` are left out whole, never cut, in the
    order of DROPPABLE; a note names them.
    """
    config = report.config
    pairs = [
        f"layers {arrows(config.layers)}",
        f"dtype {config.dtype}",
        f"batch {config.batch_size}",
    ]
    header = style.header(config.name, pairs, width)
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
    layers, dropped = style.fitted("layers", LAYER_COLUMNS, rows, DROPPABLE, width)
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
    tensors, tensors_cut = tensors_table(report.tensors, width)
    views: list[RenderableType] = [header, layers, totals, tensors]
    notes = [cut for cut in (layers_cut, tensors_cut) if cut]
    if dropped:
        notes.append(style.left_out("layers", dropped, width))
    if report.plan is not None:
        plan, plan_notes = plan_table(report.plan, width)
        views.append(plan)
        notes += plan_notes
    return Group(*views), notes


PLAN_COLUMNS = (
    Column("rank", "right"),
    *(Column(name, "right") for name in ("weights", "activations", "float32 draw", "sent", "peak")),
)


def plan_table(plan: ParallelPlan, width: int) -> tuple[RenderableType, list[str]]:
    """Each rank's share of a parallel run: what it holds, its bytes, what it sends; the draw,
    the activations, then what it sends left out to fit `width`, and the note that says so."""
    if plan.device_memory is None:
        verdict = "fit unknown here (--device-memory SIZE tells)"
    else:
        fits = "fits" if plan.fits else "does not fit"
        verdict = f"{fits} in {byte_size(plan.device_memory)} a device"
    title = f"parallel {plan.mode} over {counted(plan.world_size, 'rank')}: {verdict}"
    columns = [
        byte_column([getattr(rank, name) for rank in plan.ranks])
        for name in ("weight_bytes", "activation_bytes", "draw_bytes", "sent_bytes", "total_bytes")
    ]
    rows = [
        (
            str(rank.rank),
            weights,
            activations,
            draw + ("" if rank.draw_on_device else " (host)"),
            sent,
            total,
        )
        for rank, weights, activations, draw, sent, total in zip(plan.ranks, *columns, strict=True)
    ]
    droppable = ("float32 draw", "activations", "sent")
    table, dropped = style.fitted(title, PLAN_COLUMNS, rows, droppable, width)
    holds = style.filled(
        None,
        [Column("rank", "right"), Column("holds", fold=True)],
        [(str(rank.rank), rank.holds) for rank in plan.ranks],
        width,
    )
    return Group(table, holds), [style.left_out("plan", dropped, width)] if dropped else []


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


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _compact(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape))


LAYER_COLUMNS = (
    Column("#", "right"),
    Column("in → out", "right"),
    Column("W"),
    Column("B"),
    Column("output"),
    Column("activation"),
    Column("params", "right"),
    Column("FLOPs", "right"),
)
DROPPABLE = ("output", "B", "W", "in → out")  # the layers table's columns to leave out first


def shapes_record(result: ShapesResult) -> Record:
    """Schema `mlpcli.shapes/1`."""
    dtype = result.config.dtype.value
    return {
        **header("shapes", result.config),
        "tensors": [
            {"name": t.name, "shape": list(t.shape), "dtype": dtype} for t in result.tensors
        ],
        "layers": [
            {
                "index": layer.index,
                "in": layer.n_in,
                "out": layer.n_out,
                "weight": list(layer.weight),
                "bias": None if layer.bias is None else list(layer.bias),
                "output": list(layer.output),
                "activation": layer.activation.value,
                "params": layer.params,
                "flops": layer.flops,
            }
            for layer in result.layers
        ],
        "total_params": result.total_params,
        "total_flops": result.total_flops,
        "param_bytes": result.param_bytes,
        "largest_activation_bytes": result.largest_activation_bytes,
        **({"parallel": _plan_record(result.plan)} if result.plan is not None else {}),
    }


def _plan_record(plan: ParallelPlan) -> Record:
    """A parallel plan: each rank's share and bytes, and whether they fit."""
    return {
        "mode": plan.mode.value,
        "world_size": plan.world_size,
        "device_memory": plan.device_memory,
        "fits": plan.fits,
        "ranks": [_rank_record(rank) for rank in plan.ranks],
    }


def _rank_record(rank: RankPlan) -> Record:
    """One rank's share: in words (`holds`) and in numbers, each part of a tensor as the
    half-open `[start, stop)` of its rows and columns, as Python slices it."""
    share = rank.share
    return {
        "rank": rank.rank,
        "holds": rank.holds,
        "layers": list(share.layers),
        "features_rows": None if share.features is None else _slice(share.features),
        "weights": [
            {"name": f"W{i}", "rows": _slice(region[0]), "columns": _slice(region[1])}
            for i, region in enumerate(share.weights, 1)
            if region is not None
        ],
        "weight_bytes": rank.weight_bytes,
        "activation_bytes": rank.activation_bytes,
        "sent_bytes": rank.sent_bytes,
        "draw_bytes": rank.draw_bytes,
        "draw_on_device": rank.draw_on_device,
        "total_bytes": rank.total_bytes,
    }


def _slice(items: range) -> list[int]:
    return [items.start, items.stop]


def shapes_rows(result: ShapesResult) -> Rows:
    """One row per layer: index, in, out, activation, params, flops."""
    header = ["layer", "in", "out", "activation", "params", "flops"]
    rows: list[list[object]] = [
        [layer.index, layer.n_in, layer.n_out, layer.activation.value, layer.params, layer.flops]
        for layer in result.layers
    ]
    return header, rows


VIEW = View(
    ShapesResult,
    shapes_record,
    records.each(shapes_rows),
    lambda results, width, _: shapes_table(results[0], width),
)
