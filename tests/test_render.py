"""Formatting helpers and the JSON/CSV writers, on hand-made results."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import numpy as np
import pytest
from rich.console import Console

from mlpcli.loading.loader import load
from mlpcli.model import shapes, units
from mlpcli.model.results import PREVIEW_ROWS, Preview, RunResult, TensorInfo
from mlpcli.report import progress, records, render, views
from mlpcli.report.views import run as run_view

from .conftest import rendered


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (44, "44 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 * 2**30, "3.0 GiB"),
     (5 * 2**40, "5.0 TiB"), (2**62, "4.0 EiB")],
)  # fmt: skip
def test_byte_size(count: int, text: str) -> None:
    assert units.byte_size(count) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [(22, "22"), (999_999, "999,999"), (10**6, "1.00 M"), (67_117_056, "67.12 M"),
     (2_199_258_136_576, "2.20 T")],
)  # fmt: skip
def test_count_text(count: int, text: str) -> None:
    assert units.count_text(count) == text


def test_a_column_of_counts_has_one_format() -> None:
    assert units.count_column([650, 8_256, 528_384]) == ["650", "8,256", "528,384"]
    assert units.count_column([650, 528_384, 12_857_344]) == ["650", "528.38 k", "12.86 M"]


@pytest.mark.parametrize(
    ("rate", "text"),
    [(2.92e6, "2.92 MFLOP/s"), (950.0, "950 FLOP/s"), (999.6, "1.00 kFLOP/s"),
     (12_340.0, "12.3 kFLOP/s"), (6.34e14, "634 TFLOP/s"), (0.0, "0.00 FLOP/s")],
)  # fmt: skip
def test_rate_text_never_uses_e_notation(rate: float, text: str) -> None:
    assert units.rate_text(rate, "FLOP/s") == text


def test_shape_text() -> None:
    assert [render.shape_text(s) for s in [(1, 3), (5,), ()]] == ["(1, 3)", "(5,)", "()"]


def result_with(output: np.ndarray) -> RunResult:
    rows, columns = output.shape
    return RunResult(
        config=load(None, [f"layers=[3, {columns}]", f"batch={rows}"]),
        device="cpu",
        tensors=(TensorInfo("output", (rows, columns), "float32", "cpu"),),
        preview=Preview((rows, columns), output[:PREVIEW_ROWS], output[-PREVIEW_ROWS:]),
        output=output,
        nonfinite=int((~np.isfinite(output)).sum()),
        build_ms=1.0,
        forward_ms=2.0,
    )


def test_json_is_strict_with_nonfinite_values_as_proto3_strings() -> None:
    line = records.json_line(
        run_view.run_record(result_with(np.array([[1.5, np.nan], [np.inf, -np.inf]])))
    )
    assert line.count("\n") == 1
    assert line.endswith("\n")
    data = json.loads(line, parse_constant=lambda token: pytest.fail(f"non-JSON token {token}"))
    assert data["schema"] == "mlpcli.run/2"
    assert data["output"] == [[1.5, "NaN"], ["Infinity", "-Infinity"]]
    assert data["nonfinite"] == 3
    assert data["timing_ms"] == {"build": 1.0, "forward": 2.0}


@pytest.mark.parametrize(
    "rows", [1, records.JSON_ROWS - 1, records.JSON_ROWS, 3 * records.JSON_ROWS + 5]
)
@pytest.mark.parametrize("nonfinite", [False, True])
def test_json_written_in_blocks_is_the_text_of_one_dumps(rows: int, nonfinite: bool) -> None:
    """The output is made into JSON a block of rows at a time, from the array, and written in
    blocks of text: the same characters as `json.dumps` of the whole record with every row a
    Python list (the reference), at every block edge."""
    output = np.random.default_rng(rows).normal(size=(rows, 3)).astype(np.float32)
    if nonfinite:
        output[rows // 2, 1], output[-1, 0] = np.nan, -np.inf
    record = run_view.run_record(result_with(output))
    whole = [[records.json_number(v) for v in row] for row in output.tolist()]
    reference = json.dumps({**record, "output": whole}, allow_nan=False, separators=(",", ":"))
    blocks = list(records.json_blocks([record, record], size=1000))
    assert "".join(blocks) == (reference + "\n") * 2
    assert max(map(len, blocks)) < 1000 + 25 * 3 * records.JSON_ROWS  # a block and one piece


def test_csv_is_full_precision() -> None:
    text = records.csv_text(run_view.run_rows([result_with(np.array([[0.1, 1e-30]]))]))
    assert text == "name,output_0,output_1\ndefault,0.1,1e-30\n"


def test_table_switches_to_scientific_for_tiny_values() -> None:
    table, cut = run_view.run_table(result_with(np.array([[1e-6, 2e-7]])), full=False, width=80)
    assert not cut
    assert "1.0000e-06" in rendered(table)


def test_no_nonzero_value_shows_as_zero_and_each_column_keeps_one_format() -> None:
    """A softmax's 3e-6 printed as 0.0000; now its column is scientific, the others not."""
    output = np.array([[0.95, 3e-6, 0.0], [0.5, 0.25, 0.0]])
    text = rendered(run_view.run_table(result_with(output), full=False, width=80)[0])
    assert "3.0000e-06" in text
    assert "2.5000e-01" in text  # the same column, the same format
    assert "0.9500" in text
    assert "0.5000" in text
    assert "0.0000" in text  # a column of zeros: zero is zero


