"""`mlpcli shapes`: per-layer arithmetic of a config, without building anything."""

from __future__ import annotations

from typing import Annotated

from mlpcli import records, render
from mlpcli.commands.common import (
    ConfigArguments,
    FormatOption,
    OutputOption,
    QuietOption,
    field_option,
    load,
    split_one,
)
from mlpcli.output import Format, Layout, Output
from mlpcli.shapes import shapes as compute

LAYOUT = Layout(
    records.shapes_record,
    records.each(records.shapes_rows),
    lambda results, width: render.shapes_table(results[0], width),
)


def shapes(
    arguments: ConfigArguments = None,
    output_format: FormatOption = Format.TABLE,
    output: OutputOption = None,
    field: Annotated[
        list[str] | None, field_option("total_params, layers.0.params, param_bytes")
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Per-layer shapes, parameters, memory and FLOPs, computed without building anything."""
    path, overrides = split_one(arguments, "shapes")
    out = Output(output_format, output, field, quiet)
    out.check(LAYOUT, [path])
    out.emit(LAYOUT, [compute(load(path, overrides))])
