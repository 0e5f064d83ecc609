"""One network over the ranks of a world (`engine.world`), with torch: each rank builds its share of the
draw (`plan.share`) and runs its part of the forward pass; rank 0 gets the output.

`data` splits the batch's rows, `pipeline` the layers (`chunk` rows a micro-batch), `tensor`
every weight: the first layer of each pair by columns, the second by rows, one all-reduce a
pair. docs/distributed.md is the guide; one rank (no launcher) is the single-process forward.
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mlpcli.engine import devices, runners
from mlpcli.engine.network import (
    ACTIVATIONS,
    TORCH_DTYPES,
    Network,
    affine,
    forward_in_chunks,
    forward_layers,
    placed,
)
from mlpcli.engine.runners import OutputSink, differences, named_tensors, nonfinite, to_numpy
from mlpcli.engine.stats import combined
from mlpcli.engine.world import World
from mlpcli.model import plan
from mlpcli.model.activations import WHOLE_ROW
from mlpcli.model.closeness import Tolerance
from mlpcli.model.config import Config, Parallel
from mlpcli.model.plan import Region, Share
from mlpcli.model.results import (
    PREVIEW_ROWS,
    BenchResult,
    CompareResult,
    ParallelInfo,
    Preview,
    RankFigures,
    RunResult,
    TensorInfo,
    TensorStats,
)
from mlpcli.model.shapes import shapes, tensor_shapes

Observe = Callable[[str, Region, torch.Tensor], None]  # a piece of a named tensor, and where


@dataclass(frozen=True)
class Part:
    """This rank's share of a network, cast and on its device; None where it holds nothing."""

    config: Config
    share: Share
    features: torch.Tensor | None
    weights: tuple[torch.Tensor | None, ...]
    biases: tuple[torch.Tensor | None, ...]  # one per layer, None without bias

    @property
    def names(self) -> list[str]:
        """Each layer's result: h1 … h(L-1), output."""
        count = len(self.weights)
        return [f"h{i}" for i in range(1, count)] + ["output"]


def part_of(config: Config, group: World, device: torch.device) -> Part:
    """This rank's share of `config`'s network."""
    share = plan.share(config, group.world_size, group.rank)
    features, weights, biases = placed(config, device, share)
    layers = len(weights)
    return Part(config, share, features, tuple(weights), tuple(biases) or (None,) * layers)


def forward(part: Part, group: World, observe: Observe | None = None) -> torch.Tensor | None:
    """The output on rank 0 (None on the others), each rank computing its share; `observe`
    sees each piece of h1.. and output where it lies (for `data`, without `chunk` only)."""
    mode = part.config.parallel if group.distributed else Parallel.NONE
    assert observe is None or mode is not Parallel.DATA or part.config.chunk is None
    if mode is Parallel.PIPELINE:
        return _pipeline(part, group, observe)
    if mode is Parallel.TENSOR:
        return _tensor(part, group, observe)
    rows = part.share.features
    assert rows is not None
    assert part.features is not None
    weights = tuple(W for W in part.weights if W is not None)
    biases = tuple(B for B in part.biases if B is not None)
    network = Network(part.features, weights, biases, part.config.activations)

    def seen(name: str, h: torch.Tensor) -> None:
        if observe is not None:
            observe(name, (rows, range(h.shape[1])), h)

    output = forward_in_chunks(network, part.config.chunk, seen if observe else None)
    if mode is Parallel.NONE:
        return output
    return _gathered(group, output, plan.data_rows(part.config, group.world_size), dim=0)


def _gathered(
    group: World, piece: torch.Tensor, spans: Sequence[range], dim: int
) -> torch.Tensor | None:
    """Each rank's piece of a tensor, which holds `spans[rank]` of it along `dim` (0: rows,
    1: columns), put together on rank 0; None on the others."""
    if group.rank != 0:
        if spans[group.rank]:
            group.send(piece, 0)
            group.flush()
        return None
    parts = [piece]
    for rank, span in enumerate(spans[1:], 1):
        if span:
            shape = list(piece.shape)
            shape[dim] = len(span)
            parts.append(group.recv(piece.new_empty(shape), rank))
    return torch.cat(parts, dim=dim)


