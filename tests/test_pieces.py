"""A text table read in pieces of bytes (plain pieces counted by their line breaks and parsed at
once by pyarrow, the rest line by line) reads as the same table read line by line: the same
count of rows, the same bits from any first row, and the same error naming the same line, for
pieces of any size, in files that mix plain lines with everything that is not plain; and so
does one read once as it comes (standard input), its pieces parsed as they are cut."""

from __future__ import annotations

import io
import itertools
import os
import time
from pathlib import Path

import numpy as np
import pytest

from mlpcli.data import features, lines, pieces
from mlpcli.errors import MlpcliError
from tests.test_tables import TEXTS

PLAIN = ["1,2", "3.5,-4", '"5",6e3', "7 , 8", "0.1,1e-310"]
HARMLESS = [
    "",  # blank
    "  \t",  # blank but for spaces
    "# a comment",
    "  # an indented comment",
    "9,10\r",  # a lone '\r' ends a line too
    "11,12\x0c13,14",  # so does a form feed
    '"1e3","2"',  # quoted numbers
    '"4"9,"7" ',  # a quote, then more of the cell: 49 and 7, as pyarrow and pandas read them
]
BAD = [
    "15,\u00a016",  # a non-breaking space: no number
    "17,x",  # no number
    "18",  # ragged
    "nan,1",  # not finite
    "\ufeff19,20",  # a byte-order mark inside the file
    "21;22",
    "1_0,2",  # Python's float() alone reads it (as 10)
]
FIRST_LINES = 4  # the lines that decide the layout (1,024 in a run): the rest read in pieces


def _by_lines(text: bytes, rows: int, first: int) -> tuple[object, ...]:
    """The table read line by line, as before pieces: (rows, values) or the error."""
    try:
        numbered = list(lines.data_lines(lines.numbered("x.csv", io.BytesIO(text))))
        layout = lines.text_layout("x.csv", numbered[:FIRST_LINES], len(numbered))
        _labels(layout, numbered[:FIRST_LINES])
        blocks = list(lines.text_blocks(layout, iter(numbered), rows, None, first))
        return len(numbered) - layout.header, _values(blocks)
    except MlpcliError as error:
        return ("error", str(error))


def _by_pieces(text: bytes, rows: int, first: int) -> tuple[object, ...]:
    try:
        numbered = lines.data_lines(lines.numbered("x.csv", io.BytesIO(text)))
        head = list(itertools.islice(numbered, FIRST_LINES))
        spans = list(pieces.spans("x.csv", io.BytesIO(text)))
        count = sum(span.rows for span in spans)
        layout = lines.text_layout("x.csv", head, count)
        _labels(layout, head)
        blocks = list(pieces.blocks(layout, io.BytesIO(text), spans, rows, None, first))
        return count - layout.header, _values(blocks)
    except MlpcliError as error:
        return ("error", str(error))


def _by_pipe(text: bytes, rows: int) -> tuple[object, ...]:
    """The table read once as it comes, as standard input is: its layout from the first lines,
    its pieces parsed as they are cut, its rows counted as they are read."""
    try:
        numbered = lines.data_lines(lines.numbered("x.csv", io.BytesIO(text)))
        head = list(itertools.islice(numbered, FIRST_LINES + 1))
        layout = lines.text_layout("x.csv", head[:FIRST_LINES], len(head))
        _labels(layout, head[:FIRST_LINES])
        blocks = list(pieces.piped_blocks(layout, io.BytesIO(text), rows, None))
        return sum(len(block) for block in blocks), _values(blocks)
    except MlpcliError as error:
        return ("error", str(error))


def _labels(layout: lines.TextLayout, first: list[lines.Line]) -> None:
    """As `features.describe` does: a column of text in the first lines is said at once."""
    next(lines.text_blocks(layout, iter(first), len(first), None), None)


def _values(blocks: list[np.ndarray]) -> bytes | None:
    return np.concatenate(blocks).tobytes() if blocks else None


@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("text", TEXTS)
def test_the_tables_read_alike_in_pieces(
    text: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pieces, "PIECE_BYTES", size)
    data = text.encode()
    assert _by_pieces(data, 1000, 0) == _by_lines(data, 1000, 0)
    assert _by_pipe(data, 1000) == _by_lines(data, 1000, 0)
    assert _by_pieces(data + b"\n5,6", 3, 1) == _by_lines(data + b"\n5,6", 3, 1)


