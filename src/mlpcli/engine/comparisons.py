"""`compare`'s runs, with torch: every tensor of a network against one process's, a chunk of
rows at a time, at the reference tensor's scale: one device against others side by side, or
the ranks of a run against one process (a `data` run's ranks sending each chunk of their rows
to rank 0; `pipeline` and `tensor` put together on rank 0 a micro-batch at a time). Written
once over a world, as `runners`' run and bench are.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import overload

import numpy as np
import torch

from mlpcli.engine import devices, parallel
from mlpcli.engine.network import TORCH_DTYPES, Network, build, forward
from mlpcli.engine.parallel import Part, part_of
from mlpcli.engine.rows import chunk_spans, feature_chunks
from mlpcli.engine.runners import to_numpy
from mlpcli.engine.world import ALONE, Alone, World
from mlpcli.model import memory, plan
from mlpcli.model.closeness import PerTensor, Tolerance
from mlpcli.model.config import Config, Device, Parallel
from mlpcli.model.plan import Region
from mlpcli.model.results import CompareResult, TensorDiff
from mlpcli.model.shapes import tensor_shapes

Named = dict[str, np.ndarray]  # a chunk's tensors by name: features, W1.., B1.., h1.., output


@overload
def compare(
    config: Config,
    tolerance: Tolerance,
    world: Alone = ...,
    specs: Sequence[Device] = ...,
    source: str = ...,
) -> CompareResult: ...
@overload
def compare(
    config: Config,
    tolerance: Tolerance,
    world: World,
    specs: Sequence[Device] = ...,
    source: str = ...,
) -> CompareResult | None: ...
def compare(
    config: Config,
    tolerance: Tolerance,
    world: World = ALONE,
    specs: Sequence[Device] = (),
    source: str = "--devices",
) -> CompareResult | None:
    """Every tensor of `config`'s run against one process's on the first device, at the
    reference tensor's scale: alone, the run on each further device of `specs` (named in
    `source`, for the error when one is missing), every device a chunk of rows at a time
    (`memory.compare_rows`); over a group in `data` mode, each rank's rows a chunk at a time
    as its run computes them, against one process's chunks of them (`_compared_by_rows`); in
    `pipeline` and `tensor` mode, the ranks' tensors put together on rank 0 a micro-batch at a
    time, against one process's chunk of the same rows on rank 0's device
    (`_compared_by_micro_batches`). The result on rank 0, None on the others.
    """
    whole = dataclasses.replace(config, chunk=None)  # the config a comparison's record shows
    if not world.distributed:
        chunked = dataclasses.replace(config, chunk=memory.compare_rows(config, len(specs)))
        placed = [chunked.on_device(spec, source) for spec in specs]
        on = [devices.prepare(one, streamed=True) for one in placed]  # each there before work
        runs = zip(*map(_named_chunks, placed), strict=True)
        return _compared(whole, tolerance, str(on[0]), [str(d) for d in on[1:]], runs)
    result = (
        _compared_by_rows(config, tolerance, world)
        if config.parallel is Parallel.DATA
        else _compared_by_micro_batches(config, tolerance, world)
    )  # their record shows the chunk their run takes
    world.complete()  # rank 0's reference too: the others wait for it here
    return result


def _compared(
    config: Config,
    tolerance: Tolerance,
    reference: str,
    labels: Sequence[str],
    chunks: Iterable[Sequence[Mapping[str, np.ndarray]]],
) -> CompareResult:
    """Each run's tensors (`labels`) against the reference run's, taken a chunk at a time:
    each of `chunks` is the reference's tensors and then each run's, by name."""
    closeness: list[dict[str, PerTensor]] = [{} for _ in labels]
    for first, *others in chunks:
        for by_name, tensors in zip(closeness, others, strict=True):
            for name, values in tensors.items():
                by_name.setdefault(name, PerTensor()).add(values, first[name])
    diffs = tuple(
        TensorDiff(name, (each.rows, each.columns), label, each.result(tolerance))
        for label, by_name in zip(labels, closeness, strict=True)
        for name, each in by_name.items()
    )
    return CompareResult(config, (reference, *labels), tolerance, diffs)


def _compared_by_rows(config: Config, tolerance: Tolerance, world: World) -> CompareResult | None:
    """A `data` run's tensors against one process's on rank 0, a chunk at a time: each rank
    runs its own rows as its run does and sends each chunk's tensors to rank 0 (waiting until
    they are taken), which compares them in row order with its single process's chunks, a
    piece of at most `memory.compare_rows` rows at a time, and each rank's weights with its
    own (the worst copy is shown). Nothing is held whole; the result on rank 0."""
    mine = world.on_device(config)
    device = devices.prepare(mine, streamed=True)
    with devices.memory_errors(device):
        network = build(mine, device, features=config.inputs is None)
        own = _chunks(mine, network, device, parallel.own_rows(config, world))
        if world.rank != 0:
            for chunk in own:
                for name in (t.name for t in tensor_shapes(config) if t.name in chunk):
                    world.send(chunk[name], 0)
                world.flush()
            return None
        received = [_received(mine, world, rank, device) for rank in range(1, world.world_size)]
        reference = _chunks(mine, network, device, range(config.batch_size))
        first = next(reference)
        weights = {name: _float64(first.pop(name)) for name in list(first) if _is_weight(name)}
        copies: dict[str, list[PerTensor]] = {}
        closeness: dict[str, PerTensor] = {}
        candidate = _weights_compared(itertools.chain(own, *received), weights, copies)
        most = memory.compare_rows(config, 2)
        for got, expected in _aligned(candidate, itertools.chain([first], reference), most):
            for name, values in got.items():
                each = closeness.setdefault(name, PerTensor())
                each.add(_float64(values), _float64(expected[name]))
    for name, each_copy in copies.items():
        closeness[name] = max(each_copy, key=lambda copy: copy.result(tolerance).max_abs)
    label = _ranks_label(device, world, config)
    diffs = tuple(
        TensorDiff(t.name, t.shape, label, closeness[t.name].result(tolerance))
        for t in tensor_shapes(config)
    )
    return CompareResult(config, (str(device), label), tolerance, diffs)


def _ranks_label(device: torch.device, world: World, config: Config) -> str:
    """How compare's table names a run over ranks: its device, ranks and mode."""
    return f"{device} ×{world.world_size} ({config.parallel.value})"


