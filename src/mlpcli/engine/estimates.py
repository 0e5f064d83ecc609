"""About how long a network's forward pass will take here, measured before it is built.

Each distinct layer (its inputs and units, at most the probe's width of each, its activation
and bias) runs through the forward's own code on as many rows as fill the probe's bytes (at
most the run's chunk), in the config's dtype, best of a few tries; its time is scaled by the
layer's multiply-adds: exactly by the rows for a layer no wider than the probe, by its
products for a wider one, where the product is nearly all of the work. So a narrow layer's
activation, a bfloat16 kernel and memory's pace are in it. The old probe, four 256-square
products timed once, measured dispatch and start-up, not the machine, and erred 12-50x long.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass

import torch

from mlpcli.engine import devices
from mlpcli.engine.network import TORCH_DTYPES, forward_layers
from mlpcli.model import memory
from mlpcli.model.config import Activation, Config, DType
from mlpcli.model.results import Estimate
from mlpcli.model.shapes import shapes

ESTIMATE_FROM_FLOPS = 10**10  # below this, under 10 s even at 1 GFLOP/s: no estimate
# By device: the probe's widest layer and the bytes of its input and output (a GPU reaches its
# rate only on larger products); within 3x of the CPU's forward (benchmarks/bench.py --estimate)
PROBE = {"cpu": (1024, 8 << 20), "cuda": (8192, 256 << 20)}
PROBE_SECONDS = 0.03  # each probe is tried 3 times and for at least this long, its best kept
PROBES_SECONDS = 0.5  # all probes of one network; layers left over take the rate measured


@dataclass(frozen=True)
class _Layer:
    """A layer as the probe runs it: at most the probe's width of inputs and units."""

    inputs: int
    units: int
    activation: Activation
    bias: bool


def forward_estimate(config: Config, device: torch.device) -> Estimate | None:
    """About how long the forward of `config` takes on `device`; None for a small network, or
    one whose rows are counted as they are read."""
    if config.batch is None:
        return None
    flops = shapes(config).total_flops
    if flops < ESTIMATE_FROM_FLOPS:
        return None
    width, room = PROBE.get(device.type, PROBE["cpu"])
    chunk = memory.chunk_rows(config)
    layers = [
        (n_in * n_out, _Layer(min(n_in, width), min(n_out, width), activation, config.bias))
        for (n_in, n_out), activation in zip(
            itertools.pairwise(config.layers), config.activations, strict=True
        )
    ]
    seconds, timed, left = 0.0, 0, 0  # the probed layers' time and work, the work left
    started = time.perf_counter()
    for work, layer in sorted(layers, key=lambda pair: -pair[0]):  # heaviest first
        if time.perf_counter() - started > PROBES_SECONDS:
            left += work
            continue
        rows = min(chunk, max(1, room // (4 * (layer.inputs + layer.units))))
        probe = _seconds(layer, rows, config.dtype, device)
        seconds += probe * config.batch_size * work / (rows * layer.inputs * layer.units)
        timed += work
    seconds *= 1 + left / timed
    return Estimate(seconds, flops / seconds, flops, str(device))


@functools.cache
def _seconds(layer: _Layer, rows: int, dtype: DType, device: torch.device) -> float:
    """The best time of the forward's own code over `rows` rows of `layer`, after one try to
    set the kernels up; cached for the process (a sweep measures each layer once)."""
    kind = TORCH_DTYPES[dtype]
    h, W = (
        torch.empty(shape, dtype=kind, device=device).uniform_(-1, 1)
        for shape in ((rows, layer.inputs), (layer.inputs, layer.units))
    )
    B = torch.zeros(1, layer.units, dtype=kind, device=device) if layer.bias else None

    def step() -> torch.Tensor:
        return forward_layers(h, [W], [B], [layer.activation], ["probe"])

    step()
    tries: list[float] = []
    started = time.perf_counter()
    while len(tries) < 3 or time.perf_counter() - started < PROBE_SECONDS:
        tries.append(devices.timed_ms(step, device) / 1e3)
    return min(tries)
