"""Features from a file (`inputs:`): .npy, text tables (.csv, .tsv, .txt), JSON (.json,
.jsonl), .safetensors, Parquet and feather, or `-` (stdin: any of these but .safetensors).

`describe` gives the rows and width (of the columns `input_columns` picks) without torch and
without holding the values; the loader sets `batch` from it. `chunks` reads the values a block
of rows at a time, so that a run holds one block, never the file: slices of a mapped .npy or
.safetensors, Parquet and feather record batches, blocks of text lines. Every problem names the
file, and the row (the line, in text) and column where there is one. docs/contract.md section
5; docs/files.md for other tools' files.

Standard input is copied to a temporary file and read as a file, unless `piped` says it is read
once as it comes (`run`): then a .npy, a text table or JSON Lines streams from the pipe, never
copied, its first bytes looked at for its format and layout (a text table's and JSON Lines'
rows are counted as they are read: `describe` gives None).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import itertools
import os
import select
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from mlpcli.data import arrowtables, lines, pieces, tables
from mlpcli.data.casts import first_past, nonfinite, past_range
from mlpcli.data.tables import Column
from mlpcli.data.tensorfiles import (
    FLOATING,
    STDIN_NAME,
    NpyHeader,
    bad,
    by_file,
    mapped,
    native,
    npy_header,
    npy_header_of,
    npz_headers,
    npz_member,
    regular_size,
    safetensors_header,
)
from mlpcli.errors import UnavailableError
from mlpcli.model.units import byte_size

if TYPE_CHECKING:
    import numpy as np
    import torch

STDIN = "-"
MAX_JSON_BYTES = 64 << 20  # a JSON document is parsed whole; JSON Lines stream
TEXT = (".csv", ".tsv", ".txt")
JSON = (".json", ".jsonl")
SUFFIXES = (".npy", ".npz", *TEXT, *JSON, ".safetensors", *arrowtables.SUFFIXES)
NPY_MAGIC = b"\x93NUMPY"
READ_ROWS = 1 << 16  # rows a block when the whole file is read
PIECE = 1 << 20  # bytes of standard input copied at a time
COPY_SPARE = 1 << 30  # room left free by stdin's copy (or a tenth of a smaller folder's)
FIRST_LINES = 1024  # data lines that decide a text table's layout (pandas' index), at most
FIRST_CHARS = 1 << 20  # ... of this many characters in all (two lines at least): a wide
# table's cells are looked at one by one (10,000 columns: about 600 MB for 1,024 lines)
HEAD_BYTES = 1 << 16  # standard input looked at a piece at a time, for its format and layout
NPY_LEAD = 12  # a .npy's magic string and version (8 bytes), and its header's length
PIPE_WAIT_S = 0.05  # a read of a pipe takes what comes this long after its first byte
Columns = tuple[Column, ...] | None


@dataclass(frozen=True)
class Reading:
    """How to read a table of features, as the config says (`input_*`; None: as found)."""

    columns: Columns = None  # the columns that are features, in order
    header: bool | None = None  # whether a text table's first line names its columns
    orient: str | None = None  # how a JSON object of objects holds the table


def reading_of(fields: Mapping[str, Any]) -> Reading:
    """How a config's fields (its values by name) say to read its features."""
    return Reading(fields["input_columns"], fields["input_header"], fields["input_orient"])


@dataclass(frozen=True)
class FeaturesFile:
    """What a features file holds: `rows` of `width` numbers, and what was assumed reading it."""

    path: str
    rows: int | None  # None: standard input's, counted as they are read (`piped`)
    width: int
    notes: tuple[str, ...] = ()
    misfit: str = ""  # said where the width does not fit the network: how to read it otherwise

    @property
    def source(self) -> str:
        """The file's name in messages."""
        return _source(self.path)


_piping = False  # within `piped`


@contextlib.contextmanager
def piped() -> Iterator[None]:
    """Within it, standard input is read once, as it comes: a .npy, a text table or JSON Lines
    streams from the pipe (the others, and a Fortran-order .npy, are copied first)."""
    global _piping
    before, _piping = _piping, True
    try:
        yield
    finally:
        _piping = before


def describe(path: str, reading: Reading = Reading()) -> FeaturesFile:
    """The rows and width of the features at `path`, from a header where there is one, else
    from one pass over its lines (nothing held); standard input's rows None where it streams
    a text table or JSON Lines (`piped`)."""
    return _described(path, reading, path == STDIN and _piping)


