"""Ctrl-C, SIGTERM and SIGHUP end any command within a second: one line, exit 130, 143 or 129,
no temporary. The other signals that end a process (SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM) still
end it as the signal does, but only once the temporary file being written is removed.

Python runs a signal handler only between bytecodes of the main thread, so a long matrix
product in torch would hold a Ctrl-C until it returns (minutes, for a big bfloat16 network on
the CPU). `watch` blocks SIGINT and SIGTERM in every thread and waits for them in a thread of
its own: it raises the interrupt in the main thread, which ends the command the usual way
(cleaning up, one line); if the main thread does not answer within GRACE_S (it is inside a long
C call), or a second signal comes, the watcher removes the temporary file being written, prints
the line and ends the process itself. The mask is inherited by child processes: a command that
starts one must unmask these signals in it (`handed_over`).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from mlpcli.errors import ExitCode

GRACE_S = 0.5
SIGNALS = {
    signal.SIGINT: ExitCode.INTERRUPTED,
    signal.SIGTERM: ExitCode.TERMINATED,
    signal.SIGHUP: ExitCode.HUNG_UP,
}
MESSAGES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}
# Signals whose default action ends the process: it still does, without leaving a temporary.
FATAL = (signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)
_RESTORE_TERMINAL = "\r\x1b[2K\x1b[?25h"  # clear a progress bar's line, show the cursor again

_watching = False  # only the console script watches; in-process callers (tests) do not
_watched: frozenset[signal.Signals] = frozenset()  # the signals it waits for
_claimed = threading.Lock()  # whoever takes it prints the one line
_state = threading.Lock()  # guards the three below
_temporaries: list[Path] = []  # the files writes have made and not yet renamed or handed on
_held = 0  # > 0 while a result is put in place (a rename; a complete run over ranks reported):
# the first signal then is dropped, a second one ends the process as usual
_signalled = False  # a signal has been raised in the main thread already
_dropped: signal.Signals | None = None  # a signal that came while held: a second one ends the
# process; a finished write (`held`) raises it once the file is in place


class Terminated(BaseException):
    """SIGTERM or SIGHUP in the main thread; a BaseException so that only the top level
    handles it."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signal.Signals(signum)


def watched() -> frozenset[signal.Signals]:
    """The signals the watcher waits for (none before `watch`)."""
    return _watched


def watch() -> None:
    """Route SIGINT, SIGTERM, SIGHUP and the FATAL signals through the watcher thread (the
    console script's entry only). A signal the process was started ignoring stays ignored:
    `nohup`'s SIGHUP, a background job's SIGINT and SIGQUIT."""
    global _watching, _watched
    _watching = True
    _watched = _not_ignored()
    signal.pthread_sigmask(signal.SIG_BLOCK, _watched)
    for signum in {signal.SIGTERM, signal.SIGHUP} & _watched:
        signal.signal(signum, _raise_terminated)
    threading.Thread(target=_watcher, name="mlpcli-signals", daemon=True).start()


def _not_ignored() -> frozenset[signal.Signals]:
    """SIGNALS and FATAL, but those this process ignores (as it was started)."""
    every = (*SIGNALS, *FATAL)
    return frozenset(signum for signum in every if signal.getsignal(signum) != signal.SIG_IGN)


def claim() -> bool:
    """Whether the caller is first to report the interrupt (and so prints the line)."""
    return not _watching or _claimed.acquire(blocking=False)


