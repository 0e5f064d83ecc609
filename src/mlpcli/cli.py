"""The `mlpcli` application: its commands, and the one place where errors become exit codes."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Annotated

import typer

from mlpcli import __version__, compat, interrupts, session
from mlpcli.commands import bench, compare, config, draw, env, export, run, shapes, validate
from mlpcli.commands.common import help_without_command
from mlpcli.commands.help import help_command
from mlpcli.errors import ExitCode, MlpcliError, ReaderGone, StdoutFailed, error_line
from mlpcli.loading import yamlnodes
from mlpcli.ranks import process, store
from mlpcli.report.terminal import to_stdout

COMPLETION_OPTIONS = ("--install-completion", "--show-completion")
app = typer.Typer(
    name="mlpcli",
    invoke_without_command=True,  # and then help_without_command: Click versions differ here
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
    pretty_exceptions_enable=False,
    # Click's plain help: Typer's Rich help imports Markdown support, 0.1 s of every --help.
    rich_markup_mode=None,
    suggest_commands=True,
)
app.command()(run.run)
app.command()(shapes.shapes)
app.command()(validate.validate)
app.command()(draw.draw)
app.command()(export.export)
app.add_typer(config.app)
app.command()(bench.bench)
app.command()(compare.compare)
app.command()(env.env)
app.command("help", hidden=True)(help_command)


def _version(value: bool) -> None:
    if value and process.speaks():
        with to_stdout():
            print(f"mlpcli {__version__}")
    if value:
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Build and run feed-forward networks declared in YAML, on the CPU or a CUDA GPU.

    Exit codes: 0 success, 1 a check said no, 2 invalid input, 3 not possible here
    (device, memory), 4 internal error, 129 hung up, 130 interrupted, 143 terminated.
    """
    help_without_command(ctx)


def run_app(args: Sequence[str]) -> int:
    """Run mlpcli with `args`; any error is one line on stderr; returns the exit code."""
    command = typer.main.get_command(app)
    process.begin(args)
    if sys.stdout is None:  # started with it closed (1>&-): a write fails as to a closed file
        sys.stdout = io.TextIOWrapper(_ClosedStdout(), encoding="utf-8", write_through=True)
    if len(args) > 1 and args[0] in COMPLETION_OPTIONS and not args[1].startswith("-"):
        message = (
            f"{args[0]} takes no shell name: it is for the shell it runs in; to set up "
            f"{args[1]}, run `mlpcli {args[0]}` from {args[1]} (see 'mlpcli --help')"
        )
        return process.end_with([message], int(ExitCode.USAGE), error_line)
    try:
        returned = command.main(list(args), prog_name="mlpcli", standalone_mode=False)
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
        if returned in (None, ExitCode.OK):
            returned = process.finish()  # over several ranks: once every rank has succeeded
    except MlpcliError as error:
        return process.end_with(error.lines(), int(error.exit_code), error_line)
    except (BrokenPipeError, ReaderGone):  # the reader went away (`| head`): end quietly
        _silence_stdout()
        try:
            return process.finish()  # over several ranks: once the others have finished too
        except MlpcliError as error:
            return process.end_with(error.lines(), int(error.exit_code), error_line)
    except (OSError, StdoutFailed) as error:
        return _not_written(error)
    except KeyboardInterrupt:
        return _interrupted(signal.SIGINT)
    except interrupts.Terminated as ended:  # SIGTERM, SIGHUP
        return _interrupted(ended.signum)
    except Exception as error:
        return _unexpected(error, args)
    if returned == ExitCode.INTERRUPTED:  # Typer turns Ctrl-C into a silent exit 130
        return _interrupted(signal.SIGINT)
    code = returned if isinstance(returned, int) else int(ExitCode.OK)
    return process.end_with([], code, error_line) if code else code


def _not_written(error: OSError | StdoutFailed) -> int:
    """Exit 2 for a path the user gave that the system refuses (too long, say); exit 3 when
    stdout itself failed (`> /dev/full`, a lost terminal)."""
    if isinstance(error, OSError) and error.filename is not None:
        message = f"{error.filename}: {error.strerror or error}"
        return process.end_with([message], int(ExitCode.USAGE), error_line)
    _silence_stdout()
    reason = error.strerror if isinstance(error, OSError) and error.strerror else error
    message = f"cannot write the results: {reason}"
    return process.end_with([message], int(ExitCode.UNAVAILABLE), error_line)


def _unexpected(error: Exception, args: Sequence[str]) -> int:
    """Exit 2 for a usage error Click raised (a bad option, a missing argument); else exit 4,
    an internal error, with its traceback under MLPCLI_DEBUG=1."""
    if (usage := compat.usage_error(error)) is not None:
        message, command_path = usage
        unknown = re.match(r"No such option:? '?(-[^\s'.]+)", message)
        hint = unknown and yamlnodes.option_hint(args, unknown.group(1))
        return _usage(hint or message, command_path)
    debug = os.environ.get("MLPCLI_DEBUG") == "1"
    if debug:
        traceback.print_exc()
    message = (
        f"internal error ({type(error).__name__}: {error}); "
        "rerun with MLPCLI_DEBUG=1 and report the traceback"
    )
    return process.end_with([] if debug else [message], int(ExitCode.INTERNAL), error_line)


def _interrupted(signum: signal.Signals) -> int:
    """One line for Ctrl-C, SIGTERM or SIGHUP, naming the files already written in full."""
    if not interrupts.claim():  # the signal watcher is ending the process itself
        threading.Event().wait()
    what = interrupts.MESSAGES[signum]
    written = ", ".join(map(str, session.current().written))
    if interrupts.voiced(signum):
        error_line(f"{what}; {written} was written in full before" if written else what)
    return int(interrupts.SIGNALS[signum])


def _usage(message: str, command_path: str) -> int:
    """Exit 2 for a usage error, with where to read about it."""
    return process.end_with(
        [f"{message} (see '{command_path} --help')"], int(ExitCode.USAGE), error_line
    )


class _ClosedStdout(io.RawIOBase):
    """Standard output closed before mlpcli started: a command that prints fails as one that
    writes to a closed descriptor does (exit 3, 'cannot write the results'); one that prints
    nothing (`-q -o FILE`) runs."""

    def writable(self) -> bool:
        return True

    def write(self, data: object, /) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main() -> None:
    """Console-script entry point."""
    process.tie_to_launcher()
    process.claim_voice_by(store.first_to_say)
    interrupts.watch()
    code: int | None = None
    try:
        code = run_app(sys.argv[1:])
        interrupts.hold()  # from here to the exit (microseconds) a signal goes unsaid
    except (KeyboardInterrupt, interrupts.Terminated) as error:
        signum = error.signum if isinstance(error, interrupts.Terminated) else signal.SIGINT
        # as the command ended, it says what was written; while an error was said, not again
        code = _interrupted(signum) if code == ExitCode.OK else interrupts.SIGNALS[signum]
    process.leave(code)
    if "torch" in sys.modules:  # its teardown at exit takes up to a second, a signal unsaid
        process.end_now(code)  # so the process ends at once, its output flushed
    sys.exit(code)