# --- the progress bar ------------------------------------------------------------------------


def test_each_step_of_a_chunked_run_weighs_its_flops() -> None:
    config = load(
        None, ["layers=[64, 32, 8]", "batch=100", "chunk=30", "activation=[relu, identity]"]
    )
    steps = shapes.step_flops(config)
    assert len(steps) == 4 * 2  # chunks of 30, 30, 30 and 10 rows, two layers each
    assert steps[:2] == [2 * 30 * 64 * 32 + 2 * 30 * 32, 2 * 30 * 32 * 8 + 30 * 8]
    assert steps[-2:] == [2 * 10 * 64 * 32 + 2 * 10 * 32, 2 * 10 * 32 * 8 + 10 * 8]
    assert sum(steps) == shapes.shapes(config).total_flops


def test_a_run_takes_one_step_for_each_layer_of_each_chunk() -> None:
    from mlpcli.engine import runners

    config = load(None, ["layers=[6, 5, 4, 3]", "batch=10", "chunk=4"])
    steps: list[None] = []
    runners.run(config, step=lambda: steps.append(None))
    assert len(steps) == len(shapes.step_flops(config)) == 3 * 3


def test_the_bar_counts_the_chunks_of_the_memory_budget_too() -> None:
    """Without `chunk`, the run takes chunks of the budget's rows (here 512 of 1,100, at a
    widest layer of 4096): the bar counts them, not one chunk of the batch."""
    from mlpcli.engine import runners

    config = load(None, ["layers=[4096, 4]", "batch=1100", "init=kaiming"])
    steps: list[None] = []
    runners.run(config, step=lambda: steps.append(None))
    assert len(steps) == len(shapes.step_flops(config)) == 3
    assert sum(shapes.step_flops(config)) == shapes.shapes(config).total_flops


def test_the_time_left_counts_down_from_the_estimate_then_at_the_pace_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr("mlpcli.report.progress.time.monotonic", lambda: now[0])
    bar = progress.LateProgress("running", [1.0, 3.0, 4.0, 2.0])
    assert bar.time_left() is None  # nothing measured yet
    bar.expect(20.0)  # 2 s a unit of work
    now[0] = 105.0
    assert bar.time_left() == 15.0
    now[0] = 108.0
    bar.advance()  # 1 of 10 done at 108: the estimate still sets the pace, from there
    assert bar.time_left() == 18.0
    now[0] = 110.0
    assert bar.time_left() == 16.0
    now[0] = 113.0
    bar.advance()  # 4 of 10 at 113: 3 units in 5 s
    assert bar.time_left() == pytest.approx(10.0)
    now[0] = 116.0
    assert bar.time_left() == pytest.approx(7.0)  # counts down between steps
    now[0] = 130.0
    assert bar.time_left() == 0.0  # late: never below zero


@pytest.mark.parametrize("rows", [3, 120])
def test_a_long_table_prints_past_its_first_rows_as_rich_would(
    rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--full's rows after the first that Rich lays out are the lines Rich would have made,
    colour aside: the same columns, widths and gaps, and its row labels dim on a terminal."""
    from rich.console import Group
    from rich.text import Text

    from mlpcli.report import style

    headings = ("row", "0", "1")
    body = [(str(r), f"{r / 7:.4f}", f"{-r * 1e3:.4e}") for r in range(rows)]
    widths = [max(len(row[j]) for row in [headings, *body]) for j in range(3)]
    whole = style.table()
    for heading, width in zip(headings, widths, strict=True):
        whole.add_column(heading, justify="right", no_wrap=True, min_width=width)
    for row in body:
        whole.add_row(*row)
    long = style.LongTable("output", headings, body, widths)
    assert rendered(long) == rendered(Text("output")) + rendered(whole)
    lines = rendered(long).splitlines()
    assert len(lines) == rows + 3
    assert lines[-1].startswith(f"{rows - 1:>3}  ")
    buffer = io.StringIO()
    Console(file=buffer, width=100, force_terminal=True, color_system="standard").print(long)
    dim = re.findall(r"^\x1b\[2m *\d+", buffer.getvalue(), re.MULTILINE)
    assert len(dim) == rows  # each row label dim, the long rows' too
    for colours in (None, "standard"):  # printed a piece at a time, blocks of 7 rows: the same
        whole_print, pieces_print = io.StringIO(), io.StringIO()
        Console(file=whole_print, width=100, force_terminal=True, color_system=colours).print(
            Group(Text("before"), long)
        )
        console = Console(file=pieces_print, width=100, force_terminal=True, color_system=colours)
        monkeypatch.setattr(style.LongTable, "BLOCK_ROWS", 7)
        for piece in style.pieces(Group(Text("before"), long), console):
            console.print(piece)
        assert pieces_print.getvalue() == whole_print.getvalue()


def test_terminal_numbers_never_hide_what_they_are() -> None:
    """A nonzero share is never 0%, a maximum that is not 1 never `1`, times keep three
    significant digits, and a column of sizes has one unit."""
    assert [units.share_text(x) for x in (0, 9.25e-5, 0.004, 0.9996, 0.99999, 1)] == [
        "0%", "<0.01%", "0.4%", "99.96%", ">99.99%", "100%",
    ]  # fmt: skip
    assert [units.value_text(x) for x in (0.9998, 1.0, 0.31708, -0.99996)] == [
        "0.9998", "1", "0.317", "-0.99996",
    ]  # fmt: skip
    assert [units.ms_text(x) for x in (0.008123, 1.2345, 39.33, 1234.5)] == [
        "0.00812", "1.23", "39.3", "1234",
    ]  # fmt: skip
    assert units.byte_column([1_037_517, 1_572_864, 0]) == ["1.0 MiB", "1.5 MiB", "0.0 MiB"]


# --- each result type's view ---------------------------------------------------------------


def test_a_view_is_laid_out_at_the_width_it_is_given_when_rendered() -> None:
    """One view, rendered at two widths: each as the run's tables laid out at that width,
    and the note on what a narrow one left out is there once it has been rendered."""
    result = result_with(np.arange(24, dtype=np.float64).reshape(2, 12) * 1000.5)
    shown = views.of(RunResult).shown([result])
    assert shown.notes == []  # nothing is laid out before it is rendered
    for width in (60, 200):
        table, cut = run_view.run_table(result, full=False, width=width)
        assert rendered(shown, width) == rendered(table, width)
        assert shown.notes == ([cut] if cut else [])
    assert rendered(shown, 60) != rendered(shown, 200)
    assert shown.notes == []  # wide enough: nothing left out


def test_every_result_type_a_command_emits_has_a_view() -> None:
    from mlpcli.model import results
    from mlpcli.model.config import Config

    emitted = [
        results.RunResult, results.BenchResult, results.CompareResult, results.ShapesResult,
        results.EnvResult, results.ValidateResult, Config,
    ]  # fmt: skip
    assert [views.of(kind).kind for kind in emitted] == emitted


def test_a_sweep_shows_its_runs_in_one_table_and_every_value_with_full() -> None:
    runs = [
        dataclasses.replace(result_with(np.full((2, 3), float(i))), overrides=(f"seed={i}",))
        for i in range(2)
    ]
    view = views.of(RunResult)
    apart = render.stacked([run_view.run_table(run, full=False, width=120)[0] for run in runs])
    assert rendered(view.shown(runs), 120) == rendered(apart, 120)
    swept = [dataclasses.replace(run, sweep=True) for run in runs]
    assert rendered(view.shown(swept), 120) == rendered(run_view.sweep_table(swept, 120)[0], 120)
    every = render.stacked([run_view.run_table(run, full=True, width=120)[0] for run in swept])
    assert rendered(view.shown(swept, full=True), 120) == rendered(every, 120)  # each run's


@pytest.mark.parametrize("ranks", [0, 2])
def test_a_bench_on_the_cpu_says_where_its_peak_memory_is(ranks: int) -> None:
    """The CPU gives no peak of the passes alone; over ranks each rank's RSS is in its table."""
    from mlpcli.model.results import BenchResult, ParallelInfo, RankFigures
    from mlpcli.report.views.bench import bench_table

    config = load(None, ["layers=[3,4,1]"], {})
    figures = tuple(RankFigures(r, "cpu", 300 << 20, True, 1.5, 96) for r in range(ranks))
    shared = ParallelInfo("data", ranks, "gloo") if ranks else None
    result = BenchResult(
        config, "cpu", 2.0, (1.0, 2.0), None, 96, 1, parallel=shared, ranks=figures
    )
    text = rendered(bench_table(result, 100))
    said = "each rank's RSS, below" if ranks else "not measured on the CPU"
    assert re.search(rf"peak memory of the passes +{said}", text)
    assert ("300.0 MiB (RSS)" in text) == bool(ranks)