def test_files_of_plain_and_odd_lines_read_alike_in_pieces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Random files: runs of plain lines with a few harmless odd lines and at most one bad one,
    '\\n' or '\\r\\n' breaks, a header or not, a last line with a break or not; from a few
    first rows, in blocks of a few sizes. Most read; the rest name the bad line alike."""
    rng = np.random.default_rng(26)
    outcomes = {"read": 0, "error": 0}
    for trial in range(300):
        body = [PLAIN[k] for k in rng.integers(0, len(PLAIN), 40)]
        for _ in range(rng.integers(0, 4)):
            body[rng.integers(4, len(body))] = HARMLESS[rng.integers(0, len(HARMLESS))]
        if trial % 3 == 0:
            body[rng.integers(4, len(body))] = BAD[rng.integers(0, len(BAD))]
        head = ["a,b"] if trial % 2 else []
        end = "\r\n" if trial % 4 == 0 else "\n"
        text = (end.join(head + body) + (end if trial % 5 else "")).encode()
        monkeypatch.setattr(pieces, "PIECE_BYTES", int(rng.choice([1, 5, 23, 80, 1 << 20])))
        rows = int(rng.choice([1, 7, 1000]))
        for first in (0, 1, 17):
            expected = _by_lines(text, rows, first)
            assert _by_pieces(text, rows, first) == expected, (text, first)
            outcomes["error" if expected[0] == "error" else "read"] += 1
        assert _by_pipe(text, rows) == _by_lines(text, rows, 0), text
    assert outcomes["read"] > 600, outcomes
    assert outcomes["error"] > 100, outcomes


def test_plain_pieces_are_read_by_pyarrow_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyarrow")
    text = b"1,2\r\n3,4\r\n" * 1000 + b"5,6"
    spans = list(pieces.spans("x.csv", io.BytesIO(text)))
    assert [(span.plain, span.rows) for span in spans] == [(True, 2001)]  # a last line too
    monkeypatch.setattr(lines, "numbered", None)  # a line-by-line reading would fail
    layout = lines.TextLayout("x.csv", ",", 2, None, (0, 1), False)
    blocks = list(pieces.blocks(layout, io.BytesIO(text), spans, 7, None, 5))
    assert [block.shape for block in blocks] == [(1996, 2)]  # a piece at once
    assert blocks[0][-2:].tolist() == [[3.0, 4.0], [5.0, 6.0]]


def test_pyarrow_parses_blocks_of_many_lines_of_a_wide_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A block that pyarrow parses on one thread holds ARROW_BLOCK_LINES lines at least, as
    well as ARROW_BLOCK bytes: each block costs it some work a column (a CSV of 1,000 columns
    read in 6.2-6.5 s, 4.2 s now; 10,000 columns 15.9 s, 7.4-8.3 s). The same numbers."""
    arrow_csv = pytest.importorskip("pyarrow.csv")
    values = np.arange(40 * 30, dtype=np.float64).reshape(40, 30) / 7
    text = "\n".join(",".join(map(repr, row)) for row in values.tolist()).encode()
    sizes: list[int] = []
    read = arrow_csv.read_csv

    def spied(data: object, **options: object) -> object:
        sizes.append(options["read_options"].block_size)  # type: ignore[attr-defined]
        return read(data, **options)

    monkeypatch.setattr(arrow_csv, "read_csv", spied)
    monkeypatch.setattr(lines, "ARROW_BLOCK", 64)
    monkeypatch.setattr(lines, "ARROW_BLOCK_LINES", 10)
    layout = lines.TextLayout("x.csv", ",", 30, None, tuple(range(30)), False)
    got = lines.arrow_numbers(layout, text, 40, threads=True)
    assert got is not None
    np.testing.assert_array_equal(got, values)
    assert sizes == [-(-len(text) * 10 // 40)]  # ten lines' bytes, not 64
    monkeypatch.setattr(lines, "ARROW_BLOCK_LINES", 1 << 40)  # lines of 2 MiB and more
    got = lines.arrow_numbers(layout, text, 40, threads=True)
    assert got is not None
    np.testing.assert_array_equal(got, values)
    assert sizes[-1] == len(text)  # the whole text, no more (past 2**31 pyarrow refused it)


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        (b"1,2\n 3,4\n\t5,6\n", True),  # a line may start with whitespace
        (b" 1,2\n 3,4\r\n", True),
        (b"1,2\n \t\n5,6\n", False),  # blank but for whitespace
        (b"1,2\n\n5,6\n", False),  # blank
        (b"1,2\r\n\r\n5,6\r\n", False),  # blank, with '\r\n'
        (b" \t\n1,2\n", False),  # the first line blank
        (b"\n1,2\n", False),
        (b"1,2\n3,4\n \t", False),  # the last line blank, with no break after it
        (b"1,2\n3,4\n \t5", True),
        (b"1,2\n3,4", True),
    ],
)
def test_a_piece_is_plain_where_no_line_is_blank(text: bytes, plain: bool) -> None:
    """A piece counted by its breaks has no blank line, wherever whitespace starts a line."""
    spans = list(pieces.spans("x.csv", io.BytesIO(text)))
    rows = sum(1 for line in lines.data_lines(lines.numbered("x.csv", io.BytesIO(text))))
    assert [(span.plain, span.rows) for span in spans] == [(plain, rows)]


