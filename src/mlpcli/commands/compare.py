"""`mlpcli compare`: one network on several devices, every tensor against the first device."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from mlpcli.commands import world as ranks_world
from mlpcli.commands.common import (
    AtolOption,
    ConfigArguments,
    FormatOption,
    JunitOption,
    OutputOption,
    QuietOption,
    RtolOption,
    field_option,
    load,
    named_files,
    note_assumptions,
    nproc_option,
    reported,
    sources,
    split_one,
)
from mlpcli.engine import host
from mlpcli.errors import CheckFailedError, UsageError
from mlpcli.loading import loader
from mlpcli.model.config import Config, Device, Rng
from mlpcli.ranks import launch, process
from mlpcli.report import records, render
from mlpcli.report.output import Format, Layout, Output

if TYPE_CHECKING:
    from mlpcli.model.results import CompareResult

DEFAULT = "cpu,cuda"  # without --devices: the CPU against the GPU
LAYOUT = Layout(records.compare_record, records.each(records.compare_rows), render.compare_tables)


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
    path, overrides = split_one(arguments, "compare")
    named = " ".join(arguments or []) or "the built-in config"
    inputs = named_files([path], overrides)
    with reported(junit_xml, "mlpcli compare", "mlpcli compare", named, inputs) as report:
        world = ranks_world.size(nproc)
        ranks_world.refuse_stdin(overrides, world)
        over_ranks = nproc is not None or process.current() is not None
        source = "--devices"
        if device_list is None and not over_ranks:  # name the option only when the user typed it
            source = f"compare's default devices {DEFAULT} (--devices chooses others)"
            device_list = DEFAULT
        specs = [
            loader.parse_device(d.strip(), source) for d in (device_list or "").split(",") if d
        ]
        if over_ranks and len(specs) > 1:
            raise UsageError(
                f"--devices {device_list}: over ranks, name one device (both runs use it)"
            )
        if not over_ranks and len(specs) < 2:
            raise UsageError(f"--devices {device_list}: name two or more devices, such as cpu,cuda")
        config = load(path, overrides)
        if over_ranks:
            out = Output(output_format, output, field, quiet)
            out.check(LAYOUT, sources(path, config))
            report.check(sources(path, config))
            ranks_world.check([config], world, "compare")
            note_assumptions(config)
            _over_ranks(config, specs, nproc, atol, rtol, out)
            return
        if config.rng is Rng.DEVICE and len({spec.type for spec in specs}) > 1:
            raise UsageError(
                f"--devices {device_list}: with rng: device each device draws its own weights, so "
                "they differ; compare with rng=cpu (the default), or devices of one type"
            )
        out = Output(output_format, output, field, quiet)
        out.check(LAYOUT, sources(path, config))
        report.check(sources(path, config))
        host.check_host(config, on_cpu=any(spec.type == "cpu" for spec in specs))
        note_assumptions(config)
        from mlpcli.engine import runners  # torch: only once the input is valid
        from mlpcli.model.closeness import tolerance_for

        result = runners.compare(config, specs, tolerance_for(config.dtype, atol, rtol), source)
        _report(result, out)


def _over_ranks(
    config: Config,
    specs: list[Device],
    nproc: int | None,
    atol: float | None,
    rtol: float | None,
    out: Output,
) -> None:
    """The run over ranks (`parallel` as configured) against one process, reported by rank 0."""
    if specs:
        config = config.on_device(specs[0], "--devices")
    if nproc is not None:
        launch.launch(nproc)
        return
    from mlpcli.model.closeness import tolerance_for
    from mlpcli.ranks import group, parallel  # torch: only once the input is valid

    tolerance = tolerance_for(config.dtype, atol, rtol)
    result = parallel.compare(config, group.joined([config]), tolerance)
    if result is not None:
        _report(result, out)


def _report(result: CompareResult, out: Output) -> None:
    """The comparison's results; exit 1 naming the worst tensor when any is beyond tolerance."""
    config = result.config
    out.emit(LAYOUT, [result])
    if result.beyond:
        worst = max(result.beyond, key=lambda diff: diff.difference.max_abs)
        raise CheckFailedError(
            [
                f"{config.name}: {len(result.beyond)} of {len(result.diffs)} tensors differ from "
                f"{result.devices[0]} beyond tolerance; the largest: {worst.name} "
                f"on {worst.device}, max abs {worst.difference.max_abs:.3g}"
            ]
        )
