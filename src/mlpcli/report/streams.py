"""Output files written as a run computes them: `.npy`, `.csv`, `.jsonl` and `.parquet` grow a
chunk of rows at a time, so that no run holds its whole output for them.

Each writes through `files.atomic`: a temporary beside the target, put in place when every run
has finished, removed if one fails. `.npy`, `.jsonl` and `.parquet` hold one network's output;
`.csv` holds several, each row labelled as `run --format csv` labels it; `printed` writes the
same CSV onto stdout.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from mlpcli.errors import StdoutFailed, UnavailableError, install_hint
from mlpcli.model.config import Config, DType
from mlpcli.report import files, records
from mlpcli.report.terminal import to_stdout

if TYPE_CHECKING:
    import numpy as np

SUFFIXES = (".npy", ".csv", ".jsonl", ".parquet")
ONE_OUTPUT = (".npy", ".jsonl", ".parquet")  # one network's output a file
APPEND_BYTES = 1 << 20  # a part file is copied this much at a time
OPEN_ROWS = 10**18 - 1  # a .npy header written before its rows are counted has room for these
NPY_PREFIX = 10  # a 1.0 header's magic string, version and length, before its text


class Writer:
    """One output file's format: told where each network starts, then given its rows."""

    def __init__(self, file: BinaryIO | None, swept: Sequence[str]) -> None:
        self.swept = swept

    def start(self, config: Config, overrides: Sequence[str]) -> None:
        """A network's rows follow."""

    def add(self, rows: np.ndarray) -> None:
        """The next rows of the output, (rows, n_out)."""
        raise NotImplementedError

    def continues(self) -> None:
        """The rows follow another writer's in the same file (a rank's share): no heading."""

    def append(self, part: Path) -> None:
        """The rows of a part file another writer of this format wrote (`continues`)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Every row has been added."""

    def abandon(self) -> None:
        """A run failed: let go of the file, which is removed, quietly."""


class _ToFile(Writer):
    """A writer of bytes into a file."""

    def __init__(self, file: BinaryIO | None, swept: Sequence[str]) -> None:
        super().__init__(file, swept)
        assert file is not None
        self.file = file

    def append(self, part: Path) -> None:
        with part.open("rb") as source:
            shutil.copyfileobj(source, self.file, APPEND_BYTES)


class _Npy(_ToFile):
    """NumPy's .npy, as `np.save` writes the whole output (bfloat16 as float32): the header
    from the config's shape, then each chunk's bytes; where the rows are counted as they come
    (`batch` None), the header is written again with their count once all have come."""

    def start(self, config: Config, overrides: Sequence[str]) -> None:
        self.config, self.rows = config, 0
        self.file.write(npy_header(config))

    def add(self, rows: np.ndarray) -> None:
        import numpy as np

        self.file.write(np.ascontiguousarray(rows).data.cast("B"))
        self.rows += len(rows)

    def finish(self) -> None:
        if self.config.batch is None:
            self.file.seek(0)
            self.file.write(npy_header(self.config, self.rows))


class _Csv(Writer):
    """CSV as `run --format csv` prints it: `name`, swept keys, `output_0`, ..., onto the file
    or onto a text stream (stdout)."""

    def __init__(
        self, file: BinaryIO | None, swept: Sequence[str], text: TextIO | None = None
    ) -> None:
        super().__init__(file, swept)
        self.wrapper = None if file is None else io.TextIOWrapper(file, "utf-8", newline="")
        stream = self.wrapper or text
        assert stream is not None
        self.stream = stream
        self.tables = records.CsvTables(stream)
        self.header: list[str] = []
        self.label: list[object] = []

    def start(self, config: Config, overrides: Sequence[str]) -> None:
        self.header = records.run_header(self.swept, config.layers[-1])
        self.label = records.run_label(config, overrides, self.swept)

    def add(self, rows: np.ndarray) -> None:
        self.tables.table(self.header)  # with the first rows: an error before them prints none
        self.tables.rows(self.label + row for row in rows.tolist())

    def continues(self) -> None:
        self.tables.last = self.header

    def append(self, part: Path) -> None:
        assert self.wrapper is not None
        self.wrapper.flush()
        with part.open("rb") as source:
            shutil.copyfileobj(source, self.wrapper.buffer, APPEND_BYTES)

    def finish(self) -> None:
        self.stream.flush()
        if self.wrapper is not None:
            self.wrapper.detach()  # the file stays open for `files.atomic`


class _JsonLines(_ToFile):
    """JSON Lines of records, `{"output_0": ..., ...}` a row, as pandas' `to_json(orient=
    "records", lines=True)` writes them (NaN and infinities as `records` writes them)."""

    names: list[str]

    def start(self, config: Config, overrides: Sequence[str]) -> None:
        self.names = records.output_names(config.layers[-1])

    def add(self, rows: np.ndarray) -> None:
        lines = (
            json.dumps(
                dict(zip(self.names, map(records.json_number, row), strict=True)),
                separators=(",", ":"),
            )
            + "\n"
            for row in rows.tolist()
        )
        self.file.write("".join(lines).encode())


