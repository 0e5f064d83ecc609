"""The network, with torch: the seeded draw, the forward pass, runs and device comparisons.

SPEC section 2 is the contract: one CPU generator, one draw order, then cast and move.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mlpcli import devices
from mlpcli.closeness import Tolerance, difference
from mlpcli.config import Activation, Config, DType, Init, Rng
from mlpcli.errors import UnavailableError
from mlpcli.results import BenchResult, CompareReport, RunResult, TensorDiff, TensorInfo

CPU = torch.device("cpu")
TORCH_DTYPES = {
    DType.FLOAT32: torch.float32,
    DType.FLOAT64: torch.float64,
    DType.FLOAT16: torch.float16,
    DType.BFLOAT16: torch.bfloat16,
}

# Each takes a freshly computed pre-activation it may overwrite, and returns the activation.
ACTIVATIONS: dict[Activation, Callable[[torch.Tensor], torch.Tensor]] = {
    Activation.SIGMOID: torch.sigmoid_,
    Activation.RELU: torch.relu_,
    Activation.TANH: torch.tanh_,
    Activation.GELU: F.gelu,
    Activation.SILU: lambda z: F.silu(z, inplace=True),
    Activation.LEAKY_RELU: lambda z: F.leaky_relu(z, inplace=True),
    Activation.ELU: lambda z: F.elu(z, inplace=True),
    Activation.SOFTPLUS: F.softplus,
    Activation.SOFTMAX: lambda z: torch.softmax(z, dim=-1),
    Activation.IDENTITY: lambda z: z,
}


@dataclass(frozen=True)
class Network:
    """The drawn tensors of a config, cast and on their device."""

    features: torch.Tensor  # (batch, n0)
    weights: tuple[torch.Tensor, ...]  # Wi: (n(i-1), ni)
    biases: tuple[torch.Tensor, ...]  # Bi: (1, ni); empty without bias
    activations: tuple[Activation, ...]

    def named(self) -> Iterator[tuple[str, torch.Tensor]]:
        """features, W1.., B1.., in the notebook's order."""
        yield "features", self.features
        yield from ((f"W{i}", W) for i, W in enumerate(self.weights, 1))
        yield from ((f"B{i}", B) for i, B in enumerate(self.biases, 1))


