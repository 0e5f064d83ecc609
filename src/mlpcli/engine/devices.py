"""Devices, with torch: resolving a config's device, whether a run fits there, waiting for it,
timing on its clock, counting its peak memory, and turning its out-of-memory errors into ours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Iterator

import torch

from mlpcli.engine.world import ALONE, World
from mlpcli.errors import UnavailableError, first_line
from mlpcli.model import memory, plan
from mlpcli.model.config import CPU, Config, Device, Parallel
from mlpcli.model.units import byte_size


def prepare(
    config: Config,
    world: World = ALONE,
    streamed: bool = False,
    held: bool = False,
    beside: Config | None = None,
) -> torch.device:
    """The device for `config`, once it is known to be there and to have room on a GPU for
    this rank's part of it (`room`), and for the whole network of `beside` where this rank
    holds that as well (compare's single-process reference, on rank 0).

    The CPU's memory is checked before torch is imported (`host.check_host`), once per run.
    """
    torch.set_float32_matmul_precision("highest")  # no TF32: CPU and CUDA agree
    torch.set_num_threads(config.threads or _default_threads())  # per config: runs come in a row
    device = resolve(config)
    if device.type == "cuda":
        needed = room(config, world, streamed=streamed, held=held)
        if beside is not None:
            needed += room(beside, streamed=streamed)
        free, _ = torch.cuda.mem_get_info(device)
        if needed > free:
            raise UnavailableError(
                f"{config.name}: needs about {byte_size(needed)} on {device}, "
                f"{byte_size(free)} is free"
            )
    return device


def room(config: Config, world: World = ALONE, *, streamed: bool, held: bool = False) -> int:
    """The GPU bytes a rank of `world` needs for `config`: its share where the world splits
    the network (`plan.rank_plan`), else the whole network's (`memory.device_bytes`), for a pass
    that holds everything, or one `streamed` as `run` streams it, its output `held`."""
    if world.distributed and config.parallel in (Parallel.PIPELINE, Parallel.TENSOR):
        whole = held or not streamed  # a pass over held features gathers its output
        mine = plan.rank_plan(config, world.world_size, world.rank, held=whole, streamed=streamed)
        return mine.total_bytes
    return memory.device_bytes(config, on_cpu=False, streamed=streamed, held=held)


@functools.cache
def _default_threads() -> int:
    """torch's own thread count, as it was before any config set one."""
    return torch.get_num_threads()


def settled(config: Config) -> Config:
    """`config` with `device: auto` settled on this machine's device (CUDA's current GPU where
    there is one, else the CPU): a run's chunk, and so its bits, are those of the device it
    takes, so that `auto` without CUDA runs as `cpu` does."""
    if config.device.type != "auto":
        return config
    return dataclasses.replace(config, device=Device("cuda") if torch.cuda.is_available() else CPU)


def resolve(config: Config) -> torch.device:
    """The torch device for `config.device`; UnavailableError when it is not on this machine."""
    spec = config.device
    if spec.type == "cpu" or (spec.type == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if spec.type == "auto":
        return torch.device("cuda", torch.cuda.current_device())
    where = f"{config.where('device')}: device: {spec} is not available here"
    if torch.version.cuda is None:
        raise UnavailableError(f"{where}: torch {torch.__version__} was built without CUDA")
    count = torch.cuda.device_count()
    if count == 0:
        raise UnavailableError(f"{where}: no CUDA device is visible")
    index = spec.index if spec.index is not None else torch.cuda.current_device()
    if index >= count:
        raise UnavailableError(
            f"{where}: this machine has {count} CUDA device(s), cuda:0..{count - 1}"
        )
    return torch.device("cuda", index)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read after it means something."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_ms(step: Callable[[], object], device: torch.device) -> float:
    """Milliseconds `step` took on `device`: CUDA events on a GPU, `perf_counter` on the CPU."""
    if device.type == "cuda":
        begin = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        begin.record()
        step()
        end.record()
        end.synchronize()
        return float(begin.elapsed_time(end))
    start = time.perf_counter()
    step()
    synchronize(device)
    return (time.perf_counter() - start) * 1e3


def reset_peak(device: torch.device) -> int:
    """Start counting peak GPU memory; what is allocated now (the network) is the baseline."""
    if device.type != "cuda":
        return 0
    torch.cuda.reset_peak_memory_stats(device)
    return int(torch.cuda.memory_allocated(device))


def peak_since(device: torch.device, baseline: int) -> int | None:
    """GPU memory allocated at the peak beyond `baseline`; None on the CPU (not measured)."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device)) - baseline


@contextlib.contextmanager
def memory_errors(device: torch.device) -> Iterator[None]:
    """Turn running out of memory into UnavailableError naming the device."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as error:
        raise UnavailableError(f"not enough memory on {device}: {first_line(error)}") from None
    except RuntimeError as error:
        if "can't allocate memory" not in str(error):
            raise
        raise UnavailableError(f"not enough memory on {device}: {first_line(error)}") from None
