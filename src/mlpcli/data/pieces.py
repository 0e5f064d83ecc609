"""A text table's bytes a piece at a time, so that a plain file never passes Python a line at a
time: a piece of about PIECE bytes ends after a '\\n'. Where every line of a piece is plain
(ASCII, neither blank nor a `#` comment, no line break but '\\n' or '\\r\\n'), its lines are
counted by their breaks and read at once by pyarrow's CSV reader, on every core; any other piece,
and any plain piece that pyarrow reads no finite numbers from, is read line by line by `lines`
(the same numbers, and the message that names a cell). A line that does not end within PIECE
bytes sends the rest of the file line by line.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from mlpcli.data import lines
from mlpcli.data.lines import Line, TextLayout
from mlpcli.data.tables import Column

if TYPE_CHECKING:
    import numpy as np

PIECE = 4 << 20  # bytes read at a time, a piece cut after the last line's end in them
# a comment, line breaks other than '\n' and '\r', whitespace of a blank line but ' ' and '\t'
_ODD = (b"#", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
_BLANK = re.compile(rb"\n[ \t]*\r?\n")
_BLANK_FIRST = re.compile(rb"[ \t]*(?:\r?\n|\Z)")


@dataclass(frozen=True)
class Plain:
    """Plain lines: every one a data line; `before`, the lines before them in the file."""

    before: int
    data: bytes
    rows: int

    def numbered(self, source: str) -> Iterator[Line]:
        return lines.numbered(source, io.BytesIO(self.data), self.before)  # ASCII: no BOM


@dataclass(frozen=True)
class Numbered:
    """Numbered lines and how many are data lines (None: the rest of the file, not counted)."""

    lines: Iterable[Line]
    rows: int | None

    def numbered(self, source: str) -> Iterable[Line]:
        return self.lines


Piece = Plain | Numbered


def pieces(source: str, stream: IO[bytes]) -> Iterator[Piece]:
    """The lines of a UTF-8 byte stream (a text file from its start) in pieces."""
    before = offset = 0
    rest = b""
    while True:
        data = stream.read(PIECE)
        buffer = rest + data if rest else data
        if not buffer:
            return
        end = buffer.rfind(b"\n") + 1 if data else len(buffer)
        if not end:  # a line as long as a piece: the rest line by line, `lines` says how long
            yield Numbered(lines.numbered(source, _Ahead(buffer, stream), before, offset), None)
            return
        piece, rest = buffer[:end], buffer[end:]
        if _plain(piece):
            count = piece.count(b"\n") + (not piece.endswith(b"\n"))
            yield Plain(before, piece, count)
        else:
            held = list(lines.numbered(source, io.BytesIO(piece), before, offset))
            count = len(held)
            yield Numbered(held, sum(1 for _ in lines.data_lines(held)))
        before += count
        offset += len(piece)


def _plain(piece: bytes) -> bool:
    """Whether every line of a piece is a data line of ASCII that ends in '\\n' or '\\r\\n' (the
    last may end with the file)."""
    last = piece[piece.rfind(b"\n") + 1 :]
    return (
        piece.isascii()
        and not any(odd in piece for odd in _ODD)
        and (b"\r" not in piece or piece.count(b"\r") == piece.count(b"\r\n"))
        and not _BLANK.search(piece)
        and not _BLANK_FIRST.match(piece)
        and (not last or bool(last.strip()))
    )


class _Ahead:
    """A byte stream with the bytes already read from it put back in front."""

    def __init__(self, ahead: bytes, stream: IO[bytes]) -> None:
        self.ahead, self.stream = ahead, stream

    def read(self, size: int) -> bytes:
        data, self.ahead = self.ahead, b""
        return data or self.stream.read(size)


def count(found: Iterable[Piece]) -> int:
    """The data lines of the pieces."""
    return sum(
        piece.rows if piece.rows is not None else sum(1 for _ in lines.data_lines(piece.lines))
        for piece in found
    )


def blocks(
    layout: TextLayout,
    found: Iterable[Piece],
    rows: int,
    wanted: Sequence[Column] | None,
    first: int = 0,
) -> Iterator[np.ndarray]:
    """The picked columns of the data lines after the header from row `first` on (the pieces
    before it passed over, unparsed): a plain piece's at once, other lines `rows` at a time, each
    a (rows, width) float64 block."""
    picked = lines.picked(layout, wanted)
    skip = first + layout.header
    opening = first == 0
    for piece in found:
        if piece.rows is not None and skip >= piece.rows:
            skip -= piece.rows
            continue
        values = _at_once(layout, piece, skip) if isinstance(piece, Plain) else None
        if values is not None:
            yield values[:, picked]
        else:
            data = lines.data_lines(piece.numbered(layout.source))
            after = itertools.islice(data, skip, None)
            yield from lines.line_blocks(layout, after, rows, picked, wanted, opening)
        skip, opening = 0, False


def _at_once(layout: TextLayout, piece: Plain, skip: int) -> np.ndarray | None:
    """A plain piece's lines after the first `skip`, every cell a finite number, by pyarrow;
    None where they are not (or without pyarrow)."""
    import numpy as np

    data = piece.data
    start = 0
    for _ in range(skip):
        start = data.index(b"\n", start) + 1
    data = data[start:] if start else data
    if layout.decimal_comma:
        data = data.replace(b",", b".")
    values = lines.arrow_numbers(layout, data, piece.rows - skip, threads=True)
    if values is None or not np.isfinite(values).all():
        return None
    if layout.index and not lines.whole_index(values):
        return None
    return values
