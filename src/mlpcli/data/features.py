"""Features from a file (`inputs:`): .npy, text tables (.csv, .tsv, .txt), JSON (.json,
.jsonl), .safetensors, Parquet and feather, or `-` (stdin: .npy bytes, CSV or JSON).

`describe` gives the rows and width (of the columns `input_columns` picks) without torch; the
loader sets `batch` from it. `read` gives the values. Every problem names the file, and the line
and column where there is one. docs/contract.md section 5; docs/files.md for other tools' files.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpcli.data import arrowtables, tables
from mlpcli.data.tables import Column, Table
from mlpcli.data.tensorfiles import (
    FLOATING,
    STDIN_NAME,
    bad,
    by_file,
    npy_header,
    npy_header_of,
    regular_size,
    safetensors_header,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

STDIN = "-"
MAX_TEXT_BYTES = 64 << 20  # text features; larger ones belong in .npy, .safetensors or Parquet
TEXT = (".csv", ".tsv", ".txt")
JSON = (".json", ".jsonl")
SUFFIXES = (".npy", *TEXT, *JSON, ".safetensors", *arrowtables.SUFFIXES)
NPY_MAGIC = b"\x93NUMPY"
FINITE_ROWS = 1 << 16  # rows of a .npy checked for NaN at a time, before torch is imported
Columns = tuple[Column, ...] | None


@dataclass(frozen=True)
class FeaturesFile:
    """What a features file holds: `rows` of `width` numbers, and what was assumed reading it."""

    path: str
    rows: int
    width: int
    notes: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """The file's name in messages."""
        return _source(self.path)


def describe(path: str, columns: Columns = None) -> FeaturesFile:
    """The rows and width of the features at `path`, read from a header where there is one."""
    kind = _kind(path)
    if kind == ".npy":
        header = npy_header(path) if path != STDIN else _stdin_npy(path)[0]
        rows, width = _matrix_shape(path, header.shape)
        return FeaturesFile(path, rows, len(tables.pick(path, None, width, columns)))
    if kind == ".safetensors":
        rows, width = _matrix_shape(path, _safetensors_entry(path)[1].shape)
        return FeaturesFile(path, rows, len(tables.pick(path, None, width, columns)))
    if kind in arrowtables.SUFFIXES:
        rows, width, notes = arrowtables.describe(_source(path), columns, _stdin_data(path))
        return FeaturesFile(path, rows, width, tuple(notes))
    values = _text_matrix(path, columns)
    return FeaturesFile(path, values.shape[0], values.shape[1], _text_table(path).notes)


def read(path: str, columns: Columns = None) -> torch.Tensor:
    """The features at `path` as a (rows, width) CPU tensor in the file's own type where torch
    has it (text as float64); a non-finite value is an error naming its row and column."""
    import torch

    kind = _kind(path)
    tensor: torch.Tensor
    if kind == ".safetensors":
        from safetensors import safe_open

        name, _ = _safetensors_entry(path)
        with safe_open(path, framework="pt") as file:
            tensor = file.get_tensor(name).reshape(describe(path).rows, -1)
        if columns is not None:
            tensor = tensor[:, tables.pick(path, None, tensor.shape[1], columns)]
    elif kind == ".npy":
        check_finite(path, columns)  # before torch, where a command checked it (cached)
        return torch.from_numpy(_npy_values(path, columns))
    elif kind in arrowtables.SUFFIXES:
        array = arrowtables.read(_source(path), columns, _stdin_data(path))
        tensor = torch.from_numpy(_native(array))
    else:
        return torch.from_numpy(_text_matrix(path, columns))  # finite, checked when parsed
    if tensor.is_floating_point() and not (finite := torch.isfinite(tensor)).all():
        row, column = (int(i) for i in (~finite).nonzero()[0])
        value = tensor[row, column].item()
        raise bad(_source(path), f"row {row}, column {column}: {value} is not finite")
    return tensor


def _source(path: str) -> str:
    """A path's name in messages: `<stdin>` for `-`."""
    return STDIN_NAME if path == STDIN else path


def _kind(path: str) -> str:
    """The format: a file's suffix, or what stdin's first bytes say."""
    if path == STDIN:
        data = _stdin_bytes(path)
        if data.startswith(NPY_MAGIC):
            return ".npy"
        if data[:4] == b"PAR1" or data[:6] == b"ARROW1":
            return ".parquet"
        return ".json" if data.lstrip()[:1] in (b"{", b"[") else ".csv"
    suffix = Path(path).suffix.lower()
    if Path(path).is_dir():
        raise bad(path, "is a directory, not a features file")
    if suffix not in SUFFIXES:
        raise bad(path, f"features are read from {', '.join(SUFFIXES)} or - (stdin)")
    return suffix


@by_file
def _stdin_bytes(path: str) -> bytes:
    """All of standard input, read once; a terminal or an empty or closed stdin is an error."""
    stream = sys.stdin
    if stream is None or stream.closed:
        raise bad(STDIN_NAME, "standard input is closed; pipe a file in, or give its path")
    try:
        if stream.isatty():
            message = (
                "standard input is a terminal; pipe a file in (inputs=- < x.csv), or give its path"
            )
            raise bad(STDIN_NAME, message)
        data = stream.buffer.read()
    except (OSError, ValueError) as error:
        raise bad(STDIN_NAME, f"cannot read standard input: {error}") from None
    if not data:
        raise bad(STDIN_NAME, "empty: nothing was piped in")
    return data


