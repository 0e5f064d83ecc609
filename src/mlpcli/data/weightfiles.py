"""Weights and biases from a file (`weights:`): .safetensors, .pt/.pth/.ckpt/.bin read with
`weights_only=True`, NumPy's .npz (`allow_pickle=False`), or an ONNX graph (`onnxgraphs`, which
gives the activations too); a file of tensors in one of two layouts, found from their names:

- mlpcli's: `W1..WL` shaped (n(i-1), ni), `B1..BL` shaped (1, ni) or (ni,); the other tensors
  of `run --output x.safetensors` (features, h1.., output) are passed over;
- PyTorch's modules: `<name>.weight` (out, in) and `<name>.bias` (out,) of Linear layers, in the
  one order their shapes connect (the file's order, or `weights_order`, where several do); a
  BatchNorm1d (`running_mean`, `running_var`) is folded into the Linear it follows, or into the
  inputs of the next one where it sits after the activation (an nn.Sequential's indices say
  which; `batchnorm` where the names cannot).

Training checkpoints give the state dict inside them; a wrapper's prefix (`module.`, `model.`,
`_orig_mod.`) shared by every name is dropped; the aliases `safetensors.torch.save_model` writes
for tied weights are followed. `describe` reads only the header of a safetensors file (no
torch); docs/contract.md section 5, docs/files.md.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlpcli.data import checkpoints, kerasfiles, onnxgraphs
from mlpcli.data.casts import first_past, past_range
from mlpcli.data.graphs import Graph
from mlpcli.data.tensorfiles import (
    FLOATING,
    Entry,
    bad,
    mapped,
    native,
    natural_key,
    npz_headers,
    numpy_entry,
    safetensors_header,
)
from mlpcli.model.config import MAX_LAYERS

if TYPE_CHECKING:
    import torch

SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".npz", ".onnx", *kerasfiles.SUFFIXES)
WRAPPERS = ("module.", "model.", "_orig_mod.")  # DataParallel/DDP, Lightning, torch.compile
BATCHNORM_EPS = 1e-5  # BatchNorm1d's default; a state dict does not hold it
MAX_ORDERS_SEARCHED = 100_000  # steps of the search for the orders the shapes connect
_MLPCLI = re.compile(r"([WB])([1-9][0-9]*)")
_RUN_OUTPUT = re.compile(r"features|output|h[1-9][0-9]*")
_BATCHNORM = {"running_mean", "running_var"}
_NUMBERS = re.compile(r"([0-9]+)")


@dataclass(frozen=True)
class Norm:
    """A BatchNorm1d's tensors: running statistics, and its affine weight and bias if any."""

    name: str
    mean: str
    var: str
    weight: str | None
    bias: str | None


@dataclass(frozen=True)
class Layer:
    """One weight layer as the file holds it: tensor names, and its sizes."""

    weight: str
    bias: str | None
    n_in: int
    n_out: int
    norm: Norm | None = None  # a BatchNorm1d after it, folded into its outputs
    norm_in: Norm | None = None  # a BatchNorm1d before it, folded into its inputs
    out_in: bool = False  # the weight is stored (out, in), as nn.Linear holds it


@dataclass(frozen=True)
class WeightsFile:
    """Where each layer's weight and bias is in a file, and what was assumed reading it."""

    path: str
    layout: str  # "mlpcli", "nn.Linear", "onnx" or "keras"
    entries: tuple[Layer, ...]
    aliases: Mapping[str, str]  # a name the layers use -> the tensor's name in the file
    metadata: Mapping[str, str]
    notes: tuple[str, ...] = ()
    activations: tuple[str, ...] | None = None  # what a graph runs after each layer

    @property
    def layers(self) -> tuple[int, ...]:
        return (self.entries[0].n_in, *(layer.n_out for layer in self.entries))

    @property
    def bias(self) -> bool:
        return any(layer.bias or layer.norm or layer.norm_in for layer in self.entries)

    def expected(self, layer: int, sizes: tuple[int, ...]) -> tuple[str, list[int], list[int]]:
        """Weight `layer` (1-based): its name in the file, its shape there, and the shape that
        `sizes` asks of it, both in the file's layout."""
        entry = self.entries[layer - 1]
        have, want = [entry.n_in, entry.n_out], [sizes[layer - 1], sizes[layer]]
        if entry.out_in:
            have.reverse()
            want.reverse()
        return entry.weight, have, want