def _micro_batches(config: Config) -> list[range]:
    """The rows of each micro-batch: `chunk` rows, or the whole batch."""
    step = config.chunk or config.batch
    return [range(a, min(a + step, config.batch)) for a in range(0, config.batch, step)]


def _pipeline(part: Part, group: World, observe: Observe | None) -> torch.Tensor | None:
    """Each rank its stage's layers, micro-batch by micro-batch; the last stage's output goes to
    rank 0. Every layer sees the rows one process would give it: the same bits.

    At most one micro-batch is in flight from a stage to the next; the last stage's outputs wait
    for rank 0, which takes them once it has sent its last micro-batch.
    """
    config, rank, last = part.config, group.rank, group.world_size - 1
    stage = [i for i, W in enumerate(part.weights) if W is not None]  # (plan.stages)
    weights = [part.weights[i] for i in stage]
    W0 = weights[0]
    assert W0 is not None
    _ring(group, W0)
    for rows in _micro_batches(config):
        if rank == 0:
            assert part.features is not None
            h = part.features[rows.start : rows.stop]
        else:
            h = group.recv(W0.new_empty((len(rows), W0.shape[0])), rank - 1)

        def seen(name: str, h: torch.Tensor, rows: range = rows) -> None:
            if observe is not None:
                observe(name, (rows, range(h.shape[1])), h)

        h = forward_layers(
            h,
            weights,  # type: ignore[arg-type]
            [part.biases[i] for i in stage],
            [config.activations[i] for i in stage],
            [part.names[i] for i in stage],
            seen,
        )
        if rank != last:
            group.flush()  # the previous micro-batch has gone
        group.send(h, 0 if rank == last else rank + 1)
    output = None
    if rank == 0:
        output = W0.new_empty((config.batch, config.layers[-1]))
        for rows in _micro_batches(config):
            group.recv(output[rows.start : rows.stop], last)
    group.flush()
    return output


def _ring(group: World, like: torch.Tensor) -> None:
    """One value round the ranks in order, 0 → 1 → … → last → 0: connects each pair that the
    pipeline uses in an order without a cycle (NCCL makes a pair's connection on its first use,
    and both ends wait for it)."""
    token = like.new_zeros(1)
    rank, last = group.rank, group.world_size - 1
    if rank > 0:
        group.recv(token, rank - 1)
    group.send(token, 0 if rank == last else rank + 1)
    if rank == 0:
        group.recv(token, last)
    group.flush()


def _tensor(part: Part, group: World, observe: Observe | None) -> torch.Tensor | None:
    """Column then row parallel, a pair of layers at a time: the first layer's columns are
    split (its activation runs on each rank's columns, or on whole rows after an all-gather
    where it needs them); the second's rows, and an all-reduce sums the partial products."""
    config = part.config
    columns = [plan.split(n, group.world_size) for n in config.layers[1:]]
    output = None
    for rows in _micro_batches(config):
        assert part.features is not None
        h: torch.Tensor | None = part.features[rows.start : rows.stop]
        for i in range(len(part.weights)):
            assert h is not None
            h = _tensor_layer(part, group, i, h, (rows, columns[i]), observe)
        if group.rank == 0:
            assert h is not None
            if output is None:
                output = h.new_empty((config.batch, h.shape[1]))
            output[rows.start : rows.stop] = h
    return output