def test_the_pieces_before_the_first_row_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pieces, "PIECE_BYTES", 40)
    text = b"# a note\n" + b"".join(b"%d,%d\n" % (k, -k) for k in range(100))
    spans = list(pieces.spans("x.csv", io.BytesIO(text)))
    layout = lines.TextLayout("x.csv", ",", 2, None, (0, 1), False)
    read: list[int] = []

    class Watched(io.BytesIO):
        def read(self, size: int | None = -1, /) -> bytes:
            read.append(self.tell())
            return super().read(size)

    blocks = list(pieces.blocks(layout, Watched(text), spans, 1000, None, 90))
    assert np.concatenate(blocks)[:, 0].tolist() == list(range(90, 100))
    assert min(read) > len(text) - 120  # the pieces of the last rows


def test_a_bad_cell_past_the_first_pieces_names_its_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pieces, "PIECE_BYTES", 100)
    text = b"a,b\n" + b"1,2\n" * 500 + b"\n# a note\n" + b"3,4\n" * 500 + b"5,x\n" + b"6,7\n" * 9
    assert (
        _by_pieces(text, 64, 0)
        == (
            "error",
            "x.csv: line 1004, column 2: 'x' is not a number",
        )
        == _by_lines(text, 64, 0)
    )


def test_a_line_longer_than_a_piece_reads_the_rest_line_by_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pieces, "PIECE_BYTES", 16)
    text = b"1,2\n" + b"3," * 40 + b"4\n" + b"5," * 40 + b"6\r" + b"7," * 40 + b"8\n"
    assert _by_pieces(text, 2, 0) == _by_lines(text, 2, 0)
    last = list(pieces.spans("x.csv", io.BytesIO(text)))[-1]
    assert (last.size, last.plain, last.before) == (0, False, 1)  # the rest, line by line


@pytest.mark.parametrize("size", [1, 2, 3, 1 << 20])
def test_a_byte_that_is_not_utf8_is_named_at_its_offset(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pieces, "PIECE_BYTES", size)
    text = b"\xef\xbb\xbf" + b"1,2\n" * 40 + b"\xff\n"
    assert _by_pieces(text, 7, 0) == ("error", "x.csv: not UTF-8 text (byte offset 163)")
    assert _by_lines(text, 7, 0) == _by_pieces(text, 7, 0)


@pytest.mark.parametrize("change", [b"7,8\n", b"9"])
def test_a_file_changed_after_its_lines_were_counted_is_an_error(
    change: bytes, tmp_path: Path
) -> None:
    """Rows appended, or a byte rewritten in place (the same size, a later time)."""
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 100)
    read = features.chunks(str(path), features.Reading(), 7)
    with path.open("r+b") as file:
        file.seek(*((0, os.SEEK_END) if len(change) > 1 else (4, os.SEEK_SET)))
        file.write(change)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(MlpcliError, match=r"x\.csv: changed since its lines were counted"):
        list(read)
