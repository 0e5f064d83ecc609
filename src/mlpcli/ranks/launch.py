"""Runs over several processes, torch-free: which rank this process is (torchrun's environment),
how its errors are voiced, and `--nproc N`, which starts N local ranks through PyTorch's own
launcher (the engine of torchrun). docs/distributed.md is the guide.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol

from mlpcli import interrupts
from mlpcli.errors import ExitCode, RanksEnded, UsageError

MAX_PROCESSES = 1024
PRECHECKED = "MLPCLI_PRECHECKED"  # set for the ranks that --nproc starts
LAUNCHER = "MLPCLI_LAUNCHER"  # the pid of the mlpcli that started them
NPROC_HELP = (
    "Run over N local processes (ranks), started by PyTorch's launcher as torchrun does; "
    "`parallel` says how they share the work."
)


@dataclass(frozen=True)
class Rank:
    """This process's place in a run over several processes."""

    rank: int
    world_size: int
    local_rank: int


class Voice(Protocol):
    """How a process group ends a command on every rank together (`group.Group`)."""

    def report(self, lines: Sequence[str], code: int, write: Callable[[str], None]) -> int:
        """Say `lines` (by `write`) once for all ranks, and end them all with `code`."""

    def finish(self) -> int:
        """Wait for every rank to finish too; returns the exit code, 0."""


_arguments: list[str] = []  # this command's arguments, for --nproc to start it again
_voice: Voice | None = None  # set while this process is in a process group


def current() -> Rank | None:
    """This process's rank when a launcher (torchrun, --nproc) started it; else None."""
    environment = os.environ
    if "RANK" not in environment or "WORLD_SIZE" not in environment:
        return None
    try:
        rank, world = int(environment["RANK"]), int(environment["WORLD_SIZE"])
        local = int(environment.get("LOCAL_RANK", rank))
    except ValueError:
        raise UsageError(
            f"RANK={environment['RANK']} WORLD_SIZE={environment['WORLD_SIZE']}: the launcher's "
            "environment needs whole numbers"
        ) from None
    if not 0 <= rank < world:
        raise UsageError(f"RANK={rank} is not a rank of WORLD_SIZE={world}")
    if "MASTER_ADDR" not in environment or "MASTER_PORT" not in environment:
        raise UsageError(
            "RANK and WORLD_SIZE are set but MASTER_ADDR and MASTER_PORT are not: start the ranks "
            "with torchrun or --nproc, or unset RANK and WORLD_SIZE"
        )
    return Rank(rank, world, local)


def speaks() -> bool:
    """Whether this process is the one voice: rank 0, or not in a run over several processes."""
    rank = current()
    return rank is None or rank.rank == 0


def tie_to_launcher() -> None:
    """A rank that --nproc started ends with its launcher, however that ends (torch starts each
    rank in a session of its own, so a killed launcher would leave it running)."""
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


def remember(arguments: Sequence[str]) -> None:
    """Keep the command's arguments, for `--nproc` to start the same command on each rank."""
    _arguments[:] = arguments


def joined(voice: Voice | None) -> None:
    """Route the end of the command through `voice` (the process group's), or back."""
    global _voice
    _voice = voice


def report(lines: Sequence[str], code: int, write: Callable[[str], None]) -> int:
    """Voice an error once for every rank: through the process group once joined, else from
    rank 0 only (every rank meets the same config errors); returns the exit code."""
    if _voice is not None:
        return _voice.report(lines, code, write)
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
    from mlpcli.ranks import group  # torch: a launcher's rank has it, and this is the error path

    return group.first_to_say(rank.rank)


def leave(code: int) -> None:
    """End the process now if it is still in a process group (a failure): the group's threads
    cannot be torn down once another rank is gone, and C++ aborts the exit if they are not."""
    if _voice is not None:
        end_now(code)


def end_now(code: int) -> NoReturn:
    """End this process with `code` at once, its output flushed."""
    with contextlib.suppress(BaseException):
        interrupts.discard_temporary()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def finish() -> int:
    """A command's success: in a process group, once every rank has succeeded too."""
    return 0 if _voice is None else _voice.finish()


def launch(nproc: int) -> None:
    """Start this command again as `nproc` local ranks and wait for them; RanksEnded unless
    every rank succeeded. Ctrl-C and SIGTERM are passed to every rank."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logger = logging.getLogger("torch.distributed.elastic")  # its failure report is ours to give
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    threads = max(1, (os.cpu_count() or 1) // nproc)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # as torchrun does, per core share
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # c10d's socket warnings: ours to say
    os.environ[PRECHECKED] = "1"
    os.environ[LAUNCHER] = str(os.getpid())
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"mlpcli-{uuid.uuid4()}",
        rdzv_backend="c10d",  # torchrun --standalone: a store on a free local port
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
    )
    arguments = _without_nproc(_arguments)
    try:
        with interrupts.handed_over():
            elastic_launch(config, sys.executable)("-m", "mlpcli", *arguments)
    except ChildFailedError as error:
        codes = {rank: failure.exitcode for rank, failure in error.failures.items()}
        raise _ended(codes) from None
    except SignalException as error:  # passed on to every rank, which end without a word
        if error.sigval == signal.SIGINT:
            raise RanksEnded(ExitCode.INTERRUPTED, "interrupted") from None
        raise RanksEnded(ExitCode.TERMINATED, "terminated") from None


def _ended(codes: dict[int, int]) -> RanksEnded:
    """Why the ranks ended, from their exit codes: ranks that said why give the code (the first
    one's); else a rank killed by a signal is named (exit 3)."""
    ended_by_launcher = {ExitCode.TERMINATED, -signal.SIGTERM}
    signalled = {ExitCode.INTERRUPTED: "interrupted", ExitCode.TERMINATED: "terminated"}
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
