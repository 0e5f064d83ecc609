"""How N ranks share one network: the rows, layers or columns each holds, its bytes and what it
sends. Arithmetic only, no torch: `shapes --nproc` plans with it and a parallel run follows it.

docs/distributed.md explains the modes; every split is contiguous, the first ranks one larger.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlpcli.errors import ConfigError
from mlpcli.model import memory
from mlpcli.model.activations import WHOLE_ROW
from mlpcli.model.config import Config, Parallel, Rng

Region = tuple[range, range]  # the rows and columns of a full tensor that a rank holds


@dataclass(frozen=True)
class Share:
    """What one rank holds of the contract's draw: features rows, weight regions, bias columns."""

    features: range | None
    weights: tuple[Region | None, ...]  # Wi: (n(i-1), ni)
    biases: tuple[range | None, ...]  # Bi: (1, ni); empty without bias

    @property
    def layers(self) -> tuple[int, ...]:
        """The weight layers (1-based: W1 is layer 1) of which it holds all or a part."""
        return tuple(i for i, region in enumerate(self.weights, 1) if region is not None)


@dataclass(frozen=True)
class RankPlan:
    """One rank's part of a parallel run, in bytes of the config's dtype."""

    rank: int
    holds: str  # for people: "rows 0-31 of 64", "layers 1-3", "columns 0-511 of W1 W3, …"
    share: Share  # for scripts: the same as numbers (`layers` and the regions of each W)
    weight_bytes: int  # its weights and biases
    activation_bytes: int  # features, two working activations of a micro-batch, the output
    sent_bytes: int  # what it sends per forward pass (ring collectives for `tensor`)
    draw_bytes: int  # its share as drawn, float32, before the cast (with the whole features)
    draw_on_device: bool  # `rng: device` (or the CPU): the draw is in the device's memory

    @property
    def total_bytes(self) -> int:
        """The device memory it needs at its peak: running, or building (the float32 draw and
        the cast copy side by side)."""
        running = self.weight_bytes + self.activation_bytes
        return max(running, self.draw_bytes + self.weight_bytes) if self.draw_on_device else running


@dataclass(frozen=True)
class ParallelPlan:
    """Every rank's part, and whether each fits a device of `device_memory` bytes."""

    mode: Parallel
    world_size: int
    device_memory: int | None  # None: not known here
    ranks: tuple[RankPlan, ...]

    @property
    def fits(self) -> bool | None:
        """Whether every rank fits its device; None when the device's memory is not known."""
        if self.device_memory is None:
            return None
        return all(rank.total_bytes <= self.device_memory for rank in self.ranks)


def split(total: int, parts: int) -> tuple[range, ...]:
    """`total` items over `parts`, contiguous, the first `total % parts` parts one larger."""
    size, extra = divmod(total, parts)
    starts = [part * size + min(part, extra) for part in range(parts + 1)]
    return tuple(range(a, b) for a, b in itertools.pairwise(starts))


def data_rows(config: Config, world: int) -> tuple[range, ...]:
    """Each rank's rows for `data`: whole chunks of the rows a run takes at a time
    (`memory.chunk_rows`: `chunk`, or what the memory budget gives), so that every rank
    computes what one process would (bit for bit). A batch of one chunk splits evenly, and so
    does one of fewer budget chunks than ranks (no rank idle where the user set no `chunk`)."""
    batch, chunk = config.batch_size, memory.chunk_rows(config)
    too_few = config.chunk is None and math.ceil(batch / chunk) < world
    if chunk >= batch or too_few:
        return split(batch, world)
    chunks = split(math.ceil(batch / chunk), world)
    return tuple(range(min(c.start * chunk, batch), min(c.stop * chunk, batch)) for c in chunks)


def layer_bytes(config: Config) -> list[int]:
    """Each weight layer's weight and bias bytes."""
    bias = config.bias
    return [
        (n_in * n_out + (n_out if bias else 0)) * config.dtype.itemsize
        for n_in, n_out in itertools.pairwise(config.layers)
    ]


