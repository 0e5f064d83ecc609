"""`mlpcli config show|schema|init`: the resolved config, its JSON Schema, a starter file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mlpcli.commands.common import (
    ConfigArguments,
    FormatOption,
    help_without_command,
    load,
    note_assumptions,
    split_one,
)
from mlpcli.errors import UsageError
from mlpcli.loading import schema
from mlpcli.report import files, terminal
from mlpcli.report.output import Format, Output
from mlpcli.report.terminal import to_stdout

app = typer.Typer(
    name="config",
    help="Show the resolved config, print the config file's JSON Schema, or start a new config.",
    invoke_without_command=True,
    rich_markup_mode=None,
    suggest_commands=True,
)


app.callback()(help_without_command)


@app.command()
def show(arguments: ConfigArguments = None, output_format: FormatOption = Format.TABLE) -> None:
    """The resolved config, every field with its value, as YAML that `run` accepts."""
    path, overrides = split_one(arguments, "config show")
    config = load(path, overrides)
    note_assumptions(config)
    Output(output_format).emit([config])


@app.command("schema")
def schema_command() -> None:
    """The JSON Schema (draft 2020-12) of the config file, for editors and other tools."""
    with to_stdout():
        sys.stdout.write(schema.schema_text())


@app.command()
def init(
    path: Annotated[
        Path | None,
        typer.Argument(help="Where to write it (none: print it).", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """A commented starter config."""
    if path is None:
        with to_stdout():
            sys.stdout.write(schema.starter_yaml())
        return
    if path.exists() and not force:
        raise UsageError(f"{path}: exists; --force replaces it")
    files.check_output(path, (".yaml", ".yml"), option="")
    files.write_atomic(path, schema.starter_yaml().encode())
    terminal.note(f"wrote {path}")
