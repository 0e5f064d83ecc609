"""Plain result objects passed from the computing modules to `render`: no torch here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from mlpcli.config import Config


class Matrix(Protocol):
    """A 2-D array on the CPU (a torch tensor at run time): sliceable, convertible to lists."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, index: Any) -> Matrix: ...

    def tolist(self) -> Any: ...


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
    output: Matrix  # (batch, n_out), on the CPU, in the config's dtype
    nonfinite: int  # count of NaN and infinite values in output
    build_ms: float
    forward_ms: float
