"""Tables of features as other tools write them: text (CSV, TSV, np.savetxt's spaces) and JSON
(pandas' orients, JSON Lines, a `run` result), to named columns of cells; then the columns that
`input_columns` picks, as numbers.

The rules (docs/files.md):
- the delimiter is the one of tab, comma and semicolon that splits the first line into the most
  cells, else runs of whitespace; every line must split into the same number of cells;
- a first row is a header when a cell that is not empty is not a number, when it is exactly
  pandas' default column names `0..n-1` (after an empty index cell), or when its numbers are of
  another kind than the columns below (whole numbers over decimals); a note says so, and
  `input_header` decides where the numbers cannot say;
- a pandas index column (a first column headed by nothing or `Unnamed: 0`, holding integers) is
  left out, with a note that names `index=False`.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlpcli.data import jsontext
from mlpcli.data.tensorfiles import bad
from mlpcli.model.results import unknown_run_schema
from mlpcli.model.units import counted

if TYPE_CHECKING:
    import numpy as np

Column = str | int  # a column picked by `input_columns`: its name, or its 0-based index
OUTPUT_COLUMN = re.compile(r"output_[0-9]+")
INDEX_NAMES = ("", "Unnamed: 0")
_DELIMITERS = ("\t", ",", ";")


@dataclass(frozen=True)
class Table:
    """A file's table before its cells are numbers."""

    source: str
    names: tuple[str, ...] | None  # None: no header, columns are known by index only
    rows: list[Sequence[object]]  # cells: text, or JSON values
    where: Callable[[int, int], str]  # (row, column) -> "line 3, column 2" for messages
    notes: tuple[str, ...] = ()
    json: bool = False  # cells are JSON values, shown as JSON in messages
    first: bool = True  # holds the file's first rows: a column of text there is one of labels
    misfit: str = ""  # said where the width does not fit the network: how to read it otherwise

    @property
    def width(self) -> int:
        return len(self.names) if self.names is not None else len(self.rows[0])


