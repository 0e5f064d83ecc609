"""`mlpcli shapes`: per-layer arithmetic of a config, without building anything."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mlpcli import files, records, render
from mlpcli.commands.common import (
    Arguments,
    FieldOption,
    OutputOption,
    TableOrJson,
    check_output,
    field_lines,
    load,
    split_one,
)
from mlpcli.shapes import shapes as compute


def shapes(
    arguments: Arguments = None,
    output_format: Annotated[
        TableOrJson, typer.Option("--format", "-f", help="table (Rich) or json (one line).")
    ] = TableOrJson.TABLE,
    output: OutputOption = None,
    field: FieldOption = None,
) -> None:
    """Per-layer shapes, parameters, memory and FLOPs, computed without building anything."""
    path, overrides = split_one(arguments, "shapes")
    output_kind = check_output(output, (".json", ".csv"), [path])
    report = compute(load(path, overrides))
    record = records.shapes_record(report)
    chosen = field_lines([record], field) if field is not None else None
    if output is not None:
        data = records.shapes_csv(report) if output_kind == "csv" else records.json_line(record)
        files.write_atomic(output, data.encode())
    if chosen is not None:
        sys.stdout.write(chosen)
    elif output_format is TableOrJson.JSON:
        sys.stdout.write(records.json_line(record))
    else:
        render.stdout_console().print(render.shapes_table(report))
