"""`mlpcli validate`: check config files, one line (or record) each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mlpcli.commands.common import FormatOption
from mlpcli.errors import ConfigError, ExitCode, UsageError
from mlpcli.loading import loader
from mlpcli.model.results import ValidateResult
from mlpcli.report import records, render
from mlpcli.report.output import Format, Layout, Output

LAYOUT = Layout(
    records.validate_record,
    records.each(records.validate_rows),
    lambda results, _: (render.validate_lines(results), []),
)


def validate(
    paths: Annotated[
        list[Path], typer.Argument(metavar="CONFIG...", help="Config files to check.")
    ],
    output_format: FormatOption = Format.TABLE,
) -> None:
    """Check config files: one line per file, exit 1 if any is invalid (2 if one is unreadable)."""
    results = [_check(path) for path in paths]
    Output(output_format).emit(LAYOUT, results)
    if not all(result.readable for result in results):
        raise typer.Exit(ExitCode.USAGE)
    if not all(result.ok for result in results):
        raise typer.Exit(ExitCode.CHECK_FAILED)


def _check(path: Path) -> ValidateResult:
    try:
        return ValidateResult(str(path), loader.load(path, (), os.environ))
    except ConfigError as error:
        message = f"{error.field}: {error.message}" if error.field else error.message
        return ValidateResult(str(path), None, message, str(error.location))
    except UsageError as error:
        message = str(error).removeprefix(f"{path}: ")
        return ValidateResult(str(path), None, message, readable=False)
