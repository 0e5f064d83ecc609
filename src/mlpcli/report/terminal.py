"""The terminal: the console results are printed on, and the notes said on stderr."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from rich.console import Console

from mlpcli import session
from mlpcli.errors import ReaderGone, say


class _ResultsConsole(Console):
    """stdout for results: a reader that goes away ends the command quietly (ReaderGone)."""

    def on_broken_pipe(self) -> None:  # Rich's hook (13.8+); its default exits with 1
        self.quiet = True
        raise ReaderGone


def stdout_console() -> Console:
    """Results: styled only on a terminal; no escape codes at all when piped or with NO_COLOR."""
    if os.environ.get("NO_COLOR"):
        return _ResultsConsole(highlight=False, soft_wrap=False, color_system=None)
    return _ResultsConsole(highlight=False, soft_wrap=False)


def note(message: str, *, once: bool = False) -> None:
    """A one-line remark for the user, on stderr (wrapped on a terminal; over several ranks,
    from rank 0 alone);
    `once`: not again if this command has said it."""
    noted = session.current().noted
    if once and message in noted:
        return
    noted.add(message)
    if session.current().speaks():
        say(f"mlpcli: note: {message}")


@contextlib.contextmanager
def to_stdout() -> Iterator[None]:
    """Around writing results: a reader that went away becomes ReaderGone (exit 0, quietly)."""
    try:
        yield
    except BrokenPipeError:
        raise ReaderGone from None
