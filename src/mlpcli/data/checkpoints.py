"""PyTorch's own files (.pt, .pth, .ckpt, .bin): a state dict of plain tensors, loaded with
torch's `weights_only` unpickler; a checkpoint's state dict found under its usual keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlpcli.data.tensorfiles import Entry, bad, by_file, mapped, regular_size
from mlpcli.errors import MlpcliError, UnavailableError, first_line

if TYPE_CHECKING:
    import torch

# Where training code keeps the state dict in a checkpoint: PyTorch's tutorial, Lightning, and
# the usual `{"model": ..., "optimizer": ...}`; the other entries (epoch, optimizer) are left out.
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "module")


@dataclass(frozen=True)
class StateDict:
    """The tensors of a .pt file: its state dict, or the one inside a training checkpoint."""

    tensors: Mapping[str, torch.Tensor]
    notes: tuple[str, ...] = ()


@by_file
def state_dict(path: str) -> StateDict:
    """The state dict of a .pt/.pth/.ckpt/.bin file, loaded with `weights_only=True` (memory-
    mapped where the file allows): a pickle of anything but plain data and tensors is refused
    before any of it runs, and torch's warnings are kept off the terminal."""
    import pickle
    import warnings

    import torch

    regular_size(path, "a .pt file")
    recorded = _check_archive(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with mapped(path):
                    loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except UnavailableError:
                if recorded is not None:  # an archive this machine cannot map
                    raise
                loaded = torch.load(path, map_location="cpu", weights_only=True)  # legacy
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found is None:  # not a pickle torch wrote: no objects in it either
            said = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
            reason = said.group(1).strip() if said else first_line(error)
            raise bad(path, f"not a readable .pt file ({reason[:120]})") from None
        message = (
            f"holds Python objects, not plain tensors ({found.group(1)}); refused "
            "(save model.state_dict())"
        )
        raise bad(path, message) from None
    except (KeyboardInterrupt, MlpcliError):
        raise
    except MemoryError as error:
        raise UnavailableError(
            f"{path}: not enough memory to read it ({first_line(error)})"
        ) from None
    except Exception as error:  # torch.load on a damaged file raises what its parts raise
        raise bad(path, f"not a readable .pt file ({first_line(error)[:120]})") from None

    if recorded is not None and (declared := _storage_bytes(loaded)) > recorded:
        message = (
            f"its tensors' storages declare {declared:,} bytes, but its records hold "
            f"{recorded:,} (a storage type that is not its record's); not a file torch.save wrote"
        )
        raise bad(path, message)
    return _state_of(path, loaded)


def _state_of(path: str, loaded: object) -> StateDict:
    """The state dict a loaded file holds: itself, or a checkpoint's under one of
    CHECKPOINT_KEYS (with a note of what is left out)."""
    import torch

    def tensors(value: object) -> bool:
        return isinstance(value, Mapping) and all(
            isinstance(v, torch.Tensor) for v in value.values()
        )

    if not isinstance(loaded, Mapping):
        raise bad(path, f"holds a {type(loaded).__name__}; expected a state dict of tensors")
    if tensors(loaded):
        return StateDict(_named(path, loaded))
    for key in CHECKPOINT_KEYS:
        if key in loaded and tensors(loaded[key]) and loaded[key]:
            others = ", ".join(str(k) for k in loaded if k != key)
            note = f"{path}: a checkpoint; its state dict is {key!r} (left out: {others[:120]})"
            return StateDict(_named(path, loaded[key]), (note,))
    others = ", ".join(str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor))
    raise bad(
        path,
        f"holds entries that are not tensors ({others[:120]}) and no state dict under "
        f"{', '.join(CHECKPOINT_KEYS)}",
    )


def _named(path: str, tensors: Mapping[object, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """A state dict whose every key is a name, and whose every tensor is held by its file: one
    that repeats a few stored values over a larger shape (a stride-0 view, which would grow
    past the file's size when cast) is an error naming it."""
    for key, tensor in tensors.items():
        if not isinstance(key, str):
            raise bad(path, f"holds a tensor keyed {key!r:.40}; a state dict's keys are names")
        stored = tensor.untyped_storage().nbytes()
        if stored < tensor.numel() * tensor.element_size():
            raise bad(
                path,
                f"{key}: a view of {list(tensor.shape)} over {stored:,} stored bytes (an expanded "
                "tensor); save a tensor that holds its values (.contiguous())",
            )
    return tensors  # type: ignore[return-value]


def _check_archive(path: str) -> int | None:
    """A .pt archive checked before torch.load reads it: torch.save stores every record
    uncompressed, so a compressed one (which could inflate past any memory) is no file torch
    wrote. Returns the bytes its storages' records hold; None for the legacy format, no
    archive at all, which is left to torch.load."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        return None
    except OSError as error:
        raise bad(path, f"cannot read: {error.strerror or error}") from None
    except (ValueError, EOFError, NotImplementedError) as error:
        raise bad(path, f"not a readable .pt file ({first_line(error)[:120]})") from None
    if any(m.filename.endswith("/constants.pkl") for m in members):
        raise bad(
            path,
            "a TorchScript archive (torch.jit.save), which holds code; mlpcli reads weights: "
            "save the model's weights with torch.save(model.state_dict(), PATH)",
        )
    compressed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
    if compressed:
        message = (
            f"not a file torch.save wrote: {compressed[0]!r} is compressed in the archive "
            "(torch stores every record as it is)"
        )
        raise bad(path, message)
    return sum(m.file_size for m in members if re.search(r"(^|/)data/[^/]+$", m.filename))


def _storage_bytes(loaded: object) -> int:
    """The bytes the storages of every tensor in a loaded object declare, each storage once
    (mapped from its record: a storage's type decides how many of the file's bytes it takes)."""
    import torch

    storages: dict[int, int] = {}
    pending = [loaded]
    while pending:
        value = pending.pop()
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)
    return sum(storages.values())


def entry(tensor: torch.Tensor) -> Entry:
    """A loaded tensor described as a header entry (safetensors' dtype names)."""
    names = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16"}
    dtype = str(tensor.dtype).removeprefix("torch.")
    return Entry(names.get(dtype, dtype.upper()), tuple(tensor.shape))
