"""What this machine has, asked without torch: its available memory (Linux's MemAvailable), a
GPU's memory (nvidia-smi), whether torch can see a GPU at all, and whether a run's CPU part
fits. `run` asks before importing torch, so that what cannot fit ends in well under a second.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from mlpcli.errors import UnavailableError
from mlpcli.model.config import CPU, Config
from mlpcli.model.memory import host_bytes
from mlpcli.model.units import byte_size


def check_host(config: Config, *, on_cpu: bool, streamed: bool = False, held: bool = False) -> None:
    """UnavailableError when the CPU's part of a run cannot fit in available memory (`auto`
    counted as the CPU where torch can see no GPU, `settled`)."""
    if (mine := settled(config)) is not config:
        config, on_cpu = mine, True
    host = host_bytes(config, on_cpu=on_cpu, streamed=streamed, held=held)
    available = available_ram()
    if available is not None and host > available:
        raise UnavailableError(
            f"{config.name}: needs about {byte_size(host)} of memory, "
            f"{byte_size(available)} is available"
        )


def settled(config: Config) -> Config:
    """`config` with `device: auto` settled on the CPU where torch can see no GPU, asked
    without importing it (`no_gpu`), so that the memory checks before a run, and `shapes`,
    plan what the run takes; else `config` itself (a run settles `auto` with torch,
    `devices.settled`)."""
    if config.device.type != "auto" or not no_gpu():
        return config
    return dataclasses.replace(config, device=CPU)


def no_gpu() -> bool:
    """Whether torch can see no GPU here, known without importing it: a build for the CPU
    alone (torch.version's `cuda` and `hip` both None), or CUDA_VISIBLE_DEVICES set to none."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return True
    build = _torch_build() or {}
    return all(key in build and build[key] is None for key in ("cuda", "hip"))


@functools.cache
def _torch_build() -> dict[str, object] | None:
    """The values torch/version.py sets (`cuda`, `hip`, ...), read as text: torch is not
    imported (a second or more); None where it cannot be read."""
    try:
        spec = importlib.util.find_spec("torch")
        folders = list(spec.submodule_search_locations or []) if spec else []
        tree = ast.parse(Path(folders[0], "version.py").read_text(encoding="utf-8"))
    except (ImportError, IndexError, OSError, SyntaxError, ValueError):
        return None
    values: dict[str, object] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None:
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            with contextlib.suppress(ValueError, TypeError, RecursionError):
                value = ast.literal_eval(statement.value)
                values.update({t.id: value for t in targets if isinstance(t, ast.Name)})
    return values


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
