"""`--nproc N`: this command started again as N local ranks, as torchrun starts them (its
environment, each rank a fresh `python -m mlpcli` in a session of its own), and how their ends
become one exit code. The ranks start before the launcher imports torch: it binds the store's
socket first, starts them, then serves the run's store on that socket while they import torch
themselves. docs/distributed.md is the guide.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence

from mlpcli import interrupts, session
from mlpcli.errors import ExitCode, RanksEnded, UnavailableError, first_line
from mlpcli.ranks import store
from mlpcli.ranks.process import FINISHED, LAUNCHER, PRECHECKED, REPORTS, WRITTEN

MAX_PROCESSES = 1024
POLL_S = 0.1  # how often the launcher looks at its ranks and for a signal
GRACE_S = 5.0  # how long ranks told to end may take before they are killed
NPROC_HELP = (
    "Run over N local processes (ranks), started as torchrun starts them; "
    "`parallel` says how they share the work."
)
Ranks = list[subprocess.Popen[bytes]]


def launch(nproc: int) -> None:
    """Start this command again as `nproc` local ranks and wait for them; RanksEnded unless
    every rank succeeded, or rank 0 did (its result stands, whatever the others do after).
    Ctrl-C, SIGTERM and SIGHUP are passed to every rank; when one rank fails, the others are
    ended."""
    threads = max(1, (os.cpu_count() or 1) // nproc)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # as torchrun does, per core share
    shared = {PRECHECKED: "1", LAUNCHER: str(os.getpid())}
    ranks: Ranks = []
    signalled: list[signal.Signals] = []  # what reached the launcher, in order
    broken: list[str] = []  # why the store could not be served
    try:
        with interrupts.handed_over():
            for signum in interrupts.SIGNALS:
                if signum in interrupts.watched():  # not one it was started ignoring
                    signal.signal(signum, lambda n, _: signalled.append(signal.Signals(n)))
            listening = socket.create_server(("127.0.0.1", 0))
            told = _Told()  # what rank 0 tells on its pipe: nothing on disk to leave behind
            try:
                _start(ranks, nproc, {**shared, **_environment(nproc, listening)}, told.pipe)
            finally:
                told.handed_on()
            serving = threading.Thread(target=_serve, args=(listening, broken), daemon=True)
            serving.start()  # torch's import, while the ranks import it too
            failed = _failed(ranks, signalled, broken)
        if failed is None:  # passed on to every rank, which end without a word
            first = signalled[0]
            ended = RanksEnded(interrupts.SIGNALS[first], interrupts.MESSAGES[first])
            raise _with_written(ended, told.written())
        if not failed:
            interrupts.hold()  # every rank succeeded: a signal now changes nothing
        elif FINISHED not in told.records():  # rank 0 reported the result: a rank ending
            raise _with_written(_ended(failed), told.written())  # after counts not
    finally:
        _end(ranks, signal.SIGKILL, [])  # none is left running, whatever ended the launcher


class _Told:
    """What rank 0 tells the launcher on a pipe (`process.tell_the_launcher`): records that
    each end with a NUL, read as they come, so that rank 0 never waits on a full pipe. Nothing
    on disk: a launcher killed leaves nothing behind."""

    def __init__(self) -> None:
        reading, self.pipe = os.pipe()  # the writing end, for rank 0
        self._heard = bytearray()
        self._reading = threading.Thread(
            target=self._listen, args=(reading,), name="mlpcli-told", daemon=True
        )
        self._reading.start()

    def _listen(self, reading: int) -> None:
        with open(reading, "rb", buffering=0) as pipe:
            while data := pipe.read(1 << 16):
                self._heard += data

    def handed_on(self) -> None:
        """Rank 0 holds the writing end (or none does): the launcher's copy goes, so that the
        pipe ends when rank 0 does."""
        os.close(self.pipe)

    def records(self) -> list[bytes]:
        """Every record rank 0 told, once every rank has ended (its end of the pipe closed;
        waited for GRACE_S at most, once)."""
        if self._reading.is_alive():
            self._reading.join(GRACE_S)
        return bytes(self._heard).split(b"\0")[:-1]

    def written(self) -> list[str]:
        """The outputs rank 0 told were in place in full, in order."""
        records = self.records()
        return [os.fsdecode(r.removeprefix(WRITTEN)) for r in records if r.startswith(WRITTEN)]


def _environment(nproc: int, listening: socket.socket) -> dict[str, str]:
    """What torchrun tells every rank (`RANK` and `LOCAL_RANK` apart): the store on the
    launcher's socket, there from the start."""
    return {
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(listening.getsockname()[1]),
        "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc), "GROUP_RANK": "0",
        "GROUP_WORLD_SIZE": "1", "ROLE_RANK": "0", "ROLE_WORLD_SIZE": str(nproc),
        "ROLE_NAME": "default", "TORCHELASTIC_RUN_ID": f"mlpcli-{uuid.uuid4()}",
        "TORCHELASTIC_RESTART_COUNT": "0", "TORCHELASTIC_MAX_RESTARTS": "0",
        "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
    }  # fmt: skip


