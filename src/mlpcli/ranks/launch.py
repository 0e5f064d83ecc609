"""`--nproc N`: this command started again as N local ranks through PyTorch's own launcher
(the engine of torchrun), and how their ends become one exit code. docs/distributed.md is the
guide.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Sequence
from typing import Any

from mlpcli import interrupts, session
from mlpcli.errors import ExitCode, RanksEnded
from mlpcli.ranks.process import FINISHED, LAUNCHER, PRECHECKED, WRITTEN

MAX_PROCESSES = 1024
NPROC_HELP = (
    "Run over N local processes (ranks), started by PyTorch's launcher as torchrun does; "
    "`parallel` says how they share the work."
)


def launch(nproc: int) -> None:
    """Start this command again as `nproc` local ranks and wait for them; RanksEnded unless
    every rank succeeded, or rank 0 did (its result stands, whatever the others do after).
    Ctrl-C, SIGTERM and SIGHUP are passed to every rank."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logger = logging.getLogger("torch.distributed.elastic")  # its failure report is ours to give
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    threads = max(1, (os.cpu_count() or 1) // nproc)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # as torchrun does, per core share
    os.environ[PRECHECKED] = "1"
    os.environ[LAUNCHER] = str(os.getpid())
    logs = tempfile.mkdtemp(prefix="mlpcli-ranks-")
    finished = os.path.join(logs, "finished")
    os.environ[FINISHED] = finished
    written = os.path.join(logs, "written")
    os.environ[WRITTEN] = written
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"mlpcli-{uuid.uuid4()}",
        rdzv_backend="c10d",  # torchrun --standalone: a store on a free local port
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        logs_specs=DefaultLogsSpecs(log_dir=logs),  # its folders, removed with it below
        **_signals_handled(LaunchConfig),
    )
    arguments = _without_nproc(session.current().arguments)
    try:
        with interrupts.handed_over():
            elastic_launch(config, sys.executable)("-m", "mlpcli", *arguments)
        interrupts.hold()  # every rank succeeded: a signal now changes nothing
    except ChildFailedError as error:
        if os.path.exists(finished):  # rank 0 reported the result: a rank ending after counts not
            return
        codes = {rank: failure.exitcode for rank, failure in error.failures.items()}
        raise _with_written(_ended(codes), written) from None
    except SignalException as error:  # passed on to every rank, which end without a word
        signum = signal.Signals(error.sigval)
        if signum not in interrupts.SIGNALS:
            signum = signal.SIGTERM
        ended = RanksEnded(interrupts.SIGNALS[signum], interrupts.MESSAGES[signum])
        raise _with_written(ended, written) from None
    finally:
        shutil.rmtree(logs, ignore_errors=True)  # its folders, and the file rank 0 made


def _signals_handled(launch_config: type) -> dict[str, Any]:
    """The signals torch's launcher takes over while it runs: not one this process was started
    ignoring (nohup's SIGHUP), which stays ignored in it and in the ranks. A torch whose
    `launch_config` has no such setting takes all four."""
    watched = interrupts.watched()
    handled = [s.name for s in (*interrupts.SIGNALS, signal.SIGQUIT) if s in watched]
    settable = "signals_to_handle" in {f.name for f in dataclasses.fields(launch_config)}
    return {"signals_to_handle": ",".join(handled)} if settable and handled else {}


def _with_written(ended: RanksEnded, written: str) -> RanksEnded:
    """`ended`, its line naming the outputs rank 0 had put in place in full before the end."""
    try:
        with open(written, encoding="utf-8") as file:
            paths = ", ".join(line.rstrip("\n") for line in file if line.strip())
    except OSError:
        return ended
    if not paths:
        return ended
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
