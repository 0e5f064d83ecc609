"""Rich tables for people, from plain result objects; computes nothing itself.

Untrusted text (config names, paths, override values) enters Rich only as `Text`, never as
markup, so `[red]` in a name prints as written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar, overload

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlpcli.model.results import PREVIEW_ROWS, TensorInfo, TensorShape, override_values, swept_keys
from mlpcli.model.units import (
    arrows,
    byte_column,
    byte_size,
    counted,
    ms_text,
    rate_text,
    share_text,
    value_text,
)
from mlpcli.report import style
from mlpcli.report.style import Column

if TYPE_CHECKING:
    import numpy as np

    from mlpcli.model.results import (
        BenchResult,
        CompareResult,
        EnvResult,
        ParallelInfo,
        RankFigures,
        RunResult,
        TensorStats,
        ValidateResult,
    )

FORMATTED_ROWS = 4096  # output rows of `run --full` formatted at once
TABLE_ROWS = 10  # rows of a layers or tensors table shown from each end when it is cut
SWEEP_VALUES = 4  # values of output row 0 shown per run in a sweep's table


def stacked(views: Sequence[RenderableType]) -> RenderableType:
    """Several results' views, one under the other, a blank line apart."""
    spaced: list[RenderableType] = []
    for view in views:
        spaced += [Text(), view] if spaced else [view]
    return Group(*spaced)


def shape_text(shape: Sequence[int]) -> str:
    """`(1, 3)`: a shape as Python writes a tuple."""
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# --- run -------------------------------------------------------------------------------------


def run_tables(
    results: Sequence[RunResult], *, full: bool, width: int
) -> tuple[RenderableType, list[str]]:
    """Each network's tables, a blank line apart, and the notes on what was left out."""
    views, cuts = zip(
        *(run_table(result, full=full, width=width) for result in results), strict=True
    )
    return stacked(views), [cut for cut in cuts if cut]


def run_table(result: RunResult, *, full: bool, width: int) -> tuple[RenderableType, str]:
    """The header, tensors table and output table for a console `width` wide.

    Returns the note to show when a table was cut to fit (empty when none was).
    """
    config = result.config
    pairs = [f"seed {config.seed}", f"device {result.device}", f"dtype {config.dtype}"]
    pairs += [f"batch {config.batch}", *_over_ranks(result.parallel)]
    tensors, tensors_cut = tensors_table(result.tensors, width)
    output, cut = _output_table(result, full=full, width=width)
    views: list[RenderableType] = [style.header(config.name, pairs, width), tensors, output]
    notes = [tensors_cut, cut]
    if result.stats:
        stats, stats_cut = stats_table(result.stats, width)
        views.append(stats)
        notes.append(stats_cut)
    return Group(*views), "; ".join(note for note in notes if note)


def _over_ranks(parallel: ParallelInfo | None) -> list[str]:
    """A header's `parallel tensor over 3 ranks (gloo)`, or nothing for one process."""
    if parallel is None:
        return []
    backend = f" ({parallel.backend})" if parallel.backend else ""
    return [f"parallel {parallel.mode} over {counted(parallel.world_size, 'rank')}{backend}"]


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
    row_index = _shown(rows, rows if full else PREVIEW_ROWS)
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


def _shown(count: int, side: int) -> list[int | None]:
    """Indices to show: all when they fit, else `side` from each end around a None (…)."""
    if count <= 2 * side:
        return list(range(count))
    return [*range(side), None, *range(count - side, count)]


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
    return _shown(len(cells), side)


def _number_spec(values: np.ndarray) -> str:
    """Fixed point with 4 decimals when every value reads well so (none past 1e5, none nonzero
    under 1e-4, which would show as 0.0000), else scientific."""
    import numpy as np

    magnitudes = np.abs(values[np.isfinite(values)])
    largest = magnitudes.max(initial=0.0)
    smallest = magnitudes[magnitudes > 0].min(initial=1.0)
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
    shown = _shown(len(rows), TABLE_ROWS)
    if len(shown) == len(rows):
        return rows, None
    width = len(rows[0])
    kept = [("…",) * width if index is None else rows[index] for index in shown]
    return kept, (
        f"showing {2 * TABLE_ROWS} of {len(rows)} rows of {what} (--format json: every one)"
    )


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


# --- validate --------------------------------------------------------------------------------


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


# --- sweeps ----------------------------------------------------------------------------------


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


# --- bench -----------------------------------------------------------------------------------


