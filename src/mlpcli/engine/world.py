"""The ranks a network runs over, as the engine sees them: this process alone (`ALONE`, a world
of one) or its rank in a process group (`ranks.group.Group`, which has every method here).
The engine runs one network the same way over either; one process is a world of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import torch

from mlpcli.model.config import Config

T = TypeVar("T")


class World(Protocol):
    """This process's rank among the ranks of a run, and the collectives between them."""

    rank: int
    world_size: int
    comm_s: float  # seconds spent waiting on other ranks, since the last reset

    @property
    def distributed(self) -> bool:
        """Whether other ranks share the work."""

    def on_device(self, config: Config) -> Config:
        """`config` on this rank's device."""

    def backend(self, device: torch.device) -> str | None:
        """The backend that moves `device`'s tensors between ranks; None for a world of one."""

    def send(self, tensor: torch.Tensor, to: int) -> None: ...
    def recv(self, out: torch.Tensor, source: int) -> torch.Tensor: ...
    def flush(self) -> None: ...
    def all_reduce(self, tensor: torch.Tensor) -> None: ...
    def all_gather_columns(self, shard: torch.Tensor, columns: Sequence[range]) -> torch.Tensor: ...
    def barrier(self) -> None: ...
    def gather(self, value: T) -> list[T] | None: ...
    def complete(self) -> None: ...


class Alone:
    """This process alone: a world of one, whose collectives have no one to wait for."""

    rank, world_size, comm_s = 0, 1, 0.0
    distributed = False

    def on_device(self, config: Config) -> Config:
        return config

    def backend(self, device: torch.device) -> str | None:
        return None

    def send(self, tensor: torch.Tensor, to: int) -> None:
        raise AssertionError("a world of one sends nothing")

    def recv(self, out: torch.Tensor, source: int) -> torch.Tensor:
        raise AssertionError("a world of one receives nothing")

    def flush(self) -> None:
        pass

    def all_reduce(self, tensor: torch.Tensor) -> None:
        pass

    def all_gather_columns(self, shard: torch.Tensor, columns: Sequence[range]) -> torch.Tensor:
        return shard

    def barrier(self) -> None:
        pass

    def gather(self, value: T) -> list[T]:
        return [value]

    def complete(self) -> None:
        pass


ALONE = Alone()
