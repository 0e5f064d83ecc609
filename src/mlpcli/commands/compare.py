"""`mlpcli compare`: one network on several devices, every tensor against the first device."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mlpcli import config, records, render
from mlpcli.commands.common import (
    Arguments,
    AtolOption,
    RtolOption,
    TableOrJson,
    load,
    split_one,
)
from mlpcli.errors import CheckFailedError, UsageError


def compare(
    arguments: Arguments = None,
    device_list: Annotated[
        str,
        typer.Option(
            "--devices",
            "-d",
            metavar="DEVICE,DEVICE...",
            help="Two or more; the first is the reference.",
        ),
    ] = "cpu,cuda",
    atol: AtolOption = None,
    rtol: RtolOption = None,
    output_format: Annotated[
        TableOrJson, typer.Option("--format", "-f", help="table (Rich) or json (one line).")
    ] = TableOrJson.TABLE,
) -> None:
    """Run one network on several devices; exit 1 when a tensor differs beyond tolerance."""
    path, overrides = split_one(arguments, "compare")
    specs = [config.parse_device(d.strip(), "--devices") for d in device_list.split(",")]
    if len(specs) < 2:
        raise UsageError(f"--devices {device_list}: name two or more devices, such as cpu,cuda")
    the_config = load(path, overrides)
    if the_config.rng is config.Rng.DEVICE and len({spec.split(":")[0] for spec in specs}) > 1:
        raise UsageError(
            f"--devices {device_list}: with rng: device each device draws its own weights, so "
            "they differ; compare with rng=cpu (the default), or devices of one type"
        )
    from mlpcli import network  # torch: only once the input is valid
    from mlpcli.closeness import tolerance_for

    tolerance = tolerance_for(the_config.dtype, atol, rtol)
    report = network.compare(the_config, specs, tolerance)
    if output_format is TableOrJson.JSON:
        sys.stdout.write(records.json_line(records.compare_record(report)))
    else:
        render.stdout_console().print(render.compare_table(report))
    beyond = [diff for diff in report.diffs if not diff.difference.within]
    if beyond:
        worst = max(beyond, key=lambda diff: diff.difference.max_abs)
        raise CheckFailedError(
            [
                f"{the_config.name}: {len(beyond)} of {len(report.diffs)} tensors differ from "
                f"{report.devices[0]} beyond tolerance; the largest: {worst.name} "
                f"on {worst.device}, max abs {worst.difference.max_abs:.3g}"
            ]
        )
