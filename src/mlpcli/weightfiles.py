"""Weights and biases from a file (`weights:`): .safetensors, or .pt/.pth read with
`weights_only=True`, in one of two layouts, found from the tensors' names:

- mlpcli's: `W1..WL` shaped (n(i-1), ni), `B1..BL` shaped (1, ni) or (ni,); the other tensors
  of `run --output x.safetensors` (features, h1.., output) are passed over;
- PyTorch's `nn.Linear` state dict: `<prefix><k>.weight` (out, in), `<prefix><k>.bias` (out,),
  layers in the order of `k`, as `nn.Sequential(Linear, activation, Linear, ...)` saves them.

`describe` reads only the header of a safetensors file (no torch); docs/contract.md section 5.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlpcli.tensorfiles import (
    FLOATING,
    Entry,
    bad,
    pt_entry,
    pt_tensors,
    safetensors_header,
)

if TYPE_CHECKING:
    import torch

SUFFIXES = (".safetensors", ".pt", ".pth")
_MLPCLI = re.compile(r"([WB])([1-9][0-9]*)")
_RUN_OUTPUT = re.compile(r"features|output|h[1-9][0-9]*")
_LINEAR = re.compile(r"(.*?)([0-9]+)\.(weight|bias)")


@dataclass(frozen=True)
class WeightsFile:
    """Where each layer's weight and bias is in a file, and the sizes they give."""

    path: str
    layout: str  # "mlpcli" or "nn.Linear"
    layers: tuple[int, ...]
    weights: tuple[str, ...]  # the tensor name of W1.. in the file
    biases: tuple[str, ...]  # of B1..; empty without biases
    metadata: Mapping[str, str]

    @property
    def bias(self) -> bool:
        return bool(self.biases)

    def expected(self, layer: int, sizes: tuple[int, ...]) -> tuple[str, list[int], list[int]]:
        """Weight `layer` (1-based): its name in the file, its shape there, and the shape that
        `sizes` asks of it, both in the file's layout."""
        n_in, n_out = sizes[layer - 1], sizes[layer]
        have = [self.layers[layer - 1], self.layers[layer]]
        want = [n_in, n_out]
        if self.layout == "nn.Linear":
            have.reverse()
            want.reverse()
        return self.weights[layer - 1], have, want


