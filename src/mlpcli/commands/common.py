"""What several commands share: the CONFIG|KEY=VALUE arguments, and every option declared once."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from mlpcli.errors import ExitCode, MlpcliError, ReaderGone, UsageError, shortened
from mlpcli.loading import loader, sweep, yamlnodes
from mlpcli.model.config import Config
from mlpcli.ranks import launch, process
from mlpcli.report import files, junit, terminal
from mlpcli.report.output import Format


def _config_arguments(metavar: str, what: str) -> Any:
    """The CONFIG and KEY=VALUE arguments: `what` config files are taken."""
    return typer.Argument(
        metavar=metavar,
        help=f"{what} (none: the built-in notebook network) and overrides such as seed=3.",
        show_default=False,
    )


Arguments = Annotated[list[str] | None, _config_arguments("CONFIG|KEY=VALUE", "Config files")]
ConfigArguments = Annotated[
    list[str] | None, _config_arguments("CONFIG|KEY=VALUE", "A config file")
]
FormatOption = Annotated[
    Format,
    typer.Option("--format", "-f", help="table (for people), json (one line per result) or csv."),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Also write the results to this file, in the format its suffix names: .json, .csv.",
        show_default=False,
    ),
]
MultirunOption = Annotated[
    bool,
    typer.Option(
        "--multirun", "-m", help="Comma-separated override values sweep their cartesian product."
    ),
]
QuietOption = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print no results; only --output gets them."),
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


JunitOption = Annotated[
    Path | None,
    typer.Option(
        "--junit-xml",
        metavar="FILE.xml",
        help="Also write a JUnit XML report (a test case per network or file) for a CI's test "
        "view; the exit code is the same.",
        show_default=False,
    ),
]


class Report:
    """The test cases a command records for `--junit-xml`, and where they go."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.cases: list[junit.Case] = []

    def check(self, inputs: Iterable[Path | None]) -> None:
        """UsageError where the report cannot be written there, or would replace an input (and
        then it is not written)."""
        if self.path is not None:
            try:
                files.check_output(self.path, [".xml"], inputs, "--junit-xml ")
            except UsageError:
                self.path = None
                raise

    def add(
        self,
        classname: str,
        name: str,
        seconds: float,
        failure: str | None = None,
        error: str | None = None,
    ) -> None:
        """A case that passed, failed a check (`failure`) or could not run (`error`)."""
        kind = "check failed" if failure is not None else "usage" if error is not None else ""
        self.cases.append(junit.Case(classname, name, seconds, failure, error, kind))


@contextlib.contextmanager
def reported(
    path: Path | None, suite: str, classname: str, name: str, inputs: Iterable[Path | None]
) -> Iterator[Report]:
    """A JUnit report of the command in its body, written (atomically, by the launcher or the
    only process) however the body ends but by an interrupt: the cases it recorded, or one case
    (`classname`, `name`) for the whole command that passed, failed (exit 1) or could not run
    (exit 2-4, an `<error>`)."""
    report = Report(path)
    report.check(inputs)  # before the body: a path it cannot write is the only error
    started, clock = time.time(), time.perf_counter()

    def whole(failure: str | None = None, error: str | None = None, kind: str = "") -> None:
        seconds = time.perf_counter() - clock
        report.cases.append(junit.Case(classname, name, seconds, failure, error, kind))

    try:
        yield report
    except MlpcliError as error:  # a failed check, an error, or ranks that ended with a code
        code = ExitCode(error.exit_code)
        message = "; ".join(error.lines()) or f"ended with exit {int(code)}"
        if code is ExitCode.CHECK_FAILED and not any(case.failure for case in report.cases):
            whole(failure=message, kind="check failed")
        elif code not in (ExitCode.OK, ExitCode.CHECK_FAILED):
            whole(error=message, kind=code.name.lower())
        elif not report.cases:
            whole()
        _write(report, suite, started)
        raise
    except (typer.Exit, ReaderGone):  # the command's own verdict; stdout's reader gone
        if not report.cases:
            whole()
        _write(report, suite, started)
        raise
    except Exception as error:
        whole(error=f"internal error: {type(error).__name__}: {error}", kind="internal")
        _write(report, suite, started)
        raise
    if not report.cases:
        whole()
    _write(report, suite, started)


def named_files(paths: Sequence[Path | None], overrides: Sequence[str]) -> list[Path | None]:
    """The config files and the files overrides name (`inputs=x.csv`): what a report written
    before the configs are read must not replace."""
    values = [Path(override.partition("=")[2]) for override in overrides]
    return [*paths, *(value for value in values if _is_file(value))]