def draw(
    config: Config, device: torch.device = CPU
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Features, weights and biases in float32, in the contract's draw order.

    On the CPU, as the contract says, unless `rng: device`: then on `device`, by its generator.
    """
    sizes = config.layers
    where = device if config.rng is Rng.DEVICE else CPU
    generator = torch.Generator(device=where).manual_seed(config.seed)
    features = torch.empty(config.batch, sizes[0], device=where)
    torch.randn(1, sizes[0], generator=generator, out=features[:1])
    weights = [
        torch.randn(*pair, generator=generator, device=where) for pair in itertools.pairwise(sizes)
    ]
    biases = [
        torch.randn(1, n, generator=generator, device=where) for n in sizes[1:] if config.bias
    ]
    torch.randn(config.batch - 1, sizes[0], generator=generator, out=features[1:])
    for W, (n_in, n_out) in zip(weights, itertools.pairwise(sizes), strict=True):
        if config.init is Init.XAVIER:
            W.mul_(math.sqrt(2 / (n_in + n_out)))
        elif config.init is Init.KAIMING:
            W.mul_(math.sqrt(2 / n_in))
    return features, weights, biases


def build(config: Config, device: torch.device) -> Network:
    """Draw the network of `config` and cast and move it to `device`."""
    dtype = TORCH_DTYPES[config.dtype]
    features, weights, biases = draw(config, device)

    def place(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(device=device, dtype=dtype)

    return Network(
        features=place(features),
        weights=tuple(place(W) for W in weights),
        biases=tuple(place(B) for B in biases),
        activations=config.activations,
    )


Observer = Callable[[str, torch.Tensor], None]


def forward(network: Network, observe: Observer | None = None) -> torch.Tensor:
    """The output, `hL`, where `hi = fi(h(i-1) · Wi + Bi)`; `observe` sees each of h1 … h(L-1).

    At most two activations are alive at once: a layer's input and its output (an out-of-place
    activation function replaces the pre-activation, it does not add to it).
    """
    h = network.features  # (batch, n0)
    biases = network.biases
    if h.is_cuda:  # as vectors, cuBLASLt adds them inside the product; the CPU is faster with rows
        biases = tuple(B[0] for B in biases)
    for i, (W, activation) in enumerate(zip(network.weights, network.activations, strict=True), 1):
        z = torch.addmm(biases[i - 1], h, W) if biases else h @ W  # (batch, ni)
        del h  # free h(i-1) before an out-of-place activation allocates hi
        h = ACTIVATIONS[activation](z)
        del z
        if observe is not None and i < len(network.weights):
            observe(f"h{i}", h)
    return h  # (batch, nL)


def forward_in_chunks(
    network: Network, chunk: int | None, observe: Observer | None = None
) -> torch.Tensor:
    """`forward` over `chunk` rows of features at a time (all at once for None).

    Each row's output is computed from that row alone, so chunks change only the rounding of
    some BLAS kernels, not the result; `observe` sees the first chunk's activations.
    """
    batch = network.features.shape[0]
    if chunk is None or chunk >= batch:
        return forward(network, observe)
    output: torch.Tensor | None = None
    for start in range(0, batch, chunk):
        rows = dataclasses.replace(network, features=network.features[start : start + chunk])
        part = forward(rows, observe if start == 0 else None)  # (rows, nL)
        if output is None:
            output = part.new_empty((batch, part.shape[1]))
        output[start : start + part.shape[0]] = part
    assert output is not None
    return output


def run(config: Config) -> RunResult:
    """Build and run `config`; running out of memory becomes UnavailableError."""
    device = _prepare(config)
    with _memory_errors(device):
        network, build_ms = _timed_build(config, device)
        built = time.perf_counter()
        hidden: list[TensorInfo] = []
        output = forward_in_chunks(
            network, config.chunk, lambda name, h: hidden.append(_info(name, h, config.batch))
        )
        devices.synchronize(device)
        done = time.perf_counter()
        tensors = (*(_info(name, t) for name, t in network.named()), *hidden)
        return RunResult(
            config=config,
            device=str(device),
            tensors=(*tensors, _info("output", output)),
            output=_numpy(output),
            nonfinite=int((~torch.isfinite(output)).sum()),
            build_ms=build_ms,
            forward_ms=(done - built) * 1e3,
        )


def captured(network: Network, chunk: int | None) -> Callable[[], torch.Tensor]:
    """A CUDA graph of one `forward_in_chunks` over `network`'s tensors; each call replays it.

    A replay launches the captured kernels on the same buffers, so every call returns the same
    output tensor, overwritten, equal to an eager pass's.
    """
    device = network.features.device
    side = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        forward_in_chunks(network, chunk)  # lazy set-up (cuBLAS handles) outside the capture
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = forward_in_chunks(network, chunk)

    def replay() -> torch.Tensor:
        graph.replay()
        return output

    return replay


def bench(
    config: Config,
    warmup: int,
    repeat: int,
    progress: Callable[[int], None] | None = None,
    cuda_graph: bool = False,
) -> BenchResult:
    """Time `repeat` forward passes after `warmup` untimed ones; the build is timed apart.

    On a GPU each pass is timed with CUDA events and the peak is what the passes allocated
    beyond the network; on the CPU the clock is `perf_counter` after the pass returns.
    With `cuda_graph` each pass is a replay of one captured forward, and the peak counts the
    capture's memory.
    """
    device = _prepare(config)
    if cuda_graph and device.type != "cuda":  # `device: auto` found no GPU
        raise UnavailableError(f"--cuda-graph needs a CUDA device; this config runs on {device}")
    with _memory_errors(device):
        network, build_ms = _timed_build(config, device)
        if cuda_graph:
            baseline = _reset_peak(device)  # before the capture, so that its memory counts
            step = captured(network, config.chunk)
        else:
            step = functools.partial(forward_in_chunks, network, config.chunk)
        for _ in range(warmup):
            step()
        devices.synchronize(device)
        if not cuda_graph:
            baseline = _reset_peak(device)  # after the warm-up: cuBLAS's workspace is not a pass's
        times = []
        for index in range(repeat):
            times.append(_timed(step, device))
            if progress is not None:
                progress(index + 1)
        peak = torch.cuda.max_memory_allocated(device) - baseline if device.type == "cuda" else None
    return BenchResult(config, str(device), build_ms, tuple(times), peak, cuda_graph)


def _prepare(config: Config) -> torch.device:
    """The device for `config`, once it is known to be there and to have room."""
    torch.set_float32_matmul_precision("highest")  # no TF32: CPU and CUDA agree
    device = devices.resolve(config)
    devices.check_memory(config, device)
    return device


def _timed_build(config: Config, device: torch.device) -> tuple[Network, float]:
    """The built network and the milliseconds it took (drawing, casting, moving)."""
    start = time.perf_counter()
    network = build(config, device)
    devices.synchronize(device)
    return network, (time.perf_counter() - start) * 1e3


def _reset_peak(device: torch.device) -> int:
    """Start counting peak GPU memory; what is allocated now (the network) is the baseline."""
    if device.type != "cuda":
        return 0
    torch.cuda.reset_peak_memory_stats(device)
    return int(torch.cuda.memory_allocated(device))


def _timed(step: Callable[[], torch.Tensor], device: torch.device) -> float:
    """Milliseconds for one forward pass, from the device's own clock on a GPU."""
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
    return (time.perf_counter() - start) * 1e3


