"""An MLP as an ONNX graph (`weights: model.onnx`), read as data through the `onnx` package:
nothing in it runs. The graph must be one chain from its input to its output of Linear layers
(`Gemm`, or `MatMul` then `Add`, with initializers as weights and biases), each followed by at
most one activation: the ops PyTorch's exporters write for mlpcli's activations (`Relu`,
`Sigmoid`, `Tanh`, `Gelu`, `Softmax`, `LeakyRelu`, `Elu`, `Softplus`, SiLU as `Sigmoid` and
`Mul`, `Identity`), or none; `Dropout` (but in training mode) and `Identity` pass their input
on. Any other op is refused naming it and its node. docs/files.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpcli.data.graphs import Graph, GraphLayer
from mlpcli.data.tensorfiles import (
    Entry,
    bad,
    by_file,
    numpy_entry,
    parsed_by_library,
    regular_size,
)
from mlpcli.errors import UnavailableError, install_hint
from mlpcli.model.activations import ONNX

if TYPE_CHECKING:
    import numpy as np
    import torch

PASSED_ON = ("Dropout", "Identity")  # inference: their first output is their input
SOFTPLUS_THRESHOLD = 20.0  # torch's softplus: x itself above it (its exporter's Where)


@by_file
def read_graph(path: str) -> Graph:
    """The MLP an ONNX file holds; an error names the first node that is not one."""
    model = _model(path)
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    inputs = [value.name for value in graph.input if value.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        message = (
            f"a graph of {len(inputs)} inputs and {len(graph.output)} outputs; an MLP has one each"
        )
        raise bad(path, message)
    walk = _Walk(path, list(graph.node), initializers)
    current, end = inputs[0], graph.output[0].name
    while current != end:
        current = walk.step(current)
    left = [i for i in range(len(graph.node)) if i not in walk.visited]
    if left:
        raise bad(
            path, f"{graph.node[left[0]].op_type} at node {left[0]} is not on the chain of layers"
        )
    if not walk.layers:
        raise bad(path, "holds no Linear layer (Gemm, or MatMul and Add)")
    walk.activations.append(walk.pending or "identity")  # the last layer's
    entries = {name: _entry(path, tensor) for name, tensor in initializers.items()}
    return Graph(tuple(walk.layers), tuple(walk.activations), entries)


def tensors(path: str) -> Callable[[str], torch.Tensor]:
    """A function from an initializer's name to the tensor it holds."""
    import numpy as np
    import torch
    from onnx import TensorProto, numpy_helper

    initializers = {tensor.name: tensor for tensor in _model(path).graph.initializer}
    folder = str(Path(path).parent)

    def tensor(name: str) -> torch.Tensor:
        proto = initializers[name]
        with parsed_by_library(path, "ONNX file"):  # its external data, checked by `_model`
            array = numpy_helper.to_array(proto, base_dir=folder)
        if proto.data_type == TensorProto.BFLOAT16:  # NumPy holds no bfloat16: its bits
            bits = np.ascontiguousarray(array).view(np.uint16)
            return torch.from_numpy(bits.astype(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(np.array(array, dtype=array.dtype.newbyteorder("=")))

    return tensor


@by_file
def _model(path: str) -> Any:
    """The file's ModelProto; initializers kept in external data files (as `torch.onnx.export`
    writes any of 1 KiB or more) are read later, from files beside it only."""
    try:
        import onnx
    except ImportError:
        raise UnavailableError(
            f"{path}: reading .onnx weights needs onnx: {install_hint('onnx')}"
        ) from None
    regular_size(path, "an ONNX file")
    with parsed_by_library(path, "ONNX file"):
        model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            _check_external(path, tensor)
    return model


def _check_external(path: str, tensor: Any) -> None:
    """An initializer's external data: a regular file in the model's folder (no other path is
    read), long enough for the bytes the initializer names."""
    from onnx.external_data_helper import ExternalDataInfo

    info = ExternalDataInfo(tensor)
    folder = Path(path).parent.resolve()
    location = Path(info.location)
    target = (folder / location).resolve()
    if location.is_absolute() or ".." in location.parts or not target.is_relative_to(folder):
        message = f"{tensor.name}'s external data {info.location!r} is not in the model's folder"
        raise bad(path, message)
    size = regular_size(str(target), "an ONNX external data file")
    needed = (info.offset or 0) + (info.length or 0)
    if size < needed:
        message = f"{tensor.name}'s external data {info.location} holds {size} bytes, not {needed}"
        raise bad(path, message)


def _entry(path: str, tensor: Any) -> Entry:
    """An initializer as a header entry."""
    from onnx import TensorProto, helper

    if tensor.data_type == TensorProto.BFLOAT16:
        return Entry("BF16", tuple(tensor.dims))
    try:
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except KeyError:
        raise bad(path, f"initializer {tensor.name} has ONNX type {tensor.data_type}") from None
    return numpy_entry(dtype, tuple(tensor.dims))


class _Walk:
    """The chain from the input: each step takes the node(s) that read the current tensor."""

    def __init__(self, path: str, nodes: list[Any], initializers: dict[str, Any]) -> None:
        self.path, self.nodes, self.initializers = path, nodes, initializers
        self.readers: dict[str, list[int]] = {}
        for i, node in enumerate(nodes):
            for name in node.input:
                self.readers.setdefault(name, []).append(i)
        self.visited: set[int] = set()
        self.layers: list[GraphLayer] = []
        self.activations: list[str] = []
        self.pending: str | None = None  # the activation after the last layer, once seen

    def step(self, current: str) -> str:
        """The tensor after the next layer, activation or passed-on node; an error where the
        graph is not a chain of them."""
        readers = self.readers.get(current, [])
        if not readers:
            raise bad(self.path, f"{current!r} is read by no node and is not the graph's output")
        if looped := [i for i in readers if i in self.visited]:
            node = self.nodes[looped[0]]
            raise bad(self.path, f"the graph loops back to {node.op_type} at node {looped[0]}")
        ops = sorted(self.nodes[i].op_type for i in readers)
        if ops == ["Mul", "Sigmoid"]:
            return self._silu(current, readers)
        if ops == ["Greater", "Softplus", "Where"]:
            return self._softplus(current, readers)
        if len(readers) > 1:
            shown = ", ".join(f"{self.nodes[i].op_type} at node {i}" for i in readers)
            raise bad(self.path, f"{current!r} is read by {shown}; an MLP is one chain")
        i = readers[0]
        node = self.nodes[i]
        self.visited.add(i)
        if node.op_type in ("Gemm", "MatMul"):
            return self._linear(i, node)
        if node.op_type in PASSED_ON:
            self._check_inference(i, node)
            return str(node.output[0])
        return self._activation(i, node, self._activation_of(i, node))

    def _check_inference(self, i: int, node: Any) -> None:
        """A Dropout passes its input on unless its `training_mode` input is true, or is not a
        constant: then it drops values at random, and is refused."""
        if node.op_type != "Dropout" or len(node.input) < 3 or not node.input[2]:
            return
        mode = self._constant(node.input[2])
        if mode is not None and not mode.any():
            return
        told = "true" if mode is not None else "not a constant"
        raise bad(
            self.path,
            f"Dropout at node {i} drops values at random (its training_mode is {told}); "
            "export the model after model.eval()",
        )

    def _constant(self, name: str) -> np.ndarray | None:
        """The value of a tensor an initializer or a Constant node holds; None for any other."""
        from onnx import numpy_helper

        proto = self.initializers.get(name)
        for node in self.nodes:
            if node.op_type == "Constant" and name in node.output:
                proto = _attributes(node).get("value")
        if proto is None:
            return None
        with parsed_by_library(self.path, "ONNX file"):
            return numpy_helper.to_array(proto, base_dir=str(Path(self.path).parent))

    def _linear(self, i: int, node: Any) -> str:
        if self.pending is None and self.layers:
            self.activations.append("identity")
        elif self.pending is not None:
            self.activations.append(self.pending)
        self.pending = None
        attributes = _attributes(node)
        weight = node.input[1]
        if weight not in self.initializers:
            raise bad(self.path, f"{node.op_type} at node {i}: its weight is not an initializer")
        dims = tuple(self.initializers[weight].dims)
        if len(dims) != 2:
            raise bad(self.path, f"{node.op_type} at node {i}: its weight has shape {list(dims)}")
        out = str(node.output[0])
        bias = None
        if node.op_type == "Gemm":
            if attributes.get("transA", 0) or attributes.get("alpha", 1.0) != 1.0:
                raise bad(self.path, f"Gemm at node {i}: transA or alpha is not a Linear layer's")
            if attributes.get("beta", 1.0) != 1.0:
                raise bad(self.path, f"Gemm at node {i}: beta is not a Linear layer's")
            bias = str(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            out_in = bool(attributes.get("transB", 0))
        else:
            out_in = False
            bias, out = self._added_bias(out, dims[1])
        n_in, n_out = dims[::-1] if out_in else dims
        if bias is not None:
            self._check_bias(i, node, bias, n_out)
        self.layers.append(GraphLayer(weight, bias, n_in, n_out, out_in))
        return out

    def _added_bias(self, product: str, n_out: int) -> tuple[str | None, str]:
        """A MatMul's bias: the initializer an `Add` right after it adds; else none."""
        readers = self.readers.get(product, [])
        if len(readers) != 1 or self.nodes[readers[0]].op_type != "Add":
            return None, product
        i = readers[0]
        node = self.nodes[i]
        other = [name for name in node.input if name != product]
        if len(other) != 1 or other[0] not in self.initializers:
            return None, product
        self.visited.add(i)
        return other[0], str(node.output[0])

    def _check_bias(self, i: int, node: Any, bias: str, n_out: int) -> None:
        if bias not in self.initializers:
            raise bad(self.path, f"{node.op_type} at node {i}: its bias is not an initializer")
        dims = list(self.initializers[bias].dims)
        if dims not in ([n_out], [1, n_out]):
            raise bad(
                self.path,
                f"{node.op_type} at node {i}: bias {bias} has shape {dims}, expected [{n_out}]",
            )

    def _activation_of(self, i: int, node: Any) -> str:
        """mlpcli's name for an activation node; an error for any other op."""
        op, attributes = node.op_type, _attributes(node)
        if op in ONNX:  # one node with no attribute to check
            return ONNX[op]
        if op == "Gelu" and attributes.get("approximate", b"none") in (b"none", "none"):
            return "gelu"
        if op == "Softmax" and attributes.get("axis", -1) in (-1, 1):
            return "softmax"
        if op == "LeakyRelu" and math.isclose(attributes.get("alpha", 0.01), 0.01, rel_tol=1e-6):
            return "leaky_relu"
        if op == "Elu" and attributes.get("alpha", 1.0) == 1.0:
            return "elu"
        if op in ("Gelu", "Softmax", "LeakyRelu", "Elu"):
            shown = ", ".join(f"{k}={v!r}" for k, v in attributes.items())
            raise bad(self.path, f"{op} at node {i} ({shown}) is not mlpcli's {op.lower()}")
        raise bad(
            self.path,
            f"{op} at node {i}: mlpcli reads Linear layers (Gemm, MatMul and Add) and the "
            "activations Relu, Sigmoid, Tanh, Gelu, Softmax, LeakyRelu, Elu, Softplus, SiLU",
        )

    def _activation(self, i: int, node: Any, name: str) -> str:
        if not self.layers:
            raise bad(self.path, f"{node.op_type} at node {i} comes before any Linear layer")
        if self.pending is not None:
            raise bad(
                self.path,
                f"{node.op_type} at node {i} follows another activation; mlpcli runs one "
                "activation after each Linear layer",
            )
        self.pending = name
        return str(node.output[0])

    def _silu(self, current: str, readers: Sequence[int]) -> str:
        """SiLU as PyTorch's exporter writes it: Mul(x, Sigmoid(x))."""
        sigmoid, mul = sorted(readers, key=lambda i: self.nodes[i].op_type != "Sigmoid")
        if sorted(self.nodes[mul].input) != sorted([current, self.nodes[sigmoid].output[0]]):
            raise bad(self.path, f"Mul at node {mul} is not x * sigmoid(x)")
        self.visited.update(readers)
        self._activation(sigmoid, self.nodes[sigmoid], "silu")
        return str(self.nodes[mul].output[0])

    def _softplus(self, current: str, readers: Sequence[int]) -> str:
        """softplus as PyTorch's exporter writes it: Where(x > 20, x, Softplus(x))."""
        by_op = {self.nodes[i].op_type: i for i in readers}
        greater, where = self.nodes[by_op["Greater"]], self.nodes[by_op["Where"]]
        threshold = self._scalar(greater.input[1])
        softplus = self.nodes[by_op["Softplus"]].output[0]
        if (
            greater.input[0] != current
            or threshold != SOFTPLUS_THRESHOLD
            or list(where.input) != [greater.output[0], current, softplus]
        ):
            raise bad(self.path, f"Where at node {by_op['Where']} is not torch's softplus")
        self.visited.update(readers)
        self._activation(by_op["Softplus"], self.nodes[by_op["Softplus"]], "softplus")
        return str(where.output[0])

    def _scalar(self, name: str) -> float | None:
        from onnx import numpy_helper

        if name not in self.initializers:
            return None
        array = numpy_helper.to_array(self.initializers[name])
        return float(array) if array.size == 1 else None


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}
