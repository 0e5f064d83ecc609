"""Will a run fit? Its memory from the shapes alone, against what the machine has; no torch.

`run` asks before importing torch, so that what cannot fit ends in well under a second.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass

from mlpcli.errors import UnavailableError
from mlpcli.model.config import Config, DType, Rng
from mlpcli.model.units import byte_size

CHUNK_BYTES = 128 << 20  # a chunk's features and activations, for features read from a file
HELD_BYTES = 1 << 30  # the most of an output a run holds whole (JSON, a table of every value)


def chunk_rows(config: Config) -> int:
    """Rows of features a forward pass takes at a time: `chunk` where the config sets it; for
    features from a file, as many as keep a chunk within CHUNK_BYTES at the widest layer (two
    activations, and the features as read and as cast); else the whole batch."""
    if config.chunk is not None:
        return min(config.chunk, config.batch)
    if config.inputs is None:
        return config.batch
    per_row = 8 * (2 * max(config.layers) + 2 * config.layers[0])
    return max(1, min(config.batch, CHUNK_BYTES // per_row))


def output_bytes(config: Config) -> int:
    """The bytes of a whole output as a run holds it (bfloat16 as float32)."""
    return config.batch * config.layers[-1] * max(config.dtype.itemsize, 4)


def kept_bytes(config: Config) -> int:
    """The bytes of every tensor of a run (features, weights, biases, h1.., output) in its
    dtype: what `run -o x.safetensors` holds and writes."""
    params = sum(
        n_in * n_out + (n_out if config.bias else 0)
        for n_in, n_out in itertools.pairwise(config.layers)
    )
    return (config.batch * sum(config.layers) + params) * config.dtype.itemsize


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
    rows = chunk_rows(config) if streamed else min(config.batch, config.chunk or config.batch)
    from_file = streamed and config.inputs is not None
    values = (0 if from_file else config.batch * config.layers[0]) + sum(
        n_in * n_out + (n_out if config.bias else 0)
        for n_in, n_out in itertools.pairwise(config.layers)
    )
    itemsize = config.dtype.itemsize
    read = rows * config.layers[0] * (8 + itemsize) if from_file else 0
    chunked = rows < config.batch
    collected = output_bytes(config) if (held if streamed else chunked) else 0
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


def check_host(config: Config, *, on_cpu: bool, streamed: bool = False, held: bool = False) -> None:
    """UnavailableError when the CPU's part of a run cannot fit in available memory."""
    host = host_bytes(config, on_cpu=on_cpu, streamed=streamed, held=held)
    available = available_ram()
    if available is not None and host > available:
        raise UnavailableError(
            f"{config.name}: needs about {byte_size(host)} of memory, "
            f"{byte_size(available)} is available"
        )


def device_memory(config: Config, ranks: int) -> int | None:
    """Each rank's memory on this machine, for a parallel plan: the first GPU's (by nvidia-smi,
    without torch) for a CUDA config, else 1/`ranks` of the available memory; None if unknown."""
    if config.device.type != "cpu":
        smi = shutil.which("nvidia-smi")
        if smi is not None:
            try:
                listed = subprocess.run(
                    [smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout.split()
                return int(listed[0]) * 1024**2 if listed else None
            except (OSError, subprocess.SubprocessError, ValueError):
                return None
        if config.device.type == "cuda":
            return None
    available = available_ram()
    return None if available is None else available // ranks


# A rank's own memory before its share of the network: Python, torch and Gloo. Measured
# 248 MiB peak RSS for a rank of a small network (torch 2.13 CPU build, 2026-12-03).
RANK_BYTES = 256 << 20


def available_ram() -> int | None:
    """Bytes the system can give without swapping (Linux's MemAvailable), else free pages."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