def _received(
    config: Config, world: World, rank: int, device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    """Rank `rank`'s chunks of its rows, as `_chunks` gives them there, received on rank 0."""
    dtype = TORCH_DTYPES[config.dtype]
    rows = plan.data_rows(config, world.world_size)[rank]
    for i, span in enumerate(chunk_spans(config, rows)):
        chunk = {}
        for tensor in tensor_shapes(config):
            if _is_weight(tensor.name) and i:  # with the first chunk only
                continue
            shape = tensor.shape if _is_weight(tensor.name) else (len(span), tensor.shape[1])
            chunk[tensor.name] = world.recv(torch.empty(shape, dtype=dtype, device=device), rank)
        yield chunk


def _weights_compared(
    chunks: Iterable[dict[str, torch.Tensor]],
    weights: Named,
    copies: dict[str, list[PerTensor]],
) -> Iterator[dict[str, torch.Tensor]]:
    """`chunks` without their weights, each copy of which is compared with `weights` into
    `copies` as it comes (one a rank)."""
    for chunk in chunks:
        for name in [name for name in chunk if _is_weight(name)]:
            copy = PerTensor()
            copy.add(_float64(chunk.pop(name)), weights[name])
            copies.setdefault(name, []).append(copy)
        yield chunk


def _aligned(
    mine: Iterable[dict[str, torch.Tensor]],
    theirs: Iterator[dict[str, torch.Tensor]],
    most: int,
) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """Two runs' tensors over the same rows from the same first row, piece by piece where
    their chunks differ, at most `most` rows a piece."""
    done, their_start, their_end = 0, 0, 0
    their_chunk: dict[str, torch.Tensor] = {}
    for chunk in mine:
        start, end = done, done + len(chunk["features"])
        while done < end:
            if their_end <= done:
                their_chunk = next(theirs)
                their_start, their_end = their_end, their_end + len(their_chunk["features"])
                continue
            stop = min(end, their_end, done + most)
            yield (
                _rows(chunk, done - start, stop - start),
                _rows(their_chunk, done - their_start, stop - their_start),
            )
            done = stop


def _rows(chunk: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    """Rows `start` to `stop` of each tensor of a chunk."""
    return {name: values[start:stop] for name, values in chunk.items()}


def _is_weight(name: str) -> bool:
    """Whether a tensor is a weight or a bias (W1.., B1..), not one of rows."""
    return name[0] in "WB"


def _float64(tensor: torch.Tensor) -> np.ndarray:
    return to_numpy(tensor, np.float64)


def _chunks(
    config: Config, network: Network, device: torch.device, rows: range
) -> Iterator[dict[str, torch.Tensor]]:
    """Every named tensor of a run of `rows`, a chunk at a time as a run takes them: each
    chunk's features, h1.. and output, with W.. and B.. in the first."""
    weights = dict(itertools.islice(network.named(), 1, None))  # all but the features
    for features in feature_chunks(config, network.features, device, rows):
        chunk = {"features": features, **weights}

        def observe(name: str, h: torch.Tensor, chunk: dict[str, torch.Tensor] = chunk) -> None:
            chunk[name] = h

        forward(dataclasses.replace(network, features=features), observe)
        weights = {}
        yield chunk


def _named_chunks(config: Config) -> Iterator[Named]:
    """Every named tensor of a run on `config`'s device, as float64 arrays on the CPU, a
    chunk of rows at a time (`_chunks`)."""
    device = devices.resolve(config)
    with devices.memory_errors(device):
        network = build(config, device, features=config.inputs is None)
        for chunk in _chunks(config, network, device, range(config.batch_size)):
            yield {name: _float64(tensor) for name, tensor in chunk.items()}


def _compared_by_micro_batches(
    config: Config, tolerance: Tolerance, world: World
) -> CompareResult | None:
    """A `pipeline` or `tensor` run's tensors against one process's on rank 0, a micro-batch
    at a time: the run's (`memory.chunk_rows`), or fewer where the copies of its tensors that
    rank 0 holds would not fit compare's budget (`memory.compare_rows`: the reference's, the
    ranks' pieces as they come, a buffer a rank for them, and as put together); its features
    read from their file as a run reads them (`_put_together`). No tensor of rows is held
    whole; the result on rank 0, which holds its share and the whole network beside it."""
    copies = 4 + world.world_size
    rows = min(memory.chunk_rows(config), memory.compare_rows(config, copies))
    chunked = world.on_device(dataclasses.replace(config, chunk=rows))
    single = dataclasses.replace(chunked, parallel=Parallel.NONE)
    beside = single if world.rank == 0 else None  # the reference
    device = devices.prepare(chunked, world, streamed=True, beside=beside)
    with devices.memory_errors(device):
        part = part_of(chunked, world, device, features=config.inputs is None)
        candidate = _put_together(part, world, device)
        if world.rank != 0:
            for _ in candidate:  # the ranks' passes: nothing put together here
                pass
            return None
        reference = _named_chunks(single)
        label = _ranks_label(device, world, config)
        runs = zip(reference, candidate, strict=True)
        return _compared(config, tolerance, str(device), [label], runs)


def _put_together(part: Part, world: World, device: torch.device) -> Iterator[Named]:
    """Every named tensor of a `pipeline` or `tensor` run, as float64 arrays on rank 0 (nothing
    on the others), a micro-batch at a time (`parallel.micro_batches`): each micro-batch runs
    through the ranks as a pass of its own, then every rank's pieces of its tensors (the
    weights' with the first) go to rank 0 in one gather, which puts them in place."""
    config = part.config
    batches, features = parallel.micro_batches(part, device)
    pieces = list(_weight_pieces(part))

    def observe(name: str, region: Region, tensor: torch.Tensor) -> None:
        pieces.append((name, region, _float64(tensor)))

    for rows in batches:
        taken = None if features is None else next(features)
        if taken is not None and world.rank == 0:
            observe("features", (rows, range(config.layers[0])), taken)
        given = None if taken is None else iter([taken])
        for _ in parallel.outputs(part, world, [rows], given, observe):
            pass  # rank 0's output: seen already, where it was computed
        gathered = world.gather(pieces)
        pieces = []
        if gathered is not None:
            first = rows.start == 0  # with the weights' pieces
            yield _in_place(config, rows, itertools.chain.from_iterable(gathered), first)
    if features is not None:
        next(features, None)  # read to the file's end, where its rows are counted


def _weight_pieces(part: Part) -> Iterator[tuple[str, Region, np.ndarray]]:
    """This rank's pieces of W1.. and B1.., each with its region of the whole."""
    share = part.share
    for i, (W, region) in enumerate(zip(part.weights, share.weights, strict=True), 1):
        if W is not None and region is not None:
            yield f"W{i}", region, _float64(W)
    for i, (B, columns) in enumerate(zip(part.biases, share.biases, strict=False), 1):
        if B is not None and columns is not None:
            yield f"B{i}", (range(1), columns), _float64(B)


def _in_place(
    config: Config, rows: range, pieces: Iterable[tuple[str, Region, np.ndarray]], first: bool
) -> Named:
    """The tensors of a micro-batch of `rows` from the ranks' `pieces`, in the notebook's order
    (the weights with the `first`): a cell no piece covers stays NaN, and is no match."""
    shapes = {
        t.name: t.shape if _is_weight(t.name) else (len(rows), t.shape[1])
        for t in tensor_shapes(config)
        if first or not _is_weight(t.name)
    }
    tensors: Named = {}
    for name, (at, columns), values in pieces:
        if values.shape == shapes[name]:  # the whole of it, from one rank
            tensors[name] = values
            continue
        top = 0 if _is_weight(name) else rows.start  # the row of the whole tensor it starts at
        whole = tensors.setdefault(name, np.full(shapes[name], np.nan))
        whole[at.start - top : at.stop - top, columns.start : columns.stop] = values
    return {name: tensors[name] for name in shapes}  # every one: a piece of each came