def describe(
    path: str,
    order: Sequence[str] | None = None,
    start: int | None = None,
    norms: str | None = None,
) -> WeightsFile:
    """The layout and sizes of the weights at `path`; an error names any tensor that is
    missing, unexpected, of the wrong shape or not floating point. `start`: the features'
    width, where it is known, which the first layer must take; `norms`: where its BatchNorm1d
    layers sit (`batchnorm`), where the names cannot say."""
    suffix = Path(path).suffix.lower()
    if Path(path).is_dir():
        raise bad(path, "is a directory, not a weights file")
    if suffix not in SUFFIXES:
        raise bad(path, f"weights are read from {', '.join(SUFFIXES)}")
    if suffix == ".onnx" or suffix in kerasfiles.SUFFIXES:
        if order is not None:
            raise bad(path, "a model file gives its layers' order; weights_order is for names")
        onnx = suffix == ".onnx"
        graph = onnxgraphs.read_graph(path) if onnx else kerasfiles.read_model(path)
        return _graph_layout(path, graph, "onnx" if onnx else "keras")
    entries, metadata, names, notes = _tensors_of(path, suffix)
    if not entries:
        raise bad(path, "holds no tensors")
    aliases = {
        alias: name for alias, name in metadata.items() if name in entries and alias not in entries
    }  # tied weights, as safetensors.torch.save_model records them
    if any(_MLPCLI.fullmatch(name) for name in entries):
        if order is not None:
            raise bad(path, "holds mlpcli's W1.., B1..; weights_order is for named layers")
        return _mlpcli_layout(path, entries, metadata, notes)
    shapes = {**entries, **{alias: entries[name] for alias, name in aliases.items()}}
    names += sorted(aliases, key=natural_key)
    # a .pt keeps the order the modules registered in; a .safetensors sorts names, which is
    # that order only where the names differ by numbers alone (`layers.0`, `layers.1`, ...)
    skeletons = {_NUMBERS.sub("#", name.rpartition(".")[0]) for name in names}
    in_order = suffix != ".safetensors" or len(skeletons) == 1
    layers, more = _module_layout(path, shapes, names, _Order(order, start, in_order, norms))
    _check_floating(path, shapes, layers)
    return WeightsFile(path, "nn.Linear", layers, aliases, metadata, (*notes, *more))


def _tensors_of(
    path: str, suffix: str
) -> tuple[dict[str, Entry], dict[str, str], list[str], tuple[str, ...]]:
    """A file of tensors' entries, its metadata, their names in the order the file keeps (by
    name for safetensors) and its notes, read without their data."""
    if suffix == ".safetensors":
        entries, metadata = safetensors_header(path)
        return dict(entries), dict(metadata), sorted(entries, key=natural_key), ()
    if suffix == ".npz":
        headers = npz_headers(path, "weights")
        entries = {n: numpy_entry(h.dtype, h.shape) for n, h in headers.items()}
        return entries, {}, list(entries), ()  # np.savez keeps the order it was given
    state = checkpoints.state_dict(path)
    entries = {n: checkpoints.entry(t) for n, t in state.tensors.items()}
    return entries, {}, list(entries), state.notes  # the order the module registered them


