"""The `mlpcli` application: its commands, and the one place where errors become exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from mlpcli import __version__, render
from mlpcli.commands import bench, compare, config, env, run, shapes, validate
from mlpcli.commands.common import SuggestingGroup
from mlpcli.errors import ExitCode, MlpcliError


class _Group(SuggestingGroup):
    """Runs a command and maps whatever it raises to one stderr line and an exit code."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """`mlpcli --help`, drawn here rather than by Typer's Rich help.

        Typer's imports Markdown support (rich.markdown, markdown-it, Pygments), about 0.1 s of
        the 0.3 s that `mlpcli --help` may take; the commands' own help is still Typer's.
        """
        options = [
            (
                ", ".join(name for name in param.opts if name.startswith("--")),
                ", ".join(name for name in param.opts if not name.startswith("--")),
                param.help or "",
            )
            for param in self.get_params(ctx)
            if isinstance(param, click.Option) and not param.hidden
        ]
        commands = [
            (name, command.get_short_help_str(limit=200))
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        ]
        usage = " ".join([ctx.command_path, *self.collect_usage_pieces(ctx)])
        page = render.help_page(usage, self.help or "", options, commands)
        render.stdout_console().print(page)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = _exit_code(
            lambda: TyperGroup.main(self, args, prog_name, complete_var, False, **extra)
        )
        if not standalone_mode:
            return code
        sys.exit(code)


def _exit_code(invoke: Callable[[], Any]) -> int:
    """Call `invoke` (Typer in non-standalone mode); print one line for any error it raises."""
    try:
        returned = invoke()
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
    except MlpcliError as error:
        for line in error.lines():
            _error(line)
        return int(error.exit_code)
    except click.ClickException as error:  # usage errors: a bad option, a missing argument
        hint = getattr(getattr(error, "ctx", None), "command_path", "mlpcli")
        if error.format_message():  # empty when Click showed the help for a bare `mlpcli`
            _error(f"{error.format_message()} (see '{hint} --help')")
        return int(ExitCode.USAGE)
    except BrokenPipeError:  # the reader went away (`| head`): end quietly, as `cat` would
        _silence_stdout()
        return int(ExitCode.OK)
    except OSError as error:  # stdout itself failed: a full disk (`> /dev/full`), a lost terminal
        _silence_stdout()
        _error(f"cannot write the results: {error.strerror or error}")
        return int(ExitCode.UNAVAILABLE)
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


app = typer.Typer(
    cls=_Group,
    name="mlpcli",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.command()(run.run)
app.command()(shapes.shapes)
app.command()(validate.validate)
app.add_typer(config.app)
app.command()(bench.bench)
app.command()(compare.compare)
app.command()(env.env)


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


def main() -> None:
    """Console-script entry point."""
    app(prog_name="mlpcli")
