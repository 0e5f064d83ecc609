"""Results as plain data for scripts: JSON records and lines, CSV, NumPy's .npy.

Floats keep full precision; JSON is strict (NaN and infinities become null).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlpcli.config import Config
    from mlpcli.results import BenchResult, CompareReport, Environment, RunResult
    from mlpcli.shapes import ShapesReport

Record = dict[str, object]


def json_line(record: Record) -> str:
    """One line of strict JSON, newline-terminated."""
    return json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n"


def run_record(result: RunResult) -> Record:
    """Schema `mlpcli.run/1`."""
    return {
        **_header("run", result.config),
        "overrides": list(result.overrides),
        "device": result.device,
        "tensors": [
            {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "device": t.device}
            for t in result.tensors
        ],
        "output": [[_finite_or_none(v) for v in row] for row in result.output.tolist()],
        "nonfinite": result.nonfinite,
        "timing_ms": {"build": result.build_ms, "forward": result.forward_ms},
    }


def run_csv(results: Iterable[RunResult]) -> str:
    """Per network: a header naming the output units (`output_0`, ...), one line per sample."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for result in results:
        writer.writerow(f"output_{j}" for j in range(result.output.shape[1]))
        writer.writerows(result.output.tolist())
    return buffer.getvalue()


def run_npy(result: RunResult) -> bytes:
    """The output array in NumPy's .npy format (bfloat16 runs as float32)."""
    import numpy as np  # only runs that computed something, and so loaded NumPy, get here

    buffer = io.BytesIO()
    np.save(buffer, result.output, allow_pickle=False)
    return buffer.getvalue()


def shapes_record(report: ShapesReport) -> Record:
    """Schema `mlpcli.shapes/1`."""
    dtype = report.config.dtype.value
    return {
        **_header("shapes", report.config),
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


def shapes_csv(report: ShapesReport) -> str:
    """One line per layer: index, in, out, activation, params, flops."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["layer", "in", "out", "activation", "params", "flops"])
    for layer in report.layers:
        writer.writerow(
            [
                layer.index,
                layer.n_in,
                layer.n_out,
                layer.activation.value,
                layer.params,
                layer.flops,
            ]
        )
    return buffer.getvalue()


def bench_record(result: BenchResult, flops: int) -> Record:
    """Schema `mlpcli.bench/1`: build time apart from the forward passes' times and rates."""
    median = result.median_ms
    return {
        **_header("bench", result.config),
        "device": result.device,
        "cuda_graph": result.cuda_graph,
        "build_ms": result.build_ms,
        "forward_ms": {
            "median": median,
            "min": min(result.forward_ms),
            "max": max(result.forward_ms),
            "all": list(result.forward_ms),
        },
        "samples_per_s": result.config.batch / (median / 1e3) if median else None,
        "flops": flops,
        "tflops_per_s": flops / (median / 1e3) / 1e12 if median else None,
        "peak_bytes": result.peak_bytes,
    }


def compare_record(report: CompareReport) -> Record:
    """Schema `mlpcli.compare/1`: per tensor and device, the differences from the first device."""
    return {
        **_header("compare", report.config),
        "devices": list(report.devices),
        "atol": report.tolerance.atol,
        "rtol": report.tolerance.rtol,
        "within": report.within,
        "tensors": [
            {
                "name": diff.name,
                "shape": list(diff.shape),
                "device": diff.device,
                "max_abs": _finite_or_none(diff.difference.max_abs),
                "max_rel": _finite_or_none(diff.difference.max_rel),
                "allowed": diff.difference.allowed,
                "within": diff.difference.within,
            }
            for diff in report.diffs
        ],
    }


def env_record(environment: Environment) -> Record:
    """Schema `mlpcli.env/1`: the facts, then `gpus` (index, name, memory_bytes, capability)."""
    gpus = [dataclasses.asdict(gpu) for gpu in environment.gpus]
    return {"schema": "mlpcli.env/1", **environment.facts, "gpus": gpus}


def _header(kind: str, config: Config) -> Record:
    """What every record of a network starts with: its schema, name and resolved config."""
    return {"schema": f"mlpcli.{kind}/1", "name": config.name, "config": config.to_dict()}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
