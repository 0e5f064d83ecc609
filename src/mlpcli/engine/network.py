"""The network, with torch: the seeded draw, the build, the forward pass; nothing else.

docs/contract.md section 2 is the contract: one CPU generator, one draw order, then cast and
move. Runs, timing and device comparisons are in `runners`; devices and memory in `devices`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mlpcli.errors import ConfigError
from mlpcli.model import plan
from mlpcli.model.config import Activation, Config, DType, Init, Rng
from mlpcli.model.plan import Region, Share

CPU = torch.device("cpu")
TORCH_DTYPES = {
    DType.FLOAT32: torch.float32,
    DType.FLOAT64: torch.float64,
    DType.FLOAT16: torch.float16,
    DType.BFLOAT16: torch.bfloat16,
}


@dataclass(frozen=True)
class TorchActivation:
    """How torch computes an activation (its other facts: model/activations.py)."""

    apply: Callable[[torch.Tensor], torch.Tensor]  # on a fresh pre-activation it may overwrite
    module: Callable[[], nn.Module]  # the same as a module, for an exported model


ACTIVATIONS: dict[Activation, TorchActivation] = {
    Activation.SIGMOID: TorchActivation(torch.sigmoid_, nn.Sigmoid),
    Activation.RELU: TorchActivation(torch.relu_, nn.ReLU),
    Activation.TANH: TorchActivation(torch.tanh_, nn.Tanh),
    Activation.GELU: TorchActivation(F.gelu, nn.GELU),
    Activation.SILU: TorchActivation(lambda z: F.silu(z, inplace=True), nn.SiLU),
    Activation.LEAKY_RELU: TorchActivation(  # slope 0.01 both
        lambda z: F.leaky_relu(z, inplace=True), nn.LeakyReLU
    ),
    Activation.ELU: TorchActivation(lambda z: F.elu(z, inplace=True), nn.ELU),
    Activation.SOFTPLUS: TorchActivation(F.softplus, nn.Softplus),
    Activation.SOFTMAX: TorchActivation(
        lambda z: torch.softmax(z, dim=-1), lambda: nn.Softmax(dim=-1)
    ),
    Activation.IDENTITY: TorchActivation(lambda z: z, nn.Identity),
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


Tensors = tuple[torch.Tensor | None, list[torch.Tensor | None], list[torch.Tensor | None]]


def draw(config: Config, device: torch.device = CPU, share: Share | None = None) -> Tensors:
    """Features, weights and biases in float32, in the contract's draw order: of each, the part
    that `share` holds (everything by default; None where it holds nothing).

    On the CPU, as the contract says, unless `rng: device`: then on `device`, by its generator.
    Every value is drawn, in order; what is not held (another rank's share, or what a file
    gives: `inputs`, `weights`) is drawn into one layer's scratch space and dropped, so that
    what is held is the same as in the whole draw.
    """
    share = plan.drawn(config, share or plan.share(config, 1, 0))
    sizes, pairs = config.layers, list(itertools.pairwise(config.layers))
    held = [share.features, *share.weights, *share.biases]
    if all(part is None for part in held):
        return None, [None] * len(pairs), [None] * len(share.biases)  # nothing drawn is kept
    where = device if config.rng is Rng.DEVICE else CPU
    generator = torch.Generator(device=where).manual_seed(config.seed)
    scratch = torch.empty(plan.scratch_values(config, share), device=where)
    rows = config.batch_size if share.features is not None else 1
    features = torch.empty(rows, sizes[0], device=where) if share.features is not None else None
    row0 = scratch[: sizes[0]].view(1, sizes[0]) if features is None else features[:1]
    torch.randn(1, sizes[0], generator=generator, out=row0)

    def drawn(rows: int, columns: int, region: Region | None) -> torch.Tensor | None:
        if region is not None and (len(region[0]), len(region[1])) == (rows, columns):
            return torch.randn(rows, columns, generator=generator, device=where)
        block = scratch[: rows * columns].view(rows, columns)
        torch.randn(rows, columns, generator=generator, device=where, out=block)
        return None if region is None else part(block, region).clone()

    weights = [drawn(*pair, region) for pair, region in zip(pairs, share.weights, strict=True)]
    biases = (
        [
            drawn(1, n, None if columns is None else (range(1), columns))
            for n, columns in zip(sizes[1:], share.biases, strict=True)
        ]
        if config.bias
        else []
    )
    if features is not None:
        torch.randn(config.batch_size - 1, sizes[0], generator=generator, out=features[1:])
        assert share.features is not None
        if len(share.features) < config.batch_size:
            features = features[share.features.start : share.features.stop].clone()
    for W, (n_in, n_out) in zip(weights, pairs, strict=True):
        if W is not None and config.init is not Init.NORMAL:
            W.mul_(_init_scale(config.init, n_in, n_out))
    return features, weights, biases


def _init_scale(init: Init, n_in: int, n_out: int) -> float:
    """What a standard normal draw is multiplied by for `init`: Xavier's (Glorot's) or
    Kaiming's (He's) standard deviation."""
    return math.sqrt(2 / (n_in + n_out)) if init is Init.XAVIER else math.sqrt(2 / n_in)


def part(tensor: torch.Tensor, region: Region) -> torch.Tensor:
    """The rows and columns `region` names of a 2-D tensor, as a view."""
    rows, columns = region
    return tensor[rows.start : rows.stop, columns.start : columns.stop]


def placed(config: Config, device: torch.device, share: Share | None = None) -> Tensors:
    """What `share` holds of `config`'s network (everything by default), cast and on `device`:
    drawn, or read from its files and cut to the share (a share of the weights read on the
    CPU, so that only the share comes to the device)."""
    from mlpcli.data import features as feature_files
    from mlpcli.data import weightfiles

    share = share or plan.share(config, 1, 0)
    dtype = TORCH_DTYPES[config.dtype]
    features, weights, biases = draw(config, device, share)

    def place(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return None if tensor is None else tensor.to(device=device, dtype=dtype)

    if config.weights is not None:
        described = weightfiles.describe(
            config.weights, config.weights_order, config.layers[0], config.batchnorm
        )
        split = share.weights != plan.share(config, 1, 0).weights  # a rank's share of them
        read = weightfiles.layers(described, dtype, CPU if split else device)
        with located_at(config, "weights"):  # a value past the dtype's range
            for i, (W, B) in enumerate(read):  # a layer at a time: its share cut, then placed
                weights[i] = place(_cut(W, share.weights[i]))
                if B is not None:
                    columns = share.biases[i]
                    biases[i] = place(_cut(B, None if columns is None else (range(1), columns)))
    if config.inputs is not None and share.features is not None:
        rows = share.features
        with located_at_inputs(config):  # the share's rows, and no others
            reading = feature_files.reading_of(vars(config))
            features = feature_files.read(config.inputs, reading, rows, dtype)
    return place(features), [place(W) for W in weights], [place(B) for B in biases]


def located_at_inputs(config: Config) -> contextlib.AbstractContextManager[None]:
    """Around reading `config`'s features file: its errors located at the `inputs` field."""
    return located_at(config, "inputs")


