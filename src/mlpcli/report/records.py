"""What the views' plain data for scripts shares (`report.views`): strict JSON written in
blocks, CSV tables, the start of every network's record, a run's CSV labels.

Floats keep full precision; JSON is strict: NaN and infinities are the strings "NaN",
"Infinity" and "-Infinity" (proto3's JSON convention), so the three stay apart. Everything here
lays results out; what they mean (rates, totals) are the results' own properties.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TextIO, TypeVar, cast, overload

from mlpcli.model.results import override_values, swept_keys

if TYPE_CHECKING:
    import numpy as np

    from mlpcli.model.config import Config

Record = dict[str, object]
Rows = tuple[list[str], list[list[object]]]  # a CSV header and its rows
R = TypeVar("R")
JSON_BLOCK = 1 << 20  # characters of JSON written at once
JSON_ROWS = 4096  # rows of a run's output made into JSON at once


def json_line(record: Record) -> str:
    """One line of strict JSON, newline-terminated."""
    return "".join(json_pieces(record)) + "\n"


def json_blocks(records: Iterable[Record], size: int = JSON_BLOCK) -> Iterator[str]:
    """JSON lines of `records` in blocks of about `size` characters: a run's output of any
    length is written without its whole text, or all its rows as Python lists, in memory."""
    block: list[str] = []
    held = 0
    for record in records:
        for piece in itertools.chain(json_pieces(record), "\n"):
            block.append(piece)
            held += len(piece)
            if held >= size:
                yield "".join(block)
                block, held = [], 0
    if block:
        yield "".join(block)


def json_pieces(value: object) -> Iterator[str]:
    """Compact strict JSON in pieces: a dict's values and a list's rows each apart, a run's
    output (OutputRows) JSON_ROWS rows a piece, made only when it is reached.

    One call over millions of outputs holds the interpreter, and so the signal watcher
    (`interrupts`), for seconds; a call per block of rows lets Ctrl-C in between. The text is
    one call's.
    """
    if isinstance(value, dict):
        yield "{"
        for n, (key, item) in enumerate(value.items()):
            yield ("," if n else "") + _ENCODE(str(key)) + ":"
            yield from json_pieces(item)
        yield "}"
    elif isinstance(value, OutputRows):
        yield "["
        for start in range(0, len(value), JSON_ROWS):
            yield ("," if start else "") + _ENCODE(value[start : start + JSON_ROWS])[1:-1]
        yield "]"
    elif isinstance(value, list) and value and isinstance(value[0], list):
        yield "["
        for n, row in enumerate(value):
            if n:
                yield ","
            yield from json_pieces(row)
        yield "]"
    else:
        yield _ENCODE(value)


_ENCODE = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


class OutputRows(Sequence[list[object]]):
    """A run's output rows as its record holds them: a row becomes a list of numbers (strict
    JSON's strings where not finite) only when it is read, so that nothing holds every row as
    Python objects."""

    def __init__(self, array: np.ndarray, nonfinite: bool) -> None:
        self.array, self.nonfinite = array, nonfinite

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, index: int) -> list[object]: ...
    @overload
    def __getitem__(self, index: slice) -> list[list[object]]: ...
    def __getitem__(self, index: int | slice) -> list[object] | list[list[object]]:
        if isinstance(index, slice):
            rows: list[list[float]] = self.array[index].tolist()
            return [self._strict(row) for row in rows]
        return self._strict(self.array[index].tolist())

    def _strict(self, numbers: list[float]) -> list[object]:
        if self.nonfinite:
            strict: list[object] = [json_number(v) for v in numbers]
            return strict
        return cast(list[object], numbers)


class CsvTables:
    """CSV of several tables onto a text stream; a table with the header of the one before
    goes on under it."""

    def __init__(self, stream: TextIO) -> None:
        self.writer = csv.writer(stream, lineterminator="\n")
        self.quoted = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        self.last: list[str] | None = None

    def table(self, header: list[str]) -> None:
        """Rows of `header` follow."""
        if header != self.last:
            self.writer.writerow(header)
        self.last = header

    def rows(self, rows: Iterable[list[object]]) -> None:
        """Rows under the last header; one whose line would start with '#' (a name such as
        `#2`) with its text quoted, so that no reader takes the line for a comment."""
        for row in rows:
            cells = [_csv_cell(cell) for cell in row]
            commented = cells and isinstance(cells[0], str) and cells[0].lstrip().startswith("#")
            (self.quoted if commented else self.writer).writerow(cells)


def csv_text(tables: Iterable[Rows]) -> str:
    """CSV of several tables (`CsvTables`)."""
    buffer = io.StringIO()
    writer = CsvTables(buffer)
    for header, rows in tables:
        writer.table(header)
        writer.rows(rows)
    return buffer.getvalue()


def _csv_cell(value: object) -> object:
    """Booleans as JSON writes them (`true`, `false`); None is an empty cell."""
    return str(value).lower() if isinstance(value, bool) else value


def each(rows: Callable[[R], Rows]) -> Callable[[Sequence[R]], list[Rows]]:
    """A CSV table per result."""
    return lambda results: [rows(result) for result in results]


def run_swept(overrides: Iterable[Sequence[str]]) -> list[str]:
    """The swept keys that label a run's CSV rows (the name labels them anyway)."""
    return [key for key in swept_keys(overrides) if key != "name"]


def run_header(swept: Sequence[str], columns: int) -> list[str]:
    """`name`, the swept keys, `output_0`, ...: a run's CSV header."""
    return ["name", *swept, *output_names(columns)]


def output_names(columns: int) -> list[str]:
    return [f"output_{j}" for j in range(columns)]


def run_label(config: Config, overrides: Sequence[str], swept: Sequence[str]) -> list[object]:
    """The cells that start each of a run's CSV rows: its name and swept values."""
    values = override_values(overrides)
    return [config.name, *(values[key] for key in swept)]


def json_number(value: float) -> float | str:
    """A float for strict JSON: itself when finite, else "NaN", "Infinity" or "-Infinity"."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def header(kind: str, config: Config, version: int = 1) -> Record:
    """What every record of a network starts with: its schema, name and resolved config."""
    return {"schema": f"mlpcli.{kind}/{version}", "name": config.name, "config": config.to_dict()}
