"""Parquet and Arrow feather features through pyarrow (optional: `pip install pyarrow`).

The schema gives the rows, names and types without reading the data; a pandas index stored as a
column is left out; a column that is not integers or floats is an error naming it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mlpcli.data.tables import Column, pick
from mlpcli.data.tensorfiles import bad, by_file, parsed_by_library, regular_size
from mlpcli.errors import UnavailableError, install_hint

if TYPE_CHECKING:
    import numpy as np

SUFFIXES = (".parquet", ".feather")
WHAT = "Parquet or feather file"
READ_BUFFER = 1 << 16  # bytes of a Parquet column read at a time
BATCH_ROWS = 4096  # rows of a Parquet record batch (pyarrow holds more for larger ones), at most
BATCH_BYTES = 1 << 20  # ... and at least this many bytes of float64 where a chunk is smaller


def _pyarrow(source: str) -> Any:
    try:
        import pyarrow
        import pyarrow.feather
        import pyarrow.parquet
    except ImportError:
        raise UnavailableError(
            f"{source}: reading it needs pyarrow: {install_hint('parquet')}"
        ) from None
    return pyarrow


class _Batches:
    """A Parquet or feather file read a record batch at a time (into memory, not mapped): its
    schema and rows from the footer, its batches of the columns asked for. `where` is the path
    to open (stdin's copy), `source` its name in messages."""

    def __init__(self, source: str, where: str) -> None:
        self.pa = pa = _pyarrow(source)
        self.source = source
        regular_size(where, "a features file")
        with open(where, "rb") as file:
            self.parquet = file.read(4) == b"PAR1"
        with parsed_by_library(source, WHAT):
            if self.parquet:
                # read, not mapped (no page stays), a MiB at a time: a row group's column
                # chunks are not held whole (a 1M-row group of 64 floats peaked at 590 MiB)
                self.file = pa.parquet.ParquetFile(where, buffer_size=READ_BUFFER, pre_buffer=False)
                self.schema = self.file.schema_arrow
                self.rows = self.file.metadata.num_rows
            else:
                try:
                    self.file = pa.ipc.open_file(pa.OSFile(where))
                except pa.ArrowInvalid:  # feather's first version, which pyarrow reads whole
                    self.file = pa.feather.read_table(where)
                    self.rows = self.file.num_rows
                else:
                    self.rows = self._ipc_rows()
                self.schema = self.file.schema

    def _ipc_rows(self) -> int:
        """An IPC file's rows from its batches' metadata (pyarrow 15+), else by reading them."""
        if hasattr(self.file, "count_rows"):
            return int(self.file.count_rows())
        return sum(self.file.get_batch(i).num_rows for i in range(self.file.num_record_batches))

    def batches(self, names: list[str], rows: int, first: int) -> Iterator[Any]:
        """Record batches of the columns `names` from row `first` on: Parquet's of `rows` rows,
        or BATCH_BYTES where that is more (a batch of 7 rows cost 340 us more than its numbers),
        BATCH_ROWS at most; feather's as the file holds them. A Parquet row group wholly
        before `first` is not read."""
        groups = self._groups()
        skipped = self._skipped(groups, first)
        with parsed_by_library(self.source, WHAT):
            skip = first - sum(count for _, count in groups[:skipped])
            for batch in self._batches(names, rows, groups[skipped:]):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                yield batch.slice(skip)
                skip = 0

    def _groups(self) -> list[tuple[int, int]]:
        """(index, rows) of each Parquet row group; none for feather."""
        if not self.parquet:
            return []
        metadata = self.file.metadata
        return [(g, metadata.row_group(g).num_rows) for g in range(metadata.num_row_groups)]

    @staticmethod
    def _skipped(groups: list[tuple[int, int]], first: int) -> int:
        """How many of the leading row groups lie wholly before row `first`."""
        start = 0
        for k, (_, count) in enumerate(groups):
            if start + count > first:
                return k
            start += count
        return len(groups)

    def _batches(self, names: list[str], rows: int, groups: list[tuple[int, int]]) -> Iterator[Any]:
        """Record batches of `names`: of these Parquet row groups, one group at a time (pyarrow
        buffers every group it is given), or of every feather batch."""
        if self.parquet:
            batch = min(BATCH_ROWS, max(rows, BATCH_BYTES // (8 * max(len(names), 1))))
            for group, _ in groups:
                yield from self.file.iter_batches(batch, row_groups=[group], columns=names)
        elif isinstance(self.file, self.pa.Table):
            yield from self.file.select(names).to_batches(rows)
        else:
            for i in range(self.file.num_record_batches):
                yield self.file.get_batch(i).select(names)


@by_file
def _opened(where: str, source: str) -> _Batches:
    return _Batches(source, where)


def features(schema: Any, source: str) -> tuple[list[str], list[str], str]:
    """The feature columns of a schema (a pandas index left out), notes about them, and what to
    say where their count does not fit the network."""
    names = list(schema.names)
    with parsed_by_library(source, WHAT):  # pandas' metadata is JSON in the file's schema
        metadata = schema.pandas_metadata or {}
    listed = metadata.get("index_columns", []) if isinstance(metadata, dict) else []
    index = [name for name in listed if isinstance(name, str)] if isinstance(listed, list) else []
    notes, misfit = [], ""
    if index:
        names = [name for name in names if name not in index]
        misfit = f"; pandas' index ({', '.join(index)}) is left out"
        notes.append(f"{source}:{misfit[1:]}")
    return names, notes, misfit


def _picked(
    source: str, wanted: Sequence[Column] | None, where: str
) -> tuple[_Batches, list[str], list[str], str]:
    """The file, the names of the picked columns (each checked to be numbers), notes, and what
    to say where their count does not fit the network."""
    opened = _opened(where, source)
    names, notes, misfit = features(opened.schema, source)
    picked = [names[j] for j in pick(source, names, len(names), wanted)]
    pa = _pyarrow(source)
    for name in picked:
        kind = opened.schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            hint = "" if wanted is not None else "; pick the feature columns with input_columns"
            raise bad(source, f"column {name!r} is {kind}, not numbers{hint}")
    if not opened.rows:
        raise bad(source, "holds no rows of features")
    return opened, picked, notes, misfit


def describe(
    source: str, wanted: Sequence[Column] | None, where: str
) -> tuple[int, int, list[str], str]:
    """(rows, width, notes, what to say where the width does not fit) of the picked columns,
    from the footer (`where`: the path to open, `source` its name in messages)."""
    opened, picked, notes, misfit = _picked(source, wanted, where)
    return opened.rows, len(picked), notes, misfit


def blocks(
    source: str, wanted: Sequence[Column] | None, rows: int, where: str, first: int = 0
) -> Iterator[np.ndarray]:
    """The picked columns, a record batch (`_Batches.batches`: more rows or fewer than `rows`)
    at a time, each a (rows, width) array of the columns' common type; a null is an error
    naming its row and column."""
    import numpy as np

    opened, picked, _, _ = _picked(source, wanted, where)
    start = first
    for batch in opened.batches(picked, rows, first):
        columns = []
        for name in picked:
            column = batch.column(name)
            if column.null_count:
                row = next(i for i, v in enumerate(column.is_null().to_pylist()) if v)
                raise bad(source, f"row {start + row}, column {name!r}: null is a missing value")
            columns.append(numbers(column))
        values = np.empty((batch.num_rows, len(picked)), dtype=np.result_type(*columns))
        for k, column in enumerate(columns):
            values[:, k] = column
        start += batch.num_rows
        yield values


def numbers(array: Any) -> np.ndarray:
    """An Arrow array of integers or floats with no null as a NumPy view of its values, read
    from its buffer: pyarrow's own `to_numpy` and dtypes import pandas (about 65 MB more)."""
    import numpy as np
    import pyarrow as pa

    kind = array.type
    letter = "f" if pa.types.is_floating(kind) else "i" if pa.types.is_signed_integer(kind) else "u"
    dtype = np.dtype(f"{letter}{kind.bit_width // 8}")
    data = array.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)
