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


@dataclass(frozen=True)
class MemoryEstimate:
    """What a run holds at its peak, in bytes."""

    draw: int  # features, weights and biases as drawn: float32, on the CPU
    placed: int  # the same in the config's dtype, on the device
    activations: int  # two activation buffers of a chunk at the widest layer, and the output


def estimate(config: Config) -> MemoryEstimate:
    """The memory a run of `config` needs."""
    values = config.batch * config.layers[0] + sum(
        n_in * n_out + (n_out if config.bias else 0)
        for n_in, n_out in itertools.pairwise(config.layers)
    )
    itemsize = config.dtype.itemsize
    rows = min(config.batch, config.chunk or config.batch)
    collected = config.batch * config.layers[-1] if rows < config.batch else 0  # the output
    return MemoryEstimate(
        draw=4 * values,
        placed=itemsize * values,
        activations=(2 * rows * max(config.layers) + collected) * itemsize,
    )


def device_bytes(config: Config, *, on_cpu: bool) -> int:
    """Bytes on a GPU: the draw (with `rng: device`), the cast copies, the activations."""
    needs = estimate(config)
    drawn_here = config.rng is Rng.DEVICE and not on_cpu
    cast = 0 if config.dtype is DType.FLOAT32 and (on_cpu or drawn_here) else needs.placed
    return (needs.draw if drawn_here else 0) + cast + needs.activations


def host_bytes(config: Config, *, on_cpu: bool) -> int:
    """Bytes on the CPU: the draw (unless on a GPU), and the whole run when it is on the CPU."""
    if on_cpu:
        return estimate(config).draw + device_bytes(config, on_cpu=True)
    return 0 if config.rng is Rng.DEVICE else estimate(config).draw


def check_host(config: Config, *, on_cpu: bool) -> None:
    """UnavailableError when the CPU's part of a run cannot fit in available memory."""
    host = host_bytes(config, on_cpu=on_cpu)
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
