"""Results as plain data for scripts: a JSON record and CSV rows per result, JSON lines, .npy.

Floats keep full precision; JSON is strict: NaN and infinities are the strings "NaN",
"Infinity" and "-Infinity" (proto3's JSON convention), so the three stay apart. Everything here
lays results out; what they mean (rates, totals) are the results' own properties.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TextIO, TypeVar, cast, overload

from mlpcli.model.results import RUN_VERSION, one_process, override_values, swept_keys

if TYPE_CHECKING:
    import numpy as np

    from mlpcli.model.config import Config
    from mlpcli.model.plan import ParallelPlan, RankPlan
    from mlpcli.model.results import (
        BenchResult,
        CompareResult,
        EnvResult,
        RunResult,
        ShapesResult,
        TensorStats,
        ValidateResult,
    )

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
        self.last: list[str] | None = None

    def table(self, header: list[str]) -> None:
        """Rows of `header` follow."""
        if header != self.last:
            self.writer.writerow(header)
        self.last = header

    def rows(self, rows: Iterable[list[object]]) -> None:
        self.writer.writerows([_csv_cell(cell) for cell in row] for row in rows)


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


# --- run -------------------------------------------------------------------------------------


def run_record(result: RunResult) -> Record:
    """Schema `mlpcli.run/RUN_VERSION`."""
    return {
        **_header("run", result.config, version=RUN_VERSION),
        "overrides": list(result.overrides),
        "device": result.device,
        "tensors": [
            {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "device": t.device}
            for t in result.tensors
        ],
        "output": OutputRows(result.whole, bool(result.nonfinite)),
        "nonfinite": result.nonfinite,
        "timing_ms": {"build": result.build_ms, "forward": result.forward_ms},
        "parallel": dataclasses.asdict(result.parallel or one_process(result.config)),
        **({"stats": [_stats_record(stats) for stats in result.stats]} if result.stats else {}),
    }


def _stats_record(stats: TensorStats) -> Record:
    record: Record = {
        key: json_number(value) if isinstance(value, float) else value
        for key, value in dataclasses.asdict(stats).items()
    }
    record["histogram"] = list(stats.histogram)
    record["histogram_range"] = (
        None if stats.histogram_range is None else list(map(json_number, stats.histogram_range))
    )
    return record


def run_rows(results: Sequence[RunResult]) -> list[Rows]:
    """Per network: `name`, a column per swept key, the output units (`output_0`, ...); a row
    per sample, so that every line says which network it belongs to."""
    swept = run_swept([r.overrides for r in results])
    tables: list[Rows] = []
    for result in results:
        label = run_label(result.config, result.overrides, swept)
        header = run_header(swept, result.preview.shape[1])
        tables.append((header, [label + row for row in result.whole.tolist()]))
    return tables


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


def run_safetensors(results: Sequence[RunResult]) -> bytes:
    """Every tensor of the one run, in its dtype, with the resolved config in the metadata."""
    from safetensors.torch import save

    from mlpcli import __version__

    (result,) = results
    metadata = {"mlpcli.config": json.dumps(result.config.to_dict()), "mlpcli.version": __version__}
    tensors = {name: tensor.contiguous() for name, tensor in result.kept.items()}
    return bytes(save(tensors, metadata=metadata))


# --- shapes ----------------------------------------------------------------------------------


def shapes_record(result: ShapesResult) -> Record:
    """Schema `mlpcli.shapes/1`."""
    dtype = result.config.dtype.value
    return {
        **_header("shapes", result.config),
        "tensors": [
            {"name": t.name, "shape": list(t.shape), "dtype": dtype} for t in result.tensors
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
            for layer in result.layers
        ],
        "total_params": result.total_params,
        "total_flops": result.total_flops,
        "param_bytes": result.param_bytes,
        "largest_activation_bytes": result.largest_activation_bytes,
        **({"parallel": _plan_record(result.plan)} if result.plan is not None else {}),
    }


def _plan_record(plan: ParallelPlan) -> Record:
    """A parallel plan: each rank's share and bytes, and whether they fit."""
    return {
        "mode": plan.mode.value,
        "world_size": plan.world_size,
        "device_memory": plan.device_memory,
        "fits": plan.fits,
        "ranks": [_rank_record(rank) for rank in plan.ranks],
    }


def _rank_record(rank: RankPlan) -> Record:
    """One rank's share: in words (`holds`) and in numbers, each part of a tensor as the
    half-open `[start, stop)` of its rows and columns, as Python slices it."""
    share = rank.share
    return {
        "rank": rank.rank,
        "holds": rank.holds,
        "layers": list(share.layers),
        "features_rows": None if share.features is None else _slice(share.features),
        "weights": [
            {"name": f"W{i}", "rows": _slice(region[0]), "columns": _slice(region[1])}
            for i, region in enumerate(share.weights, 1)
            if region is not None
        ],
        "weight_bytes": rank.weight_bytes,
        "activation_bytes": rank.activation_bytes,
        "sent_bytes": rank.sent_bytes,
        "draw_bytes": rank.draw_bytes,
        "draw_on_device": rank.draw_on_device,
        "total_bytes": rank.total_bytes,
    }


def _slice(items: range) -> list[int]:
    return [items.start, items.stop]


def shapes_rows(result: ShapesResult) -> Rows:
    """One row per layer: index, in, out, activation, params, flops."""
    header = ["layer", "in", "out", "activation", "params", "flops"]
    rows: list[list[object]] = [
        [layer.index, layer.n_in, layer.n_out, layer.activation.value, layer.params, layer.flops]
        for layer in result.layers
    ]
    return header, rows