def activations_of(path: str) -> tuple[str, ...] | None:
    """What a model file (.onnx, .keras) runs after each layer; None where the file does not
    say (a file of tensors, a .weights.h5)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return onnxgraphs.read_graph(path).activations
    return kerasfiles.read_model(path).activations if suffix in kerasfiles.SUFFIXES else None


def layers(
    weights: WeightsFile, dtype: torch.dtype, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Each layer's Wi as (n(i-1), ni) and Bi as (1, ni) (None where the network has no
    biases), in `dtype` on `device`, a layer at a time.

    PyTorch's (out, in) weights stay as stored: Wi is their transposed view, no copy, so that
    `h @ Wi` is what `nn.Linear` computes, bit for bit. A folded BatchNorm1d is computed in
    float64 (`torch.nn.utils.fusion`), then cast.
    """
    import torch

    def placed(tensor: torch.Tensor, name: str) -> torch.Tensor:
        """`tensor` in `dtype` on `device`; a value it cannot hold (finite in the file, an
        infinity once cast) is an error naming the tensor."""
        cast = tensor.to(device=device, dtype=dtype)
        if (past := first_past(tensor, cast)) is not None:
            value = tensor[past].item()
            raise bad(weights.path, f"{name}: {past_range(value, dtype)}; run in float64")
        return cast

    with _tensors(weights.path, device) as get:

        def tensor(name: str) -> torch.Tensor:
            return get(weights.aliases.get(name, name))

        for layer in weights.entries:
            W = tensor(layer.weight)
            B = tensor(layer.bias) if layer.bias is not None else None
            if layer.norm is not None:
                W, B = _folded(W, B, tensor, layer.norm)
            if layer.norm_in is not None:
                W, B = _folded_in(W, B, tensor, layer.norm_in)
            Wi = placed(W, layer.weight)
            Wi = Wi.t() if layer.out_in else Wi.contiguous()  # .t(): a view
            if not weights.bias:
                yield Wi, None
                continue
            zeros = torch.zeros(layer.n_out, dtype=dtype, device=device)
            Bi = placed(B, layer.bias or layer.weight) if B is not None else zeros
            yield Wi, Bi.reshape(1, -1)


@contextlib.contextmanager
def _tensors(path: str, device: torch.device) -> Iterator[Callable[[str], torch.Tensor]]:
    """A function from a tensor's name to the tensor, while the file is open."""
    if path.lower().endswith(".onnx"):
        yield onnxgraphs.tensors(path)
        return
    if path.lower().endswith(kerasfiles.SUFFIXES):
        with kerasfiles.tensors(path) as get:
            yield get
        return
    if path.lower().endswith(".npz"):
        import numpy as np
        import torch

        with np.load(path, allow_pickle=False) as archive:
            yield lambda name: torch.from_numpy(native(archive[name]))
        return
    if not path.lower().endswith(".safetensors"):
        yield checkpoints.state_dict(path).tensors.__getitem__
        return
    from safetensors import safe_open

    where = "cpu" if device.type == "cpu" else str(device)  # the library's own device loading
    with mapped(path), safe_open(path, framework="pt", device=where) as file:
        yield file.get_tensor


