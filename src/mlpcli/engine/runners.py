"""Runs of a network over a world (`engine.world`: this process alone, or its rank in a process
group), with torch: one forward pass (`run`) and timed passes (`bench`); every tensor against a
reference (`compare`) is `comparisons`'. Each is written once: one process is a world of one.
The network is `network`, the ranks' shares of it `parallel`, devices `devices`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import overload

import numpy as np
import torch

from mlpcli.engine import devices, parallel, spool
from mlpcli.engine.estimates import forward_estimate
from mlpcli.engine.network import (
    TORCH_DTYPES,
    Network,
    build,
    forward,
    forward_in_chunks,
)
from mlpcli.engine.parallel import Part, part_of
from mlpcli.engine.rows import feature_chunks
from mlpcli.engine.stats import Accumulator, combined
from mlpcli.engine.world import ALONE, Alone, World
from mlpcli.errors import UnavailableError
from mlpcli.model import memory, plan
from mlpcli.model.config import Config, Parallel
from mlpcli.model.results import (
    PREVIEW_ROWS,
    BenchResult,
    Estimate,
    ParallelInfo,
    Preview,
    RankFigures,
    RunResult,
    TensorInfo,
    TensorStats,
    Values,
)
from mlpcli.model.shapes import shapes, tensor_shapes

SINK_VALUES = 1 << 20  # output values handed to a sink at once: a signal is heard between two
# blocks (a C loop formatting millions of rows holds the GIL, and Ctrl-C, until it returns)


OutputSink = Callable[[np.ndarray], None]  # takes each chunk's output rows, in order


@overload
def run(
    config: Config,
    world: Alone = ...,
    *,
    step: Callable[[], None] | None = ...,
    on_estimate: Callable[[Estimate], None] | None = ...,
    with_stats: bool = ...,
    keep: bool = ...,
    hold: bool = ...,
    sinks: Sequence[OutputSink] = ...,
    in_order: bool = ...,
) -> RunResult: ...
@overload
def run(
    config: Config,
    world: World,
    *,
    step: Callable[[], None] | None = ...,
    on_estimate: Callable[[Estimate], None] | None = ...,
    with_stats: bool = ...,
    keep: bool = ...,
    hold: bool = ...,
    sinks: Sequence[OutputSink] = ...,
    in_order: bool = ...,
) -> RunResult | None: ...
def run(
    config: Config,
    world: World = ALONE,
    *,
    step: Callable[[], None] | None = None,
    on_estimate: Callable[[Estimate], None] | None = None,
    with_stats: bool = False,
    keep: bool = False,
    hold: bool = True,
    sinks: Sequence[OutputSink] = (),
    in_order: bool = False,
) -> RunResult | None:
    """Build and run `config` over `world`: the result on rank 0, None on the other ranks.

    Alone, and for each rank of a `data` run, the rows stream (`_streamed`): this process's
    rows (`parallel.own_rows`; all of them alone) a chunk at a time, each chunk's output to
    `sinks` (a file, stdout; a rank's own part of the output file) and, with `hold`, into the
    result whole (on rank 0: every rank's rows); the preview, the counts and `with_stats`'
    figures go through rank 0. With `in_order` every rank's rows reach rank 0's `sinks` in
    row order (`_in_order`; the other ranks are given none). `pipeline` and `tensor` stream a
    micro-batch at a time (`_run_split`), their output to rank 0's `sinks` (and result, with
    `hold`); `with_stats`, `keep`, `step` and `on_estimate` are for rows a process runs whole
    (`commands.world` refuses what the others cannot do).
    """
    mode = config.parallel if world.distributed else Parallel.NONE
    if mode is not Parallel.NONE and mode is not Parallel.DATA:
        return _run_split(config, world, hold=hold, sinks=sinks)
    rows = parallel.own_rows(config, world) if mode is Parallel.DATA else _every_row(config)
    in_order &= mode is Parallel.DATA
    spooling = in_order and world.rank != 0
    width, dtype = config.layers[-1], np.dtype(config.dtype.output_type)
    spooling_here = (
        spool.spooled(world.rank, width, dtype) if spooling else contextlib.nullcontext()
    )
    with spooling_here as spooled:
        mine = _streamed(
            world.on_device(config), rows, step=step, on_estimate=on_estimate,
            with_stats=with_stats, keep=keep, hold=hold,
            sinks=[spooled.add] if spooled is not None else sinks,
        )  # fmt: skip
        if in_order:
            _in_order(config, world, spooled, sinks)
    return mine if mode is Parallel.NONE else _put_together(config, world, mine, hold)


def _in_order(
    config: Config, world: World, spooled: spool.Spool | None, sinks: Sequence[OutputSink]
) -> None:
    """After a `data` rank's own rows: each other rank's, rank by rank, to rank 0's `sinks`
    from its `spooled` rows (which it sends once rank 0 asks for them), in blocks of a chunk
    (SINK_VALUES values at most), as rank 0 hands its own rows on."""
    step = min(memory.chunk_rows(config), _block_rows(config.layers[-1]))
    if spooled is not None:
        spooled.send(world, step)
        return
    width, dtype = config.layers[-1], np.dtype(config.dtype.output_type)
    for rank, rows in enumerate(plan.data_rows(config, world.world_size)[1:], 1):
        for block in spool.received(world, rank, len(rows), step, width, dtype):
            for sink in sinks:
                sink(block)


def _every_row(config: Config) -> range | None:
    """The batch's rows; None where they are counted as they are read."""
    return None if config.batch is None else range(config.batch)


def _streamed(
    config: Config,
    rows: range | None,
    *,
    step: Callable[[], None] | None,
    on_estimate: Callable[[Estimate], None] | None,
    with_stats: bool,
    keep: bool,
    hold: bool,
    sinks: Sequence[OutputSink],
) -> RunResult:
    """`rows` of `config`'s batch run in this process, their features a chunk of rows at a
    time (`memory.chunk_rows`), read from their file as they are needed; running out of memory
    becomes UnavailableError. The result's preview, output and tensors' shapes are the rows',
    each chunk counted from `rows.start`; it always has a preview of the first and last rows.
    `rows` None: every row of a file whose rows are counted as they are read (standard input),
    the result's config showing their count as its batch.

    `on_estimate` hears, before anything is built, about how long a large network will take;
    `step` is called after each layer of each chunk (for a progress bar); `with_stats` gathers
    each tensor's statistics on the way (features, h1.., output); `keep` keeps every tensor.
    """
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
        assert rows is not None or not hold, "an output held whole has its rows known"
        outputs = _Outputs(config, len(rows) if hold and rows is not None else None, sinks)

        def observe(name: str, h: torch.Tensor) -> None:
            if name not in hidden:  # the first chunk's, its rows counted at the end
                hidden[name] = _info(name, h, 0)
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
        for features in feature_chunks(config, network.features, device, rows):
            if with_stats:
                gathered["features"].add(features)
            if keep:
                parts.setdefault("features", []).append(features.cpu())
            outputs.add(forward(dataclasses.replace(network, features=features), observe))
        devices.synchronize(device)
        forward_ms = (time.perf_counter() - start) * 1e3
        done = outputs.done
        counted = (dataclasses.replace(h, shape=(done, h.shape[1])) for h in hidden.values())
        tensors = (*(_info(name, t, t.shape[0]) for name, t in network.named()), *counted)
        return RunResult(
            config=config if config.batch is not None else dataclasses.replace(config, batch=done),
            device=str(device),
            tensors=(_info("features", network.features, done), *tensors[1:]),
            preview=outputs.preview(),
            output=outputs.whole(),
            nonfinite=outputs.nonfinite,
            build_ms=build_ms,
            forward_ms=forward_ms,
            stats=tuple(accumulator.result() for accumulator in gathered.values()),
            kept=_kept(network, parts) if keep else {},
        )


def _put_together(config: Config, world: World, mine: RunResult, hold: bool) -> RunResult | None:
    """A `data` run's result on rank 0, from every rank's (`mine` here): the preview, counts
    and statistics put together, the output gathered whole with `hold`, the times the slowest
    rank's; None on the other ranks."""
    part = (
        mine.preview.head, mine.preview.tail, mine.nonfinite, mine.build_ms, mine.forward_ms,
        mine.stats,
    )  # fmt: skip
    whole = None
    if hold:
        output = torch.from_numpy(mine.whole)
        whole = parallel.gathered(world, output, plan.data_rows(config, world.world_size), dim=0)
    parts = world.gather(part)
    if parts is None:
        return None
    heads, tails, nonfinite_counts, build_ms, forward_ms, stats = zip(*parts, strict=True)
    preview = Preview(
        (config.batch_size, config.layers[-1]),
        np.concatenate(heads)[:PREVIEW_ROWS],
        np.concatenate(tails)[-PREVIEW_ROWS:],
    )
    return dataclasses.replace(
        mine,
        tensors=_shapes(config, mine.device),
        preview=preview,
        output=None if whole is None else whole.numpy(),
        nonfinite=sum(nonfinite_counts),
        build_ms=max(build_ms),
        forward_ms=max(forward_ms),
        stats=tuple(combined(parts) for parts in _by_tensor(stats).values()),
        parallel=_shared_over(config, world, torch.device(mine.device)),
    )


def _by_tensor(ranks: Sequence[Sequence[TensorStats]]) -> dict[str, list[TensorStats]]:
    """Each tensor's figures from every rank that has them, in rank order (a rank with no rows
    has its features' only)."""
    by_name: dict[str, list[TensorStats]] = {}
    for figures in ranks:
        for tensor in figures:
            by_name.setdefault(tensor.name, []).append(tensor)
    return by_name


def _shapes(config: Config, device: str) -> tuple[TensorInfo, ...]:
    """Every tensor of the whole run, as one process would hold them."""
    dtype = str(TORCH_DTYPES[config.dtype]).removeprefix("torch.")
    return tuple(TensorInfo(t.name, t.shape, dtype, device) for t in tensor_shapes(config))


def _run_split(
    config: Config, world: World, *, hold: bool, sinks: Sequence[OutputSink]
) -> RunResult | None:
    """A `pipeline` or `tensor` run: its features read a micro-batch at a time by the ranks
    that take them (the first stage; every rank of `tensor`), its output a micro-batch at a
    time on rank 0, to `sinks` and, with `hold`, into the result whole (None on the others)."""
    placed = world.on_device(config)
    device = devices.prepare(placed, world, streamed=True, held=hold and world.rank == 0)
    with devices.memory_errors(device):
        part, build_ms = _timed_part(placed, world, device, features=config.inputs is None)
        outputs = _Outputs(config, config.batch_size if hold and world.rank == 0 else None, sinks)
        world.barrier()
        start = time.perf_counter()
        for output in _micro_batch_outputs(part, device, world):
            outputs.add(output)
        devices.synchronize(device)
        forward_ms = (time.perf_counter() - start) * 1e3
    if world.rank != 0:
        return None
    return RunResult(
        config=config,
        device=str(device),
        tensors=_shapes(config, str(device)),
        preview=outputs.preview(),
        output=outputs.whole(),
        nonfinite=outputs.nonfinite,
        build_ms=build_ms,
        forward_ms=forward_ms,
        parallel=_shared_over(config, world, device),
    )


def _shared_over(config: Config, world: World, device: torch.device) -> ParallelInfo | None:
    """How a run was shared, for its result; None for this process alone."""
    if not world.distributed:
        return None
    return ParallelInfo(config.parallel.value, world.world_size, world.backend(device))


class _Outputs:
    """Where a run's output chunks go: the sinks, the first and last rows for the preview, the
    whole output when it is held; and the count of values that are not finite."""

    def __init__(self, config: Config, held: int | None, sinks: Sequence[OutputSink]) -> None:
        """`held`: the rows of an output held whole; None where it is not held."""
        self.sinks = sinks
        self.done = 0
        empty = np.empty((0, config.layers[-1]), config.dtype.output_type)  # no rows yet
        self.head: np.ndarray = empty
        self.tail: np.ndarray = empty
        self.held = None if held is None else np.empty((held, empty.shape[1]), empty.dtype)
        self.nonfinite = 0

    def add(self, output: torch.Tensor) -> None:
        self.nonfinite += nonfinite(output)
        rows = to_numpy(output)  # (chunk, nL)
        block = _block_rows(rows.shape[1])
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
        return Preview((self.done, self.head.shape[1]), self.head, self.tail)


def _block_rows(width: int) -> int:
    """Rows of output a sink takes at once: SINK_VALUES values, a row at least."""
    return max(1, SINK_VALUES // max(1, width))


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


@overload
def bench(
    config: Config,
    warmup: int,
    repeat: int,
    world: Alone = ...,
    progress: Callable[[], None] | None = ...,
    cuda_graph: bool = ...,
) -> BenchResult: ...
@overload
def bench(
    config: Config,
    warmup: int,
    repeat: int,
    world: World,
    progress: Callable[[], None] | None = ...,
    cuda_graph: bool = ...,
) -> BenchResult | None: ...
def bench(
    config: Config,
    warmup: int,
    repeat: int,
    world: World = ALONE,
    progress: Callable[[], None] | None = None,
    cuda_graph: bool = False,
) -> BenchResult | None:
    """Time `repeat` forward passes over `world` after `warmup` untimed ones; the build is
    timed apart. The result on rank 0, None on the other ranks.

    On a GPU each pass is timed with CUDA events and the peak is what the passes allocated
    beyond the network; on the CPU the clock is `perf_counter` after the pass returns. Over a
    group every pass starts from a barrier, on rank 0's clock, and each rank's figures (its
    peak, the time it waited on the others) come with the result. With `cuda_graph` (alone)
    each pass is a replay of one captured forward, and the peak counts the capture's memory.
    Features from a file of more rows than a chunk (`memory.reads_per_pass`; in `data` mode
    each rank's own rows) are read a chunk at a time in every pass, as `run` reads them, and
    the reading is timed with the pass, each rank's output dropped (a `pipeline` or `tensor`
    pass reads them on the ranks that take features, a micro-batch at a time; in `data` mode
    a pass over held features gathers the output to rank 0); `cuda_graph` holds them.
    """
    mode = config.parallel if world.distributed else Parallel.NONE
    placed = world.on_device(config)
    streams = memory.reads_per_pass(config, cuda_graph)
    device = devices.prepare(placed, world, streamed=streams)
    if cuda_graph and device.type != "cuda":  # `device: auto` found no GPU
        raise UnavailableError(f"--cuda-graph needs a CUDA device; this config runs on {device}")
    with devices.memory_errors(device):
        step: Callable[[], object]
        passed: Callable[[], Iterable[object]]
        if streams and mode in (Parallel.PIPELINE, Parallel.TENSOR):
            part, build_ms = _timed_part(placed, world, device, features=False)
            passed = functools.partial(_micro_batch_outputs, part, device, world)
            step = functools.partial(_pass_over_file, passed, device, world)
        elif streams:
            network, build_ms = _timed_build(placed, device, features=False)
            rows = (
                parallel.own_rows(config, world)
                if mode is Parallel.DATA
                else range(config.batch_size)
            )
            passed = functools.partial(_chunk_outputs, placed, network, device, rows)
            step = functools.partial(_pass_over_file, passed, device, world)
        elif cuda_graph:
            part, build_ms = _timed_part(config, world, device)
            baseline = devices.reset_peak(device)  # before the capture, so that its memory counts
            step = captured(part.network, config.chunk)
        else:
            part, build_ms = _timed_part(config, world, device)
            step = functools.partial(parallel.forward, part, world)
        for _ in range(warmup):
            step()
        devices.synchronize(device)
        if not cuda_graph:
            baseline = devices.reset_peak(device)  # after the warm-up: not a pass's workspace
        times, communicating = [], []
        for _ in range(repeat):
            world.barrier()
            world.comm_s = 0.0
            times.append(devices.timed_ms(step, device))
            communicating.append(world.comm_s * 1e3)
            if progress is not None:
                progress()
        peak = devices.peak_since(device, baseline)
    ranks: list[RankFigures] = []
    if world.distributed:
        figures = RankFigures(
            world.rank,
            str(device),
            peak if peak is not None else _peak_rss(),
            peak is None,
            statistics.median(communicating),
            plan.plan(config, world.world_size, None).ranks[world.rank].weight_bytes,
        )
        gathered = world.gather(figures)
        world.complete()
        if gathered is None:
            return None
        ranks = gathered
    return BenchResult(
        config,
        str(device),
        build_ms,
        tuple(times),
        peak,
        shapes(config).total_flops,
        torch.get_num_threads(),
        cuda_graph,
        reads_features=streams,
        parallel=_shared_over(config, world, device),
        ranks=tuple(ranks),
    )


def _pass_over_file(
    passed: Callable[[], Iterable[object]], device: torch.device, world: World
) -> None:
    """One pass over a file read a chunk at a time, as `run` reads it, each chunk's output
    (`passed` gives them) dropped; over a group it ends at a barrier, so that rank 0's clock
    spans every rank's pass."""
    for _ in passed():
        pass
    devices.synchronize(device)  # a GPU's last kernels are part of the pass the barrier ends
    world.barrier()


def _chunk_outputs(
    config: Config, network: Network, device: torch.device, rows: range
) -> Iterator[torch.Tensor]:
    """The output of each chunk of `rows`, read from their file as `run` reads them."""
    for features in feature_chunks(config, network.features, device, rows):
        yield forward(dataclasses.replace(network, features=features))


def _micro_batch_outputs(part: Part, device: torch.device, world: World) -> Iterator[torch.Tensor]:
    """A `pipeline` or `tensor` run's output on rank 0 (nothing on the others), a
    micro-batch at a time (`parallel.micro_batches`)."""
    return parallel.outputs(part, world, *parallel.micro_batches(part, device))


def _timed_part(
    config: Config, world: World, device: torch.device, features: bool = True
) -> tuple[Part, float]:
    """This rank's share (`parallel.part_of`), and the milliseconds its build took."""
    start = time.perf_counter()
    part = part_of(config, world, device, features)
    devices.synchronize(device)
    return part, (time.perf_counter() - start) * 1e3


def _peak_rss() -> int:
    """This process's peak resident memory, in bytes (Linux counts KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _timed_build(
    config: Config, device: torch.device, features: bool = True
) -> tuple[Network, float]:
    """The built network and the milliseconds it took (drawing, casting, moving)."""
    start = time.perf_counter()
    network = build(config, device, features)
    devices.synchronize(device)
    return network, (time.perf_counter() - start) * 1e3


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
