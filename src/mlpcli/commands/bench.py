"""`mlpcli bench`: time the forward pass of a network, apart from building it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlpcli.commands.common import (
    ConfigArguments,
    FormatOption,
    Job,
    MultirunOption,
    NprocOption,
    OutputOption,
    QuietOption,
    Report,
    field_option,
    plan,
    sources,
)
from mlpcli.commands.driver import Command, World, drive
from mlpcli.errors import UsageError
from mlpcli.model import memory
from mlpcli.model.config import Config
from mlpcli.model.results import BenchResult
from mlpcli.model.units import byte_size, counted
from mlpcli.report import files, terminal
from mlpcli.report import plot as plots
from mlpcli.report.output import Format, Output
from mlpcli.report.progress import LateProgress

if TYPE_CHECKING:
    from mlpcli.ranks.group import Group


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
    communicating. Features from a file of more rows than a chunk are read a chunk at a time in
    every pass, the reading timed with it, as run reads them (--cuda-graph holds them, read
    with the build).
    """
    out = Output(output_format, output, field, quiet)
    drive(_Bench(arguments, nproc, out, multirun, cuda_graph, (warmup, repeat), plot))


class _Bench(Command[BenchResult]):
    """`bench` for the driver: a sweep's timings here, or one network's over ranks."""

    name, shared = "bench", True

    def __init__(
        self,
        arguments: Sequence[str] | None,
        nproc: int | None,
        out: Output,
        multirun: bool,
        cuda_graph: bool,
        passes: tuple[int, int],
        plot: Path | None,
    ) -> None:
        super().__init__(arguments, nproc)
        self.out = out
        self.multirun, self.cuda_graph, self.plot = multirun, cuda_graph, plot
        self.warmup, self.repeat = passes

    def plan(
        self, paths: Sequence[Path | None], overrides: Sequence[str], world: World
    ) -> list[Job]:
        return plan(paths, overrides, multirun=self.multirun)

    def preflight(self, jobs: Sequence[Job], world: World, report: Report) -> None:
        read = sources(self.paths[0], *(config for config, _ in jobs))
        self.out.check(BenchResult, read)
        if self.plot is not None:
            files.check_output(self.plot, list(plots.SUFFIXES), read, "--plot ")
            plots.check(self.plot, [combo for _, combo in jobs])
        _check_timing(
            jobs, over_ranks=world.over_ranks, cuda_graph=self.cuda_graph, multirun=self.multirun
        )

    def streams(self, config: Config) -> bool:
        return memory.reads_per_pass(config, self.cuda_graph)

    def here(self, jobs: Sequence[Job]) -> list[BenchResult]:
        return _timed_here(jobs, self.warmup, self.repeat, self.cuda_graph)

    def in_group(self, jobs: Sequence[Job], group: Group) -> list[BenchResult] | None:
        from mlpcli.engine import runners  # torch

        ((config, combo),) = jobs
        result = runners.bench(config, self.warmup, self.repeat, group)
        return None if result is None else [dataclasses.replace(result, overrides=combo)]

    def emit(self, results: Sequence[BenchResult]) -> None:
        picture = plots.bench_plot(results, self.plot) if self.plot is not None else None
        self.out.emit(results)
        if self.plot is not None and picture is not None:
            files.write_atomic(self.plot, picture)
            terminal.note(f"wrote {self.plot} ({byte_size(len(picture))})")


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
    from mlpcli.engine import runners  # torch: only once the input is valid

    results = []
    what = jobs[0][0].name if len(jobs) == 1 else counted(len(jobs), "combination")
    with LateProgress(f"timing {what}", [1.0] * repeat * len(jobs)) as progress:
        for config, combo in jobs:
            result = runners.bench(
                config, warmup, repeat, progress=progress.advance, cuda_graph=cuda_graph
            )
            results.append(dataclasses.replace(result, overrides=combo))
    return results