def _folded(
    W: torch.Tensor, B: torch.Tensor | None, get: Callable[[str], torch.Tensor], norm: Norm
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Linear (W, B) with the BatchNorm1d `norm` after it folded in, in float64."""
    from torch.nn.utils.fusion import fuse_linear_bn_weights

    mean, var, gamma, beta = _statistics(get, norm)
    bias = B.double() if B is not None else None
    fused = fuse_linear_bn_weights(W.double(), bias, mean, var, BATCHNORM_EPS, gamma, beta)
    return fused[0].detach(), fused[1].detach()


def _folded_in(
    W: torch.Tensor, B: torch.Tensor | None, get: Callable[[str], torch.Tensor], norm: Norm
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Linear (W, B) with the BatchNorm1d `norm` before it folded into its inputs, in
    float64: W (x * scale + shift) + B = (W * scale) x + (W shift + B)."""
    mean, var, gamma, beta = _statistics(get, norm)
    scale = gamma * (var + BATCHNORM_EPS).rsqrt()
    shift = beta - mean * scale
    W = W.double()
    bias = W @ shift + (B.double() if B is not None else 0.0)
    return W * scale, bias


def _statistics(
    get: Callable[[str], torch.Tensor], norm: Norm
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A BatchNorm1d's running mean and variance and its affine weight and bias, in float64."""
    import torch

    mean, var = get(norm.mean).double(), get(norm.var).double()
    gamma = get(norm.weight).double() if norm.weight else torch.ones_like(mean)  # affine=False
    beta = get(norm.bias).double() if norm.bias else torch.zeros_like(mean)
    return mean, var, gamma, beta


def _mlpcli_layout(
    path: str, entries: Mapping[str, Entry], metadata: Mapping[str, str], notes: tuple[str, ...]
) -> WeightsFile:
    weights, biases = _mlpcli_names(path, entries)
    for name in (*weights, *biases):
        if entries[name].dtype not in FLOATING:
            raise bad(path, f"{name} is {entries[name].dtype}; weights must be floating point")
    shapes = [entries[name].shape for name in weights]
    for name, shape in zip(weights, shapes, strict=True):
        if len(shape) != 2:
            raise bad(path, f"{name} has shape {list(shape)}; a weight has two dimensions")
    _check_in_to_out(path, weights, shapes)
    layers = tuple(
        Layer(name, biases[i] if biases else None, shapes[i][0], shapes[i][1])
        for i, name in enumerate(weights)
    )
    for layer in layers:
        _check_bias(path, entries, layer)
    if any(n == 0 for layer in layers for n in (layer.n_in, layer.n_out)):
        raise bad(path, "weights give a layer of 0 units")
    return WeightsFile(path, "mlpcli", layers, {}, dict(metadata), notes)


def _mlpcli_names(path: str, entries: Mapping[str, Entry]) -> tuple[list[str], list[str]]:
    """W1..WL and B1..BL (or no bias), every one there and nothing else but a run's output."""
    found = {name: _MLPCLI.fullmatch(name) for name in entries}
    for name, match in found.items():  # before any name is made from the largest index
        if match and (len(match.group(2)) > 4 or int(match.group(2)) >= MAX_LAYERS):
            message = f"{name[:20]}: mlpcli's layers are W1 to W{MAX_LAYERS - 1} (and B1..)"
            raise bad(path, message)
    count = max(int(m.group(2)) for m in found.values() if m and m.group(1) == "W")
    weights = [f"W{i}" for i in range(1, count + 1)]
    has_bias = any(m and m.group(1) == "B" for m in found.values())
    biases = [f"B{i}" for i in range(1, count + 1)] if has_bias else []
    known = {*weights, *biases}
    unexpected = [n for n in entries if n not in known and not _RUN_OUTPUT.fullmatch(n)]
    _complain(path, [n for n in (*weights, *biases) if n not in entries], unexpected)
    return weights, biases


def _check_in_to_out(path: str, weights: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> None:
    """Each weight (in, out) takes what the one before gives; else the line says which one to
    transpose where that would make it fit."""
    for i in range(1, len(weights)):
        (_, n_in), (rows, columns) = shapes[i - 1], shapes[i]
        if rows == n_in:
            continue
        message = (
            f"{weights[i]} has shape {[rows, columns]}, expected {[n_in, columns]} ({n_in} "
            "units come out of the layer before)"
        )
        if columns == n_in:
            message = f"{weights[i]} has shape {[rows, columns]}, expected {[columns, rows]}"
            message += "; transpose it"
        elif shapes[i - 1][0] == rows and (i == 1 or shapes[i - 2][1] == shapes[i - 1][1]):
            have = list(shapes[i - 1])
            message = f"{weights[i - 1]} has shape {have}, expected {have[::-1]}; transpose it"
        raise bad(path, message)


def _check_bias(path: str, entries: Mapping[str, Entry], layer: Layer) -> None:
    """A bias of mlpcli's layout is (out,) or (1, out)."""
    if layer.bias is None:
        return
    have, n = entries[layer.bias].shape, layer.n_out
    if have not in ((n,), (1, n)):
        raise bad(path, f"{layer.bias} has shape {list(have)}, expected [{n}] or [1, {n}]")


def _graph_layout(path: str, graph: Graph, layout: str) -> WeightsFile:
    """The layers a model file describes (ONNX, Keras), checked as a file of tensors is."""
    layers = tuple(Layer(g.weight, g.bias, g.n_in, g.n_out, out_in=g.out_in) for g in graph.layers)
    _check_floating(path, graph.entries, layers)
    for before, layer in itertools.pairwise(layers):
        if layer.n_in != before.n_out:
            message = (
                f"{layer.weight} takes {layer.n_in} inputs, but {before.n_out} come out before"
            )
            raise bad(path, message)
    return WeightsFile(path, layout, layers, {}, {}, (), graph.activations)


def _check_floating(path: str, entries: Mapping[str, Entry], layers: Sequence[Layer]) -> None:
    """Every weight and bias a layer reads is floating point."""
    for layer in layers:
        for name in (layer.weight, layer.bias):
            if name is not None and entries[name].dtype not in FLOATING:
                raise bad(path, f"{name} is {entries[name].dtype}; weights must be floating point")


def _complain(path: str, missing: list[str], unexpected: list[str]) -> None:
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:8])}")
    if unexpected:
        parts.append(f"unexpected {', '.join(unexpected[:8])}")
    if parts:
        raise bad(path, "; ".join(parts) + " (every layer has a weight, and a bias or none)")


