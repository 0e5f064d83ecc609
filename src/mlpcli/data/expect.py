"""`run --expect VALUES|FILE`: expected outputs, read from YAML values or an earlier run's file:
`.json` (parsed whole, within MAX_JSON_BYTES), or `.csv` and `.npy` output arrays, which are
compared a chunk of rows at a time as they are read (a CSV checked whole first, its values
not held)."""

from __future__ import annotations

import codecs
import contextlib
import csv
import itertools
import json
import math
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import yaml

from mlpcli.errors import UsageError
from mlpcli.model.closeness import Array, Difference, Tolerance, difference
from mlpcli.model.results import RunResult, unknown_run_schema

FILE_SUFFIXES = (".json", ".csv", ".npy")
UNREAD = (".jsonl", ".parquet", ".safetensors")  # outputs of `run` that --expect does not read
STREAMED = (".npy", ".csv")  # read a block of rows at a time, as the output is compared
MAX_JSON_BYTES = 64 << 20  # a JSON golden file is parsed whole; .csv and .npy are read as compared


@dataclass(frozen=True)
class Expected:
    """One network's expected output; `name` None: any network's (YAML values, an old CSV)."""

    name: str | None
    overrides: frozenset[str]  # KEY=VALUE of its run (a JSON file) or its swept keys (CSV)
    values: Array | CsvRows  # a CSV's rows are read from its file as they are compared
    line: int | None = None  # where it is in its file: a JSON record's line, a CSV's first row's
    rows: bool = False  # its rows are lines of their own from `line` on (CSV)


@dataclass(frozen=True)
class Mismatch:
    """An output that differs from its expectation: the line that says so, and where the
    expected value is in its file (None for VALUES)."""

    message: str
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Expectation:
    """Expected outputs, from VALUES or a file of one or several networks' results."""

    source: str
    outputs: tuple[Expected, ...]
    file: str | None = None  # the file it was read from; None for VALUES

    def output(self, name: str, overrides: Sequence[str] = ()) -> Expected:
        """What is expected of network `name` run with `overrides`.

        UsageError when the file holds other networks only, or, among several outputs of this
        name (a sweep), not exactly one whose overrides the run shares.
        """
        if len(self.outputs) == 1 and self.outputs[0].name in (None, name):
            return self.outputs[0]
        named = [output for output in self.outputs if output.name == name]
        if not named and len(self.outputs) == 1:
            raise UsageError(
                f"{self.source} holds the output of network {self.outputs[0].name!r}, "
                f"not of {name!r}; check the network against its own golden file"
            )
        if not named:
            known = ", ".join(dict.fromkeys(str(output.name) for output in self.outputs))
            raise UsageError(
                f"{self.source}: no expected output for network {name!r}; it has {known}"
            )
        matching = [output for output in named if output.overrides <= set(overrides)]
        if len(matching) != 1:
            given = " ".join(overrides) or "no overrides"
            which = "none" if not matching else f"{len(matching)}"
            raise UsageError(
                f"{self.source}: {which} of its {len(named)} outputs of network {name!r} came "
                f"from a run with {given}; check each run against the golden file of its own sweep"
            )
        return matching[0]


def streams(argument: str) -> bool:
    """Whether `--expect ARGUMENT` is read and compared a block of rows at a time."""
    return Path(argument).suffix.lower() in STREAMED


def parse(argument: str) -> Expectation:
    """VALUES as YAML (`0.3171`, `[0.1, 0.2]`, `[[0.1], [0.2]]`), or a .json or .csv file."""
    path = Path(argument)
    if path.suffix.lower() == ".npy":
        return _npy_expectation(path)
    if path.suffix.lower() == ".csv":
        return _csv_expectation(path)
    if path.suffix.lower() in UNREAD:
        raise UsageError(
            f"--expect {argument}: reads a run's output as .npy, .csv or .json (-f json), not "
            f"{path.suffix}; write the expected output with -o gold.npy"
        )
    if path.suffix.lower() in FILE_SUFFIXES or path.is_file():
        return _json_expectation(path)
    try:
        data = yaml.safe_load(argument)
    except yaml.YAMLError:
        raise UsageError(
            f"--expect {argument}: neither a .json/.csv file nor YAML values"
        ) from None
    values = _matrix(data, f"--expect {argument}")
    return Expectation(f"--expect {argument}", (Expected(None, frozenset(), values),))


def check(result: RunResult, expectation: Expectation, tolerance: Tolerance) -> Mismatch | None:
    """None when the output matches, else one line naming the worst element, and where it is
    in the expectation's file."""
    name = result.config.name
    output = expectation.output(name, result.overrides)
    got = result.whole.astype(np.float64)
    if got.shape != output.values.shape:
        return _other_shape(name, expectation, output, got.shape)
    found = difference(got, np.asarray(output.values[:], np.float64), tolerance)
    return None if found.within else _differs(name, expectation, output, found, tolerance)


