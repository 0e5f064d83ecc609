"""What the views' Rich tables share (`report.views`): views stacked, shapes as Python writes
them, the tensors table, long tables cut to their ends; computes nothing itself.

Untrusted text (config names, paths, override values) enters Rich only as `Text`, never as
markup, so `[red]` in a name prints as written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlpcli.model.results import TensorInfo, TensorShape
from mlpcli.model.units import counted
from mlpcli.report import style
from mlpcli.report.style import Column

if TYPE_CHECKING:
    from mlpcli.model.results import (
        ParallelInfo,
    )

TABLE_ROWS = 10  # rows of a layers or tensors table shown from each end when it is cut


def stacked(views: Sequence[RenderableType]) -> RenderableType:
    """Several results' views, one under the other, a blank line apart."""
    spaced: list[RenderableType] = []
    for view in views:
        spaced += [Text(), view] if spaced else [view]
    return Group(*spaced)


def shape_text(shape: Sequence[int]) -> str:
    """`(1, 3)`: a shape as Python writes a tuple."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def over_ranks(parallel: ParallelInfo | None) -> list[str]:
    """A header's `parallel tensor over 3 ranks (gloo)`, or nothing for one process."""
    if parallel is None:
        return []
    backend = f" ({parallel.backend})" if parallel.backend else ""
    return [f"parallel {parallel.mode} over {counted(parallel.world_size, 'rank')}{backend}"]


def tensors_table(
    tensors: Sequence[TensorInfo | TensorShape], width: int
) -> tuple[Table, str | None]:
    """Each tensor's name and shape, and its dtype and device once built; a long list cut."""
    built = isinstance(tensors[0], TensorInfo)
    names = ("name", "shape", "dtype", "device") if built else ("name", "shape")
    rows, cut = cut_rows(
        [
            (
                _names(first.name, last.name),
                shape_text(first.shape),
                *((first.dtype, first.device) if isinstance(first, TensorInfo) else ()),
            )
            for first, last in runs_of(tensors, lambda t: (_family(t.name), t.shape))
        ],
        "tensors",
    )
    return style.filled("tensors", [Column(name) for name in names], rows, width), cut


def cut_rows(rows: list[tuple[str, ...]], what: str) -> tuple[list[tuple[str, ...]], str | None]:
    """A long table's first and last TABLE_ROWS rows around a row of "…", and a note."""
    shown = ends(len(rows), TABLE_ROWS)
    if len(shown) == len(rows):
        return rows, None
    width = len(rows[0])
    kept = [("…",) * width if index is None else rows[index] for index in shown]
    return kept, (
        f"showing {2 * TABLE_ROWS} of {len(rows)} rows of {what} (--format json: every one)"
    )


def ends(count: int, side: int) -> list[int | None]:
    """Indices to show: all when they fit, else `side` from each end around a None (…)."""
    if count <= 2 * side:
        return list(range(count))
    return [*range(side), None, *range(count - side, count)]


_T = TypeVar("_T")


def runs_of(items: Sequence[_T], key: Callable[[_T], object]) -> list[tuple[_T, _T]]:
    """For a long table, runs of consecutive items with equal keys, as (first, last) of each
    run; a table short enough to show whole keeps one row per item."""
    runs: list[tuple[_T, _T]] = []
    long = len(items) > 2 * TABLE_ROWS
    for item in items:
        if long and runs and key(runs[-1][1]) == key(item):
            runs[-1] = (runs[-1][0], item)
        else:
            runs.append((item, item))
    return runs


def _family(name: str) -> str:
    """`W` for W1, W2...: tensors of one family and one shape share a row."""
    return name.rstrip("0123456789")


def _names(first: str, last: str) -> str:
    return first if first == last else f"{first} … {last}"
