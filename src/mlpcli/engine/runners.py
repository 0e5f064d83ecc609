"""Runs of a network, with torch: one forward pass (`run`), timed passes (`bench`), and one
network on several devices (`compare`). The network itself is `network`; devices are `devices`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from mlpcli.engine import devices
from mlpcli.engine.estimates import forward_estimate
from mlpcli.engine.network import (
    TORCH_DTYPES,
    Network,
    build,
    forward,
    forward_in_chunks,
    located_at_inputs,
)
from mlpcli.engine.stats import Accumulator
from mlpcli.errors import UnavailableError
from mlpcli.model import memory
from mlpcli.model.closeness import Tolerance, difference
from mlpcli.model.config import Config, Device
from mlpcli.model.results import (
    PREVIEW_ROWS,
    BenchResult,
    CompareResult,
    Estimate,
    Preview,
    RunResult,
    TensorDiff,
    TensorInfo,
    Values,
)
from mlpcli.model.shapes import shapes

SINK_VALUES = 1 << 20  # output values handed to a sink at once: a signal is heard between two
# blocks (a C loop formatting millions of rows holds the GIL, and Ctrl-C, until it returns)


OutputSink = Callable[[np.ndarray], None]  # takes each chunk's output rows, in order


def run(
    config: Config,
    step: Callable[[], None] | None = None,
    on_estimate: Callable[[Estimate], None] | None = None,
    with_stats: bool = False,
    keep: bool = False,
    hold: bool = True,
    sinks: Sequence[OutputSink] = (),
    rows: range | None = None,
) -> RunResult:
    """Build and run `config`, its features a chunk of rows at a time (`memory.chunk_rows`),
    read from their file as they are needed; running out of memory becomes UnavailableError.

    `rows` runs those rows of the batch only (a rank's share of a `data` run; all by default):
    the result's preview, output and tensors' shapes are theirs, each chunk counted from
    `rows.start`. Each chunk's output goes to `sinks` (a file, stdout) and, with `hold`, into
    the result whole; the result always has a preview of the first and last rows.
    `on_estimate` hears, before anything is built, about how long a large network will take;
    `step` is called after each layer of each chunk (for a progress bar); `with_stats` gathers
    each tensor's statistics on the way (features, h1.., output); `keep` keeps every tensor.
    """
    rows = range(config.batch) if rows is None else rows
    device = devices.prepare(config, streamed=True, held=hold)
    if on_estimate is not None and (estimate := forward_estimate(config, device)) is not None:
        on_estimate(estimate)
    with devices.memory_errors(device):
        network, build_ms = _timed_build(config, device, features=config.inputs is None)
        hidden: dict[str, TensorInfo] = {}
        parts: dict[str, list[torch.Tensor]] = {}  # each chunk's h1.. and output, with `keep`
        gathered: dict[str, Accumulator] = {}
        if with_stats:
            gathered["features"] = Accumulator("features", None, device)
        outputs = _Outputs(config, len(rows), hold, sinks)

        def observe(name: str, h: torch.Tensor) -> None:
            if name not in hidden:  # the first chunk's, for every row run
                hidden[name] = _info(name, h, len(rows))
            if keep:
                parts.setdefault(name, []).append(h.cpu())
            if with_stats:
                if name not in gathered:  # hi comes out of layer i's activation
                    layer = len(config.activations) if name == "output" else int(name[1:])
                    gathered[name] = Accumulator(name, config.activations[layer - 1], device)
                gathered[name].add(h)
            if step is not None:
                step()

        start = time.perf_counter()
        for features in _feature_chunks(config, network, device, rows):
            if with_stats:
                gathered["features"].add(features)
            if keep:
                parts.setdefault("features", []).append(features.cpu())
            outputs.add(forward(dataclasses.replace(network, features=features), observe))
        devices.synchronize(device)
        forward_ms = (time.perf_counter() - start) * 1e3
        tensors = (*(_info(name, t, t.shape[0]) for name, t in network.named()), *hidden.values())
        return RunResult(
            config=config,
            device=str(device),
            tensors=(_info("features", network.features, len(rows)), *tensors[1:]),
            preview=outputs.preview(),
            output=outputs.whole(),
            nonfinite=outputs.nonfinite,
            build_ms=build_ms,
            forward_ms=forward_ms,
            stats=tuple(accumulator.result() for accumulator in gathered.values()),
            kept=_kept(network, parts) if keep else {},
        )


class _Outputs:
    """Where a run's output chunks go: the sinks, the first and last rows for the preview, the
    whole output when it is held; and the count of values that are not finite."""

    def __init__(self, config: Config, rows: int, hold: bool, sinks: Sequence[OutputSink]) -> None:
        self.rows, self.hold, self.sinks = rows, hold, sinks
        self.done = 0
        empty = np.empty((0, config.layers[-1]), config.dtype.output_type)  # no rows yet
        self.head: np.ndarray = empty
        self.tail: np.ndarray = empty
        self.held = np.empty((rows, empty.shape[1]), empty.dtype) if hold else None
        self.nonfinite = 0

    def add(self, output: torch.Tensor) -> None:
        self.nonfinite += nonfinite(output)
        rows = to_numpy(output)  # (chunk, nL)
        block = max(1, SINK_VALUES // max(1, rows.shape[1]))
        for start in range(0, rows.shape[0], block):
            for sink in self.sinks:
                sink(rows[start : start + block])
        if self.held is not None:
            self.held[self.done : self.done + rows.shape[0]] = rows
        self.done += rows.shape[0]
        if len(self.head) < PREVIEW_ROWS:
            self.head = np.concatenate([self.head, rows[: PREVIEW_ROWS - len(self.head)]])
        self.tail = np.concatenate([self.tail, rows[-PREVIEW_ROWS:]])[-PREVIEW_ROWS:]

    def whole(self) -> np.ndarray | None:
        return self.held

    def preview(self) -> Preview:
        return Preview((self.rows, self.head.shape[1]), self.head, self.tail)


def _feature_chunks(
    config: Config, network: Network, device: torch.device, rows: range
) -> Iterator[torch.Tensor]:
    """The features of `rows`, `memory.chunk_rows` rows at a time from `rows.start`, cast and
    on `device`: read from their file chunk by chunk (no row outside `rows`, but that the
    last share reads to the file's end, whose row count is checked there), or cut from the
    drawn features."""
    step = min(memory.chunk_rows(config), max(1, len(rows)))
    if config.inputs is None:
        for first in range(rows.start, rows.stop, step):
            yield network.features[first : min(first + step, rows.stop)]
        return
    from mlpcli.data import features as feature_files

    dtype = TORCH_DTYPES[config.dtype]
    reading = feature_files.reading_of(vars(config))
    blocks = feature_files.chunks(config.inputs, reading, step, config.batch, rows.start)
    left = len(rows)
    while left or rows.stop == config.batch:  # the last share reads on: the count is checked
        with located_at_inputs(config):  # a bad value in a later chunk
            block = next(blocks, None)
        if block is None:
            return
        taken = block[:left]
        left -= taken.shape[0]
        if taken.shape[0]:
            yield taken.to(device=device, dtype=dtype)


def _kept(network: Network, parts: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Every tensor of a run by name, on the CPU: features, W1.., B1.., h1.., output."""
    kept = {name: tensor.cpu() for name, tensor in network.named()}
    kept.update((name, torch.cat(chunks)) for name, chunks in parts.items())
    return kept


def diagram_values(config: Config, drawn: Mapping[int, Sequence[int]]) -> Values:
    """The numbers `draw --values` shows: for each drawn column k (0 for the features) and its
    drawn units, their values for the first row of features, and the weights Wk between the
    drawn units of columns k-1 and k where both are drawn.

    Row 0 of the features is drawn before the weights, so a batch of one gives the same
    numbers without building the rest of the batch.
    """
    config = config.first_row()
    device = devices.prepare(config)
    with devices.memory_errors(device):
        network = build(config, device)
        rows = [network.features[0]]
        forward(network, lambda _, h: rows.append(h[0]))
    units: dict[tuple[int, int], float] = {}
    weights: dict[tuple[int, int, int], float] = {}
    for k, shown in drawn.items():
        row = rows[k][list(shown)].float().tolist()
        units.update(((k, u), value) for u, value in zip(shown, row, strict=True))
        if k and k - 1 in drawn:
            W = network.weights[k - 1][list(drawn[k - 1])][:, list(shown)]
            for i, out_of_i in zip(drawn[k - 1], W.float().tolist(), strict=True):
                weights.update(((k, i, j), w) for j, w in zip(shown, out_of_i, strict=True))
    return Values(units=units, weights=weights)


def captured(network: Network, chunk: int | None) -> Callable[[], torch.Tensor]:
    """A CUDA graph of one `forward_in_chunks` over `network`'s tensors; each call replays it.

    A replay launches the captured kernels on the same buffers, so every call returns the same
    output tensor, overwritten, equal to an eager pass's.
    """
    device = network.features.device
    side = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        forward_in_chunks(network, chunk)  # lazy set-up (cuBLAS handles) outside the capture
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = forward_in_chunks(network, chunk)

    def replay() -> torch.Tensor:
        graph.replay()
        return output

    return replay


def bench(
    config: Config,
    warmup: int,
    repeat: int,
    progress: Callable[[], None] | None = None,
    cuda_graph: bool = False,
) -> BenchResult:
    """Time `repeat` forward passes after `warmup` untimed ones; the build is timed apart.

    On a GPU each pass is timed with CUDA events and the peak is what the passes allocated
    beyond the network; on the CPU the clock is `perf_counter` after the pass returns.
    With `cuda_graph` each pass is a replay of one captured forward, and the peak counts the
    capture's memory.
    """
    device = devices.prepare(config)
    if cuda_graph and device.type != "cuda":  # `device: auto` found no GPU
        raise UnavailableError(f"--cuda-graph needs a CUDA device; this config runs on {device}")
    with devices.memory_errors(device):
        network, build_ms = _timed_build(config, device)
        if cuda_graph:
            baseline = devices.reset_peak(device)  # before the capture, so that its memory counts
            step = captured(network, config.chunk)
        else:
            step = functools.partial(forward_in_chunks, network, config.chunk)
        for _ in range(warmup):
            step()
        devices.synchronize(device)
        if not cuda_graph:
            baseline = devices.reset_peak(device)  # after the warm-up: not a pass's workspace
        times = []
        for _ in range(repeat):
            times.append(devices.timed_ms(step, device))
            if progress is not None:
                progress()
        peak = devices.peak_since(device, baseline)
    flops = shapes(config).total_flops
    threads = torch.get_num_threads()
    return BenchResult(
        config, str(device), build_ms, tuple(times), peak, flops, threads, cuda_graph
    )


def compare(
    config: Config, specs: Sequence[Device], tolerance: Tolerance, source: str = "--devices"
) -> CompareResult:
    """Run `config` on each device; every tensor against the first device's, at its scale.

    `source` says where the devices were named, for the error when one is missing.

    The whole batch runs at once (`chunk` does not apply), so that every activation is whole.
    """
    config = dataclasses.replace(config, chunk=None)
    placed = [devices.prepare(config.on_device(spec, source)) for spec in specs]
    reference, *others = (named_tensors(config, device) for device in placed)
    diffs = [
        diff
        for device, tensors in zip(placed[1:], others, strict=True)
        for diff in differences(reference, tensors, str(device), tolerance)
    ]
    return CompareResult(config, tuple(map(str, placed)), tolerance, tuple(diffs))


def differences(
    reference: dict[str, np.ndarray],
    tensors: dict[str, np.ndarray],
    label: str,
    tolerance: Tolerance,
) -> list[TensorDiff]:
    """Each of `tensors` (from the run `label` names) against the reference's, at its scale."""
    return [
        TensorDiff(
            name,
            tuple(tensor.shape),
            label,
            difference(tensor, reference[name], tolerance, per_tensor=True),
        )
        for name, tensor in tensors.items()
    ]


def _timed_build(
    config: Config, device: torch.device, features: bool = True
) -> tuple[Network, float]:
    """The built network and the milliseconds it took (drawing, casting, moving)."""
    start = time.perf_counter()
    network = build(config, device, features)
    devices.synchronize(device)
    return network, (time.perf_counter() - start) * 1e3


def named_tensors(config: Config, device: torch.device) -> dict[str, np.ndarray]:
    """Every named tensor of a run on `device`, as float64 arrays on the CPU."""
    with devices.memory_errors(device):
        network = build(config, device)
        tensors = {name: to_numpy(t, np.float64) for name, t in network.named()}
        forward(network, lambda name, h: tensors.update({name: to_numpy(h, np.float64)}))
    return tensors  # features, W.., B.., h.., output


def _info(name: str, tensor: torch.Tensor, rows: int | None = None) -> TensorInfo:
    """A tensor's description; `rows` for an activation seen one chunk at a time."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    shape = tuple(tensor.shape) if rows is None else (rows, *tensor.shape[1:])
    return TensorInfo(name, shape, dtype, str(tensor.device))


def nonfinite(values: torch.Tensor) -> int:
    """How many of `values` are NaN or infinite. A finite sum says none: it reads the values
    once, vectorised (30 ms for 256M float32 here, where counting took 1.3 s); a sum that is
    not finite, from such a value or from overflow, has them counted."""
    wide = torch.float64 if values.dtype is torch.float64 else torch.float32
    if bool(torch.isfinite(values.sum(dtype=wide))):
        return 0
    return int((~torch.isfinite(values)).sum())


def to_numpy(tensor: torch.Tensor, dtype: type[np.floating] | None = None) -> np.ndarray:
    """A CPU NumPy copy; bfloat16, which NumPy lacks, becomes float32 (exactly)."""
    if tensor.dtype is torch.bfloat16:
        tensor = tensor.float()
    array = tensor.detach().cpu().numpy()
    return array if dtype is None else array.astype(dtype)