@contextlib.contextmanager
def writing(temporary: Path) -> Iterator[None]:
    """While `temporary` is being written (or waits to be appended to an output by rank 0):
    the watcher removes it if it must end the process."""
    with _state:
        _temporaries.append(temporary)
    try:
        yield
    finally:
        with _state:
            _temporaries.remove(temporary)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Putting a finished file in place (a rename: milliseconds): a signal meanwhile waits,
    for `raise_waiting` (or, past `hold`, is dropped)."""
    global _held
    with _state:
        _held += 1
    try:
        yield
    finally:
        with _state:
            _held -= 1


def raise_waiting() -> None:
    """The signal that came while a file was put in place, raised now that it is: the command
    ends with the signal's code, saying the file was written in full. Nothing while `hold`
    holds (the result is decided and reported whole)."""
    global _dropped, _signalled
    with _state:
        waiting = _dropped if not _held else None
        if waiting is not None:
            _dropped, _signalled = None, True
    if waiting == signal.SIGINT:
        raise KeyboardInterrupt
    if waiting is not None:
        raise Terminated(waiting)


def hold() -> None:
    """From here to the end of the process the first signal is dropped: the command's result is
    decided (every rank of a run over ranks has done its part) and it is reported whole; a
    second signal still ends the process."""
    global _held
    with _state:
        _held += 1


@contextlib.contextmanager
def handed_over() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP go to the main thread's own handlers instead of the watcher
    (`--nproc`'s launcher installs handlers that pass a signal on to every rank), and come back
    after; the FATAL signals stay with the watcher."""
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(SIGNALS))
    try:
        yield
    finally:
        if _watching:
            signal.pthread_sigmask(signal.SIG_BLOCK, _watched & set(SIGNALS))
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def voiced(signum: int) -> bool:
    """Whether this process says that `signum` ended it: always, alone; the ranks that
    `--nproc` starts never (mlpcli's launcher says it); under torchrun rank 0 says Ctrl-C, and
    no rank SIGTERM (the launcher sends that on a failure elsewhere, and reports it itself)."""
    if _passed_on():
        return False
    rank = os.environ.get("RANK")
    if rank is None or os.environ.get("WORLD_SIZE", "1") == "1":  # alone, or a world of one
        return True
    return signum == signal.SIGINT and rank == "0"


def _watcher() -> None:
    global _signalled, _dropped
    while True:
        signum = signal.Signals(signal.sigwait(_watched))
        if signum in FATAL:
            _end_as(signum)
        with _state:  # decided and raised under the lock: no write can start in between
            if _held and _dropped is None:  # the result is being put in place: this one waits
                _dropped = signum
                continue
            again, _signalled = _signalled or _held > 0, True
            if not again and not _passed_on():
                _thread.interrupt_main(signum)
        if _passed_on():  # a rank of --nproc: its launcher says why; nothing to wait for here
            _end(signum, line=False)
        if again:  # a second signal: the user means it
            _end(signum, line=claim())
        else:
            threading.Thread(target=_end_when_stuck, args=(signum,), daemon=True).start()


def _passed_on() -> bool:
    """Whether this process is a rank that `--nproc` started: the launcher passes the user's
    signal on and says the line, so the rank ends at once, its temporary removed."""
    return os.environ.get("MLPCLI_PRECHECKED") == "1"


def _end_when_stuck(signum: signal.Signals) -> None:
    """End the process if the main thread has not taken the interrupt within GRACE_S."""
    threading.Event().wait(GRACE_S)
    with _state:
        if _held:  # the command is putting a file in place, or its ranks are ending it
            return
    if claim():
        _end(signum, line=True)


def discard_temporaries() -> None:
    """Remove the temporary files being written, if any (the process is about to end)."""
    with _state:
        temporaries = list(_temporaries)
    for temporary in temporaries:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _end(signum: signal.Signals, *, line: bool) -> None:
    """Remove the temporary file, say so in one `line` (unless the main thread did) and exit."""
    discard_temporaries()
    if line and voiced(signum):
        prefix = _RESTORE_TERMINAL if sys.stderr.isatty() else ""
        os.write(2, f"{prefix}mlpcli: error: {MESSAGES[signum]}\n".encode())
    os._exit(SIGNALS[signum])


def _end_as(signum: signal.Signals) -> NoReturn:
    """End the process as `signum`'s default action does, its temporary file removed first
    (where a library installed a handler of its own, with 128 + N)."""
    discard_temporaries()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    signal.raise_signal(signum)  # the default action ends the process here
    os._exit(128 + signum)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)