def _stdin_data(path: str) -> bytes | None:
    return _stdin_bytes(path) if path == STDIN else None


@by_file
def _stdin_npy(path: str) -> tuple[Any, np.ndarray]:
    """The header and array of .npy bytes on stdin (the array a view of the bytes)."""
    import numpy as np

    data = _stdin_bytes(path)
    header = npy_header_of(STDIN_NAME, io.BytesIO(data), len(data))
    count = int(np.prod(header.shape))
    flat = np.frombuffer(data, dtype=header.dtype, count=count, offset=header.offset)
    return header, flat.reshape(header.shape, order="F" if header.fortran else "C")


@by_file
def check_finite(path: str, columns: Columns = None) -> None:
    """A .npy's first value that is not finite, found before torch is imported (memory-mapped,
    FINITE_ROWS rows at a time, once a file); other files are checked as they are read."""
    import numpy as np

    if _kind(path) != ".npy":
        return
    array = _npy_array(path, None)
    picked = tables.pick(path, None, array.shape[1], columns)
    if array.dtype.kind != "f":
        return
    for start in range(0, array.shape[0], FINITE_ROWS):
        block = array[start : start + FINITE_ROWS][:, picked]
        if not (finite := np.isfinite(block)).all():
            row, column = (int(i) for i in np.argwhere(~finite)[0])
            value = float(block[row, column])
            raise bad(_source(path), f"row {start + row}, column {column}: {value} is not finite")


def _npy_values(path: str, columns: Columns) -> np.ndarray:
    """A .npy's array as (rows, width), C order, native byte order, a type torch holds:
    converted in one copy, whatever order, byte order or type the file has."""
    return _native(_npy_array(path, columns))


def _npy_array(path: str, columns: Columns) -> np.ndarray:
    """A .npy's picked columns as they are in the file (memory-mapped), (rows, width)."""
    import numpy as np

    if path == STDIN:
        array = _stdin_npy(path)[1]
    else:
        npy_header(path)  # checked: the type, and the size against the header
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    rows, width = _matrix_shape(path, array.shape)
    array = array.reshape(rows, width)
    if columns is not None:
        array = array[:, tables.pick(path, None, width, columns)]
    return array


def _native(array: np.ndarray) -> np.ndarray:
    """`array` in memory, C order, native byte order and a type torch holds (unsigned wider
    than a byte as int64, or float64 for 64 bits; long double as float64): one copy at most."""
    import numpy as np

    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "f":
        target = f"f{size}" if size in (2, 4, 8) else "f8"
    elif kind == "u" and size > 1:
        target = "i8" if size < 8 else "f8"
    else:
        target = f"{kind}{size}"
    return np.require(array, dtype=np.dtype(target), requirements=["C", "W", "O", "E"])


def _matrix_shape(path: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, width) of a 2-D shape, or of a 1-D one as one row."""
    if len(shape) == 1:
        shape = (1, *shape)
    if len(shape) != 2 or 0 in shape:
        message = f"features have shape {list(shape)}; expected (batch, n0) or (n0,)"
        raise bad(_source(path), message)
    return shape[0], shape[1]


def _safetensors_entry(path: str) -> tuple[str, Any]:
    """The tensor `features`, or the file's only tensor."""
    entries, _ = safetensors_header(path)
    if "features" in entries:
        name = "features"
    elif len(entries) == 1:
        (name,) = entries
    else:
        names = ", ".join(sorted(entries)[:8]) or "none"
        raise bad(path, f"no tensor named features and not a single tensor (holds {names})")
    entry = entries[name]
    if entry.dtype not in FLOATING and not entry.dtype.startswith(("I", "U")):
        raise bad(path, f"{name} is {entry.dtype}; features must be numbers")
    return name, entry


@by_file
def _text_table(path: str) -> Table:
    """The table of a text or JSON features file (or stdin), parsed once."""
    source = _source(path)
    text = _read_text(path)
    if _kind(path) in JSON:
        return tables.json_table(source, text)
    return tables.text_table(source, text)


@by_file
def _text_matrix(path: str, columns: Columns) -> np.ndarray:
    return tables.matrix(_text_table(path), columns)


def _read_text(path: str) -> str:
    """At most MAX_TEXT_BYTES of UTF-8 text from a file, or from stdin."""
    if path == STDIN:
        data = _stdin_bytes(path)
    else:
        if regular_size(path, "a features file") > MAX_TEXT_BYTES:
            raise bad(path, _too_large())
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise bad(path, f"cannot read: {error.strerror or error}") from None
    if len(data) > MAX_TEXT_BYTES:
        raise bad(_source(path), _too_large())
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise bad(_source(path), f"not UTF-8 text (byte offset {error.start})") from None


def _too_large() -> str:
    return f"larger than {MAX_TEXT_BYTES >> 20} MiB of text; give large features as .npy"