def _tensor_layer(
    part: Part,
    group: World,
    i: int,
    h: torch.Tensor,
    split: tuple[range, Sequence[range]],
    observe: Observe | None,
) -> torch.Tensor | None:
    """Layer `i` of `_tensor` on `h`, `split` its rows of the batch and its columns by rank:
    this rank's part of its result (the whole on rank 0 for the last layer, None on the
    others)."""
    rows, columns = split
    W, B, name = part.weights[i], part.biases[i], part.names[i]
    assert W is not None
    apply, rank = ACTIVATIONS[part.config.activations[i]].apply, group.rank
    mine = columns[rank]
    if not plan.is_column(i):  # partial sums of every column, summed over the ranks
        z = h @ W  # (rows, ni)
        group.all_reduce(z)
        if B is not None:
            z.add_(B)
        out = apply(z)
        if observe is not None and rank == 0:
            observe(name, (rows, range(out.shape[1])), out)
        return out
    if i == len(part.weights) - 1:  # the last layer's columns, on rank 0
        gathered = _gathered(group, affine(h, W, B), columns, dim=1)
        if gathered is None:
            return None
        last = apply(gathered)
        if observe is not None:
            observe(name, (rows, range(last.shape[1])), last)
        return last
    if part.config.activations[i] in WHOLE_ROW:  # whole rows, then this rank's columns again
        full = apply(group.all_gather_columns(affine(h, W, B), columns))
        if observe is not None and rank == 0:
            observe(name, (rows, range(full.shape[1])), full)
        return full[:, mine.start : mine.stop].contiguous()
    out = apply(affine(h, W, B))  # (rows, this rank's columns)
    if observe is not None:
        observe(name, (rows, mine), out)
    return out


def info(config: Config, group: World, device: torch.device) -> ParallelInfo:
    """How a run was shared, for its result."""
    return ParallelInfo(config.parallel.value, group.world_size, group.backend(device))


def run(
    config: Config,
    group: World,
    sinks: Sequence[OutputSink] = (),
    hold: bool = True,
    with_stats: bool = False,
) -> RunResult | None:
    """Build this rank's share and run the forward pass; the result on rank 0, None elsewhere.

    With `data`, each rank streams its own rows as one process streams all of them
    (`runners.run`): each chunk's output to `sinks` (this rank's part of an output file), and
    to rank 0 whole only with `hold`; the preview, the counts and `with_stats`' figures go
    through rank 0. The other modes hold their features and gather the whole output to rank
    0 (`sinks`, `hold` and `with_stats` are a `data` run's: `commands.world` refuses
    statistics of the others)."""
    if config.parallel is Parallel.DATA and group.distributed:
        return _run_rows(config, group, sinks, hold, with_stats)
    return _run_held(config, group)


def own_rows(config: Config, group: World) -> range:
    """The rows of the batch that this rank runs in a `data` run."""
    return plan.data_rows(config, group.world_size)[group.rank]