@dataclass(frozen=True)
class _Order:
    """What decides the layers' order: `weights_order`, the features' width, and whether the
    file keeps the order the modules registered in."""

    names: Sequence[str] | None
    start: int | None
    kept: bool
    norms: str | None  # `batchnorm`: after_linear, after_activation; None: the names say


@dataclass(eq=False)
class _Module:
    name: str  # as written in the file
    shown: str  # without a wrapper's prefix
    tensors: dict[str, str]  # the part after the last dot (weight, bias, ...) -> full name


def _modules(path: str, names: Sequence[str]) -> list[_Module]:
    """The modules the tensor names describe, in the order of `names`."""
    prefix = ""
    while wrap := next((w for w in WRAPPERS if all(n.startswith(prefix + w) for n in names)), None):
        prefix += wrap
    modules: dict[str, _Module] = {}
    for name in names:
        module, dot, part = name.rpartition(".")
        if not dot:
            raise bad(
                path,
                "no weights in a known layout (W1.. and B1.., or <layer>.weight and "
                f"<layer>.bias of PyTorch's Linear layers); found {', '.join(names[:8])}",
            )
        entry = modules.setdefault(module, _Module(module, module.removeprefix(prefix), {}))
        entry.tensors[part] = name
    return list(modules.values())


def _module_layout(
    path: str, entries: Mapping[str, Entry], names: Sequence[str], order: _Order
) -> tuple[tuple[Layer, ...], list[str]]:
    """The Linear layers in the order they run, each with the BatchNorm1d folded into it."""
    linears, norms = _linears_and_norms(path, entries, names)

    def sizes(module: _Module) -> tuple[int, int]:
        out, n_in = entries[module.tensors["weight"]].shape
        return n_in, out

    for module in linears:
        _check_linear_bias(path, entries, module, *sizes(module))
    chain, notes = _chain_of(path, linears, [sizes(m) for m in linears], order)
    folds = _fold(path, chain, norms, names if order.kept else None, entries, order.norms)
    if folds:
        pairs = ", ".join(
            f"{fold.norm.shown} into the inputs of {fold.linear.shown}"
            if fold.inputs
            else f"{fold.norm.shown} into {fold.linear.shown}"
            for fold in folds
        )
        notes.append(
            f"{path}: BatchNorm1d folded (running statistics, eps {BATCHNORM_EPS:g}): {pairs}"
        )
    after = {fold.linear: _norm(fold.norm) for fold in folds if not fold.inputs}
    before = {fold.linear: _norm(fold.norm) for fold in folds if fold.inputs}
    layers = tuple(
        Layer(
            m.tensors["weight"], m.tensors.get("bias"), *sizes(m), after.get(m), before.get(m),
            out_in=True,
        )
        for m in chain
    )  # fmt: skip
    return layers, notes


def _linears_and_norms(
    path: str, entries: Mapping[str, Entry], names: Sequence[str]
) -> tuple[list[_Module], list[_Module]]:
    """The file's Linear layers and BatchNorm1d modules; anything else is refused by name."""
    linears, norms = [], []
    for module in _modules(path, names):
        parts = set(module.tensors)
        weight = entries.get(module.tensors.get("weight", ""))
        if weight is not None and len(weight.shape) == 2 and parts <= {"weight", "bias"}:
            linears.append(module)
        elif _BATCHNORM <= parts <= {*_BATCHNORM, "weight", "bias", "num_batches_tracked"}:
            norms.append(module)
        else:
            held = ", ".join(
                f"{part} {list(entries[name].shape)}"
                for part, name in sorted(module.tensors.items())
            )
            raise bad(
                path,
                f"layer {module.shown!r} ({held[:120]}) is neither a Linear layer (a 2-D weight) "
                "nor a BatchNorm1d (running statistics); mlpcli runs only those",
            )
    if not linears:
        raise bad(path, "holds no Linear layer (a 2-D <name>.weight)")
    if len(linears) >= MAX_LAYERS:  # before their order is searched
        raise bad(
            path, f"holds {len(linears):,} Linear layers; a network has at most {MAX_LAYERS - 1:,}"
        )
    return linears, norms


