"""Features from a file (`inputs:`): .npy, text tables (.csv, .tsv, .txt), JSON (.json,
.jsonl), .safetensors, Parquet and feather, or `-` (stdin: .npy bytes, CSV or JSON).

`describe` gives the rows and width (of the columns `input_columns` picks) without torch and
without holding the values; the loader sets `batch` from it. `chunks` reads the values a block
of rows at a time, so that a run holds one block, never the file: slices of a mapped .npy or
.safetensors, Parquet and feather record batches, blocks of text lines. Every problem names the
file, and the row (the line, in text) and column where there is one. docs/contract.md section
5; docs/files.md for other tools' files.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from mlpcli.data import arrowtables, lines, tables
from mlpcli.data.tables import Column
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
MAX_JSON_BYTES = 64 << 20  # a JSON document is parsed whole; JSON Lines stream
TEXT = (".csv", ".tsv", ".txt")
JSON = (".json", ".jsonl")
SUFFIXES = (".npy", *TEXT, *JSON, ".safetensors", *arrowtables.SUFFIXES)
NPY_MAGIC = b"\x93NUMPY"
READ_ROWS = 1 << 16  # rows a block when the whole file is read
FIRST_LINES = 1024  # data lines that decide a text table's layout (pandas' index)
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


@by_file
def describe(path: str, columns: Columns = None) -> FeaturesFile:
    """The rows and width of the features at `path`, from a header where there is one, else
    from one pass over its lines (nothing held)."""
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
    if (text := _text_layout(path)) is not None:
        table, count, first = text
        width = len(tables.pick(table.source, table.names, len(table.kept), columns))
        next(lines.text_blocks(table, iter(first), len(first), columns), None)  # labels, at once
        return FeaturesFile(path, count - table.header, width, table.notes)
    if (json_lines := _json_layout(path)) is not None:
        records, count = json_lines
        width = len(tables.pick(records.source, records.names, records.width, columns))
        return FeaturesFile(path, count, width)
    values = _json_matrix(path, columns)
    return FeaturesFile(path, values.shape[0], values.shape[1], _json_table(path).notes)


def chunks(path: str, columns: Columns, rows: int) -> Iterator[torch.Tensor]:
    """The features at `path`, `rows` rows at a time (the last block may be shorter), each a CPU
    tensor in the file's own type where torch has it (text as float64); a value that is not
    finite is an error naming its row and column, raised when its block is read."""
    kind = _kind(path)
    blocks: Iterator[Any]
    if kind == ".npy":
        blocks = _npy_blocks(path, columns, rows)
    elif kind == ".safetensors":
        blocks = _safetensors_blocks(path, columns, rows)
    elif kind in arrowtables.SUFFIXES:
        blocks = arrowtables.blocks(_source(path), columns, rows, _stdin_data(path))
    elif (text := _text_layout(path)) is not None:
        blocks = lines.text_blocks(text[0], _data_lines(path), rows, columns)
    elif (json_lines := _json_layout(path)) is not None:
        blocks = lines.json_blocks(json_lines[0], _lines(path), rows, columns)
    else:
        whole = _json_matrix(path, columns)
        blocks = (whole[start : start + rows] for start in range(0, whole.shape[0], rows))
    return _checked(describe(path, columns), _exact(blocks, rows))


def read(path: str, columns: Columns = None) -> torch.Tensor:
    """The whole of the features at `path`, as `chunks` reads them, in one (rows, width) tensor."""
    import torch

    described = describe(path, columns)
    whole: torch.Tensor | None = None
    start = 0
    for block in chunks(path, columns, READ_ROWS):
        if whole is None:
            whole = torch.empty((described.rows, described.width), dtype=block.dtype)
        whole[start : start + block.shape[0]] = block
        start += block.shape[0]
    assert whole is not None
    return whole


def _exact(blocks: Iterator[Any], rows: int) -> Iterator[Any]:
    """`blocks` cut and joined into blocks of exactly `rows` rows (the last one may be short)."""
    import numpy as np
    import torch

    pending: list[Any] = []
    held = 0
    for block in blocks:
        while block.shape[0]:
            taken = block[: rows - held]
            block = block[taken.shape[0] :]
            pending.append(taken)
            held += taken.shape[0]
            if held == rows:
                yield _joined(pending, np, torch)
                pending, held = [], 0
    if pending:
        yield _joined(pending, np, torch)


def _joined(parts: list[Any], np: Any, torch: Any) -> Any:
    if len(parts) == 1:
        return parts[0]
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)


def _checked(described: FeaturesFile, blocks: Iterator[Any]) -> Iterator[torch.Tensor]:
    """Each block as a tensor torch holds, checked finite (an error names the file's row), and
    as many rows in all as `describe` found: a file that changed while read is an error."""
    import torch

    source = described.source
    start = 0
    for block in blocks:
        tensor = block if isinstance(block, torch.Tensor) else torch.from_numpy(_native(block))
        if tensor.is_floating_point() and not (finite := torch.isfinite(tensor)).all():
            row, column = (int(i) for i in (~finite).nonzero()[0])
            value = tensor[row, column].item()
            raise bad(source, f"row {start + row}, column {column}: {value} is not finite")
        start += tensor.shape[0]
        if start > described.rows:
            break
        yield tensor
    if start != described.rows:
        raise bad(
            source, f"{start} rows read where {described.rows} were counted (changed while read?)"
        )


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


def _npy_blocks(path: str, columns: Columns, rows: int) -> Iterator[np.ndarray]:
    """A .npy's picked columns, `rows` rows at a time: each block read from the file on its
    own (a C-order file), so that no page of the file stays mapped; a Fortran-order one from
    the mapped file."""
    import numpy as np

    array: np.ndarray | None = None
    if path == STDIN:
        header, array = _stdin_npy(path)
    else:
        header = npy_header(path)  # checked: the type, and the size against the header
        array = None if not header.fortran else np.load(path, mmap_mode="r", allow_pickle=False)
    height, width = _matrix_shape(path, header.shape)
    picked = tables.pick(path, None, width, columns)
    whole = picked == list(range(width))
    with contextlib.ExitStack() as stack:
        file = stack.enter_context(Path(path).open("rb")) if array is None else None
        for start in range(0, height, rows):
            count = min(rows, height - start)
            if file is not None:
                file.seek(header.offset + start * width * header.dtype.itemsize)
                block = np.fromfile(file, dtype=header.dtype, count=count * width)
                block = block.reshape(count, width)
            else:
                assert array is not None
                block = array.reshape(height, width)[start : start + count]
            yield block if whole else block[:, picked]


def _safetensors_blocks(path: str, columns: Columns, rows: int) -> Iterator[torch.Tensor]:
    """A .safetensors tensor's picked columns, `rows` rows at a time, sliced from the mapped
    file by safetensors itself."""
    from safetensors import safe_open

    name, entry = _safetensors_entry(path)
    height, width = _matrix_shape(path, entry.shape)
    picked = tables.pick(path, None, width, columns)
    with safe_open(path, framework="pt") as file:
        tensor = file.get_slice(name)
        for start in range(0, height, rows):
            if len(entry.shape) == 1:
                block = tensor[:].reshape(1, width)
            else:
                block = tensor[start : start + rows]
            yield block if picked == list(range(width)) else block[:, picked]


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


def _lines(path: str) -> Iterator[lines.Line]:
    """The numbered lines of a text file, or of stdin, read a piece at a time."""
    stream: IO[bytes]
    if path == STDIN:
        stream = io.BytesIO(_stdin_bytes(path))
    else:
        regular_size(path, "a features file")
        try:
            stream = Path(path).open("rb")  # noqa: SIM115 (closed when the lines run out)
        except OSError as error:
            raise bad(path, f"cannot read: {error.strerror or error}") from None
    with stream:
        yield from lines.numbered(_source(path), stream)


def _data_lines(path: str) -> Iterator[lines.Line]:
    return lines.data_lines(_lines(path))


@by_file
def _text_layout(path: str) -> tuple[lines.TextLayout, int, list[lines.Line]] | None:
    """A text table's layout, its count of data lines and its first FIRST_LINES (one pass,
    nothing else held); None for JSON."""
    if _kind(path) in JSON:
        return None
    data = _data_lines(path)
    first = list(itertools.islice(data, FIRST_LINES))
    count = len(first) + sum(1 for _ in data)
    return lines.text_layout(_source(path), first, count), count, first


@by_file
def _json_layout(path: str) -> tuple[lines.JsonLayout, int] | None:
    """JSON Lines of records or rows and their count (one pass); None for a JSON document."""
    if _kind(path) != ".jsonl":
        return None
    values = (line for line in _lines(path) if line[1].strip())
    first = next(values, None)
    if first is None or (layout := lines.json_layout(_source(path), first)) is None:
        return None
    return layout, 1 + sum(1 for _ in values)


@by_file
def _json_table(path: str) -> tables.Table:
    """The table of a JSON document (or of JSON Lines that do not stream), parsed whole."""
    return tables.json_table(_source(path), _json_text(path))


@by_file
def _json_matrix(path: str, columns: Columns) -> np.ndarray:
    return tables.matrix(_json_table(path), columns)


def _json_text(path: str) -> str:
    """At most MAX_JSON_BYTES of UTF-8 text from a file, or from stdin."""
    if path == STDIN:
        data = _stdin_bytes(path)
    else:
        if regular_size(path, "a features file") > MAX_JSON_BYTES:
            raise bad(path, _too_large())
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise bad(path, f"cannot read: {error.strerror or error}") from None
    if len(data) > MAX_JSON_BYTES:
        raise bad(_source(path), _too_large())
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise bad(_source(path), f"not UTF-8 text (byte offset {error.start})") from None


def _too_large() -> str:
    return (
        f"a JSON document larger than {MAX_JSON_BYTES >> 20} MiB, which is parsed whole; "
        "write JSON Lines (.jsonl: pandas' to_json(orient='records', lines=True)), which stream"
    )