def stages(config: Config, world: int) -> tuple[range, ...]:
    """Each rank's layers (0-based) for `pipeline`: contiguous, non-empty, the largest stage's
    bytes as small as can be (a binary search on that bound, each stage packed greedily)."""
    sizes = layer_bytes(config)
    if len(sizes) < world:
        raise ConfigError(
            config.where("parallel"),
            "parallel",
            f"pipeline over {world} ranks needs at least {world} weight layers; this network "
            f"has {len(sizes)} (use fewer ranks, or parallel=tensor)",
        )
    low, high = max(sizes), sum(sizes)
    while low < high:
        bound = (low + high) // 2
        low, high = (low, bound) if _packed(sizes, world, bound) is not None else (bound + 1, high)
    packed = _packed(sizes, world, low)
    assert packed is not None
    return packed


def _packed(sizes: Sequence[int], world: int, bound: int) -> tuple[range, ...] | None:
    """`world` non-empty contiguous stages of at most `bound` bytes each, or None."""
    result, start = [], 0
    for stage in range(world):
        left_after = world - stage - 1  # stages still to fill, a layer each at least
        stop, total = start, 0
        while stop < len(sizes) - left_after and total + sizes[stop] <= bound:
            total += sizes[stop]
            stop += 1
        if stop == start:
            return None
        result.append(range(start, stop))
        start = stop
    return tuple(result) if start == len(sizes) else None


def is_column(layer: int) -> bool:
    """Whether layer `layer` (0-based) splits its columns under `tensor`: the first of each pair,
    and a last layer without a pair; the second of a pair splits its rows."""
    return layer % 2 == 0


def share(config: Config, world: int, rank: int) -> Share:
    """What `rank` of `world` holds of `config`'s draw."""
    sizes = config.layers
    whole = tuple((range(a), range(b)) for a, b in itertools.pairwise(sizes))
    columns = tuple(range(n) for n in sizes[1:]) if config.bias else ()
    features = None if config.batch is None else range(config.batch)  # None: read, not drawn
    if config.parallel is Parallel.NONE or world == 1:
        return Share(features, whole, columns)
    if config.parallel is Parallel.DATA:
        return Share(data_rows(config, world)[rank], whole, columns)
    if config.parallel is Parallel.PIPELINE:
        mine = stages(config, world)[rank]
        return Share(
            features if rank == 0 else None,
            tuple(region if i in mine else None for i, region in enumerate(whole)),
            tuple(c if i in mine else None for i, c in enumerate(columns)),
        )
    weights, biases = [], []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        if is_column(i):
            held = split(n_out, world)[rank]
            weights.append((range(n_in), held))
            biases.append(held)
        else:
            weights.append((split(n_in, world)[rank], range(n_out)))
            biases.append(range(n_out))
    return Share(features, tuple(weights), tuple(biases) if config.bias else ())


def drawn(config: Config, share: Share) -> Share:
    """`share` without what a file gives (`inputs`, `weights`): that is drawn and dropped."""
    if config.inputs is not None:
        share = dataclasses.replace(share, features=None)
    if config.weights is not None:
        share = Share(share.features, (None,) * len(share.weights), (None,) * len(share.biases))
    return share


def scratch_values(config: Config, share: Share) -> int:
    """The draw's scratch space for what `share` (as `drawn` gives it) does not keep whole:
    the values of the largest tensor drawn and dropped, or cut to a share; row 0 of the
    features at least (it is drawn first, held or not)."""
    pairs = itertools.pairwise(config.layers)
    not_whole = [
        rows * columns
        for (rows, columns), region in zip(pairs, share.weights, strict=True)
        if region is None or (len(region[0]), len(region[1])) != (rows, columns)
    ]
    biases = zip(config.layers[1:], share.biases, strict=False)
    not_whole += [n for n, columns in biases if len(columns or ()) < n]
    return max([config.layers[0], *not_whole])


def plan(
    config: Config,
    world: int,
    device_memory: int | None,
    *,
    held: bool = True,
    streamed: bool = True,
) -> ParallelPlan:
    """Every rank's holdings, bytes and traffic for `config` over `world` ranks: a run that
    is `streamed` (a micro-batch at a time, `memory.chunk_rows`; else `chunk` rows or the
    whole batch at once, its features held), its output `held` whole on rank 0 (as `-f json`
    holds it; else a micro-batch at a time)."""
    return ParallelPlan(
        config.parallel,
        world,
        device_memory,
        tuple(
            rank_plan(config, world, rank, held=held, streamed=streamed) for rank in range(world)
        ),
    )


