"""Plain result objects passed from the computing modules to `render`; no torch here."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlpcli.closeness import Difference, Tolerance
from mlpcli.config import Config

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as it was built: name, shape, dtype and device."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    device: str


@dataclass(frozen=True)
class RunResult:
    """One network's run: what was built, where, the output and how long it took."""

    config: Config
    device: str
    tensors: tuple[TensorInfo, ...]
    output: np.ndarray[Any, Any]  # (batch, n_out) on the CPU; bfloat16 as float32
    nonfinite: int  # count of NaN and infinite values in output
    build_ms: float
    forward_ms: float
    overrides: tuple[str, ...] = ()  # the KEY=VALUE arguments this run was given


@dataclass(frozen=True)
class BenchResult:
    """`mlpcli bench`: the build time, and each timed forward pass."""

    config: Config
    device: str
    build_ms: float  # drawing the weights, casting them and moving them to the device
    forward_ms: tuple[float, ...]
    peak_bytes: int | None  # GPU memory the passes allocated beyond the network; None on the CPU
    cuda_graph: bool = False  # each pass a replay of one captured CUDA graph

    @property
    def median_ms(self) -> float:
        """The median forward time."""
        return statistics.median(self.forward_ms)


@dataclass(frozen=True)
class Gpu:
    """One CUDA device as torch sees it."""

    index: int
    name: str
    memory_bytes: int
    capability: str


@dataclass(frozen=True)
class Environment:
    """`mlpcli env`: versions and threads (`facts`), and the GPUs."""

    facts: dict[str, str | int | None]
    gpus: tuple[Gpu, ...]


@dataclass(frozen=True)
class TensorDiff:
    """One tensor on `device` against the same tensor on the reference device."""

    name: str
    shape: tuple[int, ...]
    device: str
    difference: Difference


@dataclass(frozen=True)
class CompareReport:
    """`mlpcli compare`: one config on several devices, the first being the reference."""

    config: Config
    devices: tuple[str, ...]
    tolerance: Tolerance
    diffs: tuple[TensorDiff, ...]

    @property
    def within(self) -> bool:
        """Whether every tensor on every device is within tolerance of the reference."""
        return all(diff.difference.within for diff in self.diffs)
