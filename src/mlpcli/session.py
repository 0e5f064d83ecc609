"""One invocation of mlpcli: its arguments, whether this process speaks for its ranks, the
notes it has said, the files it has put in place and, over several processes, its process
group's voice. `cli.run_app` begins a fresh one
for each command (the tests run many in one process), so nothing is reset by hand; the last
one stays readable after the command, for the line of a signal that ends it. Who speaks is
read as a command begins (`ranks.process.begin`); outside a command every process speaks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mlpcli.errors import MlpcliError


class Voice(Protocol):
    """How a process group ends a command on every rank together (`ranks.group.Group`)."""

    def end_with(self, lines: Sequence[str], code: int, write: Callable[[str], None]) -> int:
        """Say `lines` (by `write`) once for all ranks, and end them all with `code`."""

    def finish(self) -> int:
        """End the group once this rank's command has succeeded; returns the exit code, 0."""


@dataclass
class Session:
    """What one command has said, written and joined."""

    arguments: tuple[str, ...] = ()  # as typed, for --nproc to start the command on each rank
    speaking: bool = True  # this process prints for its ranks (rank 0, or alone), as it began
    unread: MlpcliError | None = None  # why the launcher's environment could not be read
    noted: set[str] = field(default_factory=set)  # the notes said `once`
    written: list[Path] = field(default_factory=list)  # outputs put in place, in order
    heard: Callable[[Path], None] | None = None  # told of each as it goes in place (--nproc's)
    voice: Voice | None = None  # the process group's, while this process is in one

    def speaks(self) -> bool:
        """Whether this process prints for its ranks; a launcher's environment that could not
        be read is the command's error here, as wherever it is read."""
        if self.unread is not None:
            raise self.unread
        return self.speaking

    def put_in_place(self, path: Path) -> None:
        """`path`, an output, is in place: written down, and told to who hears of them."""
        self.written.append(path)
        if self.heard is not None:
            self.heard(path)


_CURRENT: ContextVar[Session] = ContextVar("mlpcli_session")


def begin(arguments: Sequence[str]) -> Session:
    """A new session for the command `arguments`, current from now on."""
    session = Session(tuple(arguments))
    _CURRENT.set(session)
    return session


def current() -> Session:
    """The command's session (a new one where no command has begun, as in a library call)."""
    try:
        return _CURRENT.get()
    except LookupError:
        return begin(())
