"""What `run`, `bench` and `compare` share over several ranks: how many there are, and what such
a run cannot do, refused (or noted) before any rank starts. docs/distributed.md is the guide."""

from __future__ import annotations

import os
from collections.abc import Sequence

from mlpcli.engine import host
from mlpcli.errors import UnavailableError, UsageError
from mlpcli.model import plan
from mlpcli.model.config import Config, Parallel
from mlpcli.model.units import byte_size
from mlpcli.ranks import process
from mlpcli.report import terminal

RANKS_PER_CORE = 2  # past this, ranks on the CPU mostly wait on each other
MIN_RANKS = 4  # allowed on any machine, however few its cores


def size(nproc: int | None) -> int:
    """The ranks this command runs over: --nproc's, the launcher's, or 1."""
    rank = process.current()
    if nproc is not None and process.launched():
        raise UsageError(
            "--nproc under a launcher (torchrun): the launcher started the ranks; leave it out"
        )
    return nproc or (rank.world_size if rank is not None else 1)


def refuse_stdin(overrides: Sequence[str], world: int) -> None:
    """`inputs=-` over several ranks, refused before standard input is read."""
    if world > 1 and "inputs=-" in overrides:
        raise _stdin("override 'inputs=-'")


def check(
    configs: Sequence[Config], world: int, command: str, *, stats: bool = False, keep: bool = False
) -> None:
    """What a run of `configs` over `world` ranks cannot do; a note where the ranks would not
    share the work (said once: not again by the ranks that --nproc starts)."""
    noted = process.prechecked()
    for config in configs:
        if world == 1:
            if config.parallel is not Parallel.NONE and not noted:
                terminal.note(
                    f"parallel: {config.parallel} ({config.where('parallel')}) on one process is "
                    "the single-process run; --nproc N or torchrun starts ranks"
                )
            continue
        _check_shared(config, world, command, stats=stats, keep=keep)
    cores = os.cpu_count() or 1
    on_cpu = any(host.settled(config).device.type == "cpu" for config in configs)
    if world > 1 and not process.launched():  # --nproc: this process starts them, here
        _fits_this_machine(world, cores, on_cpu)
    if world > cores and on_cpu and not noted:
        terminal.note(f"{world} ranks on {cores} CPU cores: each rank gets less than a core")
    lone = len(configs) == 1 and configs[0].parallel is Parallel.NONE
    if world > 1 and lone and not noted:
        others = "the other rank waits" if world == 2 else f"the other {world - 1} ranks wait"
        terminal.note(
            f"parallel: none ({configs[0].where('parallel')}) runs each network on one rank: with "
            f"one network {others} (parallel=data, pipeline or tensor shares it)"
        )


def _check_shared(config: Config, world: int, command: str, *, stats: bool, keep: bool) -> None:
    """What one network cannot do over `world` ranks: read stdin, run a command other than
    `run` on one rank, pipeline fewer layers than ranks, gather every tensor, or gather
    statistics of tensors split by layers or columns."""
    where = config.where("parallel")
    if config.inputs == "-":
        raise _stdin(str(config.where("inputs")))
    if config.parallel is Parallel.NONE and command != "run":
        raise UsageError(
            f"parallel: none ({where}) runs each network on one rank: name a mode for "
            f"{command} over ranks, such as parallel=tensor"
        )
    if config.parallel is Parallel.PIPELINE:
        plan.stages(config, world)  # enough layers for every rank
    split_tensors = config.parallel in (Parallel.PIPELINE, Parallel.TENSOR)
    if (stats and split_tensors) or (keep and config.parallel is not Parallel.NONE):
        what = "--stats" if stats and split_tensors else "--output .safetensors"
        other = "parallel=data or parallel=none" if what == "--stats" else "parallel=none"
        raise UsageError(
            f"{what} needs every tensor in one process; with parallel: {config.parallel} "
            f"({where}) leave it out, or use {other}"
        )


def _fits_this_machine(world: int, cores: int, on_cpu: bool) -> None:
    """--nproc N refused at once (exit 3) where N ranks cannot run here: on the CPU more than
    RANKS_PER_CORE a core (MIN_RANKS at least), or more than the available memory holds at
    host.RANK_BYTES a rank (before the network's own share)."""
    limits = []
    most = max(MIN_RANKS, RANKS_PER_CORE * cores)
    if on_cpu and world > most:
        limits.append(f"{most} ranks on its {cores} CPU cores ({RANKS_PER_CORE} a core)")
    available = host.available_ram()
    if available is not None and world * host.RANK_BYTES > available:
        most = available // host.RANK_BYTES
        limits.append(
            f"{most} ranks in its {byte_size(available)} of available memory "
            f"(about {byte_size(host.RANK_BYTES)} a rank)"
        )
    if limits:
        raise UnavailableError(f"--nproc {world}: this machine runs at most {' and '.join(limits)}")


def _stdin(where: str) -> UsageError:
    return UsageError(
        f"{where}: inputs: - (standard input) reaches one process; over several ranks give the "
        "features in a file"
    )
