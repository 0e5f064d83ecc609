"""`mlpcli validate`: check config files, one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlpcli import config, render
from mlpcli.errors import ExitCode, MlpcliError, UsageError


def validate(
    paths: Annotated[
        list[Path], typer.Argument(metavar="CONFIG...", help="Config files to check.")
    ],
) -> None:
    """Check config files: one line per file, exit 1 if any is invalid (2 if one is unreadable)."""
    worst = ExitCode.OK
    for path in paths:
        try:
            print(render.valid_line(str(path), config.load(path)))
        except MlpcliError as error:
            print(error)
            failed = ExitCode.USAGE if isinstance(error, UsageError) else ExitCode.CHECK_FAILED
            worst = max(worst, failed)
    if worst:
        raise typer.Exit(worst)
