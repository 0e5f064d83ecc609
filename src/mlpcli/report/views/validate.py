"""The view of `validate`'s results: a record, a CSV row and a line per file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlpcli.model.results import ValidateResult
from mlpcli.model.units import arrows
from mlpcli.report import records
from mlpcli.report.records import (
    Record,
    Rows,
)
from mlpcli.report.view import View

if TYPE_CHECKING:
    from mlpcli.model.results import (
        ValidateResult,
    )


def validate_lines(results: Sequence[ValidateResult]) -> str:
    """Per file `configs/x.yaml: ok (name, layers 3 → 2 → 1)`, or its error line; plain text."""
    lines = []
    for result in results:
        if result.config is None:
            lines.append(f"{result.location or result.path}: {result.error}\n")
        else:
            layers = arrows(result.config.layers)
            lines.append(f"{result.path}: ok ({result.config.name}, layers {layers})\n")
    return "".join(lines)


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


VIEW = View(ValidateResult, validate_record, records.each(validate_rows), text=validate_lines)