def pick(
    source: str, names: Sequence[str] | None, width: int, wanted: Sequence[Column] | None
) -> list[int]:
    """The indices of the columns `wanted` names (all of them for None), in its order."""
    if wanted is None:
        return list(range(width))
    indices = []
    for k, column in enumerate(wanted):
        if isinstance(column, int):
            if column >= width:
                message = f"input_columns[{k}]: no column {column}; the file has {width} (0..)"
                raise bad(source, message)
            indices.append(column)
        elif names is None:
            message = (
                f"input_columns[{k}]: {column!r}: the file names no columns; give 0-based indices"
            )
            raise bad(source, message)
        elif column not in names:
            close = difflib.get_close_matches(column, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listed = ", ".join(map(repr, names[:12]))
            raise bad(source, f"input_columns[{k}]: no column {column!r}{hint}; it has {listed}")
        else:
            indices.append(names.index(column))
        if indices[-1] in indices[:-1]:
            raise bad(source, f"input_columns[{k}]: {column!r} picks a column already picked")
    return indices


def matrix(table: Table, wanted: Sequence[Column] | None) -> np.ndarray:
    """The picked columns of `table` as a (rows, width) float64 array; a cell that is not a
    finite number is an error naming it (and `input_columns`, for a column of names)."""
    import numpy as np

    columns = pick(table.source, table.names, table.width, wanted)
    values = np.empty((len(table.rows), len(columns)), dtype=np.float64)
    for i, row in enumerate(table.rows):
        for k, j in enumerate(columns):
            cell = row[j]
            value = number(cell)
            if value is None or not math.isfinite(value):
                raise bad(table.source, _not_anumber(table, i, j, cell, value, wanted))
            values[i, k] = value
    return values


def number(cell: object) -> float | None:
    """A cell's number: text that Python reads as a float, in ASCII digits and without the
    underscores of Python's literals (`1_0`, Arabic-Indic or full-width digits are no numbers
    to NumPy, pandas or pyarrow), or a JSON number."""
    if isinstance(cell, str):
        if not cell.isascii() or "_" in cell:
            return None
        try:
            return float(cell)
        except ValueError:
            return None
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        try:
            return float(cell)
        except OverflowError:  # an integer too large for a float
            return math.inf
    return None


def _not_anumber(
    table: Table, i: int, j: int, cell: object, value: float | None, wanted: Sequence[Column] | None
) -> str:
    shown = json.dumps(cell)[:40] if table.json else repr(str(cell).strip()[:40])
    where = table.where(i, j)
    if cell is None:
        return f"{where}: null is a missing value; features must be finite numbers"
    if isinstance(cell, str) and not cell.strip():
        return (
            f"{where}: an empty cell is a missing value (pandas writes NaN as one); features "
            "must be finite numbers"
        )
    if value is not None:
        return f"{where}: {shown} is not finite"
    first = table.rows[:20]
    text_column = (  # every value text, and not every one empty (missing values, not labels)
        table.first
        and all(number(row[j]) is None for row in first)
        and any(str(row[j]).strip() for row in first)
    )
    if wanted is None and text_column:  # labels, ids, names: a column that is not features
        name = f"column {table.names[j]!r}" if table.names is not None else f"column {j}"
        return (
            f"{name} is not numbers ({where}: {shown}); pick the feature columns with "
            "input_columns: [name or 0-based index, ...]"
        )
    return f"{where}: {shown} is not a number"


# Text: the rules of a first line (read a block at a time by `lines`)


def is_header(cells: Sequence[str], below: Sequence[Sequence[str]]) -> bool | None:
    """Whether a first line is column names, told by its types against the rows below (in the
    manner of `csv.Sniffer`): a cell of text, pandas' default names, or numbers whose types
    differ from the columns below them in more columns than they match (whole numbers above
    decimals: 400, 500, ... over 0.31, ...). None where the numbers cannot say: as many columns
    each way, or numbers that rise like names (1, 2, 3 or 0.5, 1.0, 2.0) above numbers of
    their kind that mostly do not."""
    named = cells[1:] if cells[0] in INDEX_NAMES else cells
    if any(cell and number(cell) is None for cell in cells) or pandas_names(cells):
        return True
    if not below or not all(named):  # an empty cell but the index's: a missing value
        return False
    votes = 0
    for j, cell in enumerate(cells):
        column = [row[j].strip() for row in below if j < len(row)]
        if not cell or not column or any(number(value) is None for value in column):
            continue  # an index's empty heading, or a column that is not numbers
        names_whole = _WHOLE.fullmatch(cell) is not None
        votes += 1 if names_whole != all(map(_WHOLE.fullmatch, column)) else -1
    if votes > 0:
        return True
    return (
        None
        if votes == 0 or (_rising(cells) and sum(map(_rising, below)) < len(below) / 2)
        else False
    )


def _rising(cells: Sequence[str]) -> bool:
    """Whether a line's numbers rise as names do (1, 2, 3); cells that are no number do not."""
    values = [number(cell) for cell in cells]
    return len(values) > 1 and all(
        a is not None and b is not None and a < b for a, b in itertools.pairwise(values)
    )


def pandas_names(cells: Sequence[str]) -> bool:
    """Whether a line is pandas' default column names, `0..n-1` (after its index's cell)."""
    named = cells[1:] if cells[0] in INDEX_NAMES else cells
    return list(named) == [str(j) for j in range(len(named))]


_WHOLE = re.compile(r"\s*[+-]?[0-9]+\s*")  # a whole number as text: 400, not 400.0


def whole(cell: str) -> bool:
    """Whether a cell is a whole number (pandas' index: 0, 1, ...)."""
    value = number(cell)
    return value is not None and math.isfinite(value) and value.is_integer()


def header_note(source: str, names: Sequence[str], line: int = 1, numbers: bool = False) -> str:
    """What was read as a header; for names that are numbers, how to read them as data."""
    note = f"{source}: line {line} read as column names ({_listed(names)})"
    if numbers:
        note += "; names that are numbers: input_header: false reads the line as data"
    return note


def data_note(source: str, line: int = 1) -> str:
    """A first line of numbers read as data where it could be names."""
    return (
        f"{source}: line {line} is numbers like the rows below and could be column names; read "
        "as data (input_header: true reads it as names)"
    )


def index_note(source: str, heading: str) -> str:
    return (
        f"{source}: its first column, headed {heading!r}, is pandas' index and is left out "
        "(write the file with index=False to leave it out there)"
    )


def comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _cells(line: str, delimiter: str) -> int:
    """How many cells `delimiter` splits `line` into (1 where the csv module cannot read it:
    the read itself says why)."""
    try:
        return len(next(csv.reader([line], delimiter=delimiter), []))
    except csv.Error:
        return 1


def delimiter_of(line: str) -> str | None:
    """The delimiter that splits `line` into the most cells (tab first on a tie); None for
    runs of whitespace. A line of numbers with decimal commas (`0,5;1,25`, `0,5 1,25`) splits
    where its cells are those numbers."""
    if "," in line:
        for delimiter in ("\t", ";", None):
            cells = line.split(delimiter)
            if len(cells) > 1 and all(DECIMAL_COMMA.fullmatch(cell) for cell in cells):
                return delimiter
    counts = {delimiter: _cells(line, delimiter) for delimiter in _DELIMITERS if delimiter in line}
    best = max(counts, key=lambda d: counts[d], default=None)
    if best is not None and counts[best] > 1:
        return best
    return None if len(line.split()) > 1 else ","


DECIMAL_COMMA = re.compile(r"\s*[+-]?[0-9]*,[0-9]+(?:[eE][+-]?[0-9]+)?\s*")  # 0,125 or -1,5e-3


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:6])
    return shown + (f", … {counted(len(names), 'column')} in all" if len(names) > 6 else "")


