"""The version report of `mlpcli env`, with torch: versions (the extras' libraries too, None
where not installed), CPU threads and each GPU."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import torch

from mlpcli import __version__
from mlpcli.model.results import EnvResult, Gpu

# the libraries of mlpcli's extras: Parquet and feather, ONNX, Keras weights, bench plots
OPTIONAL = ("pyarrow", "onnx", "onnxscript", "onnxruntime", "h5py", "matplotlib")


def environment() -> EnvResult:
    """Versions, CPU threads (torch's default, and MLPCLI_THREADS when set) and each GPU."""
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
        "safetensors": _version("safetensors"),
        **{package: _version(package) for package in OPTIONAL},  # None: not installed
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "MLPCLI_THREADS": os.environ.get("MLPCLI_THREADS") or None,
    }
    return EnvResult(facts, tuple(gpus))


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
