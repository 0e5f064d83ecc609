"""The view of `env`'s result: the machine's facts as a record, CSV rows and a grid."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlpcli.model.results import EnvResult
from mlpcli.model.units import byte_size
from mlpcli.report import style
from mlpcli.report.records import (
    Record,
    Rows,
)
from mlpcli.report.view import View

if TYPE_CHECKING:
    from mlpcli.model.results import (
        EnvResult,
    )


ENV_LABELS = {"cpu_count": "CPUs", "torch_threads": "CPU threads"}  # as bench names them


def env_table(environment: EnvResult) -> RenderableType:
    """Versions and threads as a two-column grid, then one row per GPU."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")  # a long version or platform string folds, whole
    for key, value in environment.facts.items():
        grid.add_row(ENV_LABELS.get(key, key), Text("-" if value is None else str(value)))
    if not environment.gpus:
        return Group(grid, Text("GPUs: none visible to torch"))
    gpus = style.table("GPUs")
    for column in ("index", "name", "memory", "capability"):
        gpus.add_column(column)
    for gpu in environment.gpus:
        gpus.add_row(str(gpu.index), Text(gpu.name), byte_size(gpu.memory_bytes), gpu.capability)
    return Group(grid, gpus)


def env_record(result: EnvResult) -> Record:
    """Schema `mlpcli.env/1`: the facts, then `gpus` (index, name, memory_bytes, capability)."""
    gpus = [dataclasses.asdict(gpu) for gpu in result.gpus]
    return {"schema": "mlpcli.env/1", **result.facts, "gpus": gpus}


def env_rows(result: EnvResult) -> Rows:
    """One row per fact, then one per GPU (`gpu0`: name, memory, capability)."""
    rows: list[list[object]] = [[key, value] for key, value in result.facts.items()]
    rows += [
        [f"gpu{gpu.index}", f"{gpu.name}, {gpu.memory_bytes} bytes, {gpu.capability}"]
        for gpu in result.gpus
    ]
    return ["key", "value"], rows


VIEW = View.each(EnvResult, env_record, env_rows, env_table)