# JSON


def json_table(source: str, text: str, orient: str | None = None) -> Table:
    """The table of a JSON text: a `run` result, a list of rows, pandas' `to_json` in any orient,
    or JSON Lines of records (`lines=True`) or of rows; `orient` (`input_orient`) for an object
    of objects."""
    try:
        data = jsontext.loads(text)
    except json.JSONDecodeError as error:
        lines = [line for line in text.splitlines() if line.strip()]
        if error.msg != "Extra data" or len(lines) < 2:
            raise bad(source, f"line {error.lineno}: invalid JSON: {error.msg}") from None
        data = _json_lines(source, lines)
    except (RecursionError, ValueError) as error:
        raise bad(source, f"invalid JSON: {str(error)[:80]}") from None
    return _json_to_table(source, data, orient)


def _json_lines(source: str, lines: list[str]) -> list[object]:
    values = []
    for number, line in enumerate(lines, 1):
        try:
            values.append(jsontext.loads(line))
        except (RecursionError, ValueError) as error:
            raise bad(source, f"line {number}: invalid JSON Lines: {str(error)[:80]}") from None
    if all(run_result(value) for value in values):
        raise bad(source, f"holds {len(values)} results; chain one network's output at a time")
    if not any(isinstance(value, list | dict) for value in values):
        return [[value] for value in values]  # a value a line: a column, as pandas reads it
    return values


def run_result(value: object) -> bool:
    return isinstance(value, dict) and str(value.get("schema", "")).startswith("mlpcli.")


def _json_to_table(source: str, data: object, orient: str | None) -> Table:
    """The table a parsed JSON document holds, by pandas' orients (or a run's result)."""
    if isinstance(data, dict) and run_result(data):
        data = _run_output(source, data)
    if (
        isinstance(data, dict)
        and data
        and not any(isinstance(v, dict | list) for v in data.values())
    ):
        data = [data]  # one record (JSON Lines of one row)
    for holds, read in _JSON_LAYOUTS:
        if holds(data):
            return read(source, data, orient)
    raise bad(
        source,
        "not a table of features: expected a list of rows, pandas' to_json (orient values, "
        "records, split, index, columns or table; lines=True), or a `mlpcli run` result",
    )


def _is_records(data: object) -> bool:
    return isinstance(data, list) and bool(data) and all(isinstance(row, dict) for row in data)


def _is_split(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("columns"), list) and "data" in data


def _is_table(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("schema"), dict) and "data" in data


def _is_nested(data: object) -> bool:
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict) for v in data.values())


def _run_output(source: str, data: dict[str, object]) -> object:
    """The output of a `mlpcli run` result, the features of the next run."""
    if not str(data["schema"]).startswith("mlpcli.run/") or "output" not in data:
        raise bad(source, f"a {data['schema']} result; features come from `mlpcli run`'s")
    if (unknown := unknown_run_schema(data["schema"])) is not None:
        raise bad(source, unknown)
    return data["output"]