@contextlib.contextmanager
def located_at(config: Config, field: str) -> Iterator[None]:
    """Around reading the file `config`'s `field` names: its errors located at that field."""
    try:
        yield
    except ConfigError as error:
        raise ConfigError(config.where(field), field, str(error)) from None


def _cut(tensor: torch.Tensor, region: Region | None) -> torch.Tensor | None:
    """`region` of `tensor`: the tensor itself when it is all of it, else a copy of that part."""
    if region is None:
        return None
    if (len(region[0]), len(region[1])) == tuple(tensor.shape):
        return tensor
    return part(tensor, region).clone()


def build(config: Config, device: torch.device, features: bool = True) -> Network:
    """The network of `config` cast and moved to `device`: drawn, or from its files. Without
    `features`, its features are no rows (a run gives them a chunk at a time)."""
    whole = plan.share(config, 1, 0)
    share = whole if features else dataclasses.replace(whole, features=None)
    rows, weights, biases = placed(config, device, share)
    if rows is None:
        rows = torch.empty((0, config.layers[0]), dtype=TORCH_DTYPES[config.dtype], device=device)
    return Network(
        features=rows,
        weights=tuple(W for W in weights if W is not None),
        biases=tuple(B for B in biases if B is not None),
        activations=config.activations,
    )


Observer = Callable[[str, torch.Tensor], None]


def affine(h: torch.Tensor, W: torch.Tensor, B: torch.Tensor | None) -> torch.Tensor:
    """`addmm(B, h, W)`, or `h @ W` without a bias: a layer before its activation."""
    if B is None:
        return h @ W
    if h.is_cuda:  # as a vector, cuBLASLt adds it inside the product; the CPU is faster with rows
        B = B[0]
    return torch.addmm(B, h, W)  # (batch, n_out)


def forward(network: Network, observe: Observer | None = None) -> torch.Tensor:
    """The output, `hL`, where `hi = fi(addmm(Bi, h(i-1), Wi))`; `observe` sees each layer's
    result as it is queued: h1 … h(L-1), then `output`."""
    count = len(network.weights)
    names = [f"h{i}" for i in range(1, count)] + ["output"]
    biases = network.biases or (None,) * count
    return forward_layers(
        network.features, network.weights, biases, network.activations, names, observe
    )


def forward_layers(
    h: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor | None],
    activations: Sequence[Activation],
    names: Sequence[str],
    observe: Observer | None = None,
) -> torch.Tensor:
    """`h` through a run of layers; `observe` sees each result by its name.

    At most two activations are alive at once: a layer's input and its output (an out-of-place
    activation function replaces the pre-activation, it does not add to it).
    """
    layers = zip(weights, biases, activations, names, strict=True)
    for W, B, activation, name in layers:
        z = affine(h, W, B)  # (batch, ni)
        del h  # free h(i-1) before an out-of-place activation allocates hi
        h = ACTIVATIONS[activation].apply(z)
        del z
        if observe is not None:
            observe(name, h)
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
