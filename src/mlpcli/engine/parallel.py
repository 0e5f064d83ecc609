"""One network shared by the ranks of a world (`engine.world`), with torch: each rank's share
of the draw (`plan.share`) and its part of the forward pass; rank 0 gets the output. A world
of one holds the whole network and runs it as one process does.

`data` splits the batch's rows, `pipeline` the layers (`chunk` rows a micro-batch), `tensor`
every weight: the first layer of each pair by columns, the second by rows, one all-reduce a
pair. docs/distributed.md is the guide; `engine.runners` runs, times and compares over them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from mlpcli.engine.network import (
    ACTIVATIONS,
    Network,
    affine,
    forward_in_chunks,
    forward_layers,
    placed,
)
from mlpcli.engine.rows import Spans, chunk_spans, feature_chunks
from mlpcli.engine.world import World
from mlpcli.model import plan
from mlpcli.model.activations import WHOLE_ROW
from mlpcli.model.config import Config, Parallel
from mlpcli.model.plan import Region, Share

Observe = Callable[[str, Region, torch.Tensor], None]  # a piece of a named tensor, and where


@dataclass(frozen=True)
class Part:
    """This rank's share of a network, cast and on its device; None where it holds nothing."""

    config: Config
    share: Share
    features: torch.Tensor | None
    weights: tuple[torch.Tensor | None, ...]
    biases: tuple[torch.Tensor | None, ...]  # one per layer, None without bias

    @functools.cached_property
    def network(self) -> Network:
        """The layers this rank holds, as one network (the whole one in a world of one)."""
        assert self.features is not None
        return Network(
            self.features,
            tuple(W for W in self.weights if W is not None),
            tuple(B for B in self.biases if B is not None),
            self.config.activations,
        )

    @property
    def names(self) -> list[str]:
        """Each layer's result: h1 … h(L-1), output."""
        count = len(self.weights)
        return [f"h{i}" for i in range(1, count)] + ["output"]


def part_of(config: Config, world: World, device: torch.device, features: bool = True) -> Part:
    """This rank's share of `config`'s network; without `features`, none of its features (a
    run reads them a micro-batch at a time: `share.features` says which rows it takes)."""
    share = plan.share(config, world.world_size, world.rank)
    held = share if features else dataclasses.replace(share, features=None)
    rows, weights, biases = placed(config, device, held)
    layers = len(weights)
    return Part(config, share, rows, tuple(weights), tuple(biases) or (None,) * layers)


def forward(part: Part, world: World) -> torch.Tensor | None:
    """The output on rank 0 (None on the others) of the features `part` holds, each rank
    computing its share, `chunk` rows at a time or all at once, as `forward_in_chunks` runs
    them (a pipeline's micro-batches)."""
    config = part.config
    mode = config.parallel if world.distributed else Parallel.NONE
    if mode in (Parallel.PIPELINE, Parallel.TENSOR):
        batches = Spans(range(config.batch_size), config.chunk or config.batch_size)
        held = part.features
        features = None if held is None else (held[rows.start : rows.stop] for rows in batches)
        pieces = list(outputs(part, world, batches, features))
        return torch.cat(pieces) if world.rank == 0 else None
    output = forward_in_chunks(part.network, part.config.chunk)
    if mode is Parallel.NONE:
        return output
    return gathered(world, output, plan.data_rows(part.config, world.world_size), dim=0)


def outputs(
    part: Part,
    world: World,
    batches: Sequence[range],
    features: Iterator[torch.Tensor] | None,
    observe: Observe | None = None,
) -> Iterator[torch.Tensor]:
    """A `pipeline` or `tensor` run's output a micro-batch at a time, in row order, on rank 0
    (nothing on the others, which must run it to its end as well). `batches` are the rows of
    each micro-batch, the same on every rank (a run's are the chunks one process would run:
    `rows.chunk_spans`); `features` gives them, in turn, on the ranks that take features (a
    pipeline's first stage, every rank of `tensor`)."""
    if part.config.parallel is Parallel.PIPELINE:
        return _pipeline(part, world, batches, features, observe)
    assert features is not None
    return _tensor(part, world, batches, features, observe)