def _check_linear_bias(
    path: str, entries: Mapping[str, Entry], module: _Module, n_in: int, out: int
) -> None:
    """A Linear layer's bias is (out,); one of (in,) says the weight is turned."""
    bias = module.tensors.get("bias")
    if bias is None or entries[bias].shape == (out,):
        return
    have = list(entries[bias].shape)
    if have == [n_in]:  # the bias fits the weight's other side: the weight is turned
        name = module.tensors["weight"]
        raise bad(
            path,
            f"{name} has shape {[out, n_in]}, expected {[n_in, out]} (its bias, {bias}, "
            f"has {n_in}); transpose it",
        )
    raise bad(path, f"{bias} has shape {have}, expected [{out}]")


def _chain_of(
    path: str, linears: list[_Module], sizes: list[tuple[int, int]], order: _Order
) -> tuple[list[_Module], list[str]]:
    """The Linear layers in the order they run (`weights_order`'s, or the one their shapes
    allow, the file's first where several do, with a note), and the notes."""
    if order.names is not None:
        chain = _ordered(path, linears, order.names)
        size_of = dict(zip(linears, sizes, strict=True))
        _check_chain(path, [size_of[m] for m in chain], chain)
        return chain, []
    chains = _chains(sizes, start=order.start)
    if not chains:
        raise bad(path, _no_chain(linears, sizes, order.start))
    chain = [linears[i] for i in chains[0]]
    if len(chains) == 1:
        return chain, []
    shown = " → ".join(m.shown for m in chain)
    which = "the file's order" if order.kept else "by name: a .safetensors keeps no order"
    return chain, [
        f"{path}: the layers' shapes allow several orders; ran {shown} ({which}); set "
        "weights_order to choose"
    ]


def _ordered(path: str, linears: list[_Module], order: Sequence[str]) -> list[_Module]:
    """The Linear layers in the order `weights_order` names them (with or without a prefix)."""
    by_name = {m.name: m for m in linears} | {m.shown: m for m in linears}
    unknown = [name for name in order if name not in by_name]
    if unknown:
        known = ", ".join(m.shown for m in linears)
        raise bad(
            path, f"weights_order names {', '.join(unknown)}, not a Linear layer here ({known})"
        )
    chain = [by_name[name] for name in order]
    left = [m.shown for m in linears if m not in chain]
    if left or len(set(map(id, chain))) != len(chain):
        what = f"leaves out {', '.join(left)}" if left else "names a layer twice"
        raise bad(path, f"weights_order {what}; list every Linear layer once")
    return chain


def _check_chain(path: str, shapes: list[tuple[int, int]], chain: list[_Module]) -> None:
    for (_, out), (n_in, _), module in zip(shapes, shapes[1:], chain[1:], strict=False):
        if n_in != out:
            name = module.tensors["weight"]
            raise bad(path, f"{name} takes {n_in} inputs, but {out} come out of the layer before")


def _chains(
    shapes: list[tuple[int, int]], limit: int = 2, start: int | None = None
) -> list[list[int]]:
    """Up to `limit` orders of the layers in which each one's outputs are the next's inputs,
    the file's order first where it is one; a search bounded by MAX_ORDERS_SEARCHED steps."""
    found: list[list[int]] = []
    path: list[int] = []
    used = [False] * len(shapes)
    stack = [iter(range(len(shapes)))]
    steps = 0
    while stack and len(found) < limit and steps < MAX_ORDERS_SEARCHED:
        steps += 1
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            if path:
                used[path.pop()] = False
            continue
        joins = shapes[path[-1]][1] if path else start
        if used[nxt] or (joins is not None and shapes[nxt][0] != joins):
            continue
        used[nxt] = True
        path.append(nxt)
        if len(path) == len(shapes):
            found.append(list(path))
            used[path.pop()] = False
        else:
            stack.append(iter(range(len(shapes))))
    return found


