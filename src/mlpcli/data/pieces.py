"""A text table's bytes in pieces, so that a plain file never passes Python a line at a time.

One pass over the file (`spans`) cuts it into pieces of about PIECE_BYTES, each ending after a
'\\n' (the last may end with the file; a piece's unfinished line is read again as the next's
first, not copied), and counts their lines: a piece whose every line is plain (ASCII, neither
blank nor a `#` comment, no quote, no line break but '\\n' or '\\r\\n') by its breaks, any other
line by line. The run then reads only the pieces that hold its rows (`blocks`): a plain one at
once by pyarrow's CSV reader, its blocks on every core; any other, and any plain one that
pyarrow cannot read as finite numbers, line by line by `lines` (the same numbers, and the
message that names a cell). A line that does not end within PIECE_BYTES makes the rest of the
file one piece, read line by line. A quote makes its piece not plain: a quoted cell is read
line by line.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from mlpcli.data import lines
from mlpcli.data.lines import Line, TextLayout
from mlpcli.data.tables import Column

if TYPE_CHECKING:
    import numpy as np

PIECE_BYTES = 4 << 20  # read at a time, a piece cut after the last line's end in them
# a comment, a quote, line breaks but '\n' and '\r', whitespace of a blank line but ' ' and '\t'
_ODD = (b"#", b'"', b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
_BLANK = re.compile(rb"\n[ \t]*\r?\n")
_BLANK_FIRST = re.compile(rb"[ \t]*(?:\r?\n|\Z)")
_BREAK = ord("\n")
_SPACE = b" \t\r\n"  # what a blank line starts with
_SPACE_CODES = list(_SPACE)
Seek = Callable[[int, int], int]  # a file's seek(offset, whence)


@dataclass(frozen=True)
class Span:
    """A piece of a text file: its bytes' place (`size` 0: the rest of the file), the lines
    before it, how many of its lines are data lines, and whether every one is plain (read at
    once)."""

    offset: int
    size: int
    before: int
    rows: int
    plain: bool


def spans(source: str, stream: IO[bytes]) -> Iterator[Span]:
    """The pieces of a UTF-8 byte stream (a text file from its start), its lines counted."""
    return (span for span, _ in _cut(source, stream, stream.seek))


def piped_blocks(
    layout: TextLayout, stream: lines.Readable, rows: int, wanted: Sequence[Column] | None
) -> Iterator[np.ndarray]:
    """The picked columns of every data line after the header of a stream read once, as it
    comes (standard input): each piece parsed as `blocks` parses a file's, once it is cut."""
    picked = lines.picked(layout, wanted)
    skip, opening = layout.skipped, True
    for span, data in _cut(layout.source, stream, None):
        yield from _span_blocks(layout, span, data, skip, (rows, picked, wanted, opening))
        skip, opening = max(0, skip - span.rows), False


def _cut(
    source: str, stream: lines.Readable, seek: Seek | None
) -> Iterator[tuple[Span, bytes | lines.Readable]]:
    """Each piece of a stream, its lines counted, and its bytes (a file's, which can `seek`:
    the read's, of which the piece is the first `size`); where a line does not end within
    PIECE_BYTES, the rest of the stream as one piece to read line by line (a file's lines
    counted, which reads it through; else its `rows` are -1)."""
    before = offset = 0
    for data, end in _reads(stream, seek):
        if not end:  # a line longer than a piece: the rest of the stream one piece, by line
            ahead = _Ahead(data, stream)
            if seek is None:
                yield Span(offset, 0, before, -1, False), ahead
                return
            numbered = lines.numbered(source, ahead, before, offset)  # (which says how long)
            yield Span(offset, 0, before, _counted(numbered)[1], False), b""
            return
        if (plain := _plain_lines(data, end)) is not None:
            count = rows = plain
        else:
            piece = io.BytesIO(memoryview(data)[:end])
            count, rows = _counted(lines.numbered(source, piece, before, offset))
        yield Span(offset, end, before, rows, plain is not None), data
        before += count
        offset += end


def _reads(stream: lines.Readable, seek: Seek | None) -> Iterator[tuple[bytes, int]]:
    """Each piece of a stream's lines: bytes read and where the piece ends in them, after the
    last line break (the last piece may end with the stream); 0 where no line ends within
    PIECE_BYTES (the bytes are the rest's start). A piece's unfinished last line is read again
    by the next read where the stream can `seek` (a file: no copy), else joined to it."""
    rest = b""
    while True:
        data = stream.read(PIECE_BYTES)
        if seek is not None and len(data) < PIECE_BYTES:  # a buffered file's end (its read
            # takes PIECE_BYTES but there): the last piece
            if data:
                yield data, len(data)
            return
        if not data:
            if rest:
                yield rest, len(rest)  # the last line, with no break after it
            return
        end = data.rfind(b"\n") + 1
        if not end:
            yield rest + data, 0
            return
        if seek is not None:
            seek(end - len(data), io.SEEK_CUR)
            yield data, end
        else:  # one copy at most: the line begun in the last piece, and this one's whole lines
            whole = not rest and end == len(data)
            piece = data if whole else b"".join((rest, memoryview(data)[:end]))
            rest = data[end:]
            yield piece, len(piece)


def _counted(numbered: Iterable[Line]) -> tuple[int, int]:
    """How many lines, and how many data lines."""
    count = rows = 0
    for line in numbered:
        count += 1
        rows += lines.is_data(line[1])
    return count, rows


