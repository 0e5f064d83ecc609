"""`run --expect VALUES|FILE`: expected outputs, read from YAML values or an earlier run's file."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from mlpcli.closeness import Array, Tolerance, difference
from mlpcli.errors import UsageError
from mlpcli.results import RunResult

FILE_SUFFIXES = (".json", ".csv")


@dataclass(frozen=True)
class Expectation:
    """Expected outputs: one matrix for every network (YAML values, a CSV file), or one per
    network name (a JSON file, which names each network it holds)."""

    source: str
    values: Array | None = None
    by_name: dict[str, Array] | None = None

    def for_network(self, name: str) -> Array:
        """The expected output of network `name`; UsageError when the file names others only."""
        if self.values is not None:
            return self.values
        assert self.by_name is not None
        if name not in self.by_name and len(self.by_name) == 1:
            raise UsageError(
                f"{self.source} holds the output of network {next(iter(self.by_name))!r}, "
                f"not of {name!r}; check the network against its own golden file"
            )
        if name not in self.by_name:
            known = ", ".join(self.by_name)
            raise UsageError(
                f"{self.source}: no expected output for network {name!r}; it has {known}"
            )
        return self.by_name[name]


def parse(argument: str) -> Expectation:
    """VALUES as YAML (`0.3171`, `[0.1, 0.2]`, `[[0.1], [0.2]]`), or a .json or .csv file."""
    path = Path(argument)
    if path.suffix.lower() in FILE_SUFFIXES or path.is_file():
        return _read_file(path)
    try:
        data = yaml.safe_load(argument)
    except yaml.YAMLError:
        raise UsageError(
            f"--expect {argument}: neither a .json/.csv file nor YAML values"
        ) from None
    return Expectation(f"--expect {argument}", values=_matrix(data, f"--expect {argument}"))


def check(result: RunResult, expectation: Expectation, tolerance: Tolerance) -> str | None:
    """None when the output matches, else one line naming the worst element."""
    name = result.config.name
    expected = expectation.for_network(name)
    got = result.output.astype(np.float64)
    if got.shape != expected.shape:
        source = expectation.source
        return f"{name}: output has shape {_shape(got)}, {source} has shape {_shape(expected)}"
    found = difference(got, expected, tolerance)
    if found.within:
        return None
    row, column = found.worst
    gap = abs(found.got - found.expected) if math.isfinite(found.got - found.expected) else math.inf
    return (
        f"{name}: output differs from {expectation.source} at row {row}, column {column}: "
        f"got {found.got!r}, expected {found.expected!r}, difference {gap:.3g} > allowed "
        f"{found.allowed:.3g} (atol {tolerance.atol:g} + rtol {tolerance.rtol:g} × |expected|)"
    )


def _shape(array: Array) -> str:
    return "(" + ", ".join(map(str, array.shape)) + ")"


def _read_file(path: Path) -> Expectation:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--expect {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--expect {path}: cannot read: {error}") from None
    if path.suffix.lower() == ".csv":
        return _csv_expectation(text, source)
    outputs: dict[str, Array] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"{source}:{number}: not JSON: {error.msg}") from None
        if not isinstance(record, dict) or "output" not in record:
            raise UsageError(f"{source}:{number}: not a line of `mlpcli run --format json`")
        name = str(record.get("name", ""))
        if name in outputs:
            raise UsageError(f"{source}:{number}: a second network named {name!r}")
        outputs[name] = _matrix(record["output"], f"{source}:{number}: output")
    if not outputs:
        raise UsageError(f"{source}: holds no results")
    return Expectation(source, by_name=outputs)


def _csv_expectation(text: str, source: str) -> Expectation:
    """A `run --format csv` file: `name` (and swept keys) then `output_0...`, or outputs alone."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    header = rows[0] if rows else []
    outputs = [i for i, cell in enumerate(header) if cell.startswith("output_")]
    if not outputs or outputs != list(range(len(header) - len(outputs), len(header))):
        raise UsageError(f"{source}: expected the header line of `mlpcli run --format csv`")
    body = rows[1:]
    if any(row == header or row[outputs[0]].startswith("output_") for row in body):
        raise UsageError(f"{source}: holds networks of several widths; use a .json file for those")
    if "name" not in header:  # written before the name column: one network
        return Expectation(source, values=_csv_matrix(body, outputs, source))
    by_name: dict[str, list[list[str]]] = {}
    labels: dict[str, tuple[str, ...]] = {}
    for row in body:
        name, label = row[header.index("name")], tuple(row[: outputs[0]])
        if labels.setdefault(name, label) != label:
            raise UsageError(f"{source}: several networks named {name!r}; use a .json file")
        by_name.setdefault(name, []).append(row)
    return Expectation(
        source, by_name={name: _csv_matrix(r, outputs, source) for name, r in by_name.items()}
    )


def _csv_matrix(rows: list[list[str]], columns: list[int], source: str) -> Array:
    return _matrix([[_number(row[i], source) for i in columns] for row in rows], source)


def _number(value: object, source: str) -> float:
    """A float from a YAML/JSON/CSV value; null is NaN, strings like `1e-3` and `nan` count."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UsageError(f"{source}: expected numbers, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{source}: expected numbers, got {value!r}") from None


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