def micro_batches(
    part: Part, device: torch.device
) -> tuple[Sequence[range], Iterator[torch.Tensor] | None]:
    """A `pipeline` or `tensor` run's micro-batches, the chunks one process would run
    (`rows.chunk_spans`), and their features in turn where this rank takes them (None on a
    pipeline's later stages): read from their file as `run` reads them, or cut from the drawn
    ones."""
    config, rows = part.config, part.share.features
    drawn = part.features if part.features is not None else torch.empty(0)
    features = None if rows is None else feature_chunks(config, drawn, device, rows)
    return chunk_spans(config, range(config.batch_size)), features


def gathered(
    world: World, piece: torch.Tensor, spans: Sequence[range], dim: int
) -> torch.Tensor | None:
    """Each rank's piece of a tensor, which holds `spans[rank]` of it along `dim` (0: rows,
    1: columns), put together on rank 0; None on the others."""
    if world.rank != 0:
        if spans[world.rank]:
            world.send(piece, 0)
            world.flush()
        return None
    parts = [piece]
    for rank, span in enumerate(spans[1:], 1):
        if span:
            shape = list(piece.shape)
            shape[dim] = len(span)
            parts.append(world.recv(piece.new_empty(shape), rank))
    return torch.cat(parts, dim=dim)


def _pipeline(
    part: Part,
    world: World,
    batches: Sequence[range],
    features: Iterator[torch.Tensor] | None,
    observe: Observe | None,
) -> Iterator[torch.Tensor]:
    """Each rank its stage's layers, micro-batch by micro-batch, the last stage's outputs to
    rank 0: every layer sees the rows one process would give it, so the same bits.

    At most one micro-batch is in flight from a stage to the next. Rank 0 takes each output
    once it has sent the micro-batch `world_size - 1` after it (the pipeline stays full), and
    the last stage sends each output once it has the next micro-batch: each pair of ranks then
    sends and receives in the same order on both sides (with two ranks the pair 0, 1 carries
    both ways; NCCL matches a pair's operations in order), and no rank holds more than two
    micro-batches' outputs.
    """
    rank, last = world.rank, world.world_size - 1
    stage = _Stage(part, [i for i, W in enumerate(part.weights) if W is not None], observe)
    _ring(world, stage.first)
    finished: torch.Tensor | None = None  # the last stage's output, sent once the next comes
    for k, (rows, h) in enumerate(_stage_inputs(world, stage.first, batches, features)):
        if rank == last:
            _sent(world, finished, 0)  # the output before it, now that this one has come
            finished = stage.forward(h, rows)
        else:
            _sent(world, stage.forward(h, rows), rank + 1)
        if rank == 0 and k >= last:
            yield stage.output(world, batches[k - last])
    _sent(world, finished, 0)  # the last stage's last
    if rank == 0:
        for rows in batches[max(0, len(batches) - last) :]:
            yield stage.output(world, rows)
    world.flush()


@dataclass(frozen=True)
class _Stage:
    """A pipeline rank's layers (their indices, `plan.stages`), and who sees their results."""

    part: Part
    layers: list[int]
    observe: Observe | None

    @property
    def first(self) -> torch.Tensor:
        """The stage's first weight: its input's width, the dtype and device of its tensors."""
        W = self.part.weights[self.layers[0]]
        assert W is not None
        return W

    def forward(self, h: torch.Tensor, rows: range) -> torch.Tensor:
        """The stage's layers on `rows` of the batch, each result seen where it lies."""
        part, observe = self.part, self.observe

        def seen(name: str, h: torch.Tensor) -> None:
            if observe is not None:
                observe(name, (rows, range(h.shape[1])), h)

        return forward_layers(
            h,
            [part.weights[i] for i in self.layers],  # type: ignore[misc]
            [part.biases[i] for i in self.layers],
            [part.config.activations[i] for i in self.layers],
            [part.names[i] for i in self.layers],
            seen,
        )

    def output(self, world: World, rows: range) -> torch.Tensor:
        """On rank 0: the output of `rows`, from the last stage."""
        empty = self.first.new_empty((len(rows), self.part.config.layers[-1]))
        return world.recv(empty, world.world_size - 1)


