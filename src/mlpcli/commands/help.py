"""`mlpcli help [COMMAND]`: the help of mlpcli or of one of its commands, as `--help` shows it,
for those who type `help` first (git, pip and cargo answer it)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlpcli.errors import UsageError
from mlpcli.loading.yamlnodes import suggestion
from mlpcli.ranks import process
from mlpcli.report.terminal import to_stdout


def help_command(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None, typer.Argument(metavar="COMMAND", show_default=False)
    ] = None,
) -> None:
    """Show the help of mlpcli, or of COMMAND (`mlpcli help config init`)."""
    shown = ctx.find_root()
    for name in command or []:
        group = shown.command  # a group has commands (Click's, or the copy Typer 0.26+ carries)
        found = group.get_command(shown, name) if hasattr(group, "get_command") else None
        if found is None:
            known = group.list_commands(shown) if hasattr(group, "list_commands") else []
            where = " ".join([*shown.command_path.split()[1:], name])
            raise UsageError(f"help: no command '{where}'{suggestion(name, known)}")
        shown = typer.Context(found, info_name=name, parent=shown)
    if process.speaks():
        with to_stdout():
            print(shown.get_help())
