"""The `mlpcli` command line: parsing, and the one place where errors become exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from mlpcli import __version__, config, render, shapes
from mlpcli.errors import ExitCode, MlpcliError, UsageError


class Format(StrEnum):
    """How `run` writes its results."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class ShapesFormat(StrEnum):
    """How `shapes` writes its results."""

    TABLE = "table"
    JSON = "json"


class _Group(TyperGroup):
    """Runs a command and maps whatever it raises to one stderr line and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = _exit_code(
            lambda: super(_Group, self).main(args, prog_name, complete_var, False, **extra)
        )
        if not standalone_mode:
            return code
        sys.exit(code)


def _exit_code(invoke: Any) -> int:
    """Call `invoke` (Typer in non-standalone mode); print one line for any error it raises."""
    try:
        returned = invoke()
    except MlpcliError as error:
        _error(str(error))
        return int(error.exit_code)
    except typer.TyperException as error:  # Click's usage errors: bad option, missing argument
        hint = getattr(getattr(error, "ctx", None), "command_path", "mlpcli")
        if error.format_message():  # empty when Click showed the help for a bare `mlpcli`
            _error(f"{error.format_message()} (see '{hint} --help')")
        return int(ExitCode.USAGE)
    except typer.Abort:
        _error("aborted")
        return int(ExitCode.INTERRUPTED)
    except KeyboardInterrupt:
        _error("interrupted")
        return int(ExitCode.INTERRUPTED)
    except Exception as error:
        if os.environ.get("MLPCLI_DEBUG") == "1":
            traceback.print_exc()
        else:
            _error(
                f"internal error ({type(error).__name__}: {error}); "
                "rerun with MLPCLI_DEBUG=1 and report the traceback"
            )
        return int(ExitCode.INTERNAL)
    if returned == ExitCode.INTERRUPTED:  # Typer turns Ctrl-C into a silent exit 130
        _error("interrupted")
    return returned if isinstance(returned, int) else int(ExitCode.OK)


def _error(message: str) -> None:
    one_line = " ".join(message.splitlines())
    print(f"mlpcli: error: {one_line}", file=sys.stderr)


app = typer.Typer(
    cls=_Group,
    name="mlpcli",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

ArgsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="CONFIG|KEY=VALUE",
        help="Config files (none: the built-in notebook network) and overrides such as seed=3.",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        print(f"mlpcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Build and run feed-forward networks declared in YAML, on the CPU or a CUDA GPU.

    Exit codes: 0 success, 1 a check said no, 2 invalid input, 3 not possible here
    (device, memory), 4 internal error, 130 interrupted.
    """


def _split(arguments: Sequence[str] | None) -> tuple[list[Path | None], list[str]]:
    """Config paths (or [None] for the built-in default) and KEY=VALUE overrides."""
    arguments = arguments or []
    overrides = [a for a in arguments if config.is_override(a)]
    paths: list[Path | None] = [Path(a) for a in arguments if not config.is_override(a)]
    return paths or [None], overrides


@app.command()
def run(
    arguments: ArgsArgument = None,
    output_format: Annotated[
        Format,
        typer.Option("--format", "-f", help="table (Rich), json (one line per network), csv."),
    ] = Format.TABLE,
    full: Annotated[
        bool, typer.Option("--full", help="Show every output value in the table.")
    ] = False,
) -> None:
    """Build each network from its seed and run the forward pass; show tensors and outputs."""
    paths, overrides = _split(arguments)
    configs = [config.load(path, overrides) for path in paths]
    from mlpcli import network  # torch: only once the configs are known to be valid

    results = [network.run(c) for c in configs]
    console = render.stdout_console()
    for index, result in enumerate(results):
        if result.nonfinite:
            render.note(
                f"{result.config.name}: output has {result.nonfinite} NaN or infinite values"
            )
        if output_format is Format.JSON:
            sys.stdout.write(render.run_json(result))
        elif output_format is Format.CSV:
            sys.stdout.write(render.run_csv(result))
        else:
            table, cut = render.run_table(result, full=full, width=console.width)
            if index:
                console.print()
            console.print(table)
            if cut:
                render.note(cut)


@app.command("shapes")
def shapes_command(
    arguments: ArgsArgument = None,
    output_format: Annotated[
        ShapesFormat, typer.Option("--format", "-f", help="table (Rich) or json (one line).")
    ] = ShapesFormat.TABLE,
) -> None:
    """Per-layer shapes, parameters, memory and FLOPs, computed without building anything."""
    paths, overrides = _split(arguments)
    if len(paths) > 1:
        raise UsageError("shapes takes one CONFIG; run it once per file")
    report = shapes.shapes(config.load(paths[0], overrides))
    if output_format is ShapesFormat.JSON:
        sys.stdout.write(render.shapes_json(report))
    else:
        render.stdout_console().print(render.shapes_table(report))


@app.command()
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
            worst = max(
                worst, ExitCode.USAGE if isinstance(error, UsageError) else ExitCode.CHECK_FAILED
            )
    if worst:
        raise typer.Exit(worst)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="mlpcli")
