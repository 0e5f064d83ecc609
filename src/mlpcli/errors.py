"""Exit codes and the errors that carry them; `cli.main` is the one place that maps them."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from dataclasses import dataclass
from enum import IntEnum

# The packages of each optional extra, as pyproject.toml declares them (tests/test_docs.py
# checks): mlpcli's distribution is mlpcli-yaml, and `mlpcli` on PyPI is another project, so an
# install hint names the packages, and the extra for a checkout.
EXTRAS = {
    "onnx": ("onnx", "onnxscript", "onnxruntime"),
    "parquet": ("pyarrow",),
    "keras": ("h5py",),
    "plot": ("matplotlib",),
}


def install_hint(extra: str) -> str:
    """pip's command for an optional extra: `pip install pyarrow (or, from this checkout, pip
    install -e '.[parquet]')`."""
    packages = " ".join(EXTRAS[extra])
    return f"pip install {packages} (or, from this checkout, pip install -e '.[{extra}]')"


class ExitCode(IntEnum):
    """What a process exit status means (the README's table)."""

    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    UNAVAILABLE = 3
    INTERNAL = 4
    HUNG_UP = 129  # SIGHUP: the terminal closed
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM: `timeout`, a cancelled CI job


DEFAULT_SOURCE = "<built-in default>"  # where the built-in config's values come from


@dataclass(frozen=True)
class Location:
    """Where a value came from: a file position, or a command-line override."""

    source: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None or self.source == DEFAULT_SOURCE:  # a file the user never sees
            return self.source
        if self.column is None:
            return f"{self.source}:{self.line}"
        return f"{self.source}:{self.line}:{self.column}"


class MlpcliError(Exception):
    """An error a user can act on; printed as one line, exits with `exit_code`."""

    exit_code = ExitCode.USAGE

    def lines(self) -> list[str]:
        """What to print: one line, or one per failed check."""
        return [str(self)]


class UsageError(MlpcliError):
    """Bad arguments, or a file that cannot be read."""


class ConfigError(MlpcliError):
    """An invalid config: names where (file, line, column) and which field."""

    def __init__(self, location: Location, field: str | None, message: str) -> None:
        self.location = location
        self.field = field
        self.message = message
        super().__init__(_located(location, field, message))


class CheckFailedError(MlpcliError):
    """A check the user asked for said no (`--expect`, `compare`): one line per failure."""

    exit_code = ExitCode.CHECK_FAILED

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__("; ".join(failures))

    def lines(self) -> list[str]:
        return self.failures


class ReaderGone(Exception):  # noqa: N818 - an event, not a failure
    """stdout's reader went away (`| head`, `| true`): the command ends quietly, as `cat` does.

    Raised in place of BrokenPipeError so that no framework turns it into an exit code first.
    """


class StdoutFailed(Exception):  # noqa: N818 - carries the OSError of stdout itself
    """Writing results to stdout failed (`> /dev/full`) while a file was written beside it:
    said as stdout's failure, not the file's, which is then not put in place."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))


class UnavailableError(MlpcliError):
    """The work cannot be done on this machine: device missing, not enough memory; one about a
    config's file (a package missing to read it) says where the config names it."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(
        self, message: str, location: Location | None = None, field: str | None = None
    ) -> None:
        self.location = location
        self.field = field
        self.message = message
        super().__init__(message if location is None else _located(location, field, message))


def _located(location: Location, field: str | None, message: str) -> str:
    """A message about a config's field, after where it is: `file:line:column: field: ...`."""
    return f"{location}: {field}: {message}" if field else f"{location}: {message}"


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (its name when it has none)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def error_line(message: str) -> None:
    """An error as mlpcli says it: one line on stderr (wrapped on a terminal)."""
    say(f"mlpcli: error: {' '.join(message.splitlines())}")


def say(line: str) -> None:
    """`line` on stderr: one line when piped, for scripts; on a terminal, wrapped at word
    boundaries to its width (COLUMNS where set), so that the terminal never cuts a word.
    Control characters (a terminal escape typed in a KEY=VALUE) are shown as escapes, never
    sent to the terminal."""
    line = _CONTROL.sub(lambda match: repr(match.group())[1:-1], line)
    width = _terminal_width()
    print(line if width is None else wrapped(line, width), file=sys.stderr)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: ESC, BEL, CR, CSI ...


def wrapped(line: str, width: int) -> str:
    """`line` broken at spaces into lines of at most `width`, those after the first indented by
    two spaces; a path or a quoted value is never broken (a line holding one may run past)."""
    if len(line) <= width:
        return line
    kept = _QUOTED.sub(lambda match: match.group().replace(" ", "\0"), line)
    filled = textwrap.fill(
        kept, width, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False
    )
    return filled.replace("\0", " ")


_QUOTED = re.compile(r"'[^']*'")


def shortened(text: str, limit: int = 160) -> str:
    """`text` whole when short, else its start and end around `…`: a value typed on the command
    line is shown, never poured whole into a message."""
    if len(text) <= limit:
        return text
    end = limit // 4
    return f"{text[: limit - end - 1]}…{text[-end:]}"


def _terminal_width() -> int | None:
    """The width of the terminal stderr is, None when it is none or says no usable width (a
    pty of 0 columns under `script` or some containers): lines are then left whole."""
    try:
        if not sys.stderr.isatty():
            return None
        columns = os.environ.get("COLUMNS", "")
        if columns.isdecimal() and int(columns) > 10:
            return int(columns)
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):  # a closed or replaced stderr
        return None
    return width if width > 10 else None


class RanksEnded(MlpcliError):  # noqa: N818 - an outcome: the ranks may have succeeded
    """The ranks of a run over several processes ended with `code`: they said why themselves,
    or `message` does (a rank that died without a word)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.exit_code = ExitCode(code) if code in set(ExitCode) else ExitCode.INTERNAL
        self.message = message
        super().__init__(message or "")

    def lines(self) -> list[str]:
        return [self.message] if self.message else []
