"""`mlpcli compare`: one network on several devices, every tensor against the first device."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlpcli.commands.common import (
    AtolOption,
    ConfigArguments,
    FormatOption,
    Job,
    JunitOption,
    OutputOption,
    QuietOption,
    Report,
    RtolOption,
    field_option,
    load,
    nproc_option,
    sources,
)
from mlpcli.commands.driver import Command, World, drive
from mlpcli.engine import host
from mlpcli.errors import CheckFailedError, UsageError
from mlpcli.loading import loader
from mlpcli.model.config import Config, Rng
from mlpcli.model.results import CompareResult
from mlpcli.report.output import Format, Output

if TYPE_CHECKING:
    from mlpcli.model.closeness import Tolerance
    from mlpcli.ranks.group import Group

DEFAULT = "cpu,cuda"  # without --devices: the CPU against the GPU


def compare(
    arguments: ConfigArguments = None,
    device_list: Annotated[
        str | None,
        typer.Option(
            "--devices",
            "-d",
            metavar="DEVICE,DEVICE...",
            help="Two or more; the first is the reference. [default: cpu,cuda]",
            show_default=False,
        ),
    ] = None,
    atol: AtolOption = None,
    rtol: RtolOption = None,
    output_format: FormatOption = Format.TABLE,
    output: OutputOption = None,
    field: Annotated[list[str] | None, field_option("within, tensors.0.max_abs")] = None,
    quiet: QuietOption = False,
    nproc: Annotated[
        int | None,
        nproc_option(
            "Compare a run over N ranks (as `parallel` shares it) with one process, on "
            "the one device --devices names (default: the config's)."
        ),
    ] = None,
    junit_xml: JunitOption = None,
) -> None:
    """Run one network on several devices; exit 1 when a tensor differs beyond tolerance.

    With --nproc N: the run over N ranks (`parallel` says how) against one process.
    """
    out = Output(output_format, output, field, quiet)
    drive(_Compare(arguments, nproc, junit_xml, out, device_list, (atol, rtol)))


class _Compare(Command[CompareResult]):
    """`compare` for the driver: one network on each device here, or over ranks against one
    process."""

    name, shared = "compare", True

    def __init__(
        self,
        arguments: Sequence[str] | None,
        nproc: int | None,
        junit: Path | None,
        out: Output,
        device_list: str | None,
        tolerance: tuple[float | None, float | None],
    ) -> None:
        super().__init__(arguments, nproc, junit)
        self.out, self.device_list, (self.atol, self.rtol) = out, device_list, tolerance

    def plan(
        self, paths: Sequence[Path | None], overrides: Sequence[str], world: World
    ) -> list[Job]:
        """The devices, checked before the config is read; over ranks, the config on the one
        device named."""
        device_list, self.source = self.device_list, "--devices"
        if device_list is None and not world.over_ranks:  # named only when the user typed it
            self.source = f"compare's default devices {DEFAULT} (--devices chooses others)"
            device_list = DEFAULT
        self.specs = [
            loader.parse_device(d.strip(), self.source) for d in (device_list or "").split(",") if d
        ]
        if world.over_ranks and len(self.specs) > 1:
            raise UsageError(
                f"--devices {device_list}: over ranks, name one device (both runs use it)"
            )
        if not world.over_ranks and len(self.specs) < 2:
            raise UsageError(f"--devices {device_list}: name two or more devices, such as cpu,cuda")
        config = load(paths[0], overrides)
        if world.over_ranks and self.specs:
            config = config.on_device(self.specs[0], "--devices")
        several_types = len({spec.type for spec in self.specs}) > 1
        if not world.over_ranks and config.rng is Rng.DEVICE and several_types:
            raise UsageError(
                f"--devices {device_list}: with rng: device each device draws its own "
                "weights, so they differ; compare with rng=cpu (the default), or devices "
                "of one type"
            )
        return [(config, ())]

    def preflight(self, jobs: Sequence[Job], world: World, report: Report) -> None:
        read = sources(self.paths[0], *(config for config, _ in jobs))
        self.out.check(CompareResult, read)
        report.check(read)

    def check_ranks(self, jobs: Sequence[Job], world: World) -> None:
        if world.over_ranks:  # one process compares devices: no word of ranks
            super().check_ranks(jobs, world)

    def fits(self, jobs: Sequence[Job], world: World) -> None:
        if not world.over_ranks:  # over ranks a mode is named: `shapes --nproc` plans it
            ((config, _),) = jobs
            on_cpu = any(spec.type == "cpu" for spec in self.specs)
            host.check_host(config, on_cpu=on_cpu, streamed=True)  # a chunk at a time

    def here(self, jobs: Sequence[Job]) -> list[CompareResult]:
        from mlpcli.engine import comparisons  # torch: only once the input is valid

        ((config, _),) = jobs
        tolerance = self._tolerance(config)
        return [comparisons.compare(config, tolerance, specs=self.specs, source=self.source)]

    def in_group(self, jobs: Sequence[Job], group: Group) -> list[CompareResult] | None:
        from mlpcli.engine import comparisons  # torch: only once the input is valid

        ((config, _),) = jobs
        result = comparisons.compare(config, self._tolerance(config), group)
        return None if result is None else [result]

    def _tolerance(self, config: Config) -> Tolerance:
        """--atol and --rtol, or the dtype's."""
        from mlpcli.model.closeness import tolerance_for  # NumPy: only once the input is valid

        return tolerance_for(config.dtype, self.atol, self.rtol)

    def emit(self, results: Sequence[CompareResult]) -> None:
        self.out.emit(results)

    def check(self, results: Sequence[CompareResult], report: Report) -> None:
        for result in results:
            _beyond(result)


def _beyond(result: CompareResult) -> None:
    """CheckFailedError naming the worst tensor when any is beyond tolerance."""
    config = result.config
    if result.beyond:
        worst = max(result.beyond, key=lambda diff: diff.difference.max_abs)
        raise CheckFailedError(
            [
                f"{config.name}: {len(result.beyond)} of {len(result.diffs)} tensors differ from "
                f"{result.devices[0]} beyond tolerance; the largest: {worst.name} "
                f"on {worst.device}, max abs {worst.difference.max_abs:.3g}"
            ]
        )
