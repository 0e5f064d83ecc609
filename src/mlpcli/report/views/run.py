"""The view of `run`'s results: a record and CSV rows per network, the tensors, output and
statistics tables (a sweep's one table), and every tensor as `.safetensors`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, overload

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlpcli.model.results import PREVIEW_ROWS, RUN_VERSION, RunResult, one_process
from mlpcli.model.units import (
    counted,
    ms_text,
    share_text,
    value_text,
)
from mlpcli.report import streams, style
from mlpcli.report.records import (
    OutputRows,
    Record,
    Rows,
    header,
    json_number,
    run_header,
    run_label,
    run_swept,
)
from mlpcli.report.render import cut_rows, ends, over_ranks, shape_text, stacked, tensors_table
from mlpcli.report.style import Column
from mlpcli.report.view import Laid, View

if TYPE_CHECKING:
    import numpy as np

    from mlpcli.model.results import (
        TensorStats,
    )


def run_table(result: RunResult, *, full: bool, width: int) -> tuple[RenderableType, str]:
    """The header, tensors table and output table for a console `width` wide.

    Returns the note to show when a table was cut to fit (empty when none was).
    """
    config = result.config
    pairs = [f"seed {config.seed}", f"device {result.device}", f"dtype {config.dtype}"]
    pairs += [f"batch {config.batch_size}", *over_ranks(result.parallel)]
    tensors, tensors_cut = tensors_table(result.tensors, width)
    output, cut = _output_table(result, full=full, width=width)
    views: list[RenderableType] = [style.header(config.name, pairs, width), tensors, output]
    notes = [tensors_cut, cut]
    if result.stats:
        stats, stats_cut = stats_table(result.stats, width)
        views.append(stats)
        notes.append(stats_cut)
    return Group(*views), "; ".join(note for note in notes if note)


SPARKS = "▁▂▃▄▅▆▇█"


STATS_COLUMNS = (
    Column("tensor"),
    *(Column(name, "right") for name in ("mean", "std", "min", "max", "zeros", "sat.", "NaN/inf")),
    Column("histogram"),
)


def stats_table(stats: Sequence[TensorStats], width: int) -> tuple[Table, str | None]:
    """Per tensor: mean, std, min, max, zeros, saturated, NaN and infinities, a histogram (a
    deep network's first and last TABLE_ROWS tensors); the histogram, the counts, then std left
    out to fit `width`, and the note that says so."""
    rows, cut = cut_rows(
        [
            (
                row.name,
                *(value_text(v) for v in (row.mean, row.std, row.min, row.max)),
                share_text(row.zeros),
                "-" if row.saturated is None else share_text(row.saturated),
                f"{row.nan}/{row.inf}",
                _sparkline(row.histogram),
            )
            for row in stats
        ],
        "statistics",
    )
    table, dropped = style.fitted(
        "statistics over the batch",
        STATS_COLUMNS,
        rows,
        ("histogram", "NaN/inf", "sat.", "zeros", "std"),
        width,
    )
    notes = [cut, style.left_out("statistics", dropped, width) if dropped else None]
    return table, "; ".join(note for note in notes if note) or None


def _sparkline(counts: Sequence[int]) -> str:
    """`▁▃█▅`: each count's height against the largest."""
    top = max(counts, default=0)
    if not top:
        return ""
    steps = len(SPARKS) - 1  # the largest count is a full block; an empty bin is a space
    return "".join(" " if not count else SPARKS[count * steps // top] for count in counts)


def _output_table(
    result: RunResult, *, full: bool, width: int
) -> tuple[RenderableType, str | None]:
    """Rows and columns of the output, every value whole.

    When not `full`: the head and tail rows and as many columns as fit `width`. When `full`:
    every value, the columns in as many blocks, one under the other, as `width` needs, each
    row formatted as it is printed (a million rows hold the array, never its text).
    """
    import numpy as np

    rows, columns = result.preview.shape
    row_index = ends(rows, rows if full else PREVIEW_ROWS)
    shown = [r for r in row_index if r is not None]
    values = result.whole if full else np.array([result.preview.row(r) for r in shown])
    # one format per column, from the values shown in it, and each column as wide as its
    # widest text needs
    specs = [_number_spec(values[:, j]) for j in range(columns)]
    cells = [max(_widest(values[:, j], specs[j]), len(str(j))) for j in range(columns)]
    # Beside the row labels each column takes its cell and the gap between columns.
    room = width - (max(3, len(str(rows))) + style.GAP)
    title = f"output {shape_text((rows, columns))}"
    if full:
        blocks = _column_blocks(cells, room)
        tables = [
            style.LongTable(
                title if len(blocks) == 1 else f"{title}, columns {block[0]}-{block[-1]}",
                ("row", *map(str, block)),
                _FormattedRows(values, [specs[j] for j in block], block),
                (max(3, len(str(rows - 1))), *(cells[j] for j in block)),
            )
            for block in blocks
        ]  # fmt: skip
        return stacked(tables), None
    formatted = _FormattedRows(values, specs, range(columns))
    texts = {r: row[1:] for r, row in zip(shown, formatted, strict=True)}  # the labels apart
    column_index = _fitted(cells, room)
    table = _values_table(title, texts, row_index, column_index, width)
    if len(row_index) == rows and len(column_index) == columns:
        return table, None
    shown_rows = sum(r is not None for r in row_index)
    shown_columns = sum(j is not None for j in column_index)
    return table, (
        f"showing {shown_rows} of {rows} rows, {shown_columns} of {columns} columns "
        "(--full: all; --format json or csv: every value)"
    )


def _column_blocks(cells: Sequence[int], room: int) -> list[list[int]]:
    """The columns in blocks, each as many as fit `room` beside the row labels."""
    blocks: list[list[int]] = [[]]
    for j, cell in enumerate(cells):
        if blocks[-1] and sum(cells[k] + style.GAP for k in blocks[-1]) + cell + style.GAP > room:
            blocks.append([])
        blocks[-1].append(j)
    return blocks


class _FormattedRows(Sequence[tuple[str, ...]]):
    """Rows of output values as a table shows them, `(label, value texts...)` of `columns`,
    each formatted with its column's spec when it is read (FORMATTED_ROWS at a time when
    iterated)."""

    def __init__(self, values: np.ndarray, specs: Sequence[str], columns: Sequence[int]) -> None:
        self.values, self.specs, self.columns = values, specs, list(columns)

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> tuple[str, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, ...]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, ...] | list[tuple[str, ...]]:
        if isinstance(index, slice):
            return list(self._formatted(range(len(self))[index], self.values[index]))
        label = range(len(self))[index]  # IndexError past either end
        return next(self._formatted(range(label, label + 1), self.values[label : label + 1]))

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        for start in range(0, len(self), FORMATTED_ROWS):
            rows = range(start, min(start + FORMATTED_ROWS, len(self)))
            yield from self._formatted(rows, self.values[rows.start : rows.stop])

    def _formatted(self, labels: range, rows: np.ndarray) -> Iterator[tuple[str, ...]]:
        specs = self.specs
        for label, row in zip(labels, rows[:, self.columns].tolist(), strict=True):
            yield (str(label), *(format(v, spec) for v, spec in zip(row, specs, strict=True)))


def _values_table(
    title: str,
    texts: Mapping[int, Sequence[str]],
    row_index: Sequence[int | None],
    column_index: Sequence[int | None],
    width: int,
) -> Table:
    """One table of output values, formatted (`texts`, by row); None in an index is an
    ellipsis row or column."""
    table = style.table(title, width)
    table.add_column("row", justify="right", style="dim", no_wrap=True)
    for j in column_index:
        table.add_column("…" if j is None else str(j), justify="right", no_wrap=True)
    for r in row_index:
        text = texts.get(r) if r is not None else None
        cells = ("…" if text is None or j is None else text[j] for j in column_index)
        table.add_row("…" if r is None else str(r), *cells)
    return table


def _fitted(cells: Sequence[int], room: int) -> list[int | None]:
    """The columns to show in `room` characters: all where they fit, else as many from each end
    as fit around an ellipsis column (one from each end at least)."""
    if sum(cell + style.GAP for cell in cells) <= room:
        return list(range(len(cells)))
    side = 1
    ellipsis = 1 + style.GAP
    while 2 * (side + 1) < len(cells) and (
        sum(cell + style.GAP for cell in (*cells[: side + 1], *cells[-(side + 1) :])) + ellipsis
        <= room
    ):
        side += 1
    return ends(len(cells), side)


def _number_spec(values: np.ndarray) -> str:
    """Fixed point with 4 decimals when every value reads well so (none past 1e5, none nonzero
    under 1e-4, which would show as 0.0000), else scientific."""
    import numpy as np

    magnitudes = np.abs(values[np.isfinite(values)])
    largest = float(magnitudes.max(initial=0.0))  # as Python floats: 1e5 is past float16's
    smallest = float(magnitudes[magnitudes > 0].min(initial=1.0))
    return ".4f" if largest < 1e5 and smallest >= 1e-4 else ".4e"


def _widest(values: np.ndarray, spec: str) -> int:
    """The length of the longest of `values` formatted with `spec`, from the few that can be
    longest: a text grows with its magnitude (fixed point) or its exponent's (scientific), and
    a sign; NaN and infinities as `format` writes them."""
    import numpy as np

    finite = values[np.isfinite(values)]
    candidates = [float(v) for v in np.unique(values[~np.isfinite(values)])]
    for part in (finite[finite > 0], finite[finite < 0]):
        if part.size:
            candidates += [float(part.min()), float(part.max())]
    zeros = finite[finite == 0]
    if zeros.size:  # -0.0 shows its sign
        candidates.append(-0.0 if np.signbit(zeros).any() else 0.0)
    return max((len(format(v, spec)) for v in candidates), default=0)


def sweep_table(results: Sequence[RunResult], width: int) -> tuple[Table, list[str]]:
    """One row per run of a sweep: its overrides, the output's shape and first values; the
    shape, then the time, then the name left out to fit `width`.

    Names and overrides fold when narrow; numbers never split (their column is never narrower
    than the widest of them, and wraps between them).
    """
    import numpy as np

    firsts = []
    for result in results:
        first_row = result.preview.row(0).tolist() if result.preview.shape[0] else []
        spec = _number_spec(np.array(first_row[:SWEEP_VALUES], dtype=float))
        shown = ", ".join(format(v, spec) for v in first_row[:SWEEP_VALUES])
        firsts.append(shown + (", …" if len(first_row) > SWEEP_VALUES else ""))
    widest = max((len(word) for first in firsts for word in first.split()), default=1)
    columns = [
        Column("#", "right"),
        Column("name", fold=True),
        Column("overrides", fold=True),
        Column("output"),
        Column("row 0", fold=True, min_width=widest),
        Column("forward ms", "right"),
    ]
    rows: list[list[RenderableType]] = [
        [
            str(index),
            Text(result.config.name),
            Text(" ".join(result.overrides)),
            shape_text(result.preview.shape),
            Text(first),
            ms_text(result.forward_ms),
        ]
        for index, (result, first) in enumerate(zip(results, firsts, strict=True))
    ]
    title = counted(len(results), "run")
    table, dropped = style.fitted(title, columns, rows, ("output", "forward ms", "name"), width)
    return table, [style.left_out("runs", dropped, width)] if dropped else []


FORMATTED_ROWS = 4096  # output rows of `run --full` formatted at once


SWEEP_VALUES = 4  # values of output row 0 shown per run in a sweep's table


def run_record(result: RunResult) -> Record:
    """Schema `mlpcli.run/RUN_VERSION`."""
    return {
        **header("run", result.config, version=RUN_VERSION),
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


def run_safetensors(results: Sequence[RunResult]) -> bytes:
    """Every tensor of the one run, in its dtype, with the resolved config in the metadata."""
    from safetensors.torch import save

    from mlpcli import __version__

    (result,) = results
    metadata = {"mlpcli.config": json.dumps(result.config.to_dict()), "mlpcli.version": __version__}
    tensors = {name: tensor.contiguous() for name, tensor in result.kept.items()}
    return bytes(save(tensors, metadata=metadata))


def run_tables(results: Sequence[RunResult], width: int, full: bool) -> Laid:
    """Each network's tables, a blank line apart, or a sweep's one table (and each run's
    statistics; `full`: every run's tables); the notes on what was left out to fit `width`."""
    if any(result.sweep for result in results) and not full:
        table, notes = sweep_table(results, width)
        stats = [stats_table(r.stats, width) for r in results if r.stats]
        notes += dict.fromkeys(note for _, note in stats if note)
        return stacked([table, *(t for t, _ in stats)]), notes
    views, cuts = zip(
        *(run_table(result, full=full, width=width) for result in results), strict=True
    )
    return stacked(views), [cut for cut in cuts if cut]


VIEW = View(
    RunResult,
    run_record,
    run_rows,
    run_tables,
    files={".safetensors": run_safetensors},
    streams=streams.SUFFIXES,
)