def _no_chain(linears: list[_Module], shapes: list[tuple[int, int]], start: int | None) -> str:
    """Why no order connects the layers: the one weight whose transpose would, where there is."""
    fixes = []  # (the order it makes, the layer): the one that keeps the file's order wins
    for i in range(len(linears)):
        flipped = [*shapes[:i], shapes[i][::-1], *shapes[i + 1 :]]
        fixes += [(chain, i) for chain in _chains(flipped, limit=1, start=start)]
    if fixes:
        _, i = min(fixes)
        name, (n_in, out) = linears[i].tensors["weight"], shapes[i]
        return (
            f"{name} has shape {[out, n_in]}, expected {[n_in, out]}: no order of the layers "
            "fits it as saved; transpose it"
        )
    listed = ", ".join(
        f"{m.shown} {n_in}→{out}" for m, (n_in, out) in zip(linears, shapes, strict=True)
    )
    return f"no order of the Linear layers connects their shapes ({listed})"


@dataclass(frozen=True)
class _Fold:
    """A BatchNorm1d folded into a Linear: into its outputs (it follows the Linear), or into
    its inputs (it follows the activation before the Linear, or is the network's first)."""

    norm: _Module
    linear: _Module
    inputs: bool


def _fold(
    path: str,
    chain: list[_Module],
    norms: list[_Module],
    names: Sequence[str] | None,
    entries: Mapping[str, Entry],
    place: str | None,
) -> list[_Fold]:
    """Where each BatchNorm1d folds: into the outputs of the Linear it follows, or, where it
    sits after that Linear's activation (or before every Linear), into the next Linear's
    inputs. An nn.Sequential's indices say which where they can (`_by_index`); other names
    cannot (`_by_name`), and `place` (`batchnorm`) must. Anything else is refused rather than
    guessed."""
    folds: list[_Fold] = []
    indexed = _indices(chain, norms)
    for norm in norms:
        width = entries[norm.tensors["running_mean"]].shape[0]
        if indexed is not None:
            fold = _by_index(path, norm, chain, indexed, place)
        else:
            fold = _by_name(path, norm, width, chain, names, entries, place)
        size = _in(fold.linear, entries) if fold.inputs else _out(fold.linear, entries)
        taken = {(f.linear.name, f.inputs) for f in folds}
        if size != width or (fold.linear.name, fold.inputs) in taken:
            where = (
                f"before {fold.linear.shown}, which takes"
                if fold.inputs
                else (f"after {fold.linear.shown}, which gives")
            )
            raise bad(
                path,
                f"{norm.shown}: a BatchNorm1d of {width} sits {where} {size}; mlpcli folds one "
                "BatchNorm1d of the Linear's width into each side of it",
            )
        folds.append(fold)
    return folds


def _indices(chain: list[_Module], norms: list[_Module]) -> dict[str, tuple[int, ...]] | None:
    """Each module's place as an nn.Sequential numbers it (`layers.3` → (3,); `blocks.1.0` →
    (1, 0)), where every module is named alike but for its numbers; else None."""
    modules = [*chain, *norms]
    skeletons = {_NUMBERS.sub("#", m.shown) for m in modules}
    if len(skeletons) != 1 or not _NUMBERS.search(modules[0].shown):
        return None
    return {m.name: tuple(int(d) for d in _NUMBERS.findall(m.shown)) for m in modules}


def _by_index(
    path: str,
    norm: _Module,
    chain: list[_Module],
    indexed: dict[str, tuple[int, ...]],
    place: str | None,
) -> _Fold:
    """A Sequential's BatchNorm1d. Right after a Linear (`0`, `1`): after it. Right before the
    next Linear with modules that hold no tensors (an activation, Dropout) between it and the
    Linear before, or before every Linear: after the activation. Modules on both sides
    (`Linear, Dropout, BatchNorm1d, ReLU`): the indices cannot say, and `place` decides."""
    at = indexed[norm.name]
    before = [m for m in chain if indexed[m.name] < at]
    after = [m for m in chain if indexed[m.name] > at]
    last = max(before, key=lambda m: indexed[m.name]) if before else None
    following = min(after, key=lambda m: indexed[m.name]) if after else None
    found: str | None = None
    if last is not None and indexed[last.name] == (*at[:-1], at[-1] - 1):
        found, shown = "after_linear", f"right after {last.shown}"
    elif following is None:
        raise bad(path, _after_the_last(norm))
    elif last is None or indexed[following.name] == (*at[:-1], at[-1] + 1):
        found, shown = "after_activation", f"right before {following.shown}"
    if found is not None and place is not None and place != found:
        raise bad(
            path,
            f"{norm.shown}: batchnorm is {place}, but the nn.Sequential's indices put this "
            f"BatchNorm1d {shown}; leave batchnorm out",
        )
    side = found or place
    if side is None:
        raise bad(
            path,
            f"{norm.shown}: modules without tensors sit on both sides of this BatchNorm1d, so "
            "the indices do not say whether it is before the activation or after it; set "
            f"batchnorm: {_PLACES}",
        )
    if side == "after_linear":
        if last is None:
            raise bad(
                path, f"{norm.shown}: batchnorm is after_linear, but no Linear comes before it"
            )
        return _Fold(norm, last, inputs=False)
    if following is None:
        raise bad(path, _after_the_last(norm))
    return _Fold(norm, following, inputs=True)


