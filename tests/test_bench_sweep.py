"""`mlpcli bench -m`: a sweep timed combination by combination, and `--plot` drawing it with
matplotlib (rendered by resvg here; its PNG read back)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import struct
import subprocess
from pathlib import Path

import pytest
import resvg_py

from mlpcli.model import units
from mlpcli.report import plot as plots

from .conftest import invoke

SWEEP = ("-m", "batch=1,16,256", "activation=relu,tanh", "-n", "2", "--warmup", "0")


def test_a_sweep_gives_every_point_in_json() -> None:
    code, out, err = invoke("bench", "layers=[8,4,2]", *SWEEP, "-f", "json")
    assert (code, err) == (0, "")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["overrides"] for r in records] == [
        ["layers=[8,4,2]", f"batch={b}", f"activation={a}"]
        for b in (1, 16, 256)
        for a in ("relu", "tanh")
    ]
    for record in records:
        batch = record["config"]["batch"]
        assert record["overrides"][1] == f"batch={batch}"
        assert record["config"]["activation"] == record["overrides"][2].split("=")[1]
        assert len(record["forward_ms"]["all"]) == 2
        flops = 2 * batch * (8 * 4 + 4 * 2) + 2 * batch * (4 + 2)  # a multiply-add 2; a bias
        # add and an activation 1 each
        assert record["flops"] == flops
        assert record["samples_per_s"] == pytest.approx(
            batch / record["forward_ms"]["median"] * 1e3
        )


def test_a_sweep_is_one_csv_table_and_one_table_for_people() -> None:
    code, out, _ = invoke("bench", "layers=[8,4,2]", *SWEEP, "-f", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["batch"], r["activation"]) for r in rows] == [
        (b, a) for b in ("1", "16", "256") for a in ("relu", "tanh")
    ]
    code, out, _ = invoke("bench", "layers=[8,4,2]", *SWEEP)
    assert code == 0
    assert "default: 6 combinations on cpu" in out
    assert len(re.findall(r"FLOP/s", out)) == 7  # the heading and a rate a row
    assert "activation" in out  # the swept key's heading is never folded


def test_a_swept_key_the_csv_has_anyway_is_not_a_second_column() -> None:
    code, out, _ = invoke("bench", "-m", "threads=1,2", "name=a,b", "-n", "1", "-f", "csv")
    assert code == 0
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert len(header) == len(set(header))
    assert [(row[header.index("name")], row[header.index("threads")]) for row in rows] == [
        ("a", "1"),
        ("b", "1"),
        ("a", "2"),
        ("b", "2"),
    ]


@pytest.mark.parametrize(
    ("numbers", "log"),
    [([1, 16, 256], True), ([1, 10], True), ([1, 2, 4, 8], False), ([0, 1, 100], False),
     ([-1, 100], False), ([], False)],
)  # fmt: skip
def test_an_axis_is_logarithmic_where_its_numbers_span_ten_times(
    numbers: list[float], log: bool
) -> None:
    assert plots.log_scale(numbers) is log


def _comments(svg: str) -> set[str]:
    """The texts matplotlib drew: it draws them as paths, each after a comment with its text."""
    return {text.strip() for text in re.findall(r"<!-- (.*?) -->", svg)}


def test_plot_as_svg_draws_both_rates_against_the_key(tmp_path: Path) -> None:
    plot = tmp_path / "sweep.svg"
    code, _, err = invoke("bench", "layers=[8,4,2]", *SWEEP, "--plot", str(plot), "-q")
    svg = plot.read_text()
    wrote = f"mlpcli: note: wrote {plot} ({units.byte_size(plot.stat().st_size)})\n"
    assert (code, err) == (0, wrote)
    texts = _comments(svg)
    time_axis = {
        t for t in texts if re.fullmatch(r"forward pass \((µs|ms|s)\): median, min … max", t)
    }
    assert len(time_axis) == 1  # the time and its spread beside the throughput, each unit once
    assert {"samples/s", "batch", "activation"} <= texts
    assert "FLOP/s (from the shapes' FLOPs)" not in texts  # a row's work is the same throughout
    assert {"relu", "tanh", "1", "16", "256"} <= texts  # a line each; a tick at each batch
    assert "default on cpu: 2 forward passes each" in texts
    assert "dc:date" not in svg.lower()  # the same sweep draws the same file
    png = bytes(resvg_py.svg_to_bytes(svg_string=svg, dpi=96))  # matplotlib sizes it in pt
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (960, 403)


def test_a_sweep_of_the_work_a_row_takes_plots_flops(tmp_path: Path) -> None:
    """Where the sweep changes the FLOPs of a row (the layers), the throughput is FLOP/s."""
    plot = tmp_path / "sweep.svg"
    code, _, _ = invoke(
        "bench", "-m", "layers=[8,4,2],[8,64,2]", "-n", "1", "--plot", str(plot), "-q"
    )
    assert code == 0
    assert "FLOP/s (from the shapes' FLOPs)" in _comments(plot.read_text())


def test_plot_as_png(tmp_path: Path) -> None:
    plot = tmp_path / "sweep.png"
    code, _, _ = invoke(
        "bench", "layers=[8,4,2]", "-m", "batch=1,4", "-n", "1", "--plot", str(plot)
    )
    assert code == 0
    png = plot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (2000, 840)  # 10 x 4.2 in at 200 dpi


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--plot", "x.svg"], 2, "--plot x.svg: a plot draws a sweep: -m with a key of two"),
        (["-m", "batch=1,1", "--plot", "x.svg"], 2, "--plot x.svg: a plot draws a sweep"),
        (["-m", "batch=1,2", "--plot", "x.pdf"], 2, "use one of .svg, .png"),
        (["-m", "batch=1,2", "--nproc", "2"], 2, "leave --nproc out of bench -m"),
    ],
)
def test_plots_and_sweeps_that_cannot_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    found, out, err = invoke("bench", *args)
    assert (found, out) == (code, "")
    assert message in err
    assert list(tmp_path.iterdir()) == []


def test_plot_without_matplotlib_names_it(tmp_path: Path, mlpcli_script: str) -> None:
    code = "import sys; sys.modules['matplotlib'] = None; from mlpcli.cli import main; main()"
    python = str(Path(mlpcli_script).parent / "python")
    plot = tmp_path / "x.png"
    done = subprocess.run(  # a billion passes: refused before the first, or it times out
        [python, "-c", code, "bench", "-m", "batch=1,2", "-n", "1000000000", "--plot", str(plot)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.startswith(f"mlpcli: error: --plot {plot}: drawing it needs matplotlib")
    assert "pip install matplotlib" in done.stderr
    assert done.stdout == ""
    assert not plot.exists()


def test_a_bench_row_says_how_its_passes_were_shared_and_fed() -> None:
    """The CSV's columns for a bench over ranks (the mode, how many) and for passes that read
    their features from a file: figures of unlike runs are told apart."""
    from mlpcli.loading.loader import load
    from mlpcli.model.results import BenchResult, ParallelInfo
    from mlpcli.report.views.bench import bench_rows

    shared = ParallelInfo("tensor", 2, "gloo")
    result = BenchResult(load(None, []), "cpu", 1.0, (2.0,), None, 22, 1, parallel=shared)
    for each, expected in (
        (dataclasses.replace(result, reads_features=True), ("tensor", 2, True)),
        (dataclasses.replace(result, parallel=None), ("none", 1, False)),
    ):
        ((header, rows),) = bench_rows([each])
        row = dict(zip(header, rows[0], strict=True))
        assert (row["parallel"], row["world_size"], row["reads_features"]) == expected
