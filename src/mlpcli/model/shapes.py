"""Shapes, parameter counts, bytes and FLOPs of a configured network: arithmetic only, no torch."""

from __future__ import annotations

import itertools

from mlpcli.model import memory
from mlpcli.model.activations import FACTS
from mlpcli.model.config import Activation, Config
from mlpcli.model.results import LayerShape, ShapesResult, TensorShape


def layer_flops(batch: int, n_in: int, n_out: int, activation: Activation, bias: bool) -> int:
    """FLOPs of one layer's forward: 2 per multiply-add, 1 per bias add, 1 per activation value."""
    matmul = 2 * batch * n_in * n_out
    bias_add = batch * n_out if bias else 0
    activate = batch * n_out if FACTS[activation].computes else 0
    return matmul + bias_add + activate


def step_flops(config: Config) -> list[int]:
    """The FLOPs of each step of a forward pass in order: each layer of each chunk of rows
    (`memory.chunk_rows`: the config's `chunk`, or the memory budget's)."""
    rows = memory.chunk_rows(config)
    chunks = [min(rows, config.batch_size - first) for first in range(0, config.batch_size, rows)]
    layers = list(zip(itertools.pairwise(config.layers), config.activations, strict=True))
    return [
        layer_flops(chunk, n_in, n_out, activation, config.bias)
        for chunk in chunks
        for (n_in, n_out), activation in layers
    ]


def tensor_shapes(config: Config) -> tuple[TensorShape, ...]:
    """The network's tensors in the notebook's order: features, W1.., B1.., h1.., output."""
    sizes, batch = config.layers, config.batch_size
    pairs = list(itertools.pairwise(sizes))
    return (
        TensorShape("features", (batch, sizes[0])),
        *(TensorShape(f"W{i}", pair) for i, pair in enumerate(pairs, 1)),
        *(TensorShape(f"B{i}", (1, n)) for i, n in enumerate(sizes[1:], 1) if config.bias),
        *(TensorShape(f"h{i}", (batch, n)) for i, n in enumerate(sizes[1:-1], 1)),
        TensorShape("output", (batch, sizes[-1])),
    )


def shapes(config: Config) -> ShapesResult:
    """Per-layer and total figures for `config`, computed without building anything."""
    batch, bias = config.batch_size, config.bias
    layers = tuple(
        LayerShape(
            index=i,
            n_in=n_in,
            n_out=n_out,
            weight=(n_in, n_out),
            bias=(1, n_out) if bias else None,
            output=(batch, n_out),
            activation=activation,
            params=n_in * n_out + (n_out if bias else 0),
            flops=layer_flops(batch, n_in, n_out, activation, bias),
        )
        for i, (n_in, n_out, activation) in enumerate(
            zip(config.layers, config.layers[1:], config.activations, strict=False), 1
        )
    )
    return ShapesResult(config=config, layers=layers, tensors=tensor_shapes(config))