def _by_name(
    path: str,
    norm: _Module,
    width: int,
    chain: list[_Module],
    names: Sequence[str] | None,
    entries: Mapping[str, Entry],
    place: str | None,
) -> _Fold:
    """A BatchNorm1d of a module with its own names (`fc1`, `bn1`): on the inputs where only
    the first Linear's inputs have its width; else where `place` says, beside the Linear it
    follows (`_follows`)."""
    if width == _in(chain[0], entries) and all(_out(m, entries) != width for m in chain):
        return _Fold(norm, chain[0], inputs=True)  # nothing else has its width: the inputs
    follows = _follows(norm, width, chain, names, entries)
    if follows is None:
        raise bad(
            path,
            f"{norm.shown}: cannot tell which Linear this BatchNorm1d of {width} follows; save "
            "the model as an nn.Sequential, or name its layers alike (fc1, bn1)",
        )
    if place is None:
        raise bad(
            path,
            f"{norm.shown}: the names do not say whether this BatchNorm1d of {width} sits "
            f"before its Linear's activation or after it; set batchnorm: {_PLACES}",
        )
    if place == "after_linear":
        return _Fold(norm, follows, inputs=False)
    at = chain.index(follows)
    if at + 1 == len(chain):
        raise bad(path, _after_the_last(norm))
    return _Fold(norm, chain[at + 1], inputs=True)


_PLACES = (
    "after_linear (Linear, BatchNorm1d, activation) or after_activation (activation, "
    "BatchNorm1d, next Linear)"
)


def _after_the_last(norm: _Module) -> str:
    return (
        f"{norm.shown}: this BatchNorm1d follows the last Linear's activation, where mlpcli's "
        "network ends: there is no Linear to fold it into"
    )


def _follows(
    norm: _Module,
    width: int,
    chain: list[_Module],
    names: Sequence[str] | None,
    entries: Mapping[str, Entry],
) -> _Module | None:
    """The Linear a BatchNorm1d follows, by other names than a Sequential's: the one right
    before it in the file, where the file keeps the modules' order (`names`); else the one its
    name numbers alike (`fc2`, `bn2`), or the only one of its width."""
    if names is not None:
        position = {m.name: min(names.index(t) for t in m.tensors.values()) for m in chain}
        norm_at = min(names.index(t) for t in norm.tensors.values())
        before = [m for m in chain if position[m.name] < norm_at]
        return max(before, key=lambda m: position[m.name]) if before else None
    fits = [m for m in chain if _out(m, entries) == width]
    alike = [m for m in fits if _digits(m.shown) and _digits(m.shown) == _digits(norm.shown)]
    return alike[0] if len(alike) == 1 else (fits[0] if len(fits) == 1 else None)


def _digits(name: str) -> str:
    return "".join(_NUMBERS.findall(name))


def _norm(module: _Module) -> Norm:
    t = module.tensors
    return Norm(module.shown, t["running_mean"], t["running_var"], t.get("weight"), t.get("bias"))


def _out(module: _Module, entries: Mapping[str, Entry]) -> int:
    return entries[module.tensors["weight"]].shape[0]


def _in(module: _Module, entries: Mapping[str, Entry]) -> int:
    return entries[module.tensors["weight"]].shape[1]
