"""Features from a file (`inputs:`): .npy, .csv, .safetensors, a run's .json result, or `-`.

`describe` gives the rows and width without torch (the loader sets `batch` from it); `read`
gives the values. Text (CSV, JSON, stdin) is parsed once per process and must be finite
numbers; every problem names the file, and the line and column where there is one.
docs/contract.md section 5.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpcli.tensorfiles import FLOATING, bad, by_file, npy_header, regular_size, safetensors_header

if TYPE_CHECKING:
    import torch

STDIN = "-"
MAX_TEXT_BYTES = 64 << 20  # CSV and JSON features; larger ones belong in .npy or .safetensors
SUFFIXES = (".npy", ".csv", ".safetensors", ".json")
_OUTPUT_COLUMN = re.compile(r"output_[0-9]+")


@dataclass(frozen=True)
class FeaturesFile:
    """What a features file holds: `rows` of `width` numbers."""

    path: str
    rows: int
    width: int


def describe(path: str) -> FeaturesFile:
    """The rows and width of the features at `path`, read from a header where there is one."""
    suffix = _suffix(path)
    if suffix == ".npy":
        _, shape, _ = npy_header(path)
        return FeaturesFile(path, *_matrix_shape(path, shape))
    if suffix == ".safetensors":
        return FeaturesFile(path, *_matrix_shape(path, _safetensors_entry(path)[1].shape))
    rows = _text_rows(path)
    return FeaturesFile(path, len(rows), len(rows[0]))


def read(path: str) -> torch.Tensor:
    """The features at `path` as a (rows, width) CPU tensor, in the file's own dtype (CSV and
    JSON as float64); a non-finite value is an error naming its row and column."""
    import torch

    suffix = _suffix(path)
    if suffix == ".npy":
        import numpy as np

        array = np.load(path, allow_pickle=False)
        tensor = torch.from_numpy(array.reshape(describe(path).rows, -1))
    elif suffix == ".safetensors":
        from safetensors import safe_open

        name, _ = _safetensors_entry(path)
        with safe_open(path, framework="pt") as file:
            tensor = file.get_tensor(name).reshape(describe(path).rows, -1)
    else:
        return torch.tensor(_text_rows(path), dtype=torch.float64)
    if tensor.is_floating_point() and not (finite := torch.isfinite(tensor)).all():
        row, column = (int(i) for i in (~finite).nonzero()[0])
        raise bad(path, f"row {row}, column {column}: {tensor[row, column].item()} is not finite")
    return tensor


def _suffix(path: str) -> str:
    if path == STDIN:
        return STDIN
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise bad(path, f"features are read from {', '.join(SUFFIXES)} or - (stdin)")
    return suffix


def _matrix_shape(path: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, width) of a 2-D shape, or of a 1-D one as one row."""
    if len(shape) == 1:
        shape = (1, *shape)
    if len(shape) != 2 or 0 in shape:
        raise bad(path, f"features have shape {list(shape)}; expected (batch, n0) or (n0,)")
    return shape[0], shape[1]


def _safetensors_entry(path: str) -> tuple[str, Any]:
    """The tensor `features`, or the file's only tensor."""
    entries, _ = safetensors_header(path)
    if "features" in entries:
        name = "features"
    elif len(entries) == 1:
        (name,) = entries
    else:
        names = ", ".join(sorted(entries)[:8]) or "none"
        raise bad(path, f"no tensor named features and not a single tensor (holds {names})")
    entry = entries[name]
    if entry.dtype not in FLOATING and not entry.dtype.startswith(("I", "U")):
        raise bad(path, f"{name} is {entry.dtype}; features must be numbers")
    return name, entry


@by_file
def _text_rows(path: str) -> list[list[float]]:
    """The rows of a CSV or JSON features file (or stdin), parsed once."""
    text = _read_text(path)
    source = "<stdin>" if path == STDIN else path
    is_json = path.lower().endswith(".json") or (path == STDIN and text.lstrip()[:1] in "{[")
    rows = _json_rows(source, text) if is_json else _csv_rows(source, text)
    if not rows:
        raise bad(source, "holds no rows of features")
    return rows


def _read_text(path: str) -> str:
    """At most MAX_TEXT_BYTES of UTF-8 text from a file, or from stdin."""
    if path == STDIN:
        data = sys.stdin.buffer.read(MAX_TEXT_BYTES + 1)
        source = "<stdin>"
    else:
        if regular_size(path, "a features file") > MAX_TEXT_BYTES:
            raise bad(path, _too_large())
        data = Path(path).read_bytes()
        source = path
    if len(data) > MAX_TEXT_BYTES:
        raise bad(source, _too_large())
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise bad(source, f"not UTF-8 text (byte offset {error.start})") from None


def _too_large() -> str:
    return f"larger than {MAX_TEXT_BYTES >> 20} MiB of text; give large features as .npy"


def _csv_rows(source: str, text: str) -> list[list[float]]:
    """Rows of numbers; a first row with a name in it is a header. In a header written by
    `run --format csv` (name, output_0, ...) only the output columns are kept."""
    lines = [(number, row) for number, row in enumerate(csv.reader(io.StringIO(text)), 1) if row]
    if not lines:
        return []
    width = len(lines[0][1])
    columns = list(range(width))
    if any(_number(cell) is None for cell in lines[0][1]):
        _, header = lines.pop(0)
        kept = [j for j, name in enumerate(header) if _OUTPUT_COLUMN.fullmatch(name.strip())]
        if len(header) - len(kept) > 1 and kept:  # name and swept keys: several networks
            raise bad(source, "a sweep's results; chain one network's output at a time")
        columns = kept or columns
    rows = []
    for number, row in lines:
        if len(row) != width:
            raise bad(source, f"line {number}: {len(row)} values, but the first row has {width}")
        values = []
        for j in columns:
            value = _number(row[j])
            if value is None or not math.isfinite(value):
                what = "not a number" if value is None else "not finite"
                message = f"line {number}, column {j + 1}: {row[j].strip()[:40]!r} is {what}"
                raise bad(source, message)
            values.append(value)
        rows.append(values)
    return rows


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _json_rows(source: str, text: str) -> list[list[float]]:
    """The `output` of one `run --format json` result, or a JSON list of rows of numbers."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].lstrip().startswith("{"):
        raise bad(source, f"holds {len(lines)} results; chain one network's output at a time")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise bad(source, f"line {error.lineno}: invalid JSON: {error.msg}") from None
    except RecursionError:
        raise bad(source, "invalid JSON: nested too deeply") from None
    if isinstance(data, dict):
        if not str(data.get("schema", "")).startswith("mlpcli.run/") or "output" not in data:
            raise bad(source, "a JSON object that is not a result of `mlpcli run`")
        data = data["output"]
    if isinstance(data, list) and data and not isinstance(data[0], list):
        data = [data]  # one row
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        raise bad(source, "expected a list of rows of numbers")
    for i, row in enumerate(data):
        if len(row) != len(data[0]):
            raise bad(source, f"row {i}: {len(row)} values, but row 0 has {len(data[0])}")
        for j, value in enumerate(row):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value):
                what = (
                    "not finite"
                    if number or value in ("NaN", "Infinity", "-Infinity")
                    else ("not a number")
                )
                raise bad(source, f"row {i}, column {j}: {json.dumps(value)[:40]} is {what}")
    return [[float(value) for value in row] for row in data]