@by_file
def _described(path: str, reading: Reading, piped: bool) -> FeaturesFile:
    kind = _kind(path)
    columns = reading.columns
    if piped and (streamed := _piped_file(kind, columns, reading.header)) is not None:
        return streamed
    if kind == ".npy":
        header = _npy_header(path)
        rows, width = _matrix_shape(path, header.shape)
        return FeaturesFile(path, rows, len(tables.pick(path, None, width, columns)))
    if kind == ".safetensors":
        rows, width = _matrix_shape(path, _safetensors_entry(path)[1].shape)
        return FeaturesFile(path, rows, len(tables.pick(path, None, width, columns)))
    if kind == ".npz":
        rows, width = _matrix_shape(path, _npz_array(path)[1].shape)
        return FeaturesFile(path, rows, len(tables.pick(path, None, width, columns)))
    if kind in arrowtables.SUFFIXES:
        rows, width, notes, misfit = arrowtables.describe(_source(path), columns, _local(path))
        return FeaturesFile(path, rows, width, tuple(notes), misfit)
    if (text := _text_file(path, reading.header)) is not None:
        return _text_features(path, text.layout, text.first, text.rows, columns)
    if (json_lines := _json_layout(path)) is not None:
        first = next(lines.json_values(_lines(path)))
        return _json_features(path, *json_lines, columns, first)
    values = _json_matrix(path, reading)
    json_table = _json_table(path, reading.orient)
    rows, width = values.shape
    return FeaturesFile(path, rows, width, json_table.notes, json_table.misfit)


def _text_features(
    path: str, table: lines.TextLayout, first: list[lines.Line], rows: int | None, columns: Columns
) -> FeaturesFile:
    """A text table's features, its first lines read at once (a column of labels is said)."""
    width = len(tables.pick(table.source, table.names, len(table.kept), columns))
    next(lines.text_blocks(table, iter(first), len(first), columns), None)
    misfit = "; its first column, pandas' index, is left out" if table.index else ""
    return FeaturesFile(path, rows, width, table.notes, misfit)


def _json_features(
    path: str, records: lines.JsonLayout, rows: int | None, columns: Columns, first: lines.Line
) -> FeaturesFile:
    """JSON Lines' features, their `first` line read (a key of labels is said)."""
    width = len(tables.pick(records.source, records.names, records.width, columns))
    next(lines.json_blocks(records, iter([first]), 1, columns), None)
    return FeaturesFile(path, rows, width)


def _piped_file(kind: str, columns: Columns, header: bool | None) -> FeaturesFile | None:
    """Standard input's features where it streams (`piped`), from its first bytes; None where
    it is copied to a file first."""
    if kind == ".npy" and (npy := _piped_npy(STDIN)) is not None:
        rows, width = _matrix_shape(STDIN, npy.shape)
        return FeaturesFile(STDIN, rows, len(tables.pick(STDIN_NAME, None, width, columns)))
    if kind == ".csv":
        return _text_features(STDIN, *_piped_text(STDIN, header), None, columns)
    if kind == ".jsonl" and (records := _piped_json(STDIN)) is not None:
        first = _head_lines(1, lines.json_values)
        return _json_features(STDIN, records, None, columns, first[0])
    return None


def chunks(
    path: str, reading: Reading, rows: int, expected: int | None = None, first: int = 0
) -> Iterator[torch.Tensor]:
    """The features at `path` from row `first` on, `rows` rows at a time (the last block may be
    shorter), each a CPU tensor in the file's own type where torch has it (text as float64); a
    value that is not finite is an error naming its row and column, raised when its block is
    read, and so is a file that holds other than `expected` rows (what was planned; by default,
    what it holds, which standard input streamed may not say). Rows before `first` are not
    read (text lines are passed over unparsed)."""
    kind = _kind(path)
    columns = reading.columns
    blocks: Iterator[Any]
    piped = path == STDIN and _piping
    if piped and (streamed := _piped_blocks(kind, reading, rows)) is not None:
        assert first == 0, "standard input is read from its start"
        blocks = streamed
    elif kind == ".npy":
        blocks = _npy_blocks(path, columns, rows, first)
    elif kind == ".safetensors":
        blocks = _safetensors_blocks(path, columns, rows, first)
    elif kind == ".npz":
        blocks = _npz_blocks(path, columns, rows, first)
    elif kind in arrowtables.SUFFIXES:
        blocks = arrowtables.blocks(_source(path), columns, rows, _local(path), first)
    elif (text := _text_file(path, reading.header)) is not None:
        blocks = _text_blocks(path, text, rows, columns, first)
    elif (json_lines := _json_layout(path)) is not None:
        blocks = lines.json_blocks(json_lines[0], _lines(path), rows, columns, first)
    else:
        whole = _json_matrix(path, reading)
        blocks = (whole[start : start + rows] for start in range(first, whole.shape[0], rows))
    counted = describe(path, reading).rows
    planned = counted if expected is None else expected
    return _checked(_source(path), planned, _exact(blocks, rows), first, counted is None)


