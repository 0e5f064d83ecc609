"""A network as a model file describes it (an ONNX graph, a Keras model): its Linear layers in
the order they run, the activation after each where the file says, and its tensors' entries."""

from __future__ import annotations

from dataclasses import dataclass

from mlpcli.data.tensorfiles import Entry


@dataclass(frozen=True)
class GraphLayer:
    """One Linear layer: its tensors' names, sizes, and how its weight is stored."""

    weight: str
    bias: str | None
    n_in: int
    n_out: int
    out_in: bool  # stored (out, in), as nn.Linear (and ONNX's Gemm with transB=1) holds it


@dataclass(frozen=True)
class Graph:
    """The layers of a model file, the activation after each (None: the file does not say),
    and every tensor's entry by name."""

    layers: tuple[GraphLayer, ...]
    activations: tuple[str, ...] | None
    entries: dict[str, Entry]
