"""What this machine has, asked without torch: its available memory (Linux's MemAvailable), a
GPU's memory (nvidia-smi), and whether a run's CPU part fits. `run` asks before importing
torch, so that what cannot fit ends in well under a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from mlpcli.errors import UnavailableError
from mlpcli.model.config import Config
from mlpcli.model.memory import host_bytes
from mlpcli.model.units import byte_size


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
