"""The network, with torch: the seeded draw, the build, the forward pass; nothing else.

docs/contract.md section 2 is the contract: one CPU generator, one draw order, then cast and
move. Runs, timing and device comparisons are in `runners`; devices and memory in `devices`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mlpcli.config import Activation, Config, DType, Init, Rng

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
) -> tuple[torch.Tensor | None, list[torch.Tensor], list[torch.Tensor]]:
    """Features, weights and biases in float32, in the contract's draw order.

    On the CPU, as the contract says, unless `rng: device`: then on `device`, by its generator.
    What a file gives (`inputs`, `weights`) is still drawn, into one layer's scratch space, and
    dropped (None, or empty lists), so that what is drawn is the same as without the file.
    """
    sizes = config.layers
    keep_features, keep_weights = config.inputs is None, config.weights is None
    if not keep_features and not keep_weights:  # nothing drawn is used
        return None, [], []
    where = device if config.rng is Rng.DEVICE else CPU
    generator = torch.Generator(device=where).manual_seed(config.seed)
    features = torch.empty(config.batch if keep_features else 1, sizes[0], device=where)
    torch.randn(1, sizes[0], generator=generator, out=features[:1])
    blocks = (a * b for a, b in itertools.pairwise(sizes))
    scratch = None if keep_weights else torch.empty(max(blocks), device=where)

    def drawn(rows: int, columns: int) -> torch.Tensor:
        out = None if scratch is None else scratch[: rows * columns].view(rows, columns)
        return torch.randn(rows, columns, generator=generator, device=where, out=out)

    weights = [drawn(*pair) for pair in itertools.pairwise(sizes)]
    biases = [drawn(1, n) for n in sizes[1:] if config.bias]
    if keep_features:
        torch.randn(config.batch - 1, sizes[0], generator=generator, out=features[1:])
    if not keep_weights:
        return features, [], []
    for W, (n_in, n_out) in zip(weights, itertools.pairwise(sizes), strict=True):
        if config.init is Init.XAVIER:
            W.mul_(math.sqrt(2 / (n_in + n_out)))
        elif config.init is Init.KAIMING:
            W.mul_(math.sqrt(2 / n_in))
    return features if keep_features else None, weights, biases


def build(config: Config, device: torch.device) -> Network:
    """The network of `config` cast and moved to `device`: drawn, or from its files."""
    from mlpcli import features as feature_files
    from mlpcli import weightfiles

    dtype = TORCH_DTYPES[config.dtype]
    features, weights, biases = draw(config, device)

    def place(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(device=device, dtype=dtype)

    if config.weights is not None:
        weights, biases = weightfiles.read(weightfiles.describe(config.weights), dtype, device)
    if features is None:
        assert config.inputs is not None
        features = feature_files.read(config.inputs)
    return Network(
        features=place(features),
        weights=tuple(place(W) for W in weights),
        biases=tuple(place(B) for B in biases),
        activations=config.activations,
    )


Observer = Callable[[str, torch.Tensor], None]


def forward(network: Network, observe: Observer | None = None) -> torch.Tensor:
    """The output, `hL`, where `hi = fi(addmm(Bi, h(i-1), Wi))`; `observe` sees each layer's
    result as it is queued: h1 … h(L-1), then `output`.

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
        if observe is not None:
            observe(f"h{i}" if i < len(network.weights) else "output", h)
    return h  # (batch, nL)


def forward_in_chunks(
    network: Network, chunk: int | None, observe: Observer | None = None
) -> torch.Tensor:
    """`forward` over `chunk` rows of features at a time (all at once for None).

    Each row's output is computed from that row alone, so chunks change only the rounding of
    some BLAS kernels, not the result; `observe` sees every chunk's layers in turn.
    """
    batch = network.features.shape[0]
    if chunk is None or chunk >= batch:
        return forward(network, observe)
    output: torch.Tensor | None = None
    for start in range(0, batch, chunk):
        rows = dataclasses.replace(network, features=network.features[start : start + chunk])
        part = forward(rows, observe)  # (rows, nL)
        if output is None:
            output = part.new_empty((batch, part.shape[1]))
        output[start : start + part.shape[0]] = part
    assert output is not None
    return output