def read(
    path: str,
    reading: Reading = Reading(),
    rows: range | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The features at `path`, as `chunks` reads them, in one (rows, width) tensor: all of them,
    or the `rows` of a share (only those are read); in `dtype`, each block cast as it comes
    (text is read as float64: held whole, it would take twice a float32 run's room), or in the
    file's own type."""
    import torch

    described = describe(path, reading)
    assert described.rows is not None, "what is read whole is not streamed"
    wanted = range(described.rows) if rows is None else rows
    if not wanted:  # a rank with no rows of its own
        return torch.empty((0, described.width), dtype=dtype or torch.float64)
    blocks = -(-len(wanted) // READ_ROWS)  # as even as can be: the last ends at (or just past)
    whole: torch.Tensor | None = None  # the wanted rows, so that few rows past them are read
    done = 0
    for block in chunks(path, reading, -(-len(wanted) // blocks), None, wanted.start):
        if whole is None:
            whole = torch.empty((len(wanted), described.width), dtype=dtype or block.dtype)
        row = wanted.start + done
        part = block[: len(wanted) - done]
        taken = in_dtype(path, reading, part, whole.dtype, whole.device, row)
        whole[done : done + taken.shape[0]] = taken
        done += taken.shape[0]
        if done == len(wanted):
            break
    assert whole is not None
    return whole


def _exact(blocks: Iterator[Any], rows: int) -> Iterator[Any]:
    """`blocks` cut and joined into blocks of exactly `rows` rows (the last one may be short)."""
    pending: list[Any] = []
    held = 0
    for block in blocks:
        while block.shape[0]:
            taken = block[: rows - held]
            block = block[taken.shape[0] :]
            pending.append(taken)
            held += taken.shape[0]
            if held == rows:
                yield _joined(pending)
                pending, held = [], 0
    if pending:
        yield _joined(pending)


def _joined(parts: list[Any]) -> Any:
    """Blocks of rows, NumPy's or torch's, as one."""
    import numpy as np
    import torch

    if len(parts) == 1:
        return parts[0]
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)


def in_dtype(
    path: str,
    reading: Reading,
    block: torch.Tensor,
    dtype: torch.dtype,
    device: torch.device,
    first: int,
) -> torch.Tensor:
    """A block of the rows of `path` from row `first` (on the CPU), in `dtype` on `device`; a
    value past the range of `dtype` (finite in the file, infinite once cast) is an error naming
    where it is (`_where`), as one that is not finite is. Cast and checked on the CPU: a GPU
    gets the smaller copy and waits for no check."""

    taken = block.to(dtype=dtype)
    if (past := first_past(block, taken)) is None:
        return taken.to(device=device)
    row, column = past
    message = past_range(block[row, column].item(), dtype)
    raise bad(_source(path), f"{_where(path, reading, first + row, column)}: {message}")


def _where(path: str, reading: Reading, row: int, column: int) -> str:
    """Where the value of `row` and picked `column` is, as the file's other errors say: a text
    table's line and column (from 1), JSON Lines' line and column; else its row and column
    (from 0, as NumPy counts them; standard input's too, read once and gone)."""
    kind = "" if path == STDIN else _kind(path)
    if kind in TEXT and (text := _text_file(path, reading.header)) is not None:
        with _opened(path) as stream:
            line = pieces.line_of(path, stream, text.spans, text.layout.skipped + row)
        return f"line {line}, column {lines.picked(text.layout, reading.columns)[column] + 1}"
    if kind == ".jsonl" and (json_lines := _json_layout(path)) is not None:
        layout = json_lines[0]
        line = next(itertools.islice(lines.json_values(_lines(path)), row, None))[0]
        chosen = tables.pick(path, layout.names, layout.width, reading.columns)[column]
        return lines.located([line], layout.names)(0, chosen)
    return f"row {row}, column {column}"


def _checked(
    source: str, expected: int | None, blocks: Iterator[Any], first: int, piped: bool
) -> Iterator[torch.Tensor]:
    """Each block (of rows from `first` on) as a tensor torch holds, checked finite (an error
    names the file's row), and `expected` rows in all: a file that changed since it was
    described is an error, and so is a pipe of other than the batch's rows (`piped`: they
    were not counted before; `expected` None: as many as come)."""
    import torch

    start = first
    for block in blocks:
        tensor = block if isinstance(block, torch.Tensor) else torch.from_numpy(native(block))
        if nonfinite(tensor):
            finite = torch.isfinite(tensor)
            row, column = (int(i) for i in (~finite).nonzero()[0])
            value = tensor[row, column].item()
            raise bad(source, f"row {start + row}, column {column}: {value} is not finite")
        start += tensor.shape[0]
        if expected is not None and start > expected:
            break
        yield tensor
    if expected is not None and start != expected:
        found = "more than the" if start > expected else f"{start:,} rows, not the"
        if piped:
            message = f"{expected:,} rows batch says; leave batch out, or set batch=null,"
            raise bad(source, f"holds {found} {message} to take every row piped in")
        message = f"holds {found} {expected:,} rows its header or a first count gave"
        raise bad(source, f"{message} (a corrupt file, or one changed since)")


def _source(path: str) -> str:
    """A path's name in messages: `<stdin>` for `-`."""
    return STDIN_NAME if path == STDIN else path


TORCH_FEATURES = "features are read from .npy, .npz, .safetensors or a table: np.save(t.numpy())"


def _kind(path: str) -> str:
    """The format: a file's suffix, or what stdin's first bytes say."""
    if path == STDIN:
        data = _pipe().peek(64)[:64]
        if not data:
            raise bad(STDIN_NAME, "empty: nothing was piped in")
        if data.startswith(NPY_MAGIC):
            return ".npy"
        if data.startswith(b"PK\x03\x04"):  # a zip: np.savez's, or torch.save's
            name_end = 30 + int.from_bytes(data[26:28], "little")  # its first member's name
            if data[30:name_end].endswith(b"data.pkl"):
                raise bad(STDIN_NAME, f"looks like a PyTorch file (torch.save); {TORCH_FEATURES}")
            return ".npz"
        if data[:4] in (b"PAR1", b"FEA1") or data[:6] == b"ARROW1":
            return ".parquet"
        if data[4:8] == bytes(4) and data[8:10] == b'{"':  # safetensors: the header's length
            raise bad(  # (under 4 GiB), then its JSON
                STDIN_NAME, "looks like .safetensors, which is read from a file; give its path"
            )
        text = data.removeprefix(codecs.BOM_UTF8)  # as a file's, read as text
        return ".jsonl" if text.lstrip()[:1] in (b"{", b"[") else ".csv"
    suffix = Path(path).suffix.lower()
    if Path(path).is_dir():
        raise bad(path, "is a directory, not a features file")
    if suffix not in SUFFIXES:
        raise bad(path, f"features are read from {', '.join(SUFFIXES)} or - (stdin)")
    return suffix


def _local(path: str) -> str:
    """The path to read `path` from: itself, or standard input's copy on disk."""
    return _copied(path)[0] if path == STDIN else path


@by_file
def _copied(path: str) -> tuple[str, IO[bytes]]:
    """Standard input copied a piece at a time into an unnamed temporary file (gone when the
    process ends, however it ends), and a path that opens it: memory stays flat whatever is
    piped in, and every reader reads it as a file. More than the temporary folder has room
    for is an error."""
    pipe = _pipe().take()
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    room = free - min(COPY_SPARE, free // 10)
    copy = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (open while the process runs)
    size = 0
    while piece := pipe.read(PIECE):
        size += len(piece)
        if size > room:
            raise UnavailableError(
                f"{STDIN_NAME}: more is piped in than the {byte_size(max(room, 0))} free in "
                f"{folder} for its copy; give the file's path, or TMPDIR=a larger folder"
            )
        copy.write(piece)
    copy.flush()
    return f"/dev/fd/{copy.fileno()}", copy


class _Pipe:
    """Standard input as it comes: the bytes looked at first held (`peek`), then every byte
    from the start read once (`take`); a failed read is an error naming it. A read waits for
    its first byte, then takes what comes within PIPE_WAIT_S more: whole pieces from a quick
    writer, and what a slow one writes soon after it comes (its rows run once a chunk of them
    has come)."""

    def __init__(self, stream: io.BufferedReader) -> None:
        self.stream = stream
        self.head = bytearray()  # looked at, held
        self.breaks = 0  # the line breaks in it
        self.line_end = 0  # where its last whole line ends
        self.ended = False
        self.at: int | None = None  # where `read` is, once taken

    def peek(self, size: int) -> bytes:
        """At least `size` bytes from the start (all of them where fewer are piped in)."""
        while len(self.head) < size and self.more():
            pass
        return bytes(self.head[:size])

    def more(self) -> bool:
        """One more read into the bytes looked at; False at the pipe's end."""
        if self.ended:
            return False
        assert self.at is None, "standard input is looked at before it is read"
        piece = self._read(HEAD_BYTES)
        self.ended = not piece
        if (last := piece.rfind(b"\n")) >= 0:
            self.breaks += piece.count(b"\n")
            self.line_end = len(self.head) + last + 1
        self.head += piece
        return not self.ended

    def take(self) -> _Pipe:
        """This pipe, to read from its start, once."""
        if self.at is not None:
            raise bad(STDIN_NAME, "is read once, and has been; give a file's path instead")
        self.at = 0
        return self

    def read(self, size: int, /) -> bytes:
        """At most `size` bytes (none only at the end): those looked at first, then the
        pipe's, as many as come within PIPE_WAIT_S of the first."""
        assert self.at is not None
        if self.at < len(self.head):
            data = bytes(self.head[self.at : self.at + size])
            self.at += len(data)
            return data
        parts = [self._read(size)]
        got, until = len(parts[0]), time.monotonic() + PIPE_WAIT_S
        while parts[-1] and got < size:
            left = until - time.monotonic()
            if left <= 0 or not select.select([self.stream], [], [], left)[0]:
                break
            parts.append(self._read(size - got))
            got += len(parts[-1])
        return b"".join(parts)

    def read_exactly(self, size: int) -> bytes:
        """`size` bytes, or fewer where the pipe ends first."""
        parts, got = [], 0
        while got < size and (part := self.read(size - got)):
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def _read(self, size: int) -> bytes:
        """What one read of the pipe gives (waiting for a byte, at most `size`)."""
        try:
            return self.stream.read1(size)
        except (OSError, ValueError) as error:
            raise bad(STDIN_NAME, f"cannot read standard input: {error}") from None


def _pipe() -> _Pipe:
    return _stdin_pipe(STDIN)


@by_file
def _stdin_pipe(path: str) -> _Pipe:
    """Standard input, to be read; a terminal, or a closed one, is an error."""
    stream = sys.stdin
    if stream is None or stream.closed:
        raise bad(STDIN_NAME, "standard input is closed; pipe a file in, or give its path")
    try:
        terminal = stream.isatty()
    except (OSError, ValueError) as error:
        raise bad(STDIN_NAME, f"cannot read standard input: {error}") from None
    if terminal:
        message = (
            "standard input is a terminal; pipe a file in (inputs=- < x.csv), or give its path"
        )
        raise bad(STDIN_NAME, message)
    return _Pipe(cast(io.BufferedReader, stream.buffer))


@by_file
def _piped_npy(path: str) -> NpyHeader | None:
    """A .npy's header from the first bytes piped in; None for a Fortran-order one (copied
    first: its rows are not contiguous)."""
    pipe = _pipe()
    start = pipe.peek(NPY_LEAD)  # the magic string, the version, the header's length
    width = 2 if start[6:7] == b"\x01" else 4  # bytes of that length: 1.0's, 2.0's and 3.0's
    length = int.from_bytes(start[8 : 8 + width], "little")
    header = npy_header_of(STDIN_NAME, io.BytesIO(pipe.peek(8 + width + length)), None)
    return None if header.fortran else header


@by_file
def _piped_text(path: str, header: bool | None) -> tuple[lines.TextLayout, list[lines.Line]]:
    """A text table's layout from its first data lines piped in (`_first`'s: FIRST_LINES, or
    FIRST_CHARS characters), and those lines; a line too long to look at is an error naming it
    (no line past those `_first` keeps has come)."""
    pipe = _pipe()
    found = _head_lines(FIRST_LINES + 1, lines.data_lines, FIRST_CHARS)
    first = _first(iter(found))
    if len(first) == len(found) and not pipe.ended:  # none past them: a line goes on and on
        raise lines.too_long(STDIN_NAME, pipe.breaks + 1)
    rows = len(found) if pipe.ended else len(found) + 1  # more follow: not a header alone
    return lines.text_layout(STDIN_NAME, first, rows, header), first


@by_file
def _piped_json(path: str) -> lines.JsonLayout | None:
    """The layout of JSON Lines piped in, from their first value; None for a JSON document
    (copied first, and parsed whole), and for a first line too long to look at."""
    found = _head_lines(1, lines.json_values)
    return lines.json_layout(STDIN_NAME, found[0]) if found else None


def _head_lines(count: int, kept: Any, chars: int | None = None) -> list[lines.Line]:
    """The first `count` lines that `kept` keeps of those piped in, looked at as they come
    (each read's whole lines once): fewer where the pipe ends first, where a line goes on past
    MAX_LINE bytes, or (`chars`) where three or more hold more than `chars` characters (a wide
    table's, of which `_first` then leaves one out at least)."""
    pipe = _pipe()
    pipe.peek(1)
    found: list[lines.Line] = []
    looked = numbered = held = 0  # the bytes looked at, their lines, the characters kept
    while True:
        end = len(pipe.head) if pipe.ended else pipe.line_end
        if end > looked:
            whole = io.BytesIO(pipe.head[looked:end])
            piece = list(lines.numbered(STDIN_NAME, whole, numbered, looked))
            taken = list(itertools.islice(kept(iter(piece)), count - len(found)))
            found += taken
            numbered, looked = numbered + len(piece), end
            held += sum(len(text) for _, text in taken)
        too_long = len(pipe.head) - pipe.line_end > lines.MAX_LINE
        wide = chars is not None and held > chars and len(found) >= 3
        if len(found) == count or pipe.ended or too_long or wide:
            return found
        pipe.more()


def _piped_blocks(kind: str, reading: Reading, rows: int) -> Iterator[Any] | None:
    """Standard input's blocks of `rows` rows as it comes, where it streams; None where it is
    copied first."""
    columns = reading.columns
    if kind == ".npy" and (npy := _piped_npy(STDIN)) is not None:
        return _piped_npy_blocks(npy, columns, rows)
    if kind == ".csv":
        layout = _piped_text(STDIN, reading.header)[0]
        return pieces.piped_blocks(layout, _pipe().take(), rows, columns)
    if kind == ".jsonl" and (records := _piped_json(STDIN)) is not None:
        return lines.json_blocks(records, lines.numbered(STDIN_NAME, _pipe().take()), rows, columns)
    return None


def _piped_npy_blocks(header: NpyHeader, columns: Columns, rows: int) -> Iterator[np.ndarray]:
    """A piped .npy's picked columns, `rows` rows at a time as they come; a pipe that ends
    before the header's rows, or goes on after them, is an error."""
    import numpy as np

    height, width = _matrix_shape(STDIN, header.shape)
    picked = tables.pick(STDIN_NAME, None, width, columns)
    row_bytes = width * header.dtype.itemsize
    pipe = _pipe().take()
    pipe.read_exactly(header.offset)  # the header, looked at already
    for start in range(0, height, rows):
        count = min(rows, height - start)
        data = pipe.read_exactly(count * row_bytes)
        if len(data) < count * row_bytes:
            ended = start + len(data) // row_bytes
            message = f"truncated: its header says {height:,} rows; it ended after {ended:,}"
            raise bad(STDIN_NAME, message)
        block = np.frombuffer(data, dtype=header.dtype).reshape(count, width)
        yield block if picked == list(range(width)) else block[:, picked]
    if pipe.read(1):
        raise bad(STDIN_NAME, f"corrupt: more bytes follow the {height:,} rows its header says")


def _npy_header(path: str) -> NpyHeader:
    """A .npy's header, checked against its size; stdin's named as such."""
    if path != STDIN:
        return npy_header(path)
    local = _local(path)
    with Path(local).open("rb") as file:
        return npy_header_of(STDIN_NAME, file, Path(local).stat().st_size)


def _npy_blocks(path: str, columns: Columns, rows: int, first: int) -> Iterator[np.ndarray]:
    """A .npy's picked columns, `rows` rows at a time: each block read from the file on its
    own (a C-order file), so that no page of the file stays mapped; a Fortran-order one from
    the mapped file."""
    import numpy as np

    header = _npy_header(path)  # checked: the type, and the size against the header
    local = _local(path)
    array = np.load(local, mmap_mode="r", allow_pickle=False) if header.fortran else None
    height, width = _matrix_shape(path, header.shape)
    picked = tables.pick(path, None, width, columns)
    whole = picked == list(range(width))
    with contextlib.ExitStack() as stack:
        file = stack.enter_context(Path(local).open("rb")) if array is None else None
        for start in range(first, height, rows):
            count = min(rows, height - start)
            if file is not None:
                file.seek(header.offset + start * width * header.dtype.itemsize)
                block = np.fromfile(file, dtype=header.dtype, count=count * width)
                block = block.reshape(count, width)
            else:
                assert array is not None
                block = array.reshape(height, width)[start : start + count]
            yield block if whole else block[:, picked]


def _safetensors_blocks(
    path: str, columns: Columns, rows: int, first: int
) -> Iterator[torch.Tensor]:
    """A .safetensors tensor's picked columns, `rows` rows at a time, sliced from the mapped
    file by safetensors itself."""
    from safetensors import safe_open

    name, entry = _safetensors_entry(path)
    height, width = _matrix_shape(path, entry.shape)
    picked = tables.pick(path, None, width, columns)
    with mapped(path), safe_open(path, framework="pt") as file:
        tensor = file.get_slice(name)
        for start in range(first, height, rows):
            if len(entry.shape) == 1:
                block = tensor[:].reshape(1, width)
            else:
                block = tensor[start : start + rows]
            yield block if picked == list(range(width)) else block[:, picked]


def _matrix_shape(path: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, width) of a 2-D shape, or of a 1-D one as one row."""
    if len(shape) == 1:
        shape = (1, *shape)
    if len(shape) != 2 or 0 in shape:
        message = f"features have shape {list(shape)}; expected (batch, n0) or (n0,)"
        raise bad(_source(path), message)
    return shape[0], shape[1]


def _npz_array(path: str) -> tuple[str, NpyHeader]:
    """The array `features` of a .npz, or its only array."""
    source = _source(path)
    return _the_features(source, npz_headers(_local(path), "features", source), "array")


def _the_features(source: str, held: dict[str, Any], what: str) -> tuple[str, Any]:
    """The `what` (tensor, array) named `features` of a file, or its only one."""
    if "features" in held:
        return "features", held["features"]
    if len(held) == 1:
        return next(iter(held.items()))
    names = ", ".join(sorted(held)[:8]) or "none"
    raise bad(source, f"no {what} named features and not a single {what} (holds {names})")


def _npz_blocks(path: str, columns: Columns, rows: int, first: int) -> Iterator[np.ndarray]:
    """A .npz array's picked columns, `rows` rows at a time, read from the archive in order (a
    compressed one is decompressed as it is read); a Fortran-order array is read whole."""
    import numpy as np

    name, header = _npz_array(path)
    height, width = _matrix_shape(path, header.shape)
    picked = tables.pick(path, None, width, columns)
    whole = picked == list(range(width))
    row_bytes = width * header.dtype.itemsize
    with npz_member(_local(path), name) as file:
        array = np.load(file, allow_pickle=False) if header.fortran else None
        file.seek(header.offset + first * row_bytes)  # in an archive: the rows before, read past
        for start in range(first, height, rows):
            count = min(rows, height - start)
            if array is not None:
                block = array.reshape(height, width)[start : start + count]
            else:
                data = file.read(count * row_bytes)
                block = np.frombuffer(data, dtype=header.dtype).reshape(count, width)
            yield block if whole else block[:, picked]


def _safetensors_entry(path: str) -> tuple[str, Any]:
    """The tensor `features`, or the file's only tensor."""
    name, entry = _the_features(path, safetensors_header(path)[0], "tensor")
    if entry.dtype not in FLOATING and not entry.dtype.startswith(("I", "U")):
        raise bad(path, f"{name} is {entry.dtype}; features must be numbers")
    return name, entry


def _lines(path: str) -> Iterator[lines.Line]:
    """The numbered lines of a text file, or of stdin, read a piece at a time."""
    with _opened(path) as stream:
        yield from lines.numbered(_source(path), stream)


def _text_blocks(
    path: str, text: TextFile, rows: int, columns: Columns, first: int
) -> Iterator[np.ndarray]:
    """A text table's picked columns from row `first` on, the pieces before it not read; a
    file changed since its lines were counted is an error."""
    with _opened(path) as stream:
        _unchanged(path, stream, text.stamp)
        yield from pieces.blocks(text.layout, stream, text.spans, rows, columns, first)
        _unchanged(path, stream, text.stamp)


def _stamp(stream: IO[bytes]) -> tuple[int, int]:
    """An open file's size and modification time."""
    status = os.fstat(stream.fileno())
    return status.st_size, status.st_mtime_ns


def _unchanged(path: str, stream: IO[bytes], stamp: tuple[int, int]) -> None:
    """An error where the open file is not of the size and time it was counted at."""
    if _stamp(stream) != stamp:
        raise bad(
            _source(path),
            "changed since its lines were counted (do not rewrite a file while it is read)",
        )


def _opened(path: str) -> IO[bytes]:
    local = _local(path)
    regular_size(local, "a features file")
    try:
        return Path(local).open("rb")
    except OSError as error:
        raise bad(path, f"cannot read: {error.strerror or error}") from None


def _data_lines(path: str) -> Iterator[lines.Line]:
    return lines.data_lines(_lines(path))


@dataclass(frozen=True)
class TextFile:
    """A text table: its layout, its first FIRST_LINES data lines, its pieces (`pieces.spans`),
    and the size and modification time they were counted at."""

    layout: lines.TextLayout
    first: list[lines.Line]
    spans: tuple[pieces.Span, ...]
    stamp: tuple[int, int]

    @property
    def rows(self) -> int:
        """Its rows of features (its data lines but the header)."""
        return sum(span.rows for span in self.spans) - self.layout.skipped


@by_file
def _text_file(path: str, header: bool | None) -> TextFile | None:
    """A text table from its first lines and a pass over the whole file that counts them
    (nothing held but where its pieces are); None for JSON. `header`: whether the first line is
    one (None: found)."""
    if _kind(path) in JSON:
        return None
    first = _first(_data_lines(path))
    with _opened(path) as stream:
        stamp = _stamp(stream)
        spans = tuple(pieces.spans(_source(path), stream))
    count = sum(span.rows for span in spans)
    layout = lines.text_layout(_source(path), first, count, header)
    return TextFile(layout, first, spans, stamp)


def _first(data_lines: Iterator[lines.Line]) -> list[lines.Line]:
    """The first data lines that decide a text table's layout: FIRST_LINES, or as many as fit
    in FIRST_CHARS characters (two at least: a header and a row)."""
    first: list[lines.Line] = []
    held = 0
    for line in itertools.islice(data_lines, FIRST_LINES):
        held += len(line[1])
        if held > FIRST_CHARS and len(first) >= 2:
            break
        first.append(line)
    return first


@by_file
def _json_layout(path: str) -> tuple[lines.JsonLayout, int] | None:
    """JSON Lines of records or rows and their count (one pass); None for a JSON document."""
    if _kind(path) != ".jsonl":
        return None
    values = lines.json_values(_lines(path))
    first = next(values, None)
    if first is None:  # blank lines, as a text table of them is
        raise bad(_source(path), "holds no rows of features")
    if (layout := lines.json_layout(_source(path), first)) is None:
        return None
    return layout, 1 + sum(1 for _ in values)


@by_file
def _json_table(path: str, orient: str | None) -> tables.Table:
    """The table of a JSON document (or of JSON Lines that do not stream), parsed whole."""
    return tables.json_table(_source(path), _json_text(path), orient)


@by_file
def _json_matrix(path: str, reading: Reading) -> np.ndarray:
    return tables.matrix(_json_table(path, reading.orient), reading.columns)


def _json_text(path: str) -> str:
    """At most MAX_JSON_BYTES of UTF-8 text from a file, or from stdin."""
    local = _local(path)
    if regular_size(local, "a features file") > MAX_JSON_BYTES:
        raise bad(_source(path), _too_large())
    try:
        data = Path(local).read_bytes()
    except OSError as error:
        raise bad(_source(path), f"cannot read: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise bad(_source(path), f"not UTF-8 text (byte offset {error.start})") from None


def _too_large() -> str:
    return (
        f"a JSON document larger than {MAX_JSON_BYTES >> 20} MiB, which is parsed whole; "
        "write JSON Lines (.jsonl: pandas' to_json(orient='records', lines=True)), which stream"
    )
