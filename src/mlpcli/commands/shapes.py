"""`mlpcli shapes`: per-layer arithmetic of a config, without building anything."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from mlpcli.commands.common import (
    ConfigArguments,
    FormatOption,
    OutputOption,
    QuietOption,
    field_option,
    load,
    note_assumptions,
    nproc_option,
    sources,
    split_one,
)
from mlpcli.engine import host
from mlpcli.errors import UnavailableError, UsageError
from mlpcli.model import plan
from mlpcli.model.results import ShapesResult
from mlpcli.model.shapes import shapes as compute
from mlpcli.model.units import byte_size, parse_byte_size
from mlpcli.report.output import Format, Output


def shapes(
    arguments: ConfigArguments = None,
    output_format: FormatOption = Format.TABLE,
    output: OutputOption = None,
    field: Annotated[
        list[str] | None, field_option("total_params, layers.0.params, param_bytes")
    ] = None,
    quiet: QuietOption = False,
    nproc: Annotated[
        int | None,
        nproc_option(
            "Plan a run over N ranks as `parallel` shares it: each rank's layers or columns, "
            "weight and activation bytes, bytes sent per forward, and whether it fits."
        ),
    ] = None,
    device_memory: Annotated[
        str | None,
        typer.Option(
            "--device-memory",
            metavar="SIZE",
            help="Each rank's device memory for --nproc, such as 80GiB. [default: this "
            "machine's: the GPU's, or 1/N of the available memory on the CPU]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Per-layer shapes, parameters, memory and FLOPs, computed without building anything."""
    path, overrides = split_one(arguments, "shapes")
    if device_memory is not None and nproc is None:
        raise UsageError("--device-memory plans with --nproc N: give both")
    memory_bytes = None if device_memory is None else parse_byte_size(device_memory)
    if device_memory is not None and not memory_bytes:
        raise UsageError(
            f"--device-memory {device_memory}: not a size with a unit (such as 80GiB or 512MB)"
        )
    out = Output(output_format, output, field, quiet)
    config = host.settled(load(path, overrides))  # `auto` planned as a run here takes it
    out.check(ShapesResult, sources(path, config))
    note_assumptions(config)
    result = compute(config)
    if nproc is not None:
        memory_bytes = memory_bytes or host.device_memory(config, nproc)
        result = dataclasses.replace(result, plan=plan.plan(config, nproc, memory_bytes))
    out.emit([result])
    if result.plan is not None and result.plan.fits is False:  # shown, and then exit 3
        largest = max(result.plan.ranks, key=lambda rank: rank.total_bytes)
        raise UnavailableError(
            f"the plan does not fit: rank {largest.rank} needs {byte_size(largest.total_bytes)}, "
            f"a device has {byte_size(result.plan.device_memory or 0)}"
        )
