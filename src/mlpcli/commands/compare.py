"""`mlpcli compare`: one network on several devices, every tensor against the first device."""

from __future__ import annotations

from typing import Annotated

import typer

from mlpcli import loader, memory, records, render
from mlpcli.commands.common import (
    AtolOption,
    ConfigArguments,
    FormatOption,
    OutputOption,
    QuietOption,
    RtolOption,
    field_option,
    load,
    split_one,
)
from mlpcli.config import Rng
from mlpcli.errors import CheckFailedError, UsageError
from mlpcli.output import Format, Layout, Output

DEFAULT = "cpu,cuda"  # without --devices: the CPU against the GPU
LAYOUT = Layout.each(records.compare_record, records.compare_rows, render.compare_table)


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
) -> None:
    """Run one network on several devices; exit 1 when a tensor differs beyond tolerance."""
    path, overrides = split_one(arguments, "compare")
    source = "--devices"
    if device_list is None:  # name the option only when the user typed it
        source = f"compare's default devices {DEFAULT} (--devices chooses others)"
        device_list = DEFAULT
    specs = [loader.parse_device(d.strip(), source) for d in device_list.split(",")]
    if len(specs) < 2:
        raise UsageError(f"--devices {device_list}: name two or more devices, such as cpu,cuda")
    config = load(path, overrides)
    if config.rng is Rng.DEVICE and len({spec.type for spec in specs}) > 1:
        raise UsageError(
            f"--devices {device_list}: with rng: device each device draws its own weights, so "
            "they differ; compare with rng=cpu (the default), or devices of one type"
        )
    out = Output(output_format, output, field, quiet)
    out.check(LAYOUT, [path])
    memory.check_host(config, on_cpu=any(spec.type == "cpu" for spec in specs))
    from mlpcli import runners  # torch: only once the input is valid
    from mlpcli.closeness import tolerance_for

    result = runners.compare(config, specs, tolerance_for(config.dtype, atol, rtol), source)
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
