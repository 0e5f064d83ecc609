"""`mlpcli bench`: time the forward pass of a network, apart from building it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import RenderableType

from mlpcli.commands import world as ranks_world
from mlpcli.commands.common import (
    ConfigArguments,
    FormatOption,
    Job,
    MultirunOption,
    NprocOption,
    OutputOption,
    QuietOption,
    field_option,
    note_assumptions,
    plan,
    sources,
    split_one,
)
from mlpcli.engine import host
from mlpcli.errors import UsageError
from mlpcli.model.results import BenchResult
from mlpcli.model.units import byte_size, counted
from mlpcli.ranks import launch, process
from mlpcli.report import files, records, render, terminal
from mlpcli.report import plot as plots
from mlpcli.report.output import Format, Layout, Output
from mlpcli.report.progress import LateProgress


def bench(
    arguments: ConfigArguments = None,
    repeat: Annotated[int, typer.Option("--repeat", "-n", min=1, help="Timed passes.")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed passes first.")] = 3,
    cuda_graph: Annotated[
        bool,
        typer.Option(
            "--cuda-graph",
            help="Capture one forward pass as a CUDA graph and time its replays (GPU only).",
        ),
    ] = False,
    output_format: FormatOption = Format.TABLE,
    output: OutputOption = None,
    field: Annotated[list[str] | None, field_option("forward_ms.median, tflops_per_s")] = None,
    quiet: QuietOption = False,
    multirun: MultirunOption = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="FILE",
            help="Draw a sweep's samples/s and FLOP/s against its first key, as .svg or .png "
            "(needs matplotlib).",
            show_default=False,
        ),
    ] = None,
    nproc: NprocOption = None,
) -> None:
    """Time forward passes (median, min, max, samples/s, FLOP/s, peak memory).

    With -m, each combination of the swept values in turn, one table row each; --plot draws
    them. Over several ranks: the group's figures, and each rank's peak memory and time spent
    communicating.
    """
    path, overrides = split_one(arguments, "bench")
    world = ranks_world.size(nproc)
    ranks_world.refuse_stdin(overrides, world)
    jobs = plan([path], overrides, multirun=multirun)
    configs = [config for config, _ in jobs]
    out = Output(output_format, output, field, quiet)
    layout = _layout(sweep=len(jobs) > 1)
    out.check(layout, sources(path, *configs))
    if plot is not None:
        files.check_output(plot, list(plots.SUFFIXES), sources(path, *configs), "--plot ")
        plots.check(plot, [combo for _, combo in jobs])
    over_ranks = nproc is not None or process.current() is not None
    _check_timing(jobs, over_ranks=over_ranks, cuda_graph=cuda_graph, multirun=multirun)
    ranks_world.check(configs, world, "bench")
    note_assumptions(*configs)
    if nproc is not None:
        launch.launch(nproc)
        return
    if over_ranks:
        from mlpcli.ranks import group, parallel  # torch: only once the input is valid

        result = parallel.bench(configs[0], group.joined(configs), warmup, repeat)
        if result is not None:
            out.emit(layout, [dataclasses.replace(result, overrides=jobs[0][1])])
        return
    results = _timed_here(jobs, warmup, repeat, cuda_graph)
    picture = plots.bench_plot(results, plot) if plot is not None else None
    out.emit(layout, results)
    if plot is not None and picture is not None:
        files.write_atomic(plot, picture)
        terminal.note(f"wrote {plot} ({byte_size(len(picture))})")


def _check_timing(
    jobs: Sequence[Job], *, over_ranks: bool, cuda_graph: bool, multirun: bool
) -> None:
    """What bench cannot time: a sweep over ranks, a CUDA graph on the CPU or over ranks."""
    if over_ranks and len(jobs) > 1:
        raise UsageError("a sweep times one process at a time: leave --nproc out of bench -m")
    for config, combo in jobs:
        if cuda_graph and config.device.type == "cpu":
            which = f"the sweep's {' '.join(combo)}" if multirun else "this config"
            raise UsageError(f"--cuda-graph needs a CUDA device; {which} runs on cpu")
    if cuda_graph and over_ranks:
        raise UsageError("--cuda-graph times one process; leave it out of a run over ranks")


def _timed_here(
    jobs: Sequence[Job], warmup: int, repeat: int, cuda_graph: bool
) -> list[BenchResult]:
    """Each job timed in this process, one after another, a progress bar over all passes."""
    for config, _ in jobs:
        host.check_host(config, on_cpu=config.device.type == "cpu")
    from mlpcli.engine import runners  # torch: only once the input is valid

    results = []
    what = jobs[0][0].name if len(jobs) == 1 else counted(len(jobs), "combination")
    with LateProgress(f"timing {what}", [1.0] * repeat * len(jobs)) as progress:
        for config, combo in jobs:
            result = runners.bench(config, warmup, repeat, progress.advance, cuda_graph)
            results.append(dataclasses.replace(result, overrides=combo))
    return results


def _layout(*, sweep: bool) -> Layout[BenchResult]:
    """Each bench's grid, or a sweep's one table; JSON a line each; CSV one table."""

    def tables(results: Sequence[BenchResult], width: int) -> tuple[RenderableType, list[str]]:
        if sweep:
            return render.bench_sweep_table(results, width)
        return render.stacked([render.bench_table(result, width) for result in results]), []

    return Layout(records.bench_record, records.bench_rows, tables)