def _plain_lines(data: bytes, end: int) -> int | None:
    """How many lines `data[:end]` has where every one is a data line of ASCII that ends in
    '\\n' or '\\r\\n' (the last may end with the stream); None where one is not."""
    if not data.isascii() and not data[:end].isascii():
        return None
    if any(data.find(odd, 0, end) >= 0 for odd in _ODD):
        return None
    if data.find(b"\r", 0, end) >= 0 and data.count(b"\r", 0, end) != data.count(b"\r\n", 0, end):
        return None
    breaks = _breaks(data, end)
    if _blank(data, end, breaks):
        return None
    return len(breaks) + (not data.endswith(b"\n", 0, end))


def _breaks(data: bytes, end: int) -> np.ndarray:
    """Where each '\\n' of `data[:end]` is."""
    import numpy as np

    return np.flatnonzero(np.frombuffer(data, np.uint8, end) == _BREAK)


def _blank(data: bytes, end: int, breaks: np.ndarray) -> bool:
    """Whether a line of `data[:end]` (its `breaks` where they are) is blank (nothing but
    spaces and tabs), the last one too: searched for only where a line starts with whitespace
    or a break, the one place it can."""
    import numpy as np

    starts = breaks + 1
    firsts = np.frombuffer(data, np.uint8, end)[starts[starts < end]]
    if data[0] not in _SPACE and not np.isin(firsts, _SPACE_CODES).any():
        return False
    last = data[data.rfind(b"\n", 0, end) + 1 : end]
    blank = _BLANK.search(data, 0, end) or _BLANK_FIRST.match(data, 0, end)
    return bool(blank or (last and not last.strip()))


class _Ahead:
    """A byte stream with the bytes already read from it put back in front."""

    def __init__(self, ahead: bytes, stream: lines.Readable) -> None:
        self.ahead, self.stream = ahead, stream

    def read(self, size: int) -> bytes:
        """At most `size` bytes: those put back first, then the stream's."""
        if len(self.ahead) >= size:
            data, self.ahead = self.ahead[:size], self.ahead[size:]
            return data
        data, self.ahead = self.ahead, b""
        return data + self.stream.read(size - len(data))


class _Within:
    """The next `size` bytes of a stream (all the rest where `size` is 0)."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self.stream, self.left = stream, size or -1

    def read(self, size: int) -> bytes:
        if self.left < 0:
            return self.stream.read(size)
        data = self.stream.read(min(size, self.left))
        self.left -= len(data)
        return data


def blocks(
    layout: TextLayout,
    stream: IO[bytes],
    found: Sequence[Span],
    rows: int,
    wanted: Sequence[Column] | None,
    first: int = 0,
) -> Iterator[np.ndarray]:
    """The picked columns of the data lines after the header from row `first` on (the pieces
    before it not read): a plain piece's at once, other lines `rows` at a time, each a (rows,
    width) float64 block."""
    picked = lines.picked(layout, wanted)
    skip = first + layout.skipped
    opening = first == 0
    for span in found:
        if skip >= span.rows:
            skip -= span.rows
            continue
        stream.seek(span.offset)
        data = stream.read(span.size) if span.plain else _Within(stream, span.size)
        yield from _span_blocks(layout, span, data, skip, (rows, picked, wanted, opening))
        skip, opening = 0, False


def line_of(source: str, stream: IO[bytes], found: Sequence[Span], index: int) -> int:
    """The line of data line `index` (from 0, the header's among them) of a file cut into
    pieces `found`: only its piece is read."""
    for span in found:
        if index < span.rows:
            stream.seek(span.offset)
            numbered = lines.numbered(source, _Within(stream, span.size), span.before, span.offset)
            return next(itertools.islice(lines.data_lines(numbered), index, None))[0]
        index -= span.rows
    raise IndexError(index)


def _span_blocks(
    layout: TextLayout,
    span: Span,
    data: bytes | lines.Readable,
    skip: int,
    reading: tuple[int, list[int], Sequence[Column] | None, bool],
) -> Iterator[np.ndarray]:
    """The picked columns of a piece's data lines after its first `skip`: a plain piece's
    bytes at once, any other's lines (from its bytes, or read from `data`) `rows` at a time
    (`reading`: rows, the picked cells, the columns wanted, whether these are the first)."""
    rows, picked, wanted, opening = reading
    if isinstance(data, bytes) and span.plain:
        values = _at_once(layout, data, span.rows, skip)
        if values is not None:
            yield lines.cells(values, picked)
            return
    within = io.BytesIO(data) if isinstance(data, bytes) else data
    numbered = lines.numbered(layout.source, within, span.before, span.offset)
    after = itertools.islice(lines.data_lines(numbered), skip, None)
    yield from lines.line_blocks(layout, after, rows, picked, wanted, opening)


def _at_once(layout: TextLayout, data: bytes, count: int, skip: int) -> np.ndarray | None:
    """The lines after the first `skip` of a plain piece of `count`, every cell a finite number,
    by pyarrow; None where they are not (or without pyarrow, or for runs of whitespace)."""
    import numpy as np

    if layout.delimiter is None:
        return None
    start = 0
    for _ in range(skip):
        start = data.index(b"\n", start) + 1
    data = data[start:] if start else data
    if layout.decimal_comma:
        if b"." in data:  # read line by line: a number with a point is an error
            return None
        data = data.replace(b",", b".")
    values = lines.arrow_numbers(layout, data, count - skip, threads=True)
    if values is None or not np.isfinite(values).all():
        return None
    if layout.index and not lines.whole_index(values):
        return None
    return values
