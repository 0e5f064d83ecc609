"""Every result a command shows, typed, with its derived figures as properties; no torch here.

One naming rule: what a command returns is a `...Result`; its parts are named for what they
describe (`TensorInfo`, `LayerShape`, `TensorDiff`, `Gpu`). `records` and `render` lay these out
and compute nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlpcli.errors import Location
from mlpcli.model.config import Activation, Config

if TYPE_CHECKING:
    import numpy as np

    from mlpcli.model.closeness import Difference, Tolerance
    from mlpcli.model.plan import ParallelPlan

Shape = tuple[int, ...]

RUN_VERSION = 2  # `mlpcli.run/2`: non-finite values as "NaN" and "Infinity"; /1 wrote null


def unknown_run_schema(schema: object) -> str | None:
    """Why a `mlpcli.run/N` record cannot be read (a version newer than this mlpcli's), or None."""
    known = [f"mlpcli.run/{version}" for version in range(1, RUN_VERSION + 1)]
    if schema in known:
        return None
    return f"schema {str(schema)[:40]!r} is not one this mlpcli reads ({', '.join(known)})"


@dataclass(frozen=True)
class ParallelInfo:
    """How a run was shared over processes: its mode, how many ranks, the backend."""

    mode: str  # none | data | pipeline | tensor
    world_size: int
    backend: str | None  # gloo | nccl; None for one process


def one_process(config: Config) -> ParallelInfo:
    """A run on one process: its config's mode, a world of one, no backend."""
    return ParallelInfo(config.parallel.value, 1, None)


@dataclass(frozen=True)
class RankFigures:
    """One rank of `bench` over several processes."""

    rank: int
    device: str
    peak_bytes: int  # GPU memory the passes allocated beyond the network, or the process's RSS
    peak_is_rss: bool  # on the CPU: the process's peak resident memory, torch's own included
    comm_ms: float  # median per pass of the time spent waiting on other ranks
    weight_bytes: int  # the weights and biases this rank holds


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as it was built: name, shape, dtype and device."""

    name: str
    shape: Shape
    dtype: str
    device: str


@dataclass(frozen=True)
class TensorStats:
    """What a tensor's values look like over the whole batch (`run --stats`)."""

    name: str
    count: int  # finite values
    mean: float  # of the finite values; std is theirs too (population, as NumPy's default)
    std: float
    min: float
    max: float
    zeros: float  # fraction of all values
    saturated: float | None  # fraction near a bound (sigmoid, tanh) or of rows (softmax); None
    nan: int
    inf: int
    histogram: tuple[int, ...]  # counts in equal bins over histogram_range (ends clamped)
    histogram_range: tuple[float, float] | None

    @property
    def trouble(self) -> str | None:
        """`explode`, `saturate` or None: what these values say of the network."""
        if self.nan or self.inf or max(abs(self.min), abs(self.max)) > EXPLODED:
            return "explode"
        if self.saturated is not None and self.saturated > SATURATED:
            return "saturate"
        return None


EXPLODED = 1e4  # activations beyond this magnitude have exploded
SATURATED = 0.5  # more than this fraction saturated: the layer has saturated
VANISHED = 1e-3  # a standard deviation below this fraction of the features' has vanished


PREVIEW_ROWS = 5  # output rows a run keeps from each end when it does not hold them all


@dataclass(frozen=True)
class Preview:
    """The first and last PREVIEW_ROWS rows of an output, and its shape: what a table shows of
    a run that streamed its output instead of holding it."""

    shape: tuple[int, int]
    head: np.ndarray[Any, Any]
    tail: np.ndarray[Any, Any]

    def row(self, r: int) -> np.ndarray[Any, Any]:
        """Row `r`, one of the first or last PREVIEW_ROWS."""
        if r < len(self.head):
            return self.head[r]  # type: ignore[no-any-return]
        return self.tail[r - (self.shape[0] - len(self.tail))]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class RunResult:
    """`mlpcli run`, one network: what was built, where, the output and how long it took."""

    config: Config
    device: str
    tensors: tuple[TensorInfo, ...]
    preview: Preview
    # (batch, n_out) on the CPU, bfloat16 as float32; None where the run streamed it elsewhere
    output: np.ndarray[Any, Any] | None
    nonfinite: int  # count of NaN and infinite values in output
    build_ms: float
    forward_ms: float
    overrides: tuple[str, ...] = ()  # the KEY=VALUE arguments this run was given
    stats: tuple[TensorStats, ...] = ()  # features, h1.., output; with `run --stats` only
    # every tensor by name (torch tensors on the CPU, in the run's dtype), for a .safetensors file
    kept: Mapping[str, Any] = field(default_factory=dict)
    parallel: ParallelInfo | None = None  # over several ranks; None: one process
    sweep: bool = False  # one run of a sweep (`-m`): a sweep's runs show in one table

    @property
    def whole(self) -> np.ndarray[Any, Any]:
        """Every output row; only a run that held them has them (its command asked, before it
        ran, for an output that needs them)."""
        if self.output is None:
            raise AssertionError(f"{self.config.name}: the output was streamed, not held")
        return self.output

    @property
    def trouble(self) -> str | None:
        """One line on where the activations vanish, explode or saturate first; None if not."""
        if not self.stats:
            return None
        features, *layers = self.stats
        for stats in layers:
            found = stats.trouble
            spread = stats.count > 1 and features.count > 1 and features.std > 0
            if found is None and spread and stats.std < VANISHED * features.std:
                found = "vanish"
            if found is not None:
                return f"activations {found} from {stats.name} on ({_evidence(found, stats)})"
        return None


@dataclass(frozen=True)
class Estimate:
    """About how long a forward pass will take: `flops` at `rate` FLOP/s measured on `device`."""

    seconds: float
    rate: float
    flops: int
    device: str


@dataclass(frozen=True)
class Values:
    """A run's numbers for `draw --values`, of the units a picture draws: each drawn unit's
    value for the first row of features, and each connection's weight between drawn units."""

    units: Mapping[tuple[int, int], float]  # (column k, unit): features, h1.., output, row 0
    weights: Mapping[tuple[int, int, int], float]  # (k, i, j): Wk[i, j]


@dataclass(frozen=True)
class TensorShape:
    """A named tensor of the network and its shape."""

    name: str
    shape: Shape


@dataclass(frozen=True)
class LayerShape:
    """Weight layer `index` (1-based): `h(index) = activation(addmm(B, h(index-1), W))`."""

    index: int
    n_in: int
    n_out: int
    weight: Shape
    bias: Shape | None
    output: Shape
    activation: Activation
    params: int
    flops: int


@dataclass(frozen=True)
class ShapesResult:
    """`mlpcli shapes`: per-layer and total figures of one config, from arithmetic alone."""

    config: Config
    layers: tuple[LayerShape, ...]
    tensors: tuple[TensorShape, ...]
    plan: ParallelPlan | None = None  # with --nproc: each rank's share

    @property
    def total_params(self) -> int:
        """Weights and biases, counted."""
        return sum(layer.params for layer in self.layers)

    @property
    def total_flops(self) -> int:
        """FLOPs of one forward pass at the config's batch."""
        return sum(layer.flops for layer in self.layers)

    @property
    def param_bytes(self) -> int:
        """Weights and biases in the config's dtype."""
        return self.total_params * self.config.dtype.itemsize

    @property
    def largest_activation_bytes(self) -> int:
        """The largest of features, h1.., output at the config's batch."""
        return self.config.batch_size * max(self.config.layers) * self.config.dtype.itemsize


@dataclass(frozen=True)
class BenchResult:
    """`mlpcli bench`: the build time, and each timed forward pass."""

    config: Config
    device: str
    build_ms: float  # drawing the weights, casting them and moving them to the device
    forward_ms: tuple[float, ...]
    peak_bytes: int | None  # GPU memory the passes allocated beyond the network; None on the CPU
    flops: int  # of one forward pass, from the shapes
    threads: int  # torch's CPU threads during the passes
    cuda_graph: bool = False  # each pass a replay of one captured CUDA graph
    reads_features: bool = False  # each pass reads them from their file, timed with it
    parallel: ParallelInfo | None = None  # over several ranks; None: one process
    ranks: tuple[RankFigures, ...] = ()  # over several processes: each rank's figures
    overrides: tuple[str, ...] = ()  # the KEY=VALUE arguments this bench was given

    @property
    def median_ms(self) -> float:
        """The median forward time."""
        return statistics.median(self.forward_ms)

    @property
    def min_ms(self) -> float:
        """The fastest forward pass."""
        return min(self.forward_ms)

    @property
    def max_ms(self) -> float:
        """The slowest forward pass."""
        return max(self.forward_ms)

    @property
    def samples_per_s(self) -> float | None:
        """Rows of features per second at the median time; None when too fast to time."""
        return self.config.batch_size / (self.median_ms / 1e3) if self.median_ms else None

    @property
    def flops_per_s(self) -> float | None:
        """The shapes' FLOPs per second at the median time."""
        return self.flops / (self.median_ms / 1e3) if self.median_ms else None

    @property
    def tflops_per_s(self) -> float | None:
        """The shapes' FLOPs per second at the median time, in TFLOP/s."""
        return None if self.flops_per_s is None else self.flops_per_s / 1e12


@dataclass(frozen=True)
class TensorDiff:
    """One tensor on `device` against the same tensor on the reference device."""

    name: str
    shape: Shape
    device: str
    difference: Difference


@dataclass(frozen=True)
class CompareResult:
    """`mlpcli compare`: one config on several devices, the first being the reference."""

    config: Config
    devices: tuple[str, ...]
    tolerance: Tolerance
    diffs: tuple[TensorDiff, ...]

    @property
    def within(self) -> bool:
        """Whether every tensor on every device is within tolerance of the reference."""
        return all(diff.difference.within for diff in self.diffs)

    @property
    def beyond(self) -> tuple[TensorDiff, ...]:
        """The tensors beyond tolerance."""
        return tuple(diff for diff in self.diffs if not diff.difference.within)


@dataclass(frozen=True)
class ValidateResult:
    """`mlpcli validate`, one file: its config, or the error and where it is."""

    path: str
    config: Config | None
    error: str | None = None  # the message, without the location
    location: Location | None = None  # where the error is: a file's line and column, ...
    readable: bool = True  # False: the file could not be read at all (exit 2, not 1)
    checkable: bool = True  # False: this machine cannot check it, a package missing (exit 3)

    @property
    def ok(self) -> bool:
        """Whether the file holds a valid config."""
        return self.config is not None


@dataclass(frozen=True)
class Gpu:
    """One CUDA device as torch sees it."""

    index: int
    name: str
    memory_bytes: int
    capability: str


@dataclass(frozen=True)
class EnvResult:
    """`mlpcli env`: versions and threads (`facts`), and the GPUs."""

    facts: dict[str, str | int | None]
    gpus: tuple[Gpu, ...]


def _evidence(trouble: str, stats: TensorStats) -> str:
    if trouble == "saturate":
        return f"{stats.saturated:.0%} of its values saturated"
    if trouble == "vanish":
        return f"std {stats.std:.3g}"
    return f"min {stats.min:.3g}, max {stats.max:.3g}, {stats.nan} NaN, {stats.inf} infinite"


def override_values(overrides: Sequence[str]) -> dict[str, str]:
    """KEY=VALUE overrides as {KEY: VALUE}."""
    return dict(override.split("=", 1) for override in overrides)


def swept_keys(combinations: Iterable[Sequence[str]]) -> list[str]:
    """The override keys whose values differ between combinations, in the order given."""
    values: dict[str, set[str]] = {}
    for combination in combinations:
        for key, value in override_values(combination).items():
            values.setdefault(key, set()).add(value)
    return [key for key, seen in values.items() if len(seen) > 1]