def _stage_inputs(
    world: World,
    first: torch.Tensor,
    batches: Sequence[range],
    features: Iterator[torch.Tensor] | None,
) -> Iterator[tuple[range, torch.Tensor]]:
    """Each micro-batch's rows and the stage's input: the features on the first stage (read
    to the file's end, where its rows are counted), else what the stage before sent."""
    if features is not None:
        yield from zip(batches, features, strict=True)
        return
    for rows in batches:
        yield rows, world.recv(first.new_empty((len(rows), first.shape[0])), world.rank - 1)


def _sent(world: World, tensor: torch.Tensor | None, to: int) -> None:
    """`tensor` (if any) sent to rank `to` once what this rank sent before has gone: at most
    one in flight."""
    if tensor is not None:
        world.flush()
        world.send(tensor, to)


def _ring(world: World, like: torch.Tensor) -> None:
    """One value round the ranks in order, 0 → 1 → … → last → 0: connects each pair that the
    pipeline uses in an order without a cycle (NCCL makes a pair's connection on its first use,
    and both ends wait for it)."""
    token = like.new_zeros(1)
    rank, last = world.rank, world.world_size - 1
    if rank > 0:
        world.recv(token, rank - 1)
    world.send(token, 0 if rank == last else rank + 1)
    if rank == 0:
        world.recv(token, last)
    world.flush()


def _tensor(
    part: Part,
    world: World,
    batches: Sequence[range],
    features: Iterator[torch.Tensor],
    observe: Observe | None,
) -> Iterator[torch.Tensor]:
    """Column then row parallel, a pair of layers at a time: the first layer's columns are
    split (its activation runs on each rank's columns, or on whole rows after an all-gather
    where it needs them); the second's rows, and an all-reduce sums the partial products."""
    config = part.config
    columns = [plan.split(n, world.world_size) for n in config.layers[1:]]
    for rows, h in zip(batches, features, strict=True):
        out: torch.Tensor | None = h
        for i in range(len(part.weights)):
            assert out is not None
            out = _tensor_layer(part, world, i, out, (rows, columns[i]), observe)
        if world.rank == 0:
            assert out is not None
            yield out


def _tensor_layer(
    part: Part,
    world: World,
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
    apply, rank = ACTIVATIONS[part.config.activations[i]].apply, world.rank
    mine = columns[rank]
    if not plan.is_column(i):  # partial sums of every column, summed over the ranks
        z = h @ W  # (rows, ni)
        world.all_reduce(z)
        if B is not None:
            z.add_(B)
        out = apply(z)
        if observe is not None and rank == 0:
            observe(name, (rows, range(out.shape[1])), out)
        return out
    if i == len(part.weights) - 1:  # the last layer's columns, on rank 0
        whole = gathered(world, affine(h, W, B), columns, dim=1)
        if whole is None:
            return None
        last = apply(whole)
        if observe is not None:
            observe(name, (rows, range(last.shape[1])), last)
        return last
    if part.config.activations[i] in WHOLE_ROW:  # whole rows, then this rank's columns again
        full = apply(world.all_gather_columns(affine(h, W, B), columns))
        if observe is not None and rank == 0:
            observe(name, (rows, range(full.shape[1])), full)
        return full[:, mine.start : mine.stop].contiguous()
    out = apply(affine(h, W, B))  # (rows, this rank's columns)
    if observe is not None:
        observe(name, (rows, mine), out)
    return out


def own_rows(config: Config, world: World) -> range:
    """The rows of the batch that this rank runs in a `data` run."""
    return plan.data_rows(config, world.world_size)[world.rank]
