"""A Keras 3 model as weights, read with h5py (the `keras` extra) and never with Keras: a
`.keras` archive (its `config.json` gives the Dense stack, in order, and each layer's
activation; its `model.weights.h5` the kernels and biases), or a `.weights.h5` alone (the
Dense layers in their names' order, `dense`, `dense_1`, ...; no activations). Dense kernels
are stored (in, out). `InputLayer`, `Dropout` and `Activation` layers are allowed; any other
layer is refused naming it. docs/files.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlpcli.data.graphs import Graph, GraphLayer
from mlpcli.data.tensorfiles import (
    Entry,
    bad,
    by_file,
    native,
    natural_key,
    numpy_entry,
    parsed_by_library,
    regular_size,
)
from mlpcli.errors import UnavailableError, install_hint
from mlpcli.model.activations import KERAS

if TYPE_CHECKING:
    import torch

SUFFIXES = (".keras", ".h5")
WEIGHTS = "model.weights.h5"  # inside a .keras archive
MAX_RATIO = 100  # a member that inflates more than this from its archive is refused
LOCAL_HEADER = 30  # bytes of a zip member's local header before its name and extra field
PASSED_ON = ("InputLayer", "Dropout")
ONE_CHAIN = "mlpcli reads one chain of Dense layers, each with at most one activation"


@by_file
def read_model(path: str) -> Graph:
    """The Dense layers a Keras file holds, with their activations where it has a config."""
    with _weights(path) as h5, parsed_by_library(path, "Keras file"):
        variables = _variables(path, h5)
    entries = {name: entry for held in variables.values() for name, entry in held}
    if path.lower().endswith(".keras"):
        names, activations = _stack(path, _config(path))
        missing = [name for name in names if name not in variables]
        if missing:
            raise bad(path, f"its weights hold no {missing[0]!r}, which its config.json names")
    else:
        names = sorted(variables, key=natural_key)  # dense, dense_1, ... as Keras made them
        activations = None
    layers = tuple(_dense(path, name, variables[name]) for name in names)
    if not layers:
        raise bad(path, "holds no Dense layer")
    return Graph(layers, activations, entries)


@contextlib.contextmanager
def tensors(path: str) -> Iterator[Callable[[str], torch.Tensor]]:
    """A function from a variable's path in the file to its tensor, while the file is open."""
    import torch

    with _weights(path) as h5:
        yield lambda name: torch.from_numpy(native(h5[name][()]))


@contextlib.contextmanager
def _weights(path: str) -> Iterator[Any]:
    """The file's weights as an open h5py File: the file itself, or a .keras archive's member."""
    try:
        import h5py
    except ImportError:
        message = f"{path}: reading Keras weights needs h5py: {install_hint('keras')}"
        raise UnavailableError(message) from None
    regular_size(path, "a Keras file")
    with contextlib.ExitStack() as stack:
        source: Any = path
        if path.lower().endswith(".keras"):
            source = stack.enter_context(_stored(path, WEIGHTS)) or io.BytesIO(
                _member(path, WEIGHTS)
            )
        with parsed_by_library(path, "Keras file"):
            file = stack.enter_context(h5py.File(source, "r"))
        yield file


@contextlib.contextmanager
def _stored(path: str, name: str) -> Iterator[_Stored | None]:
    """A member of a .keras archive that is stored, not compressed (as Keras 3 saves its
    weights), to read in place; None for a compressed one (which `_member` inflates)."""
    with parsed_by_library(path, "Keras file"), zipfile.ZipFile(path) as archive:
        info = _info(path, archive, name)
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1:  # 1: encrypted
        yield None
        return
    with open(path, "rb") as file:
        file.seek(info.header_offset)
        header = file.read(LOCAL_HEADER)
        if len(header) < LOCAL_HEADER or not header.startswith(b"PK\x03\x04"):
            raise bad(path, f"a .keras archive whose {name} has no local header")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        start = info.header_offset + LOCAL_HEADER + name_length + extra_length
        yield _Stored(file, start, info.file_size)


