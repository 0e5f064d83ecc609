"""One network shared by the ranks of a world (`engine.world`), with torch: each rank's share
of the draw (`plan.share`) and its part of the forward pass; rank 0 gets the output. A world
of one holds the whole network and runs it as one process does.

`data` splits the batch's rows, `pipeline` the layers (`chunk` rows a micro-batch), `tensor`
every weight: the first layer of each pair by columns, the second by rows, one all-reduce a
pair. docs/distributed.md is the guide; `engine.runners` runs, times and compares over them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
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


def part_of(config: Config, world: World, device: torch.device) -> Part:
    """This rank's share of `config`'s network."""
    share = plan.share(config, world.world_size, world.rank)
    features, weights, biases = placed(config, device, share)
    layers = len(weights)
    return Part(config, share, features, tuple(weights), tuple(biases) or (None,) * layers)


def forward(part: Part, world: World, observe: Observe | None = None) -> torch.Tensor | None:
    """The output on rank 0 (None on the others), each rank computing its share; `observe`
    sees each piece of h1.. and output where it lies (for `data`, without `chunk` only)."""
    mode = part.config.parallel if world.distributed else Parallel.NONE
    assert observe is None or mode is not Parallel.DATA or part.config.chunk is None
    if mode is Parallel.PIPELINE:
        return _pipeline(part, world, observe)
    if mode is Parallel.TENSOR:
        return _tensor(part, world, observe)
    rows = part.share.features
    assert rows is not None

    def seen(name: str, h: torch.Tensor) -> None:
        if observe is not None:
            observe(name, (rows, range(h.shape[1])), h)

    output = forward_in_chunks(part.network, part.config.chunk, seen if observe else None)
    if mode is Parallel.NONE:
        return output
    return gathered(world, output, plan.data_rows(part.config, world.world_size), dim=0)


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


def _micro_batches(config: Config) -> list[range]:
    """The rows of each micro-batch: `chunk` rows, or the whole batch."""
    step = config.chunk or config.batch_size
    return [range(a, min(a + step, config.batch_size)) for a in range(0, config.batch_size, step)]


def _pipeline(part: Part, world: World, observe: Observe | None) -> torch.Tensor | None:
    """Each rank its stage's layers, micro-batch by micro-batch; the last stage's output goes to
    rank 0. Every layer sees the rows one process would give it: the same bits.

    At most one micro-batch is in flight from a stage to the next; the last stage's outputs wait
    for rank 0, which takes them once it has sent its last micro-batch.
    """
    config, rank, last = part.config, world.rank, world.world_size - 1
    stage = [i for i, W in enumerate(part.weights) if W is not None]  # (plan.stages)
    weights = [part.weights[i] for i in stage]
    W0 = weights[0]
    assert W0 is not None
    _ring(world, W0)
    for rows in _micro_batches(config):
        if rank == 0:
            assert part.features is not None
            h = part.features[rows.start : rows.stop]
        else:
            h = world.recv(W0.new_empty((len(rows), W0.shape[0])), rank - 1)

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
            world.flush()  # the previous micro-batch has gone
        world.send(h, 0 if rank == last else rank + 1)
    output = None
    if rank == 0:
        output = W0.new_empty((config.batch_size, config.layers[-1]))
        for rows in _micro_batches(config):
            world.recv(output[rows.start : rows.stop], last)
    world.flush()
    return output


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


def _tensor(part: Part, world: World, observe: Observe | None) -> torch.Tensor | None:
    """Column then row parallel, a pair of layers at a time: the first layer's columns are
    split (its activation runs on each rank's columns, or on whole rows after an all-gather
    where it needs them); the second's rows, and an all-reduce sums the partial products."""
    config = part.config
    columns = [plan.split(n, world.world_size) for n in config.layers[1:]]
    output = None
    for rows in _micro_batches(config):
        assert part.features is not None
        h: torch.Tensor | None = part.features[rows.start : rows.stop]
        for i in range(len(part.weights)):
            assert h is not None
            h = _tensor_layer(part, world, i, h, (rows, columns[i]), observe)
        if world.rank == 0:
            assert h is not None
            if output is None:
                output = h.new_empty((config.batch_size, h.shape[1]))
            output[rows.start : rows.stop] = h
    return output


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