def _is_file(path: Path) -> bool:
    """Whether `path` is a file; False for a text that is no path at all (too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _write(report: Report, suite: str, started: float) -> None:
    if report.path is not None and process.current() is None:  # a rank leaves it to the launcher
        files.write_atomic(report.path, junit.document(suite, report.cases, started))


def nproc_option(help_text: str = launch.NPROC_HELP) -> Any:
    """`--nproc N`: a run over N ranks (or, for `shapes`, its plan)."""
    return typer.Option(
        "--nproc", metavar="N", min=1, max=launch.MAX_PROCESSES, help=help_text, show_default=False
    )


NprocOption = Annotated[int | None, nproc_option()]


def field_option(examples: str) -> Any:
    """`--field PATH`, with examples of the keys this command's results have."""
    return typer.Option(
        "--field",
        metavar="PATH",
        help=f"Print one value of the JSON result instead ({examples}); a line per result; "
        "given several times, the values tab-separated.",
        show_default=False,
    )


def help_without_command(ctx: typer.Context) -> None:
    """A group given no command prints its help on stderr and exits 2, on every Click version."""
    if ctx.invoked_subcommand is None:
        print(ctx.get_help(), file=sys.stderr)
        raise typer.Exit(ExitCode.USAGE)


def split(arguments: Sequence[str] | None) -> tuple[list[Path | None], list[str]]:
    """Config paths (or [None], the built-in default) and KEY=VALUE overrides."""
    arguments = arguments or []
    _whole_lists(arguments)
    overrides = [a for a in arguments if yamlnodes.is_override(a)]
    paths: list[Path | None] = [Path(a) for a in arguments if not yamlnodes.is_override(a)]
    return paths or [None], overrides


def _whole_lists(arguments: Sequence[str]) -> None:
    """An override whose list the shell split at its spaces (`layers=[3, 2, 1]` unquoted) is
    an error that shows it quoted, before its pieces are taken for config paths."""

    def still_open(text: str) -> bool:
        return text.count("[") + text.count("{") > text.count("]") + text.count("}")

    for index, argument in enumerate(arguments):
        if yamlnodes.is_override(argument) and still_open(argument):
            pieces = [argument]
            for piece in arguments[index + 1 :]:
                if not still_open(" ".join(pieces)):
                    break
                pieces.append(piece)
            if len(pieces) > 1:
                whole = shortened(" ".join(pieces))
                raise UsageError(
                    f"override '{shortened(argument)}': the shell split its list at the spaces; "
                    f"quote it: '{whole}'"
                )


def split_one(arguments: Sequence[str] | None, command: str) -> tuple[Path | None, list[str]]:
    """The one config path (None: the built-in default) and the overrides of `command`."""
    paths, overrides = split(arguments)
    if len(paths) > 1:
        raise UsageError(f"{command} takes one CONFIG; run it once per file")
    return paths[0], overrides


def sources(path: Path | None, *configs: Config) -> list[Path | None]:
    """The files a command reads: the config file, and each config's inputs and weights
    (stdin aside); an output must be none of them."""
    read = [
        Path(name) for c in configs for name in (c.inputs, c.weights) if name not in (None, "-")
    ]
    return [path, *read]


def load(path: Path | None, overrides: Sequence[str]) -> Config:
    """A config with MLPCLI_DEVICE and MLPCLI_THREADS applied between the file and overrides;
    a key given twice is an error."""
    sweep.once_each(overrides)
    return loader.load(path, overrides, os.environ)


Job = tuple[Config, tuple[str, ...]]  # a config and the overrides that made it


def plan(paths: Sequence[Path | None], overrides: Sequence[str], *, multirun: bool) -> list[Job]:
    """Every config a command that sweeps (`-m`) runs, read and checked before the first one
    runs: each path with the overrides, or (`multirun`) with each combination of their
    comma-separated values.

    A key given twice is an error.
    """
    sweep.once_each(overrides, sweeps=True)  # before the combinations: `seed=1,2 seed=3`
    combinations = sweep.expand(overrides) if multirun else [tuple(overrides)]
    return [(load(path, combo), combo) for path in paths for combo in combinations]


def note_assumptions(*configs: Config) -> None:
    """What the loader assumed reading the configs' files, and an `init` set for weights from a
    file: said once each, after every check has passed (an error is then the only line), and
    not again by the ranks that `--nproc` starts."""
    if process.prechecked():
        return
    for config in configs:
        notes = list(config.notes)
        if config.weights is not None and "init" in config.locations:
            where = config.where("init")
            if config.weights not in where.source:  # not the file's own record of its run
                notes.append(f"init ({where}) is ignored: the weights come from {config.weights}")
        for note in notes:
            terminal.note(note, once=True)  # once however many configs of a sweep repeat it
