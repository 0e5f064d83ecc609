"""Devices, with torch: resolving a config's device, waiting for it, and describing the machine."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import torch

from mlpcli import __version__, memory
from mlpcli.config import Config
from mlpcli.errors import UnavailableError
from mlpcli.results import Environment, Gpu
from mlpcli.units import byte_size


def resolve(config: Config) -> torch.device:
    """The torch device for `config.device`; UnavailableError when it is not on this machine."""
    spec = config.device
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda", torch.cuda.current_device())
    where = f"{config.where('device')}: device: {spec} is not available here"
    if torch.version.cuda is None:
        raise UnavailableError(f"{where}: torch {torch.__version__} was built without CUDA")
    count = torch.cuda.device_count()
    if count == 0:
        raise UnavailableError(f"{where}: no CUDA device is visible")
    device = torch.device(spec)
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index >= count:
        raise UnavailableError(
            f"{where}: this machine has {count} CUDA device(s), cuda:0..{count - 1}"
        )
    return torch.device("cuda", index)


def check_memory(config: Config, device: torch.device) -> None:
    """UnavailableError, at once, when a run of `config` cannot fit on `device`."""
    memory.check_host(config, on_cpu=device.type == "cpu")
    if device.type == "cuda":
        needed = memory.device_bytes(config, on_cpu=False)
        free, _ = torch.cuda.mem_get_info(device)
        if needed > free:
            raise UnavailableError(
                f"{config.name}: needs about {byte_size(needed)} on {device}, "
                f"{byte_size(free)} is free"
            )


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it means something."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def environment() -> Environment:
    """Versions, CPU threads and each GPU (`mlpcli env`)."""
    gpus = []
    for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        properties = torch.cuda.get_device_properties(index)
        capability = f"{properties.major}.{properties.minor}"
        gpus.append(Gpu(index, properties.name, properties.total_memory, capability))
    facts: dict[str, str | int | None] = {
        "mlpcli": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,  # type: ignore[no-untyped-call]
        "numpy": _version("numpy"),
        "typer": _version("typer"),
        "rich": _version("rich"),
        "pyyaml": _version("pyyaml"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    return Environment(facts, tuple(gpus))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