def _run_rows(
    config: Config, group: World, sinks: Sequence[OutputSink], hold: bool, with_stats: bool
) -> RunResult | None:
    """A `data` run: this rank's rows streamed; rank 0's result the ranks' put together, its
    times the slowest rank's."""
    mine = runners.run(
        group.on_device(config), with_stats=with_stats, hold=hold, sinks=sinks,
        rows=own_rows(config, group),
    )  # fmt: skip
    part = (
        mine.preview.head, mine.preview.tail, mine.nonfinite, mine.build_ms, mine.forward_ms,
        mine.stats,
    )  # fmt: skip
    whole = None
    if hold:
        output = torch.from_numpy(mine.whole)
        whole = _gathered(group, output, plan.data_rows(config, group.world_size), dim=0)
    parts = group.gather(part)
    if parts is None:
        return None
    heads, tails, nonfinite, build_ms, forward_ms, stats = zip(*parts, strict=True)
    preview = Preview(
        (config.batch, config.layers[-1]),
        np.concatenate(heads)[:PREVIEW_ROWS],
        np.concatenate(tails)[-PREVIEW_ROWS:],
    )
    return dataclasses.replace(
        mine,
        tensors=_shapes(config, mine.device),
        preview=preview,
        output=None if whole is None else whole.numpy(),
        nonfinite=sum(nonfinite),
        build_ms=max(build_ms),
        forward_ms=max(forward_ms),
        stats=tuple(combined(parts) for parts in _by_tensor(stats).values()),
        parallel=info(config, group, torch.device(mine.device)),
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


def _run_held(config: Config, group: World) -> RunResult | None:
    """A `pipeline` or `tensor` run (or a world of one): the features held, the output
    gathered to rank 0."""
    device = devices.prepare(group.on_device(config))
    with devices.memory_errors(device):
        part, build_ms = _timed_part(config, group, device)
        group.barrier()
        start = time.perf_counter()
        output = forward(part, group)
        devices.synchronize(device)
        forward_ms = (time.perf_counter() - start) * 1e3
    if output is None:
        return None
    whole = to_numpy(output)
    return RunResult(
        config=config,
        device=str(device),
        tensors=_shapes(config, str(device)),
        preview=Preview.of(whole),
        output=whole,
        nonfinite=nonfinite(output),
        build_ms=build_ms,
        forward_ms=forward_ms,
        parallel=info(config, group, device),
    )


def bench(config: Config, group: World, warmup: int, repeat: int) -> BenchResult | None:
    """Time `repeat` forward passes of the whole group (rank 0's clock, from a barrier that
    starts every rank together); each rank's peak memory and time spent communicating."""
    device = devices.prepare(group.on_device(config))
    with devices.memory_errors(device):
        part, build_ms = _timed_part(config, group, device)
        for _ in range(warmup):
            forward(part, group)
        baseline = devices.reset_peak(device)
        times, communicating = [], []
        for _ in range(repeat):
            group.barrier()
            group.comm_s = 0.0
            times.append(devices.timed_ms(lambda: forward(part, group), device))
            communicating.append(group.comm_s * 1e3)
        peak = devices.peak_since(device, baseline)
    figures = RankFigures(
        group.rank,
        str(device),
        peak if peak is not None else _peak_rss(),
        peak is None,
        statistics.median(communicating),
        plan.plan(config, group.world_size, None).ranks[group.rank].weight_bytes,
    )
    gathered = group.gather(figures)
    group.complete()
    if gathered is None:
        return None
    return BenchResult(
        config,
        str(device),
        build_ms,
        tuple(times),
        peak,
        shapes(config).total_flops,
        torch.get_num_threads(),
        parallel=info(config, group, device),
        ranks=tuple(gathered),
    )


def _timed_part(config: Config, group: World, device: torch.device) -> tuple[Part, float]:
    """This rank's share, and the milliseconds its build took."""
    start = time.perf_counter()
    part = part_of(config, group, device)
    devices.synchronize(device)
    return part, (time.perf_counter() - start) * 1e3


def _peak_rss() -> int:
    """This process's peak resident memory, in bytes (Linux counts KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def all_tensors(config: Config, group: World) -> dict[str, np.ndarray] | None:
    """Every named tensor of a run over the group, gathered piece by piece to rank 0 as float64
    arrays (None on the others): what each rank holds and computes, put back together."""
    config = dataclasses.replace(config, chunk=None)
    device = devices.prepare(group.on_device(config))
    pieces: list[tuple[str, Region, np.ndarray]] = []

    def observe(name: str, region: Region, tensor: torch.Tensor) -> None:
        pieces.append((name, region, to_numpy(tensor, np.float64)))

    with devices.memory_errors(device):
        part = part_of(config, group, device)
        share = part.share
        if part.features is not None and share.features is not None:
            observe("features", (share.features, range(config.layers[0])), part.features)
        for i, (W, region) in enumerate(zip(part.weights, share.weights, strict=True), 1):
            if W is not None and region is not None:
                observe(f"W{i}", region, W)
        for i, (B, columns) in enumerate(zip(part.biases, share.biases, strict=False), 1):
            if B is not None and columns is not None:
                observe(f"B{i}", (range(1), columns), B)
        forward(part, group, observe)
    gathered = group.gather(pieces)
    if gathered is None:
        return None
    tensors = {t.name: np.full(t.shape, np.nan) for t in tensor_shapes(config)}
    for rank_pieces in gathered:
        for name, (rows, columns), values in rank_pieces:
            tensors[name][rows.start : rows.stop, columns.start : columns.stop] = values
    return tensors


def compare(config: Config, group: World, tolerance: Tolerance) -> CompareResult | None:
    """Every tensor of the run over the group against one process on rank 0's device."""
    candidate = all_tensors(config, group)
    result = None
    if candidate is not None:
        device = devices.prepare(group.on_device(config))
        single = dataclasses.replace(config, parallel=Parallel.NONE, chunk=None)
        reference = named_tensors(single, device)
        label = f"{device} ×{group.world_size} ({config.parallel.value})"
        diffs = tuple(differences(reference, candidate, label, tolerance))
        result = CompareResult(config, (str(device), label), tolerance, diffs)
    group.complete()  # rank 0's reference too: the others wait for it here
    return result
