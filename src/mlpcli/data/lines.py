"""Text features read a block of lines at a time, so that no file is held whole: CSV, TSV and
whitespace-separated text, and JSON Lines of records or rows.

The table's layout (delimiter, header, pandas' index, `run` output columns) comes from its first
lines by the rules of `tables`; every block is then read at once, by pyarrow's CSV reader where
pyarrow is installed or by NumPy's `loadtxt` (the same bits), where every cell is a
finite number, else cell by cell through `tables.matrix`, which names the cell that is not.
Lines break where `str.splitlines` breaks them (a header whose quoted name holds a break is its
lines joined); blank lines and whole-line `#` comments are left out (not in JSON Lines).
docs/files.md.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import itertools
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mlpcli.data import arrowtables, jsontext, tables
from mlpcli.data.tables import Column, Table
from mlpcli.data.tensorfiles import bad
from mlpcli.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

PIECE = 1 << 20  # bytes decoded at a time
ARROW_LINES = 4096  # lines of a block that pyarrow reads at once
ARROW_BLOCK = 1 << 20  # bytes of CSV that pyarrow parses on one thread, at least
ARROW_BLOCK_LINES = 1024  # ... and lines: each block costs pyarrow some work a column
ARROW_BLOCK_MAX = (1 << 31) - 1  # pyarrow's block size is an int32
Line = tuple[int, str]  # (1-based line number, the line without its break)


class Readable(Protocol):
    """What lines are read from: a binary file, or bytes put back before one."""

    def read(self, size: int, /) -> bytes: ...


def numbered(source: str, stream: Readable, before: int = 0, offset: int = 0) -> Iterator[Line]:
    """Every line of a UTF-8 byte stream (a BOM at the file's start dropped), numbered on from
    `before` (the lines before the stream's first, which is at byte `offset` of the file), read
    PIECE bytes at a time; a line longer than MAX_LINE characters is an error (a JSON document
    on one line, say)."""
    decoder = codecs.getincrementaldecoder("utf-8" if offset else "utf-8-sig")()
    number, consumed = before, offset
    unfinished: list[str] = []  # the pieces of a line that goes on in the next piece
    held = 0
    while True:  # until the final, empty read
        data = stream.read(PIECE)
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as error:
            start = not consumed and data.startswith(codecs.BOM_UTF8)
            bom = len(codecs.BOM_UTF8) if start else 0
            at = consumed + bom + error.start - len(decoder.getstate()[0])
            raise bad(source, f"not UTF-8 text (byte offset {max(at, 0)})") from None
        consumed += len(data)
        if data and not _BREAK.search(text):  # the line goes on: split nothing yet
            unfinished.append(text)
            held += len(text)
            if held > MAX_LINE:
                raise too_long(source, number + 1)
            continue
        lines = ("".join(unfinished) + text).splitlines(keepends=True)
        unfinished, held = [], 0
        # the last line may go on in the next piece (a '\r' may be half of '\r\n')
        if data and lines and _open(lines[-1]):
            unfinished, held = [lines[-1]], len(lines[-1])
            lines.pop()
        for line in lines:
            number += 1
            yield number, line[:-2] if line.endswith("\r\n") else line.rstrip(_BREAKS)
        if not data:
            return


_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # str.splitlines' line boundaries
_BREAK = re.compile(f"[{_BREAKS}]")
MAX_LINE = 64 << 20  # characters of one line


def too_long(source: str, number: int) -> ConfigError:
    """The error for line `number`, longer than MAX_LINE characters."""
    return bad(source, f"line {number} is longer than {MAX_LINE >> 20} MiB")


def _open(line: str) -> bool:
    """Whether a line read so far may not be whole: no break at its end, or a lone '\r'."""
    return line.endswith("\r") or not line.endswith(tuple(_BREAKS))


def data_lines(lines: Iterable[Line]) -> Iterator[Line]:
    """The lines that are not blank or a whole-line `#` comment."""
    return (line for line in lines if is_data(line[1]))


def is_data(line: str) -> bool:
    """Whether a line holds data: neither blank nor a whole-line `#` comment."""
    return bool(line.strip()) and not tables.comment(line)


@dataclass(frozen=True)
class TextLayout:
    """How a text table's lines read: the delimiter (None: runs of whitespace), the cells of a
    line, the column names (None: by index), which cells are features, and what was assumed."""

    source: str
    delimiter: str | None
    cells: int  # every line splits into this many
    names: tuple[str, ...] | None  # of the kept cells
    kept: tuple[int, ...]  # the cells of a line that are features (pandas' index left out ...)
    header: bool  # whether the first data line is the header
    notes: tuple[str, ...] = ()
    index: bool = False  # cell 0 is pandas' index, found whole in the first lines
    decimal_comma: bool = False  # numbers are written 0,5 (a delimiter other than the comma)
    header_lines: int = 1  # the data lines the header takes (a quoted name may hold a break)

    @property
    def skipped(self) -> int:
        """The data lines before the first row: the header's, where there is one."""
        return self.header_lines if self.header else 0


def text_layout(
    source: str, first: Sequence[Line], rows: int, header: bool | None = None
) -> TextLayout:
    """The layout of a text table from its first data lines (`first`: the header and a block of
    rows after it); `rows` is every data line's count, for the error of a header alone;
    `header` says whether the first line is one (`input_header`; None: `tables.is_header`).
    A header whose quoted name holds a line break (pandas writes one so) is its lines joined."""
    if not first:
        raise bad(source, "holds no rows of features")
    span = 1 if header is False else _header_span(first)
    if span == 1:
        return _layout(source, first, rows, header)
    if first[span - 1][0] - first[0][0] != span - 1:  # a blank or comment line left out
        message = f"line {first[0][0]}: a quoted column name holds a blank or '#' line; rename it"
        raise bad(source, message)
    joined = (first[0][0], "\n".join(text for _, text in first[:span]))
    layout = _layout(source, [joined, *first[span:]], rows - span + 1, header)
    return dataclasses.replace(layout, header_lines=span)


def _header_span(first: Sequence[Line]) -> int:
    """The lines a first line's quotes go on over (1: its quotes close on it, or never do)."""
    quotes = 0
    for span, (_, text) in enumerate(first, 1):
        quotes += text.count('"')
        if quotes % 2 == 0:
            return span
    return 1


def _layout(source: str, first: Sequence[Line], rows: int, header: bool | None) -> TextLayout:
    """`text_layout` of data lines whose first is whole."""
    delimiter = tables.delimiter_of(first[0][1])
    comma = delimiter != "," and any(
        tables.DECIMAL_COMMA.fullmatch(cell)
        for line in first
        for cell in _cells(source, line, delimiter)
    )
    if comma:
        if header is None and any(_pointed_number(c) for c in _cells(source, first[0], delimiter)):
            header = True  # numbers written with points over decimal commas: names, to pandas
        layout = _layout(source, [_pointed(line) for line in first], rows, header)
        note = f"{source}: decimal commas read as points (as pandas' decimal=',')"
        return dataclasses.replace(layout, decimal_comma=True, notes=(*layout.notes, note))
    head = _cells(source, first[0], delimiter)
    width = len(head)
    heading = [cell.strip() for cell in head]
    kept = tuple(range(width))
    found = header
    if header is None:
        below = [_cells(source, line, delimiter) for line in first[1:]]
        found = tables.is_header(heading, [row for row in below if len(row) == width])
    if not found:
        guessed = (tables.data_note(source, first[0][0]),) if found is None else ()
        return TextLayout(source, delimiter, width, None, kept, False, guessed)
    if rows < 2:
        raise bad(source, "holds a header and no rows of features")
    return _headed(source, first, delimiter, heading, typed=header is not None)


def _headed(
    source: str, first: Sequence[Line], delimiter: str | None, heading: list[str], *, typed: bool
) -> TextLayout:
    """The layout of a text table under a header: a run's output columns alone, else every
    column but pandas' index, with a note of the names (`typed`: input_header said so)."""
    names = tuple(heading)
    width = len(names)
    kept = tuple(range(width))
    notes: list[str] = []
    outputs = tuple(j for j, name in enumerate(names) if tables.OUTPUT_COLUMN.fullmatch(name))
    if outputs and width - len(outputs) > 1:  # name and swept keys: several networks
        raise bad(source, "a sweep's results; chain one network's output at a time")
    if outputs:  # a `run --format csv` result: its output columns, quietly
        kept = outputs
    elif names[0] in tables.INDEX_NAMES and all(
        tables.whole(_cells(source, line, delimiter)[0]) for line in first[1:]
    ):
        kept = kept[1:]
        notes.append(tables.index_note(source, heading[0]))
    kept_names = tuple(names[j] for j in kept)
    if not outputs:
        numbers = (
            not typed
            and not tables.pandas_names(heading)
            and all(tables.number(c) is not None for c in heading if c)
        )
        notes.insert(0, tables.header_note(source, kept_names, first[0][0], numbers))
    index = 0 not in kept and not outputs
    return TextLayout(source, delimiter, width, kept_names, kept, True, tuple(notes), index)


def _pointed(line: Line) -> Line:
    """A line of decimal commas with points instead."""
    return line[0], line[1].replace(",", ".")


def _pointed_number(cell: str) -> bool:
    """Whether a cell of a table of decimal commas is a number but for its points (`1.234`,
    `1.234,5`): a decimal point, or one that separates thousands."""
    return "." in cell and tables.number(cell.replace(".", "").replace(",", ".")) is not None


def _comma_decimals(layout: TextLayout, picked: list[int]) -> Callable[[Line], Line]:
    """A data line of a table of decimal commas with points instead; a `picked` cell that is a
    number but for its points is an error naming it (pandas' decimal=',' reads no number
    there, and a point may be a thousands separator: 1.234 for 1234)."""

    def pointed(line: Line) -> Line:
        if "." in line[1]:
            text, delimiter = line[1], layout.delimiter
            plain = delimiter is not None and '"' not in text  # split as csv would, quicker
            cells = text.split(delimiter) if plain else _cells(layout.source, line, delimiter)
            for j in picked:
                if j < len(cells) and _pointed_number(cells[j]):
                    message = (
                        f"line {line[0]}, column {j + 1}: {cells[j].strip()[:40]!r} has a decimal "
                        "point, where the file's numbers have decimal commas; write them one way"
                    )
                    raise bad(layout.source, message)
        return _pointed(line)

    return pointed


def _cells(source: str, line: Line, delimiter: str | None) -> list[str]:
    """The cells of one line, as pyarrow, NumPy and pandas read them (`"4"9` is 49)."""
    number, text = line
    if delimiter is None:
        return text.split()
    try:
        return next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error as error:
        raise bad(source, f"line {number}: {error}") from None


def picked(layout: TextLayout, wanted: Sequence[Column] | None) -> list[int]:
    """The cells of a line that `input_columns` picks (all the kept ones by default)."""
    chosen = tables.pick(layout.source, layout.names, len(layout.kept), wanted)
    return [layout.kept[j] for j in chosen]


def text_blocks(
    layout: TextLayout,
    lines: Iterator[Line],
    rows: int,
    wanted: Sequence[Column] | None,
    first: int = 0,
) -> Iterator[np.ndarray]:
    """The picked columns of the data lines after the header from row `first` on (the lines
    before it passed over unparsed), `rows` lines at a time, each a (rows, width) float64
    block."""
    data = itertools.islice(lines, first + layout.skipped, None)
    yield from line_blocks(layout, data, rows, picked(layout, wanted), wanted, first == 0)


def line_blocks(
    layout: TextLayout,
    data: Iterator[Line],
    rows: int,
    picked: list[int],
    wanted: Sequence[Column] | None,
    opening: bool,
) -> Iterator[np.ndarray]:
    """The `picked` cells of data lines, `rows` lines at a time (`opening`: the first are the
    file's first rows, where a column of text is taken for labels)."""
    if layout.decimal_comma:
        data = map(_comma_decimals(layout, picked), data)
    while block := list(itertools.islice(data, rows)):
        yield _numbers(layout, block, picked, wanted, opening)
        opening = False


def _numbers(
    layout: TextLayout,
    block: list[Line],
    picked: list[int],
    wanted: Sequence[Column] | None,
    opening: bool,
) -> np.ndarray:
    """A block's picked cells as numbers: by NumPy at once, else cell by cell (`opening`: the
    file's first rows, where a column of text is taken for labels)."""
    fast = numeric_block(layout, block)
    if fast is not None and (not layout.index or whole_index(fast)):
        return cells(fast, picked)
    table = dataclasses.replace(cell_table(layout, block), first=opening)
    return tables.matrix(table, wanted)


def cells(values: np.ndarray, picked: list[int]) -> np.ndarray:
    """The `picked` columns of a block of rows: the block itself where they are all of its
    columns in order (no copy)."""
    return values if picked == list(range(values.shape[1])) else values[:, picked]


def whole_index(values: np.ndarray) -> bool:
    """Whether the first column (pandas' index) holds whole numbers."""
    return bool((values[:, 0] == values[:, 0].round()).all())


def numeric_block(layout: TextLayout, block: list[Line]) -> np.ndarray | None:
    """The block where every cell is a finite number, as pyarrow's CSV reader reads it where
    pyarrow is installed (about three times NumPy's speed), else as NumPy's `loadtxt` does
    (both round each number correctly); else None."""
    import numpy as np

    values = _by_arrow(layout, block)
    if values is not None and values.shape == (len(block), layout.cells):
        return values if np.isfinite(values).all() else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.loadtxt(
                [line for _, line in block],
                delimiter=layout.delimiter,
                comments=None,  # a line that starts with # is left out already; none other is
                quotechar='"',
                ndmin=2,
                dtype=np.float64,
            )
    except ValueError:  # a cell that is no number, rows of other widths: said cell by cell
        return None
    if values.shape != (len(block), layout.cells) or not np.isfinite(values).all():
        return None
    return values


def _by_arrow(layout: TextLayout, block: list[Line]) -> np.ndarray | None:
    """The block as float64 numbers by pyarrow's CSV reader, ARROW_LINES lines at a time on
    this thread; None without pyarrow, for runs of whitespace, or where it reads no numbers
    (NumPy tries next)."""
    import numpy as np

    values = np.empty((len(block), layout.cells))
    for start in range(0, len(block), ARROW_LINES):
        lines = block[start : start + ARROW_LINES]
        joined = "\n".join(line for _, line in lines)
        if "\ufeff" in joined:  # pyarrow passes over a byte-order mark at a piece's start
            return None
        piece = arrow_numbers(layout, joined.encode(), len(lines), threads=False)
        if piece is None:
            return None
        values[start : start + len(lines)] = piece
    return values


def arrow_numbers(
    layout: TextLayout, data: bytes, rows: int, *, threads: bool
) -> np.ndarray | None:
    """`rows` lines of CSV bytes as a (rows, cells) float64 array, by pyarrow's CSV reader (on
    every core, with `threads`); None without pyarrow, for runs of whitespace, or where it reads
    other than `rows` rows of numbers (a blank line, an empty cell, one that is
    no number, ragged rows)."""
    if layout.delimiter is None:
        return None
    try:
        import pyarrow as pa
        import pyarrow.csv as arrow_csv
    except ImportError:
        return None
    import numpy as np

    names = [str(j) for j in range(layout.cells)]
    lined = -(-len(data) * ARROW_BLOCK_LINES // max(rows, 1))  # bytes of that many lines
    block = min(max(ARROW_BLOCK, lined), max(ARROW_BLOCK, len(data)), ARROW_BLOCK_MAX)
    try:
        table = arrow_csv.read_csv(
            pa.py_buffer(data),
            read_options=arrow_csv.ReadOptions(
                column_names=names, use_threads=threads, block_size=block
            ),
            parse_options=arrow_csv.ParseOptions(delimiter=layout.delimiter),
            convert_options=arrow_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.float64())
            ),
            memory_pool=pa.system_memory_pool(),  # each piece's memory freed as it goes
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # not numbers, ragged rows
        return None
    if table.num_rows != rows or any(column.null_count for column in table.columns):
        return None  # an empty cell
    columns = np.empty((layout.cells, rows))  # each column's rows side by side: written
    for j, column in enumerate(table.columns):  # whole, not a value every `cells`
        start = 0
        for chunk in column.chunks:
            columns[j, start : start + len(chunk)] = arrowtables.numbers(chunk)
            start += len(chunk)
    del table  # two copies of the values at a time, not three
    return np.ascontiguousarray(columns.T)


def cell_table(layout: TextLayout, block: list[Line]) -> Table:
    """A block's kept cells as a `Table`, each located at its line; ragged lines are errors."""
    rows: list[Sequence[object]] = []
    for line in block:
        cells = _cells(layout.source, line, layout.delimiter)
        if len(cells) != layout.cells:
            message = f"line {line[0]}: {len(cells)} values, but the first row has {layout.cells}"
            raise bad(layout.source, message)
        if layout.index and not tables.whole(cells[0]):
            raise bad(
                layout.source,
                f"line {line[0]}, column 1: {cells[0].strip()[:40]!r} is not a whole number, but "
                "the column was read as pandas' index from the first lines; write the file "
                "with index=False, or name the column",
            )
        rows.append([cells[j] for j in layout.kept])
    numbers = [number for number, _ in block]
    return Table(
        layout.source,
        layout.names,
        rows,
        lambda i, j: f"line {numbers[i]}, column {layout.kept[j] + 1}",
        layout.notes,
    )


# JSON Lines


@dataclass(frozen=True)
class JsonLayout:
    """JSON Lines of records (`names`: record 0's keys), of rows (`names` None), or of single
    values (`scalars`: a column, as pandas reads them)."""

    source: str
    names: tuple[str, ...] | None
    width: int
    first: int  # the line of the first value
    scalars: bool = False


def json_layout(source: str, first: Line) -> JsonLayout | None:
    """The layout of JSON Lines that stream, a record or a row of values a line; None where the
    first line is anything else (a `run` result, rows of rows, a document over several lines),
    read whole by `tables`."""
    try:
        value = jsontext.loads(first[1])
    except (RecursionError, ValueError):
        return None
    if isinstance(value, dict) and value and not tables.run_result(value):
        if any(isinstance(v, dict | list) for v in value.values()):
            return None
        return JsonLayout(source, tuple(value), len(value), first[0])
    if isinstance(value, list) and value and not any(isinstance(v, list | dict) for v in value):
        return JsonLayout(source, None, len(value), first[0])
    if not isinstance(value, list | dict):
        return JsonLayout(source, None, 1, first[0], scalars=True)
    return None


def _json_value(source: str, line: Line) -> object:
    try:
        return jsontext.loads(line[1])
    except (RecursionError, ValueError) as error:
        raise bad(source, f"line {line[0]}: invalid JSON Lines: {str(error)[:80]}") from None


def json_blocks(
    layout: JsonLayout,
    lines: Iterator[Line],
    rows: int,
    wanted: Sequence[Column] | None,
    first: int = 0,
) -> Iterator[np.ndarray]:
    """The picked values of JSON Lines from row `first` on (the lines before it passed over
    unparsed), `rows` lines at a time, as float64 blocks."""
    source = layout.source
    tables.pick(source, layout.names, layout.width, wanted)  # a bad pick before any line
    values = itertools.islice(json_values(lines), first, None)
    while block := list(itertools.islice(values, rows)):
        cells: list[Sequence[object]] = []
        for line in block:
            value = _json_value(source, line)
            if layout.scalars:
                if isinstance(value, list | dict):
                    raise bad(source, f"line {line[0]}: expected one value, as on every line")
                cells.append([value])
            elif layout.names is None:
                if not isinstance(value, list) or len(value) != layout.width:
                    raise bad(source, f"line {line[0]}: expected a row of {layout.width} values")
                cells.append(value)
            elif not isinstance(value, dict) or set(value) != set(layout.names):
                message = f"line {line[0]}: a record with other keys than line {layout.first}'s"
                raise bad(source, message)
            else:
                cells.append([value[name] for name in layout.names])
        where = located([number for number, _ in block], layout.names)
        table = Table(source, layout.names, cells, where, json=True, first=first == 0)
        yield tables.matrix(table, wanted)
        first = -1  # the blocks after the first


def json_values(numbered: Iterable[Line]) -> Iterator[Line]:
    """The lines of JSON Lines that hold a value (blank ones passed over)."""
    return (line for line in numbered if line[1].strip())


def located(numbers: list[int], names: tuple[str, ...] | None) -> Callable[[int, int], str]:
    """(row, column) of a block of JSON Lines to its line and column, for messages."""
    return lambda i, j: f"line {numbers[i]}, column {j if names is None else repr(names[j])}"