# --- bench -----------------------------------------------------------------------------------


def bench_record(result: BenchResult) -> Record:
    """Schema `mlpcli.bench/1`: build time apart from the forward passes' times and rates."""
    return {
        **_header("bench", result.config),
        "overrides": list(result.overrides),
        "device": result.device,
        "cuda_graph": result.cuda_graph,
        "build_ms": result.build_ms,
        "forward_ms": {
            "median": result.median_ms,
            "min": result.min_ms,
            "max": result.max_ms,
            "all": list(result.forward_ms),
        },
        "samples_per_s": result.samples_per_s,
        "flops": result.flops,
        "tflops_per_s": result.tflops_per_s,
        "threads": result.threads,
        "peak_bytes": result.peak_bytes,
        "parallel": dataclasses.asdict(result.parallel or one_process(result.config)),
        **({"ranks": [dataclasses.asdict(rank) for rank in result.ranks]} if result.ranks else {}),
    }


def bench_rows(results: Sequence[BenchResult]) -> list[Rows]:
    """One table, a row per bench: the network, a column per swept key (but those it has
    anyway: name, device, threads, as they ran), where, its figures."""
    figures = ["device", "cuda_graph", "build_ms", "median_ms", "min_ms", "max_ms"]
    figures += ["samples_per_s", "tflops_per_s", "peak_bytes", "threads"]
    swept = [k for k in swept_keys(r.overrides for r in results) if k not in ("name", *figures)]
    header = ["name", *swept, *figures]
    rows: list[list[object]] = []
    for result in results:
        values = override_values(result.overrides)
        rows.append([
            result.config.name, *(values[key] for key in swept), result.device, result.cuda_graph,
            result.build_ms, result.median_ms, result.min_ms, result.max_ms,
            result.samples_per_s, result.tflops_per_s, result.peak_bytes, result.threads,
        ])  # fmt: skip
    return [(header, rows)]


# --- compare ---------------------------------------------------------------------------------


def compare_record(result: CompareResult) -> Record:
    """Schema `mlpcli.compare/2`: per tensor and device, the differences from the first device."""
    return {
        **_header("compare", result.config, version=2),
        "devices": list(result.devices),
        "atol": result.tolerance.atol,
        "rtol": result.tolerance.rtol,
        "within": result.within,
        "tensors": [
            {
                "name": diff.name,
                "shape": list(diff.shape),
                "device": diff.device,
                "max_abs": json_number(diff.difference.max_abs),
                "max_rel": json_number(diff.difference.max_rel),
                "allowed": diff.difference.allowed,
                "within": diff.difference.within,
            }
            for diff in result.diffs
        ],
    }


def compare_rows(result: CompareResult) -> Rows:
    """One row per tensor and device."""
    header = ["tensor", "device", "max_abs", "max_rel", "allowed", "within"]
    rows: list[list[object]] = [
        [d.name, d.device, d.difference.max_abs, d.difference.max_rel, d.difference.allowed,
         d.difference.within]
        for d in result.diffs
    ]  # fmt: skip
    return header, rows


# --- env, validate, config show --------------------------------------------------------------


def env_record(result: EnvResult) -> Record:
    """Schema `mlpcli.env/1`: the facts, then `gpus` (index, name, memory_bytes, capability)."""
    gpus = [dataclasses.asdict(gpu) for gpu in result.gpus]
    return {"schema": "mlpcli.env/1", **result.facts, "gpus": gpus}


def env_rows(result: EnvResult) -> Rows:
    """One row per fact, then one per GPU (`gpu0`: name, memory, capability)."""
    rows: list[list[object]] = [[key, value] for key, value in result.facts.items()]
    rows += [
        [f"gpu{gpu.index}", f"{gpu.name}, {gpu.memory_bytes} bytes, {gpu.capability}"]
        for gpu in result.gpus
    ]
    return ["key", "value"], rows


def validate_record(result: ValidateResult) -> Record:
    """Schema `mlpcli.validate/1`: one file, whether it is valid, and what is wrong where."""
    return {
        "schema": "mlpcli.validate/1",
        "path": result.path,
        "ok": result.ok,
        "name": None if result.config is None else result.config.name,
        "error": result.error,
        "location": None if result.location is None else str(result.location),
    }


def validate_rows(result: ValidateResult) -> Rows:
    """One row per file."""
    record = validate_record(result)
    header = ["path", "ok", "name", "error", "location"]
    return header, [[record[key] for key in header]]


def config_record(config: Config) -> Record:
    """Schema `mlpcli.config/1`: the resolved config."""
    return {"schema": "mlpcli.config/1", **config.to_dict()}


def config_rows(config: Config) -> Rows:
    """One row per field; lists as JSON."""
    rows: list[list[object]] = [
        [key, json.dumps(value) if isinstance(value, list) else value]
        for key, value in config.to_dict().items()
    ]
    return ["field", "value"], rows


def json_number(value: float) -> float | str:
    """A float for strict JSON: itself when finite, else "NaN", "Infinity" or "-Infinity"."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _header(kind: str, config: Config, version: int = 1) -> Record:
    """What every record of a network starts with: its schema, name and resolved config."""
    return {"schema": f"mlpcli.{kind}/{version}", "name": config.name, "config": config.to_dict()}
