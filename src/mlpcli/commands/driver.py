"""The one driver of the commands that build a network (`run`, `bench`, `compare`, `export`,
`draw`), in the manner of pip's base command: each command is a `Command` that supplies only
what is its own; `drive` calls it in one order for all of them.

1. Parse: config paths and KEY=VALUE overrides.
2. Plan: every config read and checked (a sweep's runs too).
3. Pre-flight, before torch is imported: the outputs and the command's own checks, what a run
   over ranks cannot do (and a note where ranks would not share the work), memory; then what
   the loader assumed, so that a refusal is the only line after the ranks' notes.
4. Dispatch: the launcher (`--nproc`), this rank's part in its process group (under a
   launcher), or this process.
5. Emit the results; 6. check them (`--expect`, a comparison's tolerance): exit 1 on a miss.

The JUnit report (`--junit-xml`) is written however the command ends (`common.reported`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from mlpcli.commands import world as worlds
from mlpcli.commands.common import (
    Job,
    Report,
    load,
    named_files,
    note_assumptions,
    reported,
    split,
    split_one,
)
from mlpcli.engine import host
from mlpcli.model.config import Config, Parallel
from mlpcli.ranks import launch, process

if TYPE_CHECKING:
    from mlpcli.ranks.group import Group

R = TypeVar("R")


@dataclass(frozen=True)
class World:
    """The ranks a command runs over: how many, whether this process starts them, and whether
    it runs over ranks at all (started here, or by a launcher; even one)."""

    size: int
    nproc: int | None = None  # --nproc N: this process launches N ranks
    over_ranks: bool = False

    @classmethod
    def of(cls, nproc: int | None) -> World:
        """The world of a command that may run over ranks."""
        return cls(worlds.size(nproc), nproc, nproc is not None or process.current() is not None)


class Command(Generic[R]):
    """One command, as the driver calls it; each method has the common behaviour a command
    may replace with its own."""

    name = ""  # as typed: "run"
    several = False  # takes several CONFIGs
    shared = False  # may run over ranks (--nproc, torchrun)

    def __init__(
        self, arguments: Sequence[str] | None, nproc: int | None = None, junit: Path | None = None
    ) -> None:
        self.arguments = list(arguments or [])
        self.nproc, self.junit = nproc, junit
        self.paths: list[Path | None] = []  # the config files given (None: the built-in one)

    def case(self) -> str:
        """The JUnit class of the case that stands for the whole command."""
        return f"mlpcli {self.name}"

    def computes(self) -> bool:
        """Whether the command runs the network (and so settles `device: auto`, with torch)."""
        return True

    def pipes(self, world: World) -> bool:
        """Whether standard input (`inputs: -`) streams, read once as it comes, for what was
        asked (`features.piped`); else it is copied to a temporary file first."""
        return False

    def plan(
        self, paths: Sequence[Path | None], overrides: Sequence[str], world: World
    ) -> list[Job]:
        """Every config to run, read and checked (one a path)."""
        return [(load(path, overrides), tuple(overrides)) for path in paths]

    def preflight(self, jobs: Sequence[Job], world: World, report: Report) -> None:
        """The command's outputs (and the report's), and its own checks."""

    def check_ranks(self, jobs: Sequence[Job], world: World) -> None:
        """What a run over `world` cannot do (a command that may run over ranks)."""
        worlds.check([config for config, _ in jobs], world.size, self.name)

    def fits(self, jobs: Sequence[Job], world: World) -> None:
        """UnavailableError before any work where a network this process runs whole cannot fit
        the host (a shared one is planned by `shapes --nproc`)."""
        for config, _ in jobs:
            if world.size == 1 or config.parallel is Parallel.NONE:
                on_cpu = config.device.type == "cpu"
                host.check_host(config, on_cpu=on_cpu, streamed=self.streams(config))

    def streams(self, config: Config) -> bool:
        """Whether the command's memory is a streamed run's (features from a file read a chunk
        at a time, activations of a chunk) rather than a pass that holds every row."""
        return False

    def notes(self, jobs: Sequence[Job]) -> None:
        """What the loader assumed, said once every check has passed."""
        note_assumptions(*(config for config, _ in jobs))

    def here(self, jobs: Sequence[Job]) -> Sequence[R]:
        """The results, computed in this process."""
        raise NotImplementedError

    def in_group(self, jobs: Sequence[Job], group: Group) -> Sequence[R] | None:
        """This rank's part of the results' work: the results on rank 0, None on the others."""
        raise NotImplementedError

    def emit(self, results: Sequence[R]) -> None:
        """The results, shown and written."""

    def check(self, results: Sequence[R], report: Report) -> None:
        """CheckFailedError where a result misses what it was checked against."""


def drive(command: Command[R]) -> None:
    """Run `command` through every stage, in order (the module's docstring)."""
    if command.several:
        paths, overrides = split(command.arguments)
    else:
        path, overrides = split_one(command.arguments, command.name)
        paths = [path]
    command.paths = paths
    named = " ".join(command.arguments) or "the built-in config"
    inputs = named_files(paths, overrides)
    with reported(command.junit, f"mlpcli {command.name}", command.case(), named, inputs) as report:
        world = World.of(command.nproc) if command.shared else World(1)
        worlds.refuse_stdin(overrides, world.size)
        with _piping(command.pipes(world)):
            jobs = command.plan(paths, overrides, world)
            command.preflight(jobs, world, report)
            if command.shared:
                command.check_ranks(jobs, world)
            command.fits(jobs, world)
            command.notes(jobs)
            results = _dispatched(command, jobs, world)
            if results is not None:
                command.emit(results)
                command.check(results, report)


def _piping(pipes: bool) -> contextlib.AbstractContextManager[None]:
    """Standard input read as it comes, where the command `pipes` it."""
    if not pipes:
        return contextlib.nullcontext()
    from mlpcli.data import features

    return features.piped()


def _dispatched(command: Command[R], jobs: Sequence[Job], world: World) -> Sequence[R] | None:
    """The results where this process reports them: computed here, or by this rank's group
    (rank 0's); None where the launcher or another rank reports them."""
    if world.nproc is not None:
        launch.launch(world.nproc)
        return None
    jobs = _settled(jobs) if command.computes() else jobs
    if not world.over_ranks:
        return command.here(jobs)
    from mlpcli.ranks import group  # torch: only once the input is valid

    return command.in_group(jobs, group.joined([config for config, _ in jobs]))


def _settled(jobs: Sequence[Job]) -> Sequence[Job]:
    """The jobs with `device: auto` settled on this machine's device (`devices.settled`);
    torch is imported only where one says `auto`."""
    if all(config.device.type != "auto" for config, _ in jobs):
        return jobs
    from mlpcli.engine import devices

    return [(devices.settled(config), overrides) for config, overrides in jobs]