def compare(config: Config, specs: Sequence[str], tolerance: Tolerance) -> CompareReport:
    """Run `config` on each device; every tensor against the first device's, at its scale.

    The whole batch runs at once (`chunk` does not apply), so that every activation is whole.
    """
    config = dataclasses.replace(config, chunk=None)
    placed = [_prepare(config.on_device(spec, "--devices")) for spec in specs]
    reference, *others = (_all_tensors(config, device) for device in placed)
    diffs = [
        TensorDiff(
            name,
            tuple(tensor.shape),
            str(device),
            difference(tensor, reference[name], tolerance, per_tensor=True),
        )
        for device, tensors in zip(placed[1:], others, strict=True)
        for name, tensor in tensors.items()
    ]
    return CompareReport(config, tuple(map(str, placed)), tolerance, tuple(diffs))


def _all_tensors(config: Config, device: torch.device) -> dict[str, np.ndarray]:
    """Every named tensor of a run on `device`, as float64 arrays on the CPU."""
    with _memory_errors(device):
        network = build(config, device)
        tensors = {name: _numpy(t, np.float64) for name, t in network.named()}
        output = forward(network, lambda name, h: tensors.update({name: _numpy(h, np.float64)}))
    tensors["output"] = _numpy(output, np.float64)
    return tensors


@contextlib.contextmanager
def _memory_errors(device: torch.device) -> Iterator[None]:
    """Turn running out of memory into UnavailableError naming the device."""
    try:
        yield
    except torch.OutOfMemoryError as error:
        raise UnavailableError(f"not enough memory on {device}: {_first_line(error)}") from None
    except RuntimeError as error:
        if "can't allocate memory" not in str(error):
            raise
        raise UnavailableError(f"not enough memory on {device}: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _info(name: str, tensor: torch.Tensor, rows: int | None = None) -> TensorInfo:
    """A tensor's description; `rows` for an activation seen one chunk at a time."""
    dtype = str(tensor.dtype).removeprefix("torch.")
    shape = tuple(tensor.shape) if rows is None else (rows, *tensor.shape[1:])
    return TensorInfo(name, shape, dtype, str(tensor.device))


def _numpy(tensor: torch.Tensor, dtype: type[np.floating] | None = None) -> np.ndarray:
    """A CPU NumPy copy; bfloat16, which NumPy lacks, becomes float32 (exactly)."""
    if tensor.dtype is torch.bfloat16:
        tensor = tensor.float()
    array = tensor.detach().cpu().numpy()
    return array if dtype is None else array.astype(dtype)
