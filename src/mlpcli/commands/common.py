"""What several commands share: the CONFIG|KEY=VALUE arguments, formats, --output, --field."""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mlpcli import config, fields, files
from mlpcli.config import Config
from mlpcli.errors import UsageError
from mlpcli.records import Record


class Format(StrEnum):
    """`run`'s output formats."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class TableOrJson(StrEnum):
    """The output formats of the other commands."""

    TABLE = "table"
    JSON = "json"


Arguments = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[CONFIG|KEY=VALUE]...",
        help="Config files (none: the built-in notebook network) and overrides such as seed=3.",
        show_default=False,
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Also write the results to this file, in the format its suffix names.",
        show_default=False,
    ),
]
FieldOption = Annotated[
    str | None,
    typer.Option(
        "--field",
        help="Print one value of the JSON result instead (total_params, output.0.0, ...).",
        show_default=False,
    ),
]
AtolOption = Annotated[
    float | None,
    typer.Option(
        "--atol",
        min=0.0,
        help="Absolute tolerance. [default: by dtype; float32 1e-5]",
        show_default=False,
    ),
]
RtolOption = Annotated[
    float | None,
    typer.Option(
        "--rtol",
        min=0.0,
        help="Relative tolerance. [default: by dtype; float32 1.3e-6]",
        show_default=False,
    ),
]


def split(arguments: Sequence[str] | None) -> tuple[list[Path | None], list[str]]:
    """Config paths (or [None], the built-in default) and KEY=VALUE overrides."""
    arguments = arguments or []
    overrides = [a for a in arguments if config.is_override(a)]
    paths: list[Path | None] = [Path(a) for a in arguments if not config.is_override(a)]
    return paths or [None], overrides


def split_one(arguments: Sequence[str] | None, command: str) -> tuple[Path | None, list[str]]:
    """The one config path (None: the built-in default) and the overrides of `command`."""
    paths, overrides = split(arguments)
    if len(paths) > 1:
        raise UsageError(f"{command} takes one CONFIG; run it once per file")
    return paths[0], overrides


def load(path: Path | None, overrides: Sequence[str]) -> Config:
    """A config with MLPCLI_DEVICE applied between the file and the overrides."""
    return config.load(path, overrides, env_device=os.environ.get(config.ENV_DEVICE))


def check_output(
    output: Path | None, suffixes: Sequence[str], inputs: Sequence[Path | None]
) -> str | None:
    """The --output format, checked before any work is done."""
    return None if output is None else files.check_output(output, suffixes, inputs)


def field_lines(records: Sequence[Record], path: str) -> str:
    """One line per result: the value at `path` (UsageError for a path that is not there)."""
    return "".join(f"{fields.text(fields.select(record, path))}\n" for record in records)
