"""Which rank this process is (torchrun's environment), torch-free, and how a command's end is
voiced: once for all ranks, through the process group once it is joined. docs/distributed.md
is the guide.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from mlpcli import interrupts, session
from mlpcli.errors import ExitCode, UsageError
from mlpcli.session import Voice

PRECHECKED = "MLPCLI_PRECHECKED"  # set for the ranks that --nproc starts
LAUNCHER = "MLPCLI_LAUNCHER"  # the pid of the mlpcli that started them
REPORTS = "MLPCLI_REPORTS"  # rank 0 of --nproc: the pipe it tells its launcher on (a number)
FINISHED = b"finished"  # told once the command has succeeded
WRITTEN = b"written:"  # told before each output's path once that is in place


@dataclass(frozen=True)
class Rank:
    """This process's place in a run over several processes."""

    rank: int
    world_size: int
    local_rank: int


def _rank_zero(rank: int) -> bool:
    return rank == 0


_claims_voice: Callable[[int], bool] = _rank_zero  # who says an error before the group forms


def launched() -> bool:
    """Whether a launcher (torchrun, --nproc) started this process, whatever its world size."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def current() -> Rank | None:
    """This process's rank when a launcher (torchrun, --nproc) started it; None alone, and for a
    world of one rank (the single-process run: no store, no group). A launcher's environment
    that is not what torchrun sets is a UsageError naming the variable."""
    environment = os.environ
    if not launched():
        return None
    rank, world = _whole("RANK", 0), _whole("WORLD_SIZE", 1)
    local = _whole("LOCAL_RANK", 0) if "LOCAL_RANK" in environment else rank
    if not rank < world:
        raise UsageError(f"RANK={rank} is not a rank of WORLD_SIZE={world}")
    if world == 1:
        return None
    if "MASTER_ADDR" not in environment or "MASTER_PORT" not in environment:
        raise UsageError(
            "RANK and WORLD_SIZE are set but MASTER_ADDR and MASTER_PORT are not: start the ranks "
            "with torchrun or --nproc, or unset RANK and WORLD_SIZE"
        )
    _whole("MASTER_PORT", 1, 65535)
    address = environment["MASTER_ADDR"]
    if not address.strip() or any(character.isspace() for character in address):
        raise UsageError(f"MASTER_ADDR={address!r}: expected the host name or address of rank 0")
    return Rank(rank, world, local)


def _whole(variable: str, low: int, high: int = 1 << 20) -> int:
    """A launcher variable's whole number in [low, high]; a UsageError naming it otherwise."""
    text = os.environ[variable]
    value = int(text) if text.strip().isdecimal() and len(text) < 10 else -1
    if not low <= value <= high:
        raise UsageError(
            f"{variable}={text[:40]!r}: the launcher's environment needs a whole number "
            f"from {low} to {high}"
        )
    return value


def speaks() -> bool:
    """Whether this process is the one voice of its ranks (read as the command began)."""
    return session.current().speaks()


def begin(arguments: Sequence[str]) -> None:
    """A new session for the command `arguments`: who this process is, read once (rank 0, or
    not in a run over several processes, speaks; an environment that is not a launcher's is
    the error of whatever asks), and `--nproc`'s launcher told of each output in place."""
    begun = session.begin(arguments)
    try:
        rank = current()
    except UsageError as error:  # the environment itself is the error
        begun.unread = error
        rank = None
    begun.speaking = rank is None or rank.rank == 0
    begun.heard = _wrote


def tie_to_launcher() -> None:
    """A rank that --nproc started ends with its launcher, however that ends (each rank runs
    in a session of its own, so a killed launcher would leave it running)."""
    launcher = os.environ.get(LAUNCHER)
    if launcher is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    set_parent_death_signal = 1  # prctl's PR_SET_PDEATHSIG
    ctypes.CDLL(None).prctl(set_parent_death_signal, signal.SIGKILL)
    if str(os.getppid()) != launcher:  # it ended before the line above
        os._exit(ExitCode.TERMINATED)


def prechecked() -> bool:
    """Whether `--nproc` started this rank, having checked the command (and said its notes)."""
    return os.environ.get(PRECHECKED) == "1"


def claim_voice_by(claims: Callable[[int], bool]) -> None:
    """How a rank learns whether it is the first to report an error before its group forms
    (`store.first_to_say`); rank 0 until this is set."""
    global _claims_voice
    _claims_voice = claims


def speak_through(voice: Voice | None) -> None:
    """Route the end of the command through `voice` (the process group's), or back."""
    session.current().voice = voice


def end_with(lines: Sequence[str], code: int, write: Callable[[str], None]) -> int:
    """Voice an error once for every rank: through the process group once joined, else from
    rank 0 only (every rank meets the same config errors); returns the exit code."""
    if (voice := session.current().voice) is not None:
        return voice.end_with(lines, code, write)
    if lines and _first_to_say():
        for line in lines:
            write(line)
    return code


def _first_to_say() -> bool:
    """Whether this rank is the first of its ranks to report an error before they joined their
    group (all meet the same one): the launcher's store decides, so that the launcher ending
    the others cannot silence it; rank 0 where there is no store."""
    try:
        rank = current()
    except UsageError:  # the environment itself is the error
        return True
    if rank is None or rank.world_size == 1:
        return True
    return _claims_voice(rank.rank)


def leave(code: int) -> None:
    """End the process now if it is still in a process group (a failure): the group's threads
    cannot be torn down once another rank is gone, and C++ aborts the exit if they are not."""
    if session.current().voice is not None:
        end_now(code)


def _wrote(path: Path) -> None:
    """An output is in place: `--nproc`'s launcher, if it must end the run, says so."""
    tell_the_launcher(WRITTEN + os.fsencode(path))  # any name


def tell_the_launcher(record: bytes) -> None:
    """Tell `--nproc`'s launcher `record` (on rank 0, which alone holds the pipe; nothing where
    no launcher listens, or it has gone). Each record ends with a NUL, which no path holds."""
    pipe = os.environ.get(REPORTS)
    if pipe is None or os.environ.get("RANK") != "0":
        return
    data = memoryview(record + b"\0")
    with contextlib.suppress(OSError, ValueError):
        while data:
            data = data[os.write(int(pipe), data) :]


def end_now(code: int) -> NoReturn:
    """End this process with `code` at once, its output flushed."""
    with contextlib.suppress(BaseException):
        interrupts.discard_temporaries()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def finish() -> int:
    """A command's success: in a process group, once every rank has done its part (and rank 0
    has told the launcher that started it, `group.Group.finish`)."""
    voice = session.current().voice
    return 0 if voice is None else voice.finish()