def rank_plan(config: Config, world: int, rank: int, *, held: bool, streamed: bool) -> RankPlan:
    """One rank's holdings, bytes and traffic, as `plan` gives every rank's."""
    mine = share(config, world, rank)
    itemsize, sizes, batch = config.dtype.itemsize, config.layers, config.batch_size
    weight_bytes = itemsize * _weight_values(mine)
    layers = [i for i, region in enumerate(mine.weights) if region is not None]
    rows = len(mine.features) if mine.features is not None else batch
    step = memory.chunk_rows(config) if streamed else config.chunk or batch
    micro = min(rows, step)  # a run's chunk, a pipeline's micro-batch
    widest = max(max(sizes[i], sizes[i + 1]) for i in layers)
    to_rank_0 = rows if config.parallel is Parallel.DATA and held else 0  # a rank's rows' output
    output_rows = (batch if held else micro) if rank == 0 else to_rank_0
    read = streamed and config.inputs is not None  # a micro-batch at a time; else held whole
    features = 0 if mine.features is None else (micro if read else rows) * sizes[0]
    activation_bytes = itemsize * (features + 2 * micro * widest + output_rows * sizes[-1])
    kept = drawn(config, mine)
    drawn_features = 0 if kept.features is None else batch * sizes[0]  # drawn whole, then cut
    scratch = scratch_values(config, kept)  # for what is drawn and dropped, or cut
    return RankPlan(
        rank,
        _holds(config, mine, world),
        mine,
        weight_bytes,
        activation_bytes,
        _sent(config, world, rank, mine) * itemsize,
        draw_bytes=4 * (_weight_values(kept) + drawn_features + scratch),
        draw_on_device=config.rng is Rng.DEVICE or config.device.type == "cpu",
    )


def _weight_values(held: Share) -> int:
    """The values of the weights and biases a share holds."""
    return sum(len(r) * len(c) for r, c in filter(None, held.weights)) + sum(
        len(c) for c in held.biases if c is not None
    )


def _holds(config: Config, held: Share, world: int) -> str:
    """A rank's share in words."""
    if config.parallel is Parallel.NONE or world == 1:
        return "everything"
    if config.parallel is Parallel.DATA:
        assert held.features is not None
        rows = held.features
        if not rows:
            return f"no rows of {config.batch_size}"
        return f"row{'' if len(rows) == 1 else 's'} {_span(rows)} of {config.batch_size}"
    regions = [(i, region) for i, region in enumerate(held.weights, 1) if region is not None]
    if config.parallel is Parallel.PIPELINE:
        first, last = regions[0][0], regions[-1][0]
        return f"layer {first}" if first == last else f"layers {first}-{last}"
    by_span: dict[str, list[str]] = {}  # "columns 0-511": ["W1", "W3"]
    for i, (rows, columns) in regions:
        cut = f"columns {_span(columns)}" if is_column(i - 1) else f"rows {_span(rows)}"
        by_span.setdefault(cut, []).append(f"W{i}")
    return ", ".join(f"{cut} of {' '.join(names)}" for cut, names in by_span.items())


def _span(items: range) -> str:
    if not items:
        return "none"
    return str(items.start) if len(items) == 1 else f"{items.start}-{items.stop - 1}"


def _sent(config: Config, world: int, rank: int, held: Share) -> int:
    """Values `rank` sends in one forward pass."""
    batch, sizes = config.batch_size, config.layers
    if config.parallel is Parallel.NONE or world == 1:
        return 0
    if config.parallel is Parallel.DATA:
        assert held.features is not None
        return 0 if rank == 0 else len(held.features) * sizes[-1]
    if config.parallel is Parallel.PIPELINE:
        last = max(i for i, region in enumerate(held.weights) if region is not None)
        is_last = rank == world - 1
        return 0 if is_last and rank == 0 else batch * sizes[last + 1]
    sent = 0
    count = len(sizes) - 1
    for i in range(count):
        n_out = sizes[i + 1]
        if not is_column(i):  # a ring all-reduce of the partial sums
            sent += 2 * (world - 1) * batch * n_out // world
            continue
        mine = len(split(n_out, world)[rank])
        if i == count - 1:  # the last layer's columns go to rank 0
            sent += 0 if rank == 0 else batch * mine
        elif config.activations[i] in WHOLE_ROW:  # all-gathered before the activation
            sent += (world - 1) * batch * mine
    return sent