class _Stored(io.RawIOBase):
    """`size` bytes at `start` of a file, read as a file of their own (h5py reads a stored
    member in place: the member is not held)."""

    def __init__(self, file: io.BufferedReader, start: int, size: int) -> None:
        super().__init__()
        self.file, self.start, self.size, self.at = file, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.at, io.SEEK_END: self.size}[whence]
        self.at = max(0, base + offset)
        return self.at

    def readinto(self, buffer: Any) -> int:
        wanted = max(0, min(len(buffer), self.size - self.at))
        self.file.seek(self.start + self.at)
        got = self.file.readinto(memoryview(buffer).cast("B")[:wanted])
        self.at += got
        return got


def _info(path: str, archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    """A member's entry in a .keras archive; an error naming it where there is none."""
    try:
        return archive.getinfo(name)
    except KeyError:
        raise bad(path, f"a .keras archive without {name}") from None


def _member(path: str, name: str) -> bytes:
    """A member of a .keras archive, refused where it inflates past MAX_RATIO."""
    with parsed_by_library(path, "Keras file"), zipfile.ZipFile(path) as archive:
        info = _info(path, archive, name)
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) + (1 << 20):
            raise bad(
                path, f"{name} would inflate {info.compress_size:,} bytes to {info.file_size:,}"
            )
        return archive.read(info)


def _config(path: str) -> dict[str, Any]:
    try:
        config = json.loads(_member(path, "config.json"))
    except (ValueError, RecursionError):
        raise bad(path, "its config.json is not JSON") from None
    if not isinstance(config, dict):
        raise bad(path, "its config.json is not a model's config")
    return config


def _variables(path: str, h5: Any) -> dict[str, list[tuple[str, Entry]]]:
    """Each layer's variables (`layers/<name>/vars/<i>`, as Keras 3 saves them) by layer
    name, with their entries: datasets stored in the file itself (no link, no external or
    virtual storage is followed)."""
    import h5py

    layers = _member_of(path, h5, "layers", h5py.Group)
    if layers is None:
        old = (
            " (a Keras 2 file: save with Keras 3, model.save('m.keras'))"
            if "model_weights" in h5
            else ""
        )
        raise bad(path, f"holds no Keras 3 layers{old}")
    held: dict[str, list[tuple[str, Entry]]] = {}
    for name in layers:
        group = _member_of(path, layers, name, h5py.Group)
        found = _member_of(path, group, "vars", h5py.Group) if group is not None else None
        if group is None or found is None:
            raise bad(path, f"layers/{name} is not a Keras layer's group of variables")
        numbers = list(found)
        if not all(number.isdigit() for number in numbers):
            raise bad(path, f"layers/{name}/vars holds {numbers[:4]}, not variables 0, 1, ...")
        variables = []
        for number in sorted(numbers, key=int):
            data = _member_of(path, found, number, h5py.Dataset)
            if data is None or data.external or data.is_virtual:
                raise bad(path, f"layers/{name}/vars/{number} is not an array stored in the file")
            variables.append((f"layers/{name}/vars/{number}", numpy_entry(data.dtype, data.shape)))
        if variables:
            held[name] = variables
    return held


def _member_of(path: str, group: Any, name: str, kind: type) -> Any:
    """`group[name]` where it is a `kind` (Group, Dataset) held in the file by a hard link;
    else None."""
    import h5py

    if name not in group or not isinstance(group.get(name, getlink=True), h5py.HardLink):
        return None
    member = group[name]
    return member if isinstance(member, kind) else None


def _dense(path: str, name: str, variables: list[tuple[str, Entry]]) -> GraphLayer:
    """A Dense layer from its variables: a kernel (in, out), and a bias (out,) or none."""
    shapes = [entry.shape for _, entry in variables]
    if len(shapes) in (1, 2) and len(shapes[0]) == 2 and shapes[1:] in ([], [(shapes[0][1],)]):
        bias = variables[1][0] if len(variables) == 2 else None
        return GraphLayer(variables[0][0], bias, *shapes[0], out_in=False)
    held = ", ".join(str(list(shape)) for shape in shapes)
    raise bad(path, f"layer {name!r} holds variables {held}; mlpcli reads Dense layers only")


