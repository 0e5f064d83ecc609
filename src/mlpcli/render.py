"""Rich tables, JSON Lines and CSV from plain result objects; computes nothing itself.

Untrusted text (config names, paths) enters Rich only as `Text`, never as markup.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Literal

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlpcli.config import Config
from mlpcli.results import RunResult
from mlpcli.shapes import ShapesReport

HEAD_ROWS = TAIL_ROWS = 5  # output rows shown around the ellipsis when cut
HEAD_COLUMNS = TAIL_COLUMNS = 4


def stdout_console() -> Console:
    """Results: styled only on a terminal, plain when piped or with NO_COLOR (Rich's checks)."""
    return Console(highlight=False, soft_wrap=False)


def note(message: str) -> None:
    """A one-line remark for the user, on stderr."""
    print(f"mlpcli: note: {message}", file=sys.stderr)


def shape_text(shape: Sequence[int]) -> str:
    """`(1, 3)`: a shape as Python writes a tuple."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def byte_size(count: int) -> str:
    """`44 B`, `1.5 KiB`, `2.0 GiB`: binary units, one decimal."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# --- run -------------------------------------------------------------------------------------


def run_table(result: RunResult, *, full: bool) -> tuple[RenderableType, str | None]:
    """The header, tensors table and output table; and a note when the output was cut."""
    config = result.config
    header = Text.assemble(
        (config.name, "bold"),
        f"  seed {config.seed}  device {result.device}  dtype {config.dtype}  batch {config.batch}",
    )
    tensors = Table(title="tensors", title_justify="left")
    for column in ("name", "shape", "dtype", "device"):
        tensors.add_column(column)
    for tensor in result.tensors:
        tensors.add_row(tensor.name, shape_text(tensor.shape), tensor.dtype, tensor.device)
    output, cut = _output_table(result, full=full)
    return Group(header, tensors, output), cut


def _output_table(result: RunResult, *, full: bool) -> tuple[Table, str | None]:
    rows, columns = result.output.shape
    row_index = _shown(rows, HEAD_ROWS, TAIL_ROWS, full)
    column_index = _shown(columns, HEAD_COLUMNS, TAIL_COLUMNS, full)
    values = [[float(v) for v in _pick(result.output[r].tolist(), column_index)] for r in row_index]
    spec = _number_spec(v for row in values for v in row)
    table = Table(title=f"output {shape_text((rows, columns))}", title_justify="left")
    table.add_column("sample", justify="right", style="dim")
    for j in column_index:
        table.add_column("…" if j is None else str(j), justify="right")
    for r, row in zip(row_index, values, strict=True):
        table.add_row(
            "…" if r is None else str(r),
            *(
                "…" if j is None or r is None else format(v, spec)
                for j, v in zip(column_index, row, strict=True)
            ),
        )
    if len(row_index) == rows and len(column_index) == columns:
        return table, None
    shown = f"{sum(r is not None for r in row_index)} of {rows} rows"
    shown += f", {sum(j is not None for j in column_index)} of {columns} columns"
    return table, f"output cut to {shown}; --full shows all, --format json or csv gives every value"


def _shown(count: int, head: int, tail: int, full: bool) -> list[int | None]:
    """Indices to show, with None where an ellipsis stands for the rest."""
    if full or count <= head + tail:
        return list(range(count))
    return [*range(head), None, *range(count - tail, count)]


def _pick(row: list[float], index: list[int | None]) -> list[float]:
    return [math.nan if j is None else row[j] for j in index]


def _number_spec(values: Iterable[float]) -> str:
    """Fixed point with 4 decimals when every value reads well so, else scientific."""
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    return ".4f" if all(1e-4 <= v < 1e5 for v in finite) else ".4e"


def run_json(result: RunResult) -> str:
    """One JSON line: schema `mlpcli.run/1`, full-precision output, NaN and infinities as null."""
    return _json_line(
        {
            "schema": "mlpcli.run/1",
            "name": result.config.name,
            "config": result.config.to_dict(),
            "device": result.device,
            "tensors": [
                {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "device": t.device}
                for t in result.tensors
            ],
            "output": [[_finite_or_none(v) for v in row] for row in result.output.tolist()],
            "nonfinite": result.nonfinite,
            "timing_ms": {"build": result.build_ms, "forward": result.forward_ms},
        }
    )


def run_csv(result: RunResult) -> str:
    """A header naming the output units (`output_0`, ...), then one line per sample."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(f"output_{j}" for j in range(result.output.shape[1]))
    writer.writerows(result.output.tolist())
    return buffer.getvalue()


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_line(data: dict[str, object]) -> str:
    return json.dumps(data, allow_nan=False, separators=(",", ":")) + "\n"


# --- shapes ----------------------------------------------------------------------------------


def shapes_table(report: ShapesReport) -> RenderableType:
    """Header, one row per layer, totals, and the tensors list."""
    config = report.config
    header = Text.assemble(
        (config.name, "bold"),
        f"  layers {_arrows(config.layers)}  dtype {config.dtype}  batch {config.batch}",
    )
    layers = Table(title="layers", title_justify="left")
    for column, justify in LAYER_COLUMNS:
        layers.add_column(column, justify=justify)
    for layer in report.layers:
        layers.add_row(
            str(layer.index),
            f"{layer.n_in:,} → {layer.n_out:,}",
            shape_text(layer.weight),
            "-" if layer.bias is None else shape_text(layer.bias),
            shape_text(layer.output),
            layer.activation.value,
            f"{layer.params:,}",
            f"{layer.flops:,}",
        )
    layers.add_section()
    layers.add_row(
        "total", "", "", "", "", "", f"{report.total_params:,}", f"{report.total_flops:,}"
    )
    totals = Text(
        f"parameters {report.total_params:,} ({byte_size(report.param_bytes)} in {config.dtype})  "
        f"largest activation {byte_size(report.largest_activation_bytes)} at batch {config.batch}"
    )
    tensors = Table(title="tensors", title_justify="left")
    tensors.add_column("name")
    tensors.add_column("shape")
    for tensor in report.tensors:
        tensors.add_row(tensor.name, shape_text(tensor.shape))
    return Group(header, layers, totals, tensors)


LAYER_COLUMNS: tuple[tuple[str, Literal["left", "right"]], ...] = (
    ("layer", "right"),
    ("in → out", "right"),
    ("W", "left"),
    ("B", "left"),
    ("output", "left"),
    ("activation", "left"),
    ("params", "right"),
    ("FLOPs", "right"),
)


def shapes_json(report: ShapesReport) -> str:
    """One JSON line, schema `mlpcli.shapes/1`."""
    dtype = report.config.dtype.value
    return _json_line(
        {
            "schema": "mlpcli.shapes/1",
            "name": report.config.name,
            "config": report.config.to_dict(),
            "tensors": [
                {"name": t.name, "shape": list(t.shape), "dtype": dtype} for t in report.tensors
            ],
            "layers": [
                {
                    "index": layer.index,
                    "in": layer.n_in,
                    "out": layer.n_out,
                    "weight": list(layer.weight),
                    "bias": None if layer.bias is None else list(layer.bias),
                    "output": list(layer.output),
                    "activation": layer.activation.value,
                    "params": layer.params,
                    "flops": layer.flops,
                }
                for layer in report.layers
            ],
            "total_params": report.total_params,
            "total_flops": report.total_flops,
            "param_bytes": report.param_bytes,
            "largest_activation_bytes": report.largest_activation_bytes,
        }
    )


# --- validate --------------------------------------------------------------------------------


def valid_line(path: str, config: Config) -> str:
    """`configs/x.yaml: ok (name, layers 3 → 2 → 1)`."""
    return f"{path}: ok ({config.name}, layers {_arrows(config.layers)})"


def _arrows(sizes: Sequence[int]) -> str:
    return " → ".join(map(str, sizes))
