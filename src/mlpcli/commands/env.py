"""`mlpcli env`: the versions, threads and GPUs that a bug report needs."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mlpcli import records, render
from mlpcli.commands.common import TableOrJson


def env(
    output_format: Annotated[
        TableOrJson, typer.Option("--format", "-f", help="table (Rich) or json (one line).")
    ] = TableOrJson.TABLE,
) -> None:
    """mlpcli, Python, torch and CUDA versions, CPU threads, and each GPU's name and memory."""
    from mlpcli import devices  # torch

    environment = devices.environment()
    if output_format is TableOrJson.JSON:
        sys.stdout.write(records.json_line(records.env_record(environment)))
    else:
        render.stdout_console().print(render.env_table(environment))
