"""`mlpcli bench`: time the forward pass of a network, apart from building it."""

from __future__ import annotations

from typing import Annotated

import typer

from mlpcli.commands import ranks
from mlpcli.commands.common import (
    ConfigArguments,
    FormatOption,
    NprocOption,
    OutputOption,
    QuietOption,
    check_features,
    field_option,
    load,
    note_assumptions,
    sources,
    split_one,
)
from mlpcli.errors import UsageError
from mlpcli.model import memory
from mlpcli.ranks import launch, process
from mlpcli.report import records, render
from mlpcli.report.output import Format, Layout, Output
from mlpcli.report.progress import LateProgress

LAYOUT = Layout.each(records.bench_record, records.bench_rows, render.bench_table)


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
    nproc: NprocOption = None,
) -> None:
    """Time forward passes (median, min, max, samples/s, FLOP/s, peak memory).

    Over several ranks: the group's figures, and each rank's peak memory and time spent
    communicating.
    """
    path, overrides = split_one(arguments, "bench")
    world = ranks.world_size(nproc)
    ranks.refuse_stdin(overrides, world)
    config = load(path, overrides)
    out = Output(output_format, output, field, quiet)
    out.check(LAYOUT, sources(path, config))
    if cuda_graph and config.device.type == "cpu":
        raise UsageError("--cuda-graph needs a CUDA device; this config runs on cpu")
    over_ranks = nproc is not None or process.current() is not None
    if cuda_graph and over_ranks:
        raise UsageError("--cuda-graph times one process; leave it out of a run over ranks")
    ranks.check([config], world, "bench")
    check_features(config)
    note_assumptions(config)
    if nproc is not None:
        launch.launch(nproc)
        return
    if over_ranks:
        from mlpcli.ranks import group, parallel  # torch: only once the input is valid

        result = parallel.bench(config, group.joined([config]), warmup, repeat)
        if result is not None:
            out.emit(LAYOUT, [result])
        return
    memory.check_host(config, on_cpu=config.device.type == "cpu")
    from mlpcli.engine import runners  # torch: only once the input is valid

    with LateProgress("timing forward passes", repeat) as progress:
        result = runners.bench(config, warmup, repeat, progress.advance, cuda_graph)
    out.emit(LAYOUT, [result])
