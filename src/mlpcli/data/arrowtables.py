"""Parquet and Arrow feather features through pyarrow (optional: `pip install pyarrow`).

The schema gives the rows, names and types without reading the data; a pandas index stored as a
column is left out; a column that is not integers or floats is an error naming it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlpcli.data.tables import Column, pick
from mlpcli.data.tensorfiles import STDIN_NAME, bad, by_file, parsed_by_library, regular_size
from mlpcli.errors import UnavailableError

if TYPE_CHECKING:
    import numpy as np

SUFFIXES = (".parquet", ".feather")
WHAT = "Parquet or feather file"
INSTALL = "pip install pyarrow (or, from this checkout, pip install -e '.[parquet]')"


def _pyarrow(source: str) -> Any:
    try:
        import pyarrow
        import pyarrow.feather
        import pyarrow.parquet
    except ImportError:
        raise UnavailableError(f"{source}: reading it needs pyarrow: {INSTALL}") from None
    return pyarrow


def _read(source: str, data: bytes | None) -> Any:
    """The file (memory-mapped), or stdin's `data`, as a pyarrow Table."""
    pa = _pyarrow(source)
    where = source if data is None else pa.BufferReader(data)
    parquet = source.lower().endswith(".parquet") if data is None else data[:4] == b"PAR1"
    with parsed_by_library(source, WHAT):
        if parquet:
            return pa.parquet.read_table(where, memory_map=data is None)
        return pa.feather.read_table(where, memory_map=data is None)


@by_file
def _file_table(path: str) -> Any:
    regular_size(path, "a features file")
    return _read(path, None)


@functools.cache
def _stdin_table(data: bytes) -> Any:
    return _read(STDIN_NAME, data)


def table(source: str, data: bytes | None = None) -> Any:
    """The Arrow table of a file, or of stdin's bytes."""
    return _file_table(source) if data is None else _stdin_table(data)


def features(table: Any, source: str) -> tuple[list[str], list[str]]:
    """The feature columns of `table` (its pandas index left out) and notes about them."""
    names = list(table.column_names)
    with parsed_by_library(source, WHAT):  # pandas' metadata is JSON in the file's schema
        metadata = table.schema.pandas_metadata or {}
    index = [name for name in metadata.get("index_columns", []) if isinstance(name, str)]
    notes = []
    if index:
        names = [name for name in names if name not in index]
        notes.append(f"{source}: pandas' index ({', '.join(index)}) is left out")
    return names, notes


def _picked(
    source: str, wanted: Sequence[Column] | None, data: bytes | None
) -> tuple[Any, list[str], list[str]]:
    """The table, the names of the picked columns (each checked to be numbers), and notes."""
    arrow = table(source, data)
    names, notes = features(arrow, source)
    picked = [names[j] for j in pick(source, names, len(names), wanted)]
    pa = _pyarrow(source)
    for name in picked:
        kind = arrow.schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            hint = "" if wanted is not None else "; pick the feature columns with input_columns"
            raise bad(source, f"column {name!r} is {kind}, not numbers{hint}")
    if not arrow.num_rows:
        raise bad(source, "holds no rows of features")
    return arrow, picked, notes


def describe(
    source: str, wanted: Sequence[Column] | None, data: bytes | None = None
) -> tuple[int, int, list[str]]:
    """(rows, width, notes) of the picked columns."""
    arrow, picked, notes = _picked(source, wanted, data)
    return arrow.num_rows, len(picked), notes


def read(source: str, wanted: Sequence[Column] | None, data: bytes | None = None) -> np.ndarray:
    """The picked columns as a (rows, width) array of their common type."""
    import numpy as np

    arrow, picked, _ = _picked(source, wanted, data)
    columns = []
    for name in picked:
        column = arrow.column(name)
        if column.null_count:
            row = next(i for i, v in enumerate(column.is_null().to_pylist()) if v)
            raise bad(source, f"row {row}, column {name!r}: null is a missing value")
        columns.append(column.to_numpy())
    common = np.result_type(*columns)
    values = np.empty((arrow.num_rows, len(columns)), dtype=common)
    for k, column in enumerate(columns):
        values[:, k] = column
    return values
