"""Ctrl-C and SIGTERM end any command within a second: one line, exit 130 or 143, no temporary.

Python runs a signal handler only between bytecodes of the main thread, so a long matrix
product in torch would hold a Ctrl-C until it returns (minutes, for a big bfloat16 network on
the CPU). `watch` blocks SIGINT and SIGTERM in every thread and waits for them in a thread of
its own: it raises the interrupt in the main thread, which ends the command the usual way
(cleaning up, one line); if the main thread does not answer within GRACE_S (it is inside a long
C call), the watcher removes the temporary file being written, prints the line and ends the
process itself. The mask is inherited by child processes: a command that starts one must unmask
these signals in it.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from mlpcli.errors import ExitCode

GRACE_S = 0.5
SIGNALS = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}
MESSAGES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}

_watching = False  # only the console script watches; in-process callers (tests) do not
_claimed = threading.Lock()  # whoever takes it prints the one line
_state = threading.Lock()
_temporary: Path | None = None  # the file a write has made and not yet renamed
_held = 0  # > 0 while a finished write is being put in place: an interrupt then waits
_pending: signal.Signals | None = None


class Terminated(BaseException):
    """SIGTERM in the main thread; a BaseException so that only the top level handles it."""


def watch() -> None:
    """Route SIGINT and SIGTERM through the watcher thread (the console script's entry only)."""
    global _watching
    _watching = True
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.pthread_sigmask(signal.SIG_BLOCK, set(SIGNALS))
    threading.Thread(target=_watcher, name="mlpcli-signals", daemon=True).start()


def claim() -> bool:
    """Whether the caller is first to report the interrupt (and so prints the line)."""
    return not _watching or _claimed.acquire(blocking=False)


@contextlib.contextmanager
def writing(temporary: Path) -> Iterator[None]:
    """While `temporary` is being written: the watcher removes it if it must end the process."""
    global _temporary
    _temporary = temporary
    try:
        yield
    finally:
        _temporary = None


@contextlib.contextmanager
def held() -> Iterator[None]:
    """A step that must not be cut in two (putting a finished file in place): an interrupt that
    arrives meanwhile is raised as the step ends."""
    global _held, _pending
    with _state:
        _held += 1
    try:
        yield
    finally:
        with _state:
            _held -= 1
            signum, _pending = (_pending, None) if not _held else (None, _pending)
        if signum is not None:
            _interrupt(signum)


def _watcher() -> None:
    global _pending
    while True:
        signum = signal.Signals(signal.sigwait(set(SIGNALS)))
        with _state:
            if _held:
                _pending = signum
                continue
        _interrupt(signum)


def _interrupt(signum: signal.Signals) -> None:
    """Raise the signal's exception in the main thread, and end the process if it is stuck."""
    _thread.interrupt_main(signum)
    threading.Thread(target=_end_when_stuck, args=(signum,), daemon=True).start()


def _end_when_stuck(signum: signal.Signals) -> None:
    """End the process if the main thread has not taken the interrupt within GRACE_S."""
    threading.Event().wait(GRACE_S)
    if not claim():
        return  # the main thread took it and is reporting it
    temporary = _temporary
    if temporary is not None:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    os.write(2, f"mlpcli: error: {MESSAGES[signum]}\n".encode())
    os._exit(SIGNALS[signum])


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated
