"""The view of `compare`'s results: a record, CSV rows and a table of differences per
comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.text import Text

from mlpcli.model.results import CompareResult
from mlpcli.report import records, style
from mlpcli.report.records import (
    Record,
    Rows,
    header,
    json_number,
)
from mlpcli.report.render import shape_text, stacked
from mlpcli.report.style import Column
from mlpcli.report.view import View

if TYPE_CHECKING:
    from mlpcli.model.results import (
        CompareResult,
    )


def compare_tables(
    results: Sequence[CompareResult], width: int
) -> tuple[RenderableType, list[str]]:
    """Each comparison's header and table, a blank line apart, and the notes on what was left
    out to fit `width`."""
    views, notes = [], []
    for report in results:
        view, dropped = compare_table(report, width)
        views.append(view)
        if dropped:
            notes.append(style.left_out("differences", dropped, width))
    return stacked(views), notes


def compare_table(report: CompareResult, width: int) -> tuple[RenderableType, list[str]]:
    """Per tensor and device: the largest differences from the first, and what is allowed;
    the shapes, the relative differences, then what is allowed, left out to fit `width`."""
    config = report.config
    pairs = [f"reference {report.devices[0]}", f"dtype {config.dtype}"]
    pairs += [f"atol {report.tolerance.atol:g}", f"rtol {report.tolerance.rtol:g} × max|ref|"]
    header = style.header(config.name, pairs, width)
    rows = [
        (
            diff.name,
            shape_text(diff.shape),
            Text(diff.device),
            f"{diff.difference.max_abs:.3g}",
            f"{diff.difference.allowed:.3g}",
            f"{diff.difference.max_rel:.3g}",
            "yes" if diff.difference.within else Text("NO", style="bold red"),
        )
        for diff in report.diffs
    ]
    table, dropped = style.fitted(
        "differences from the reference",
        COMPARE_COLUMNS,
        rows,
        ("shape", "max rel", "allowed"),
        width,
    )
    return Group(header, table), dropped


COMPARE_COLUMNS = (
    Column("tensor"),
    Column("shape"),
    Column("device"),
    Column("max abs", "right"),
    Column("allowed", "right"),
    Column("max rel", "right"),
    Column("within"),
)


def compare_record(result: CompareResult) -> Record:
    """Schema `mlpcli.compare/2`: per tensor and device, the differences from the first device."""
    return {
        **header("compare", result.config, version=2),
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


VIEW = View(
    CompareResult,
    compare_record,
    records.each(compare_rows),
    lambda results, width, _: compare_tables(results, width),
)
