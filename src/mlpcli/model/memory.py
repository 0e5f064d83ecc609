"""How much memory a run needs, from the shapes alone; no torch. What the machine has, and
the check of one against the other, are `engine.host`'s.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from mlpcli.model.config import Config, DType, Rng

CHUNK_BYTES = 128 << 20  # a chunk's features and activations on a GPU (`cuda`; `auto` where
# torch may see one: a run settles `auto` with torch first, devices.settled; host.settled
# without it, where torch surely sees none)
# On the CPU a smaller chunk stays in its caches: [64, 256, 256, 1] ran 1 GiB of features in
# 6.9-7.9 s with chunks of 4,096-8,192 rows against 9.1-10.5 s with 26,214 (128 MiB), 80 MiB
# smaller; wider layers took the same time at any chunk (2026-12-06, docs/performance.md).
CPU_CHUNK_BYTES = 32 << 20
HELD_BYTES = 1 << 30  # the most of an output a run holds whole (JSON, a table of every value)


def chunk_rows(config: Config) -> int:
    """Rows of features a forward pass takes at a time: `chunk` where the config sets it, else
    as many as keep a chunk within the device's budget (CPU_CHUNK_BYTES on the CPU, else
    CHUNK_BYTES) at the widest layer: two activations, and for features from a file the
    features as read and as cast (drawn ones are held whole)."""
    if config.chunk is not None:
        return _within_batch(config, config.chunk)
    read = 2 * config.layers[0] if config.inputs is not None else 0
    per_row = 8 * (2 * max(config.layers) + read)
    budget = CPU_CHUNK_BYTES if config.device.type == "cpu" else CHUNK_BYTES
    return max(1, _within_batch(config, budget // per_row))


def _within_batch(config: Config, rows: int) -> int:
    """At most the batch's rows (any number where they are counted as they are read)."""
    return rows if config.batch is None else min(rows, config.batch)


def reads_per_pass(config: Config, cuda_graph: bool) -> bool:
    """Whether each pass that `bench` times reads the features from their file a chunk at a
    time, as `run` does: a file of more rows than one chunk (`chunk_rows`). Drawn features, a
    file's that fit one chunk, and any a CUDA graph replays, are made once and held for every
    pass."""
    return not cuda_graph and config.inputs is not None and chunk_rows(config) < config.batch_size


def compare_rows(config: Config, copies: int) -> int:
    """Rows that `compare` runs at a time: as many as keep `copies` of every tensor of a chunk
    (features, h1.., output; one a device side by side) as float64 arrays on the CPU within
    CHUNK_BYTES; `chunk` where the config sets it and it is smaller."""
    per_row = copies * 8 * sum(config.layers)
    rows = max(1, min(config.batch_size, CHUNK_BYTES // per_row))
    return rows if config.chunk is None else min(rows, config.chunk)


def output_bytes(config: Config) -> int:
    """The bytes of a whole output as a run holds it (bfloat16 as float32)."""
    return config.batch_size * config.layers[-1] * max(config.dtype.itemsize, 4)


def kept_bytes(config: Config) -> int:
    """The bytes of every tensor of a run (features, weights, biases, h1.., output) in its
    dtype: what `run -o x.safetensors` holds and writes."""
    params = sum(
        n_in * n_out + (n_out if config.bias else 0)
        for n_in, n_out in itertools.pairwise(config.layers)
    )
    return (config.batch_size * sum(config.layers) + params) * config.dtype.itemsize


@dataclass(frozen=True)
class MemoryEstimate:
    """What a run holds at its peak, in bytes."""

    draw: int  # features, weights and biases as drawn: float32, on the CPU
    placed: int  # the same in the config's dtype, on the device
    activations: int  # two activation buffers of a chunk at the widest layer, and the output


def estimate(config: Config, streamed: bool = False, held: bool = False) -> MemoryEstimate:
    """The memory a pass of `config` needs: all of it held (bench, compare, export), or
    `streamed` as `run` streams it (features read a chunk at a time, the output `held` whole
    only where its format needs it)."""
    rows = (
        chunk_rows(config)
        if streamed
        else min(config.batch_size, config.chunk or config.batch_size)
    )
    from_file = streamed and config.inputs is not None
    values = (0 if from_file else config.batch_size * config.layers[0]) + sum(
        n_in * n_out + (n_out if config.bias else 0)
        for n_in, n_out in itertools.pairwise(config.layers)
    )
    itemsize = config.dtype.itemsize
    read = rows * config.layers[0] * (8 + itemsize) if from_file else 0
    collected = output_bytes(config) if (held if streamed else rows < config.batch_size) else 0
    return MemoryEstimate(
        draw=4 * values,
        placed=itemsize * values,
        activations=2 * rows * max(config.layers) * itemsize + read + collected,
    )


def device_bytes(
    config: Config, *, on_cpu: bool, streamed: bool = False, held: bool = False
) -> int:
    """Bytes on a GPU: the draw (with `rng: device`), the cast copies, the activations."""
    needs = estimate(config, streamed, held)
    drawn_here = config.rng is Rng.DEVICE and not on_cpu
    cast = 0 if config.dtype is DType.FLOAT32 and (on_cpu or drawn_here) else needs.placed
    return (needs.draw if drawn_here else 0) + cast + needs.activations


def host_bytes(config: Config, *, on_cpu: bool, streamed: bool = False, held: bool = False) -> int:
    """Bytes on the CPU: the draw (unless on a GPU), and the whole run when it is on the CPU."""
    if on_cpu:
        return estimate(config, streamed).draw + device_bytes(
            config, on_cpu=True, streamed=streamed, held=held
        )
    return 0 if config.rng is Rng.DEVICE else estimate(config, streamed).draw