def _start(ranks: Ranks, nproc: int, shared: dict[str, str], pipe: int) -> None:
    """Start the ranks into `ranks`, each in a session of its own (a terminal's Ctrl-C reaches
    the launcher, which passes it on), with SIGINT, SIGTERM and SIGHUP blocked: one passed on
    while a rank's Python is still starting waits for its watcher (`interrupts.watch`), which
    ends it without a word, instead of breaking the start with a traceback. Rank 0 alone holds
    `pipe`, the writing end of what it tells the launcher."""
    arguments = [sys.executable, "-m", "mlpcli", *_without_nproc(session.current().arguments)]
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, interrupts.SIGNALS)
    try:
        for rank in range(nproc):
            environment = {**os.environ, **shared, "RANK": str(rank), "LOCAL_RANK": str(rank)}
            told = {REPORTS: str(pipe)} if rank == 0 else {}
            ranks.append(
                subprocess.Popen(
                    arguments,
                    env={**environment, **told},
                    start_new_session=True,
                    pass_fds=(pipe,) if rank == 0 else (),
                )
            )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)  # the launcher's, pending ones now


def _serve(listening: socket.socket, broken: list[str]) -> None:
    """The run's store on the launcher's socket, or why not, in `broken`."""
    try:
        store.serve(listening)
    except (RuntimeError, ValueError, OSError) as error:
        broken.append(first_line(error))


def _failed(
    ranks: Ranks, signalled: list[signal.Signals], broken: list[str]
) -> dict[int, int] | None:
    """Wait for every rank: none failed ({}), or once one fails the others ended and the exit
    code of each that did not succeed (negative: the signal that ended it; a rank killed past
    the grace is left out), or None once a signal came, passed on to every rank."""
    while not signalled:
        if broken:
            _end(ranks, signal.SIGTERM, signalled)
            raise UnavailableError(f"--nproc could not serve the ranks' store: {broken[0]}")
        codes = [rank.poll() for rank in ranks]
        if all(code == 0 for code in codes):
            return {}
        if any(code not in (None, 0) for code in codes):
            killed = _end(ranks, signal.SIGTERM, signalled)
            codes = [rank.wait() for rank in ranks]
            return {r: code for r, code in enumerate(codes) if code and r not in killed}
        time.sleep(POLL_S)
    _end(ranks, signalled[0], signalled)
    return None


def _end(ranks: Ranks, signum: int, signalled: list[signal.Signals]) -> set[int]:
    """Send `signum` to every rank still running (its process group, as torch's launcher did)
    and wait for them; those still running after GRACE_S (stopped, or stuck), or once another
    signal comes, are killed: their ranks."""
    for rank in ranks:
        _signal(rank, signum)
    deadline = time.monotonic() + GRACE_S
    heard = len(signalled)
    while any(rank.poll() is None for rank in ranks) and time.monotonic() < deadline:
        if len(signalled) > heard:  # a second Ctrl-C: at once
            break
        time.sleep(POLL_S / 4)
    killed = set()
    for r, rank in enumerate(ranks):
        if rank.poll() is None:
            _signal(rank, signal.SIGKILL)
            killed.add(r)
        rank.wait()
    return killed


def _signal(rank: subprocess.Popen[bytes], signum: int) -> None:
    """`signum` to a rank's process group, if it is still running."""
    if rank.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it ended just now
            os.killpg(rank.pid, signum)


def _with_written(ended: RanksEnded, written: list[str]) -> RanksEnded:
    """`ended`, its line naming the outputs rank 0 had put in place in full before the end."""
    if not written:
        return ended
    paths = ", ".join(written)
    return RanksEnded(int(ended.exit_code), f"{ended.message}; {paths} was written in full before")


def _ended(codes: dict[int, int]) -> RanksEnded:
    """Why the ranks ended, from their exit codes: ranks that said why give the code (the first
    one's); else a rank killed by a signal is named (exit 3)."""
    ended_by_launcher = {ExitCode.TERMINATED, -signal.SIGTERM}
    signalled = {interrupts.SIGNALS[signum]: line for signum, line in interrupts.MESSAGES.items()}
    spoke = {r: code for r, code in codes.items() if code > 0 and code != ExitCode.TERMINATED}
    if spoke:
        code = spoke[min(spoke)]  # a rank interrupted by itself says nothing: this says it
        return RanksEnded(code, signalled.get(ExitCode(code)) if code in set(ExitCode) else None)
    died = {r: code for r, code in codes.items() if code < 0 and code not in ended_by_launcher}
    if died:
        rank = min(died)
        name = signal.Signals(-died[rank]).name if -died[rank] in signal.valid_signals() else ""
        return RanksEnded(
            ExitCode.UNAVAILABLE,
            f"rank {rank} died ({name or f'exit {died[rank]}'}); the other ranks were ended",
        )
    return RanksEnded(ExitCode.TERMINATED, "terminated")


def _without_nproc(arguments: Sequence[str]) -> list[str]:
    """The arguments less `--nproc N` (or `--nproc=N`)."""
    kept: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--nproc":
            skip = True
        elif not argument.startswith("--nproc="):
            kept.append(argument)
    return kept