def _differs(
    name: str,
    expectation: Expectation,
    output: Expected,
    found: Difference,
    tolerance: Tolerance,
    first: int = 0,
) -> Mismatch:
    """The line for an output that differs from `output` at `found.worst` (in the rows from
    row `first` on)."""
    row, column = found.worst
    row += first
    gap = abs(found.got - found.expected) if math.isfinite(found.got - found.expected) else math.inf
    message = (
        f"{name}: output differs from {expectation.source} at row {row}, column {column}: "
        f"got {found.got!r}, expected {found.expected!r}, difference {gap:.3g} > allowed "
        f"{found.allowed:.3g} (atol {tolerance.atol:g} + rtol {tolerance.rtol:g} × |expected|)"
    )
    line = None if output.line is None else output.line + (row if output.rows else 0)
    return Mismatch(message, expectation.file, line)


class Comparison:
    """One network's output compared with what is expected of it a block of rows at a time, as
    the run computes them (from `row` on: a rank's rows start further on), the line `check`
    gives comparing the whole, without holding it. An output whose rows are counted as they
    are computed (standard input's: `run` gives its shape's rows as None) has its rows
    compared with the expected ones' at the end."""

    def __init__(
        self,
        expectation: Expectation,
        run: tuple[str, Sequence[str], tuple[int | None, int]],
        tolerance: Tolerance,
    ) -> None:
        self.name, overrides, self.shape = run  # the network, its overrides, its output's shape
        self.expectation, self.tolerance = expectation, tolerance
        self.output = expectation.output(self.name, overrides)
        self.row = 0  # the output's row that comes next (a rank's rows start further on)
        self.worst: tuple[int, Difference] | None = None  # the first row of its block, and it

    def add(self, rows: np.ndarray) -> None:
        """The next rows of the output."""
        if not self._fits(self.row + len(rows)):
            self.row += len(rows)
            return
        expected = np.asarray(self.output.values[self.row : self.row + len(rows)], np.float64)
        found = difference(rows.astype(np.float64), expected, self.tolerance)
        if not found.within and (self.worst is None or found.excess > self.worst[1].excess):
            self.worst = (self.row, found)
        self.row += len(rows)

    def merge(self, worsts: Sequence[tuple[int, Difference] | None]) -> None:
        """The worst of several comparisons of parts of the output (each rank's rows)."""
        found = [worst for worst in worsts if worst is not None]
        self.worst = max(found, key=lambda worst: worst[1].excess, default=None)

    def _fits(self, rows: int) -> bool:
        """Whether the expected output has the output's shape, its first `rows` rows computed
        (where the output's rows are not known yet, at least that many)."""
        expected, (known, width) = self.output.values.shape, self.shape
        if known is None:
            return expected[1:] == (width,) and expected[0] >= rows
        return expected == self.shape

    def mismatch(self) -> Mismatch | None:
        """None when every row matched, else the line naming the worst element."""
        shape = (self.row if self.shape[0] is None else self.shape[0], self.shape[1])
        if self.output.values.shape != shape:
            return _other_shape(self.name, self.expectation, self.output, shape)
        if self.worst is None:
            return None
        first, found = self.worst
        return _differs(self.name, self.expectation, self.output, found, self.tolerance, first)


def _other_shape(
    name: str, expectation: Expectation, output: Expected, shape: tuple[int, ...]
) -> Mismatch:
    """The line for an output of `shape` that is not the expected one's."""
    message = (
        f"{name}: output has shape {_shape(shape)}, {expectation.source} has shape "
        f"{_shape(output.values.shape)}"
    )
    return Mismatch(message, expectation.file, output.line)


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _npy_expectation(path: Path) -> Expectation:
    """An output array as `run -o out.npy` or `np.save` writes it (rows, units), memory-mapped:
    its rows are read as the run compares them."""
    try:
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"--expect {path}: no such file") from None
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise UsageError(f"--expect {path}: not an .npy array mlpcli reads: {reason}") from None
    if not isinstance(values, np.ndarray) or values.ndim != 2 or values.dtype.kind not in "fiu":
        kind = getattr(values, "dtype", "no array")
        shape = getattr(values, "shape", ())
        raise UsageError(
            f"--expect {path}: holds a {kind} array of shape {shape}; expected an output array "
            "of numbers (rows, units), as run -o out.npy writes it"
        )
    return Expectation(str(path), (Expected(None, frozenset(), values),), str(path))


def _json_expectation(path: Path) -> Expectation:
    """A `run --format json` file: a line per network, parsed whole (within MAX_JSON_BYTES)."""
    source = str(path)
    with _opened(path) as file:
        data = file.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise UsageError(
                f"--expect {path}: a JSON golden file is parsed whole, and this one is past "
                f"{MAX_JSON_BYTES >> 20} MiB; write the expected output with -o gold.npy or "
                "-o gold.csv, which are compared as they are read"
            )
        text = data.decode("utf-8-sig")  # within `_opened`: a byte not UTF-8 is named there
    outputs: list[Expected] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"{source}:{number}: not JSON: {error.msg}") from None
        except (ValueError, RecursionError) as error:  # a number of 4,300 digits; deep nesting
            raise UsageError(f"{source}:{number}: not JSON mlpcli reads: {error}"[:200]) from None
        if not isinstance(record, dict) or "output" not in record:
            raise UsageError(f"{source}:{number}: not a line of `mlpcli run --format json`")
        if "schema" in record and (unknown := unknown_run_schema(record["schema"])) is not None:
            raise UsageError(f"{source}:{number}: {unknown}")
        name = str(record.get("name", ""))
        overrides = frozenset(map(str, record.get("overrides") or []))
        if any((o.name, o.overrides) == (name, overrides) for o in outputs):
            raise UsageError(f"{source}:{number}: a second network named {name!r}")
        values = _matrix(record["output"], f"{source}:{number}")
        outputs.append(Expected(name, overrides, values, number))
    if not outputs:
        raise UsageError(f"{source}: holds no results")
    return Expectation(source, tuple(outputs), source)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """`path` open to read; a file that is not there, not readable or not UTF-8 (as it is
    decoded) is a UsageError naming it."""
    try:
        with path.open("rb") as file:
            yield file
    except FileNotFoundError:
        raise UsageError(f"--expect {path}: no such file") from None
    except UnicodeDecodeError:
        offset = _bad_byte(path)
        raise UsageError(f"--expect {path}: not UTF-8 text (byte offset {offset})") from None
    except OSError as error:
        raise UsageError(f"--expect {path}: cannot read: {error.strerror or error}") from None


def _bad_byte(path: Path) -> int:
    """The offset in the file of its first byte that is not UTF-8 (a decoder reading text
    counts from its own block)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as file:
        while piece := file.read(1 << 20):
            pending = len(decoder.getstate()[0])  # the last piece's unfinished character
            try:
                decoder.decode(piece)
            except UnicodeDecodeError as error:
                return offset - pending + error.start
            offset += len(piece)
    return offset  # a sequence cut short at the end


class _Lines:
    """A file's lines from a byte `offset` (line `number` is the one before it) on, as UTF-8
    text (a byte-order mark at the file's start passed over), for the CSV reader; where the
    last one given starts, and its number."""

    def __init__(self, file: BinaryIO, offset: int = 0, number: int = 0) -> None:
        file.seek(offset)
        self.file, self.start, self.next, self.number = file, offset, offset, number

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.file.readline()
        if not line:
            raise StopIteration
        self.start, self.next, self.number = self.next, self.next + len(line), self.number + 1
        if not self.start:
            line = line.removeprefix(codecs.BOM_UTF8)
        return line.decode()


Key = tuple[str | None, frozenset[str]]  # a network's name (None before the name column), swept


@dataclass(frozen=True)
class _Row:
    """A row of output values of a CSV golden file: where it is, its network, its numbers."""

    line: int
    offset: int  # of its line in the file
    header: list[str]
    key: Key
    numbers: list[float]


def _csv_rows(
    path: Path, wanted: Key | None = None, at: tuple[int, int, list[str]] | None = None
) -> Generator[_Row]:
    """Each output row of a `run --format csv` file (with `wanted`, that network's alone),
    from the start or from a row `at` (its offset, the number of the line before it, the
    header it is under). A file of blocks of a header (`name`, swept keys, `output_0`...) and
    rows, or, from before the name column, one network's outputs alone."""
    source = str(path)
    with _opened(path) as file:
        lines = _Lines(file) if at is None else _Lines(file, at[0], at[1])
        block = None if at is None else _Block(at[2])
        try:
            for row in csv.reader(lines):
                if any(cell.startswith("output_") for cell in row):  # a header: a block begins
                    block = _Block(row)
                elif row:
                    if block is None:
                        message = "expected the header line of `mlpcli run --format csv`"
                        raise UsageError(f"{source}: {message}")
                    key = block.key(row, source)
                    if wanted in (None, key):  # another network's cells are not read
                        numbers = block.numbers(row, source)
                        yield _Row(lines.number, lines.start, block.header, key, numbers)
        except csv.Error as error:
            raise UsageError(f"{source}: not CSV mlpcli reads: {error}") from None


class _Block:
    """The rows under one header of a CSV golden file: which cells say the network (`name`
    and the swept keys) and which are its outputs."""

    def __init__(self, header: list[str]) -> None:
        self.header, self.width = header, len(header)
        self.outputs = [i for i, cell in enumerate(header) if cell.startswith("output_")]
        self.labels = [i for i, cell in enumerate(header) if not cell.startswith("output_")]
        self.names = [header[i] for i in self.labels]
        self.keys: dict[tuple[str, ...], Key] = {}  # by the row's labelling cells

    def key(self, row: list[str], source: str) -> Key:
        """The network a row is of."""
        if len(row) != self.width:
            raise UsageError(f"{source}: a row of {len(row)} cells under {self.width} names")
        label = tuple(row[i] for i in self.labels)
        key = self.keys.get(label)
        if key is None:
            values = dict(zip(self.names, label, strict=True))
            name = values.pop("name", None)
            key = self.keys[label] = (name, frozenset(f"{k}={v}" for k, v in values.items()))
        return key

    def numbers(self, row: list[str], source: str) -> list[float]:
        """A row's outputs."""
        try:
            return [float(row[i]) for i in self.outputs]
        except ValueError:  # the cell that is not a number, named
            return [_number(row[i], source) for i in self.outputs]


def _csv_expectation(path: Path) -> Expectation:
    """A `run --format csv` file, read through once to check every cell and find each
    network's rows (`CsvRows`), which are read again as they are compared."""
    found: dict[Key, tuple[_Row, int, int]] = {}  # each network's first row, rows and width
    for row in _csv_rows(path):
        first, rows, width = found.get(row.key, (row, 0, len(row.numbers)))
        if len(row.numbers) != width:
            raise UsageError(
                f"{path}: rows of different lengths {sorted({width, len(row.numbers)})}"
            )
        found[row.key] = (first, rows + 1, width)
    if not found:
        raise UsageError(f"{path}: holds no rows under a header of `mlpcli run --format csv`")
    outputs = []
    for (name, swept), (first, rows, width) in found.items():
        values = CsvRows(path, (name, swept), (rows, width), first)
        outputs.append(Expected(name, swept, values, first.line, rows=True))
    return Expectation(str(path), tuple(outputs), str(path))


class CsvRows:
    """One network's rows of a CSV golden file (from its `first` row on), read from the file
    as they are asked for, in order (`rows[a:b]`, from where the last read ended; from its
    first row again otherwise): a shape, and float64 rows, never the whole file in memory;
    the file is closed once the last row is read."""

    def __init__(self, path: Path, key: Key, shape: tuple[int, int], first: _Row) -> None:
        self.path, self.key, self.shape = path, key, shape
        self.at = (first.offset, first.line - 1, first.header)
        self._rows: Generator[_Row] | None = None
        self._next = 0  # the row `_rows` gives next

    def __getitem__(self, index: slice) -> Array:
        start, stop, _ = index.indices(self.shape[0])
        rows = self._rows
        if rows is None or start < self._next:
            rows, self._next = self._mine(), 0
        for _ in itertools.islice(rows, start - self._next):  # passed over
            pass
        taken = [row.numbers for row in itertools.islice(rows, max(0, stop - start))]
        self._next = start + len(taken)
        self._rows = rows
        if self._next >= self.shape[0]:  # every row read: the file closes
            rows.close()
            self._rows = None
        return np.array(taken, dtype=np.float64).reshape(len(taken), self.shape[1])

    def _mine(self) -> Generator[_Row]:
        """This network's rows, from its first."""
        return _csv_rows(self.path, self.key, self.at)


def _number(value: object, source: str) -> float:
    """A float from a YAML/JSON/CSV value; null is NaN, strings like `1e-3` and `nan` count."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UsageError(f"{source}: expected numbers, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{source}: expected numbers, got {repr(value)[:40]}") from None
    except OverflowError:  # an integer past float64's range
        message = f"{source}: {str(value)[:20]}… ({len(str(value))} digits) is past float64's range"
        raise UsageError(message) from None


def _matrix(data: object, source: str) -> Array:
    """A number, a row of numbers, or rows of numbers, as a 2-D float64 array."""
    if not isinstance(data, list):
        return np.array([[_number(data, source)]])
    if all(not isinstance(item, list) for item in data):
        return np.array([[_number(item, source) for item in data]], dtype=np.float64)
    rows: Sequence[object] = data
    if not all(isinstance(row, list) for row in rows):
        raise UsageError(f"{source}: mixes numbers and rows")
    widths = {len(row) for row in rows if isinstance(row, list)}
    if len(widths) > 1:
        raise UsageError(f"{source}: rows of different lengths {sorted(widths)}")
    return np.array(
        [[_number(item, source) for item in row] for row in rows if isinstance(row, list)],
        dtype=np.float64,
    ).reshape(len(rows), widths.pop() if widths else 0)