def bench_table(result: BenchResult, width: int) -> RenderableType:
    """A bench result as a two-column grid."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(justify="right")
    times = result.forward_ms
    peak = "not measured on the CPU" if result.peak_bytes is None else byte_size(result.peak_bytes)
    rows = [
        ("device", result.device),
        ("build (weights drawn, cast, moved)", f"{ms_text(result.build_ms)} ms"),
        ("forward pass", "CUDA graph replay" if result.cuda_graph else "eager"),
        (f"forward, median of {len(times)}", f"{ms_text(result.median_ms)} ms"),
        ("forward, min … max", f"{ms_text(result.min_ms)} … {ms_text(result.max_ms)} ms"),
        ("samples/s", _number(result.samples_per_s, ",.0f")),
        ("FLOP/s (from the shapes' FLOPs)", _rate(result.flops_per_s, "FLOP/s")),
        ("CPU threads", str(result.threads)),
        (
            "peak memory, capture included" if result.cuda_graph else "peak memory of the passes",
            peak,
        ),
    ]
    for label, value in rows:
        grid.add_row(label, value)
    title = style.header(result.config.name, _over_ranks(result.parallel), width)
    ranks = [_ranks_table(result.ranks)] if result.ranks else []
    return Group(title, grid, *ranks)


def bench_sweep_table(results: Sequence[BenchResult], width: int) -> tuple[Table, list[str]]:
    """One row per bench of a sweep: the values swept, the forward times and the rates; the
    spread of the times, then the rates, left out to fit `width`, and the note that says so."""
    swept = swept_keys(result.overrides for result in results)
    devices = ", ".join(dict.fromkeys(result.device for result in results))
    threads = ", ".join(dict.fromkeys(str(r.threads) for r in results if r.device == "cpu"))
    title = f"{results[0].config.name}: {counted(len(results), 'combination')} on {devices}"
    title += f" (CPU threads {threads})" if threads else ""
    columns = [
        Column("#", "right"),
        *(Column(key, fold=True) for key in swept),
        *(Column(name, "right") for name in ("median ms", "min … max ms", "samples/s", "FLOP/s")),
    ]
    rows: list[list[RenderableType]] = []
    for index, result in enumerate(results):
        values = override_values(result.overrides)
        rows.append([
            str(index),
            *(Text(values[key]) for key in swept),
            ms_text(result.median_ms),
            f"{ms_text(result.min_ms)} … {ms_text(result.max_ms)}",
            _number(result.samples_per_s, ",.0f"),
            _rate(result.flops_per_s, "FLOP/s"),
        ])  # fmt: skip
    droppable = ("min … max ms", "FLOP/s", "samples/s")
    table, dropped = style.fitted(title, columns, rows, droppable, width)
    return table, [style.left_out("bench", dropped, width)] if dropped else []


def _ranks_table(ranks: Sequence[RankFigures]) -> Table:
    """Each rank of a bench over several processes: its weights, peak memory, communication."""
    table = style.table()
    for column in ("rank", "device", "weights", "peak memory", "communicating, median"):
        table.add_column(column, justify="right")
    weights = byte_column([rank.weight_bytes for rank in ranks])
    peaks = byte_column([rank.peak_bytes for rank in ranks])
    for rank, weight, peak in zip(ranks, weights, peaks, strict=True):
        table.add_row(
            str(rank.rank),
            rank.device,
            weight,
            peak + (" (RSS)" if rank.peak_is_rss else ""),
            f"{ms_text(rank.comm_ms)} ms",
        )
    return table


def _rate(value: float | None, unit: str) -> str:
    return "-" if value is None else rate_text(value, unit)


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# --- compare ---------------------------------------------------------------------------------


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


# --- env -------------------------------------------------------------------------------------


ENV_LABELS = {"cpu_count": "CPUs", "torch_threads": "CPU threads"}  # as bench names them


def env_table(environment: EnvResult) -> RenderableType:
    """Versions and threads as a two-column grid, then one row per GPU."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")  # a long version or platform string folds, whole
    for key, value in environment.facts.items():
        grid.add_row(ENV_LABELS.get(key, key), Text("-" if value is None else str(value)))
    if not environment.gpus:
        return Group(grid, Text("GPUs: none visible to torch"))
    gpus = style.table("GPUs")
    for column in ("index", "name", "memory", "capability"):
        gpus.add_column(column)
    for gpu in environment.gpus:
        gpus.add_row(str(gpu.index), Text(gpu.name), byte_size(gpu.memory_bytes), gpu.capability)
    return Group(grid, gpus)
