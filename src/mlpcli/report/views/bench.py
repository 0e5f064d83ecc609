"""The view of `bench`'s results: a record per bench, one CSV table, a grid per bench (each
rank's figures over ranks) or a sweep's one table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlpcli.model.results import BenchResult, one_process, override_values, swept_keys
from mlpcli.model.units import (
    byte_column,
    byte_size,
    counted,
    ms_text,
    rate_text,
)
from mlpcli.report import style
from mlpcli.report.records import (
    Record,
    Rows,
    header,
)
from mlpcli.report.render import over_ranks, stacked
from mlpcli.report.style import Column
from mlpcli.report.view import Laid, View

if TYPE_CHECKING:
    from mlpcli.model.results import (
        BenchResult,
        RankFigures,
    )


def bench_table(result: BenchResult, width: int) -> RenderableType:
    """A bench result as a two-column grid."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(justify="right")
    times = result.forward_ms
    if result.peak_bytes is not None:
        peak = byte_size(result.peak_bytes)
    else:  # the CPU: no figure for the passes alone; over ranks, each process's whole peak
        peak = "each rank's RSS, below" if result.ranks else "not measured on the CPU"
    rows = [
        ("device", result.device),
        ("build (weights drawn, cast, moved)", f"{ms_text(result.build_ms)} ms"),
        ("forward pass", "CUDA graph replay" if result.cuda_graph else "eager"),
        ("features", _features(result)),
        (f"forward, median of {len(times)}", f"{ms_text(result.median_ms)} ms"),
        ("forward, min … max", f"{ms_text(result.min_ms)} … {ms_text(result.max_ms)} ms"),
        ("samples/s", _number(result.samples_per_s, ",.0f")),
        ("FLOP/s (from the shapes' FLOPs)", _rate(result.flops_per_s, "FLOP/s")),
        ("CPU threads", str(result.threads)),
        (
            "peak memory, capture included" if result.cuda_graph else "peak memory of the passes",
            peak,
        ),
    ]
    for label, value in rows:
        grid.add_row(label, value)
    title = style.header(result.config.name, over_ranks(result.parallel), width)
    ranks = [_ranks_table(result.ranks)] if result.ranks else []
    return Group(title, grid, *ranks)


def bench_sweep_table(results: Sequence[BenchResult], width: int) -> tuple[Table, list[str]]:
    """One row per bench of a sweep: the values swept, the forward times and the rates; the
    spread of the times, then the rates, left out to fit `width`, and the note that says so."""
    swept = swept_keys(result.overrides for result in results)
    devices = ", ".join(dict.fromkeys(result.device for result in results))
    threads = ", ".join(dict.fromkeys(str(r.threads) for r in results if r.device == "cpu"))
    title = f"{results[0].config.name}: {counted(len(results), 'combination')} on {devices}"
    title += f" (CPU threads {threads})" if threads else ""
    columns = [
        Column("#", "right"),
        *(Column(key, fold=True) for key in swept),
        *(Column(name, "right") for name in ("median ms", "min … max ms", "samples/s", "FLOP/s")),
    ]
    rows: list[list[RenderableType]] = []
    for index, result in enumerate(results):
        values = override_values(result.overrides)
        rows.append([
            str(index),
            *(Text(values[key]) for key in swept),
            ms_text(result.median_ms),
            f"{ms_text(result.min_ms)} … {ms_text(result.max_ms)}",
            _number(result.samples_per_s, ",.0f"),
            _rate(result.flops_per_s, "FLOP/s"),
        ])  # fmt: skip
    droppable = ("min … max ms", "FLOP/s", "samples/s")
    table, dropped = style.fitted(title, columns, rows, droppable, width)
    return table, [style.left_out("bench", dropped, width)] if dropped else []


def _ranks_table(ranks: Sequence[RankFigures]) -> Table:
    """Each rank of a bench over several processes: its weights, peak memory, communication."""
    table = style.table()
    for column in ("rank", "device", "weights", "peak memory", "communicating, median"):
        table.add_column(column, justify="right")
    weights = byte_column([rank.weight_bytes for rank in ranks])
    peaks = byte_column([rank.peak_bytes for rank in ranks])
    for rank, weight, peak in zip(ranks, weights, peaks, strict=True):
        table.add_row(
            str(rank.rank),
            rank.device,
            weight,
            peak + (" (RSS)" if rank.peak_is_rss else ""),
            f"{ms_text(rank.comm_ms)} ms",
        )
    return table


def _rate(value: float | None, unit: str) -> str:
    return "-" if value is None else rate_text(value, unit)


def _features(result: BenchResult) -> str:
    """Where each pass's features come from."""
    if result.reads_features:
        return "read from their file in every pass"
    return "drawn, held" if result.config.inputs is None else "read once, held"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def bench_record(result: BenchResult) -> Record:
    """Schema `mlpcli.bench/1`: build time apart from the forward passes' times and rates."""
    return {
        **header("bench", result.config),
        "overrides": list(result.overrides),
        "device": result.device,
        "cuda_graph": result.cuda_graph,
        "reads_features": result.reads_features,
        "build_ms": result.build_ms,
        "forward_ms": {
            "median": result.median_ms,
            "min": result.min_ms,
            "max": result.max_ms,
            "all": list(result.forward_ms),
        },
        "samples_per_s": result.samples_per_s,
        "flops": result.flops,
        "tflops_per_s": result.tflops_per_s,
        "threads": result.threads,
        "peak_bytes": result.peak_bytes,
        "parallel": dataclasses.asdict(result.parallel or one_process(result.config)),
        **({"ranks": [dataclasses.asdict(rank) for rank in result.ranks]} if result.ranks else {}),
    }


def bench_rows(results: Sequence[BenchResult]) -> list[Rows]:
    """One table, a row per bench: the network, a column per swept key (but those it has
    anyway: name, device, threads, as they ran), where, its figures."""
    figures = ["device", "parallel", "world_size", "cuda_graph", "reads_features", "build_ms"]
    figures += ["median_ms", "min_ms", "max_ms"]
    figures += ["samples_per_s", "tflops_per_s", "peak_bytes", "threads"]
    swept = [k for k in swept_keys(r.overrides for r in results) if k not in ("name", *figures)]
    header = ["name", *swept, *figures]
    rows: list[list[object]] = []
    for result in results:
        values = override_values(result.overrides)
        shared = result.parallel or one_process(result.config)
        rows.append([
            result.config.name, *(values[key] for key in swept), result.device, shared.mode,
            shared.world_size, result.cuda_graph, result.reads_features, result.build_ms,
            result.median_ms, result.min_ms, result.max_ms,
            result.samples_per_s, result.tflops_per_s, result.peak_bytes, result.threads,
        ])  # fmt: skip
    return [(header, rows)]


def bench_tables(results: Sequence[BenchResult], width: int, _: bool) -> Laid:
    """Each bench's grid, a blank line apart, or a sweep's one table."""
    if len(results) > 1:
        return bench_sweep_table(results, width)
    return stacked([bench_table(result, width) for result in results]), []


VIEW = View(BenchResult, bench_record, bench_rows, bench_tables)