def describe(path: str) -> WeightsFile:
    """The layout and sizes of the weights at `path`; an error names any tensor that is
    missing, unexpected, of the wrong shape or not floating point."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise bad(path, f"weights are read from {', '.join(SUFFIXES)}")
    if suffix == ".safetensors":
        entries, metadata = safetensors_header(path)
    else:
        entries = {name: pt_entry(t) for name, t in pt_tensors(path).items()}
        metadata = {}
    if any(_MLPCLI.fullmatch(name) for name in entries):
        return _mlpcli_layout(path, entries, metadata)
    if any(_LINEAR.fullmatch(name) for name in entries):
        return _linear_layout(path, entries, metadata)
    found = ", ".join(sorted(entries)[:8]) or "no tensors"
    raise bad(
        path,
        f"no weights in a known layout (W1.. and B1.., or <k>.weight and <k>.bias of an "
        f"nn.Linear state dict); found {found}",
    )


def read(
    weights: WeightsFile, dtype: torch.dtype, device: torch.device
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """W1.. as (n(i-1), ni) and B1.. as (1, ni), contiguous, in `dtype` on `device`; one tensor
    at a time, so that memory holds the result plus one tensor of the file."""
    import torch

    def weight(tensor: torch.Tensor) -> torch.Tensor:
        if weights.layout == "nn.Linear":  # (out, in): cast and transpose in one copy
            placed = torch.empty(tensor.shape[::-1], dtype=dtype, device=device)
            return placed.copy_(tensor.t())
        return tensor.to(device=device, dtype=dtype).contiguous()

    def bias(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.reshape(1, -1).to(device=device, dtype=dtype)

    if weights.path.lower().endswith(".safetensors"):
        from safetensors import safe_open

        where = "cpu" if device.type == "cpu" else str(device)  # the library's own device loading
        with safe_open(weights.path, framework="pt", device=where) as file:
            Ws = [weight(file.get_tensor(name)) for name in weights.weights]
            Bs = [bias(file.get_tensor(name)) for name in weights.biases]
        return Ws, Bs
    tensors = pt_tensors(weights.path)
    return [weight(tensors[n]) for n in weights.weights], [bias(tensors[n]) for n in weights.biases]


def _mlpcli_layout(
    path: str, entries: Mapping[str, Entry], metadata: Mapping[str, str]
) -> WeightsFile:
    found = {name: _MLPCLI.fullmatch(name) for name in entries}
    count = max(int(m.group(2)) for m in found.values() if m and m.group(1) == "W")
    weights = tuple(f"W{i}" for i in range(1, count + 1))
    has_bias = any(m and m.group(1) == "B" for m in found.values())
    biases = tuple(f"B{i}" for i in range(1, count + 1)) if has_bias else ()
    known = {*weights, *biases}
    unexpected = [n for n in entries if n not in known and not _RUN_OUTPUT.fullmatch(n)]
    missing = [n for n in (*weights, *biases) if n not in entries]
    _complain(path, missing, unexpected)
    return _checked(path, "mlpcli", entries, weights, biases, metadata)


def _linear_layout(
    path: str, entries: Mapping[str, Entry], metadata: Mapping[str, str]
) -> WeightsFile:
    matches = {name: _LINEAR.fullmatch(name) for name in entries}
    prefixes = {m.group(1) for m in matches.values() if m and m.group(3) == "weight"}
    if len(prefixes) != 1:
        listed = ", ".join(repr(p) for p in sorted(prefixes))
        raise bad(path, f"nn.Linear weights under several prefixes ({listed}); expected one")
    (prefix,) = prefixes
    keys = sorted({int(m.group(2)) for m in matches.values() if m and m.group(1) == prefix})
    weights = tuple(f"{prefix}{k}.weight" for k in keys)
    has_bias = any(f"{prefix}{k}.bias" in entries for k in keys)
    biases = tuple(f"{prefix}{k}.bias" for k in keys) if has_bias else ()
    known = {*weights, *biases}
    _complain(
        path,
        [n for n in (*weights, *biases) if n not in entries],
        [n for n in entries if n not in known],
    )
    return _checked(path, "nn.Linear", entries, weights, biases, metadata)


def _complain(path: str, missing: list[str], unexpected: list[str]) -> None:
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:8])}")
    if unexpected:
        parts.append(f"unexpected {', '.join(unexpected[:8])}")
    if parts:
        raise bad(path, "; ".join(parts) + " (every layer has a weight, and a bias or none)")


def _checked(
    path: str,
    layout: str,
    entries: Mapping[str, Entry],
    weights: tuple[str, ...],
    biases: tuple[str, ...],
    metadata: Mapping[str, str],
) -> WeightsFile:
    """The sizes that the weights chain through, each shape checked against its neighbour's."""
    linear = layout == "nn.Linear"
    for name in (*weights, *biases):
        if entries[name].dtype not in FLOATING:
            raise bad(path, f"{name} is {entries[name].dtype}; weights must be floating point")
    first = entries[weights[0]].shape
    if len(first) != 2:
        raise bad(path, f"{weights[0]} has shape {list(first)}; a weight has two dimensions")
    sizes = [first[1], first[0]] if linear else [first[0], first[1]]
    for name in weights[1:]:
        shape = entries[name].shape
        if len(shape) != 2:
            raise bad(path, f"{name} has shape {list(shape)}; a weight has two dimensions")
        n_out = shape[0] if linear else shape[1]
        want = [n_out, sizes[-1]] if linear else [sizes[-1], n_out]
        if list(shape) != want:
            gives = f"{sizes[-1]} units come out of the layer before"
            raise bad(path, f"{name} has shape {list(shape)}, expected {want} ({gives})")
        sizes.append(n_out)
    for name, n in zip(biases, sizes[1:] if biases else (), strict=True):
        if entries[name].shape not in ((n,), (1, n)):
            have = list(entries[name].shape)
            raise bad(path, f"{name} has shape {have}, expected [{n}] or [1, {n}]")
    if 0 in sizes:
        raise bad(path, f"weights give a layer of 0 units ({sizes})")
    return WeightsFile(path, layout, tuple(sizes), weights, biases, dict(metadata))
