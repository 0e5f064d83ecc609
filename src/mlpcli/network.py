"""The only torch module: device resolution, the seeded draw and the forward pass (SPEC 2)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mlpcli.config import Activation, Config, DType, Init
from mlpcli.errors import UnavailableError
from mlpcli.results import RunResult, TensorInfo

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


def resolve_device(config: Config) -> torch.device:
    """The torch device for `config.device`; UnavailableError when it is not here."""
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


def draw(config: Config) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Features, weights and biases in float32 on the CPU, in the contract's draw order."""
    sizes = config.layers
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    features = torch.empty(config.batch, sizes[0])
    torch.randn(1, sizes[0], generator=generator, out=features[:1])
    weights = [
        torch.randn(n_in, n_out, generator=generator) for n_in, n_out in itertools.pairwise(sizes)
    ]
    biases = [torch.randn(1, n, generator=generator) for n in sizes[1:]] if config.bias else []
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
    features, weights, biases = draw(config)

    def place(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(device=device, dtype=dtype)

    return Network(
        features=place(features),
        weights=tuple(place(W) for W in weights),
        biases=tuple(place(B) for B in biases),
        activations=config.activations,
    )


def forward(network: Network) -> Iterator[torch.Tensor]:
    """Yield h1 … hL (the last is the output): `hi = fi(h(i-1) · Wi + Bi)`."""
    h = network.features  # (batch, n0)
    for i, (W, activation) in enumerate(zip(network.weights, network.activations, strict=True)):
        z = torch.addmm(network.biases[i], h, W) if network.biases else h @ W  # (batch, ni)
        h = ACTIVATIONS[activation](z)
        yield h


def run(config: Config) -> RunResult:
    """Build and run `config`; running out of memory becomes UnavailableError."""
    torch.set_float32_matmul_precision("highest")  # no TF32: CPU and CUDA agree
    device = resolve_device(config)
    try:
        start = time.perf_counter()
        network = build(config, device)
        _synchronize(device)
        built = time.perf_counter()
        layers: list[TensorInfo] = []
        output = network.features
        for i, output in enumerate(forward(network), 1):
            layers.append(_info(f"h{i}", output))
        _synchronize(device)
        done = time.perf_counter()
    except torch.OutOfMemoryError as error:
        raise UnavailableError(f"not enough memory on {device}: {_first_line(error)}") from None
    except RuntimeError as error:
        if "can't allocate memory" not in str(error):
            raise
        raise UnavailableError(f"not enough memory on {device}: {_first_line(error)}") from None
    tensors = (
        _info("features", network.features),
        *(_info(f"W{i}", W) for i, W in enumerate(network.weights, 1)),
        *(_info(f"B{i}", B) for i, B in enumerate(network.biases, 1)),
        *layers[:-1],
        _info("output", output),
    )
    return RunResult(
        config=config,
        device=str(device),
        tensors=tensors,
        output=output.cpu(),
        nonfinite=int((~torch.isfinite(output)).sum()),
        build_ms=(built - start) * 1e3,
        forward_ms=(done - built) * 1e3,
    )


def _info(name: str, tensor: torch.Tensor) -> TensorInfo:
    dtype = str(tensor.dtype).removeprefix("torch.")
    return TensorInfo(name, tuple(tensor.shape), dtype, str(tensor.device))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