def _stack(path: str, config: Mapping[str, Any]) -> tuple[list[str], tuple[str, ...]]:
    """The Dense layers of a Sequential (or of a Functional model that is one chain), in
    order, each by the name Keras saves its weights under (`dense`, `dense_1`, ... by
    position, whatever the layer is called), and the activation after each."""
    inner = config.get("config")
    inner = inner if isinstance(inner, dict) else {}
    layers = inner.get("layers")
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional") or not isinstance(layers, list):
        raise bad(path, f"a Keras {kind!r}; mlpcli reads Sequential models")
    names: list[str] = []
    activations: list[str] = []
    before = None  # the layer the next one must read (a Functional model's chain)
    for layer in layers:
        kind_of = layer.get("class_name") if isinstance(layer, dict) else None
        settings = layer.get("config") if isinstance(layer, dict) else None
        settings = settings if isinstance(settings, dict) else {}
        name = str(settings.get("name", "?"))
        chained = kind != "Functional" or kind_of == "InputLayer" or _inputs_of(layer) == [before]
        if not chained:
            raise bad(path, f"layer {name!r} does not read the layer before it; {ONE_CHAIN}")
        before = name
        if kind_of not in PASSED_ON:
            _add_layer(path, name, kind_of, settings, names, activations)
    if kind == "Functional" and _outputs(inner) != [before]:
        raise bad(path, f"its output is not its last layer's; {ONE_CHAIN}")
    return names, tuple(activations)


def _add_layer(
    path: str,
    name: str,
    kind: object,
    settings: Mapping[str, Any],
    names: list[str],
    activations: list[str],
) -> None:
    """One layer of the chain: a Dense layer (by the name Keras saves its weights under) and
    its activation, or the activation layer after a Dense layer that has none."""
    bare = bool(names) and activations[-1] == "identity"  # a Dense layer with no activation
    if kind == "Dense":
        names.append("dense" if not names else f"dense_{len(names)}")
        activations.append(_activation(path, name, settings.get("activation")))
    elif kind == "Activation" and bare:
        activations[-1] = _activation(path, name, settings.get("activation"))
    elif kind == "ReLU" and bare and _plain_relu(settings):
        activations[-1] = "relu"
    else:
        where = (
            "follows another activation" if kind in ("Activation", "ReLU") else "is no Dense layer"
        )
        raise bad(path, f"layer {name!r} ({kind}) {where}; {ONE_CHAIN}")


def _inputs_of(layer: Mapping[str, Any]) -> list[object]:
    """The layers a Functional model's layer reads (its inbound nodes' `keras_history`)."""
    found: list[object] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            history = value.get("keras_history")
            if isinstance(history, list) and history:
                found.append(history[0])
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(layer.get("inbound_nodes", []))
    return found


def _outputs(inner: Mapping[str, Any]) -> list[object]:
    """The layers a Functional model's outputs come from (`output_layers`)."""
    outputs = inner.get("output_layers")
    if isinstance(outputs, list) and outputs and not isinstance(outputs[0], list):
        outputs = [outputs]  # one output: [name, node, tensor]
    return [entry[0] for entry in outputs or [] if isinstance(entry, list) and entry]


def _activation(path: str, layer: str, activation: object) -> str:
    """mlpcli's name for a Keras activation; an error for one it does not compute alike."""
    if isinstance(activation, dict):  # a serialized function: {"class_name": "function", ...}
        activation = (
            activation.get("config") if activation.get("class_name") == "function" else activation
        )
    if isinstance(activation, str | None) and activation in KERAS:
        return KERAS[activation]
    slope = (
        " (Keras' leaky_relu has slope 0.2, mlpcli's 0.01)" if activation == "leaky_relu" else ""
    )
    raise bad(
        path, f"layer {layer!r}: activation {activation!r} is not one mlpcli computes alike{slope}"
    )


def _plain_relu(settings: Mapping[str, Any]) -> bool:
    """Whether a ReLU layer is max(x, 0): no cap, slope or threshold."""
    return (
        not settings.get("max_value")
        and not settings.get("negative_slope")
        and not settings.get("threshold")
    )