def _json_rows(source: str, values: list[object]) -> Table:
    """A JSON list of rows of numbers (or one row), all as long as the first."""
    if not values:
        raise bad(source, "holds no rows of features")
    if not isinstance(values[0], list):
        values = [values]  # one row
    if not all(isinstance(row, list) for row in values):
        raise bad(source, "a JSON list must hold rows (lists) of numbers or records")
    rows: list[Sequence[object]] = values  # type: ignore[assignment]
    for i, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise bad(source, f"row {i}: {len(row)} values, but row 0 has {len(rows[0])}")
    return Table(source, None, rows, lambda i, j: f"row {i}, column {j}", json=True)


def _split_orient(source: str, data: dict[str, object]) -> Table:
    """pandas' orient 'split': columns, data (rows as long as them) and an optional index."""
    names = tuple(map(str, data["columns"]))  # type: ignore[call-overload]
    table = _json_rows(source, data["data"]) if isinstance(data["data"], list) else None
    if table is None or (table.rows and len(table.rows[0]) != len(names)):
        raise bad(source, "orient 'split': data must be rows as long as columns")
    index = data.get("index")
    if isinstance(index, list) and len(index) != len(table.rows):
        rows = counted(len(table.rows), "row")
        raise bad(source, f"orient 'split': an index of {len(index)} for {rows}")
    return Table(source, names, table.rows, _named_at(names), json=True)


def _named_at(names: Sequence[str]) -> Callable[[int, int], str]:
    return lambda i, j: f"row {i}, column {names[j]!r}"


def _records(source: str, records: list[dict[str, object]]) -> Table:
    names = tuple(records[0])
    for i, record in enumerate(records):
        if tuple(record) != names and set(record) != set(names):
            missing = sorted(set(names) ^ set(record))[:3]
            raise bad(source, f"record {i} has other keys than record 0 ({', '.join(missing)})")
    rows = [[record[name] for name in names] for record in records]
    return Table(source, names, rows, _named_at(names), json=True)  # type: ignore[arg-type]


def _table_orient(source: str, data: dict[str, object]) -> Table:
    """orient='table': records under `data`, the index's fields (`primaryKey`) left out."""
    schema = data["schema"]
    assert isinstance(schema, dict)
    records = data["data"]
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise bad(source, "orient 'table': data must be a list of records")
    index = schema.get("primaryKey") or []
    kept = [{k: v for k, v in record.items() if k not in index} for record in records]
    if not kept:
        raise bad(source, "holds no rows of features")
    return _records(source, kept)


def _nested(source: str, data: dict[str, dict[str, object]], orient: str | None) -> Table:
    """orient='columns' ({column: {row: value}}), as `pd.read_json` reads an object of objects
    by default, or orient='index' ({row: {column: value}}) where `orient` says so. Where the
    keys do not say (column names outside, row numbers inside), a note names the reading."""
    outer = list(data)
    inner = list(dict.fromkeys(key for value in data.values() for key in value))
    notes: tuple[str, ...] = ()
    hint = ""
    if orient is None and not (not _numbered(outer) and _numbered(inner)):
        notes = (
            f"{source}: an object of objects, read as pandas reads it by default, "
            f"orient='columns' ({counted(len(inner), 'row')} of {counted(len(outer), 'column')});"
            " written with orient='index', it needs input_orient: index",
        )
        hint = f"; read as orient='columns', input_orient: index reads rows of {len(inner)}"
    if orient == "index":
        names = tuple(inner)
        rows = [[data[key].get(name) for name in names] for key in outer]
    else:
        names = tuple(outer)
        rows = [[data[name].get(key) for name in names] for key in inner]
    if not rows:
        raise bad(source, "holds no rows of features")
    where = _named_at(names)
    return Table(source, names, rows, where, notes, json=True, misfit=hint)  # type: ignore[arg-type]


def _numbered(keys: Sequence[str]) -> bool:
    """Whether keys are row numbers (pandas' default index) rather than names."""
    return all(re.fullmatch(r"-?[0-9]+", key) for key in keys)


# Each JSON layout a table of features comes in, in the order they are told apart: whether the
# document is one, and how it is read.
_JSON_LAYOUTS: tuple[tuple[Callable[[Any], bool], Callable[[str, Any, str | None], Table]], ...] = (
    (_is_records, lambda source, data, _: _records(source, data)),  # JSON Lines of records too
    (lambda data: isinstance(data, list) and bool(data), lambda s, d, _: _json_rows(s, d)),
    (_is_split, lambda source, data, _: _split_orient(source, data)),
    (_is_table, lambda source, data, _: _table_orient(source, data)),
    (_is_nested, _nested),  # orient columns or index
)