class _Parquet(_ToFile):
    """Parquet through pyarrow, a column per output unit and a row group per chunk (float16
    and bfloat16 as float32)."""

    writer: Any = None
    names: list[str]
    kind: str  # the columns' NumPy type

    def start(self, config: Config, overrides: Sequence[str]) -> None:
        pa, parquet = _pyarrow()
        self.names = records.output_names(config.layers[-1])
        wide = config.dtype is DType.FLOAT64
        self.kind = "f8" if wide else "f4"
        schema = pa.schema([(name, pa.float64() if wide else pa.float32()) for name in self.names])
        self.writer = parquet.ParquetWriter(self.file, schema)

    def add(self, rows: np.ndarray) -> None:
        pa, _ = _pyarrow()
        columns = [pa.array(rows[:, j].astype(self.kind)) for j in range(rows.shape[1])]
        self.writer.write_table(pa.Table.from_arrays(columns, names=self.names))

    def append(self, part: Path) -> None:
        _, parquet = _pyarrow()
        source = parquet.ParquetFile(part)
        try:
            for group in range(source.num_row_groups):  # as the part wrote them: a chunk's rows
                self.writer.write_table(source.read_row_group(group))
        finally:
            source.close()

    def finish(self) -> None:
        self.writer.close()

    def abandon(self) -> None:
        if self.writer is not None:  # else pyarrow's finalizer writes to the closed file
            with contextlib.suppress(Exception):
                self.writer.close()


WRITERS: dict[str, type[Writer]] = {
    ".npy": _Npy,
    ".csv": _Csv,
    ".jsonl": _JsonLines,
    ".parquet": _Parquet,
}


def counted_at_the_end(path: Path) -> bool:
    """Whether an output at `path` can take rows counted only once all have come: an `.npy`
    (its header written again) into a regular file, or any other format."""
    return path.suffix.lower() != ".npy" or not path.exists() or path.is_file()


def npy_header(config: Config, rows: int | None = None) -> bytes:
    """The header of a .npy of `config`'s output, as `np.save` writes it. Where its rows are
    counted as they come (`batch` None), one of the same length for `rows` (None: not counted
    yet), padded as NumPy pads one to room for OPEN_ROWS."""
    if config.batch is not None:
        return _npy_header(config, config.batch)
    room = len(_npy_header(config, OPEN_ROWS))
    written = _npy_header(config, OPEN_ROWS if rows is None else rows)
    text = written[NPY_PREFIX:].rstrip(b" \n").ljust(room - NPY_PREFIX - 1) + b"\n"
    return written[: NPY_PREFIX - 2] + struct.pack("<H", len(text)) + text


def _npy_header(config: Config, rows: int) -> bytes:
    import numpy as np

    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(config.dtype.output_type)),
        "fortran_order": False,
        "shape": (rows, config.layers[-1]),
    }
    written = io.BytesIO()
    np.lib.format.write_array_header_1_0(written, header)
    return written.getvalue()


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UnavailableError(
            f"a .parquet output needs pyarrow: {install_hint('parquet')}"
        ) from None
    return pyarrow, pyarrow.parquet


def check(path: Path) -> None:
    """UnavailableError, before any work, when the format's library is missing."""
    if path.suffix.lower() == ".parquet":
        _pyarrow()


@contextlib.contextmanager
def streamed(path: Path, overrides: Sequence[Sequence[str]]) -> Iterator[Writer]:
    """The writer of `path` in its suffix's format, for runs with these `overrides`; the file
    is put in place when the block ends without an error."""
    with files.atomic(path) as file, writing(path, file, overrides) as writer:
        yield writer


@contextlib.contextmanager
def writing(path: Path, file: BinaryIO, overrides: Sequence[Sequence[str]]) -> Iterator[Writer]:
    """The writer of `path`'s format into `file`, finished when the block ends, or abandoned
    if it raises."""
    writer = WRITERS[path.suffix.lower()](file, records.run_swept(overrides))
    try:
        yield writer
    except BaseException:
        writer.abandon()
        raise
    writer.finish()


@contextlib.contextmanager
def printed(overrides: Sequence[Sequence[str]], finish: bool) -> Iterator[Printed]:
    """CSV on stdout as the runs compute it, for runs with these `overrides`. A reader that
    goes away ends the command quietly (ReaderGone) at once, or, with `finish` (a file is
    being written too), the runs go on unprinted and `gone` says so, for the command to end
    once its file is in place."""
    writer = Printed(None, records.run_swept(overrides), sys.stdout, finish_anyway=finish)
    with to_stdout():
        try:
            yield writer
        finally:
            writer.finish()


class Printed(_Csv):
    """CSV onto stdout that notes a reader gone (BrokenPipeError) and, with `finish_anyway`,
    goes on without printing; stdout's other failures are StdoutFailed, not the file's."""

    def __init__(
        self,
        file: BinaryIO | None,
        swept: Sequence[str],
        text: TextIO | None = None,
        finish_anyway: bool = False,
    ) -> None:
        super().__init__(file, swept, text)
        self.finish_anyway = finish_anyway
        self.gone = False

    def add(self, rows: np.ndarray) -> None:
        if self.gone:
            return
        try:
            super().add(rows)
            self.stream.flush()
        except BrokenPipeError:
            if not self.finish_anyway:
                raise
            self.gone = True
        except OSError as error:
            raise StdoutFailed(error) from None

    def finish(self) -> None:
        if not self.gone:
            with contextlib.suppress(BrokenPipeError):
                super().finish()
