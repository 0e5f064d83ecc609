"""A run streams its features from the file to the output a chunk of rows at a time: the same
numbers as the whole file read at once, errors naming the file's row, nothing half-written, and
memory that does not grow with the file (issue 26). Files are small; `chunk: 7` forces many
chunks. The GiB ladder is in benchmarks/bench.py."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from mlpcli.commands import run as run_command
from mlpcli.data import arrowtables, features, lines
from mlpcli.engine import host
from mlpcli.engine.world import Alone
from mlpcli.errors import MlpcliError
from mlpcli.loading.loader import load
from mlpcli.model import memory
from mlpcli.model.config import Device, DType
from mlpcli.report.output import Format, Output

from .conftest import invoke

ROWS = 53  # 7 chunks of 7 and one of 4
LAYERS = "layers=[4, 6, 3]"
X = np.random.default_rng(3).standard_normal((ROWS, 4)).astype(np.float32)
NAMES = ["a", "b", "c", "d"]
BINARY = (".npy", ".parquet", ".feather", ".safetensors")


def _mlpcli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpcli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def _pandas() -> Any:
    """pandas, or a skip (the oldest-versions run has a NumPy that pandas no longer takes)."""
    return pytest.importorskip("pandas", exc_type=ImportError)


def _frame() -> Any:
    return _pandas().DataFrame(X, columns=NAMES)


def _table() -> Any:
    import pyarrow as pa

    return pa.table({name: X[:, j] for j, name in enumerate(NAMES)})


def _parquet(path: Path, row_group_size: int | None = None) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_table(), path, row_group_size=row_group_size)


def _feather(path: Path) -> None:
    """Feather's second version, the Arrow IPC file format, as pyarrow writes it."""
    import pyarrow as pa

    table = _table()
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=20)


# Each format as its library writes it by default.
WRITERS = {
    "x.npy": lambda p: np.save(p, X),
    "x.csv": lambda p: _frame().to_csv(p, index=False),
    "index.csv": lambda p: _frame().to_csv(p),  # pandas' index: left out
    "x.tsv": lambda p: _frame().to_csv(p, sep="\t", index=False),
    "x.txt": lambda p: np.savetxt(p, X),
    "x.parquet": _parquet,
    "x.feather": _feather,
    "x.jsonl": lambda p: _frame().to_json(p, orient="records", lines=True),
    "x.json": lambda p: _frame().to_json(p, orient="records"),
    "x.safetensors": lambda p: save_file({"features": X}, str(p)),
}


@pytest.mark.parametrize("name", WRITERS)
def test_chunks_of_every_format_are_the_whole_file(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    WRITERS[name](path)
    blocks = list(features.chunks(str(path), features.Reading(), 7))
    assert [len(block) for block in blocks] == [7] * 7 + [4]
    got = torch.cat(blocks).numpy()
    # text as float64: pandas writes a float32's shortest repr, which reads back to it
    assert np.array_equal(got.astype(np.float32), X)
    assert got.dtype == (np.float32 if name.endswith(BINARY) else np.float64)
    assert features.describe(str(path)).rows == ROWS


@pytest.mark.parametrize("name", ["x.npy", "x.csv", "x.parquet", "x.jsonl"])
def test_a_chunked_run_streams_each_output_file_bit_for_bit(name: str, tmp_path: Path) -> None:
    WRITERS[name](tmp_path / name)
    args = ("run", LAYERS, f"inputs={name}", "chunk=7")
    whole = json.loads(_mlpcli(*args, "-f", "json", cwd=tmp_path).stdout)["output"]
    expected = np.array(whole, dtype=np.float32)
    for out in ("o.npy", "o.csv", "o.jsonl", "o.parquet"):
        done = _mlpcli(*args, "-o", out, "-q", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        target = tmp_path / out
        if out == "o.npy":
            got = np.load(target)
        elif out == "o.csv":
            got = np.loadtxt(target, delimiter=",", skiprows=1, usecols=(1, 2, 3))
        elif out == "o.jsonl":
            got = np.array([list(json.loads(line).values()) for line in target.open()])
        else:
            import pyarrow.parquet as pq

            got = np.column_stack([c.to_numpy() for c in pq.read_table(target).columns])
        assert np.array_equal(np.asarray(got, dtype=np.float32), expected), out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_chunked_run_is_the_whole_batch_within_tolerance(tmp_path: Path) -> None:
    WRITERS["x.npy"](tmp_path / "x.npy")
    runs = [
        np.array(
            json.loads(
                _mlpcli("run", LAYERS, "inputs=x.npy", *chunk, "-f", "json", cwd=tmp_path).stdout
            )["output"]
        )
        for chunk in ((), ("chunk=7",))
    ]
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-5, atol=1e-6)


def test_a_bad_cell_in_a_late_chunk_names_its_line_and_leaves_nothing(tmp_path: Path) -> None:
    lines = ["a,b,c,d", *(",".join(map(str, row)) for row in X.tolist())]
    lines[41] = "1,2,x,4"  # row 40: line 42 of the file
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "o.npy").write_bytes(b"the old file")
    done = _mlpcli("run", LAYERS, "inputs=x.csv", "chunk=7", "-o", "o.npy", cwd=tmp_path)
    assert done.returncode == 2
    assert "x.csv: line 42, column 3: 'x' is not a number" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2  # the header note, then the one error
    assert (tmp_path / "o.npy").read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_nan_in_a_late_chunk_of_an_npy_names_its_row(tmp_path: Path) -> None:
    bad = X.copy()
    bad[45, 1] = np.nan
    np.save(tmp_path / "x.npy", bad)
    done = _mlpcli("run", LAYERS, "inputs=x.npy", "chunk=7", "-o", "o.csv", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("x.npy: row 45, column 1: nan is not finite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


PAST = "is past the range of"


FLOAT32 = f"1e+39 {PAST} float32 (±3.40282347e+38)"
PAST_WRITERS: dict[str, Callable[[Path, np.ndarray], object]] = {
    "x.npy": lambda path, values: np.save(path, values),
    "x.csv": lambda path, values: np.savetxt(path, values, delimiter=","),
    "named.csv": lambda path, values: path.write_text(
        "# written by hand\n"
        + _pandas()
        .DataFrame(values, columns=list("abcd"))
        .to_csv(index=True)
        .replace("\n0,", "\n\n0,")
    ),
    "x.jsonl": lambda path, values: (
        _pandas()
        .DataFrame(values, columns=list("abcd"))
        .to_json(path, orient="records", lines=True)
    ),
}


@pytest.mark.parametrize(
    ("name", "command", "where", "message"),
    [
        ("x.npy", ["run", "chunk=7", "-o", "o.csv"], "row 40, column 1", FLOAT32),
        ("x.npy", ["bench", "-n", "1"], "row 40, column 1", FLOAT32),
        ("x.csv", ["run", "dtype=float16", "chunk=7"], "line 41, column 2",
         f"70000 {PAST} float16 (±65504)"),
        # a comment, the header, a blank line and pandas' index before the row; b picked first
        ("named.csv", ["run", "chunk=7", "input_columns=[b,a,c,d]"], "line 44, column 3",
         FLOAT32),
        ("x.jsonl", ["run", "chunk=7", "-o", "o.npy"], "line 41, column 'b'", FLOAT32),
    ],
    ids=["run", "bench", "csv-float16", "csv-named", "jsonl"],
)  # fmt: skip
def test_a_value_past_the_dtypes_range_names_its_row(
    tmp_path: Path, name: str, command: list[str], where: str, message: str
) -> None:
    """A value finite in the file that the run's dtype cannot hold is an error, as one that is
    not finite is (it became an infinity once cast, and the run went on), naming where it is
    as the file's other errors do: a text file's line and column, counted from 1 (it said
    "row 40, column 1" of a CSV, its rows and picked columns counted from 0)."""
    values = X.astype(np.float64)
    values[40, 1] = 70000 if "float16" in command[1] else 1e39
    PAST_WRITERS[name](tmp_path / name, values)
    done = _mlpcli(command[0], LAYERS, f"inputs={name}", *command[1:], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        f"override 'inputs={name}': inputs: {name}: {where}: {message}"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_wide_tables_layout_is_decided_by_its_first_megabyte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first lines that decide a text table's layout stop at FIRST_CHARS characters (two
    lines at least): each of their cells is looked at, and 1,024 lines of 10,000 columns took
    600 MB. The rows read are the same."""
    values = np.random.default_rng(4).standard_normal((50, 4))
    np.savetxt(tmp_path / "x.csv", values, delimiter=",", header="a,b,c,d", comments="")
    line = len((tmp_path / "x.csv").read_text().splitlines()[1])
    monkeypatch.setattr(features, "FIRST_CHARS", 10 * line)
    text = features._text_file(str(tmp_path / "x.csv"), None)
    assert text is not None
    first = text.first
    assert 9 <= len(first) <= 10  # the header and about nine rows, not all 51 lines
    monkeypatch.setattr(features, "FIRST_CHARS", 150)
    assert features._first(iter([(1, "a" * 100), (2, "b" * 100), (3, "c")])) == [
        (1, "a" * 100), (2, "b" * 100),
    ]  # fmt: skip
    monkeypatch.setattr(features, "FIRST_CHARS", 10)
    read = features.read(str(tmp_path / "x.csv"))
    np.testing.assert_array_equal(read.numpy(), values)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_column_of_labels_is_named_before_the_width_is_checked(
    tmp_path: Path, suffix: str
) -> None:
    """JSON Lines with a key of labels name it, as a CSV does, whatever `layers[0]` is (they
    said 'rows of 4 features, but layers[0] is 3')."""
    frame = {"a": [1.0, 4.0], "b": [2.0, 5.0], "c": [3.0, 6.0], "label": ["cat", "dog"]}
    path = tmp_path / f"x{suffix}"
    rows = [dict(zip(frame, values, strict=True)) for values in zip(*frame.values(), strict=True)]
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        path.write_text(
            "a,b,c,label\n" + "".join(f"{r['a']},{r['b']},{r['c']},{r['label']}\n" for r in rows)
        )
    for layers in ("layers=[3, 2]", "layers=[4, 2]"):
        done = _mlpcli("run", layers, f"inputs={path.name}", cwd=tmp_path)
        assert done.returncode == 2
        assert f"{path.name}: column 'label' is not numbers" in done.stderr
    picked = _mlpcli(
        "run", "layers=[3, 2]", f"inputs={path.name}", "input_columns=[a, b, c]", cwd=tmp_path
    )
    assert picked.returncode == 0, picked.stderr


def test_the_table_previews_a_streamed_output(tmp_path: Path) -> None:
    WRITERS["x.npy"](tmp_path / "x.npy")
    args = ("run", LAYERS, "inputs=x.npy", "chunk=7")
    output = json.loads(_mlpcli(*args, "-f", "json", cwd=tmp_path).stdout)["output"]
    table = _mlpcli(*args, "-o", "o.npy", cwd=tmp_path)
    shown = {
        int(cells[0]): [float(c) for c in cells[1:]]
        for cells in (line.split() for line in table.stdout.splitlines())
        if cells and cells[0].isdigit() and len(cells) == 4
    }
    assert sorted(shown) == [0, 1, 2, 3, 4, 48, 49, 50, 51, 52]
    for row, values in shown.items():
        np.testing.assert_allclose(values, output[row], atol=5e-5)


def test_statistics_over_chunks_are_the_whole_batchs(tmp_path: Path) -> None:
    WRITERS["x.parquet"](tmp_path / "x.parquet")
    stats = [
        json.loads(
            _mlpcli(
                "run", LAYERS, "inputs=x.parquet", *chunk, "--stats", "-f", "json", cwd=tmp_path
            ).stdout
        )["stats"]
        for chunk in ((), ("chunk=7",))
    ]
    for whole, chunked in zip(*stats, strict=True):
        assert whole["count"] == chunked["count"]
        if whole["saturated"] is not None:  # a bounded range: the same bins whatever the chunks
            assert whole["histogram"] == chunked["histogram"]
        np.testing.assert_allclose(
            chunked["mean"], whole["mean"], rtol=1e-6, atol=1e-9
        )  # float32 rounding
        assert (whole["min"], whole["max"]) == (chunked["min"], chunked["max"])
    assert stats[0][0]["count"] == X.size


def test_an_output_too_large_to_hold_is_refused_before_any_work(tmp_path: Path) -> None:
    done = _mlpcli("run", "layers=[2, 4]", "batch=100000000", "-f", "json", cwd=tmp_path)
    assert done.returncode == 2
    assert "--output FILE.npy, .csv, .jsonl or .parquet" in done.stderr
    assert "--format json" in done.stderr


def test_the_chunk_comes_from_a_budget_for_files_and_the_config_decides() -> None:
    default = load(None)
    config = dataclasses.replace(default, layers=(64, 256, 256, 1), batch=10**8, inputs="x.npy")
    per_row = 8 * (2 * 256 + 2 * 64)
    for device, budget in (("cpu", memory.CPU_CHUNK_BYTES), ("cuda", memory.CHUNK_BYTES)):
        rows = memory.chunk_rows(dataclasses.replace(config, device=Device(device)))
        assert per_row * rows <= budget < per_row * (rows + 1)
    assert memory.chunk_rows(dataclasses.replace(config, device=Device("auto"))) == rows
    assert memory.chunk_rows(dataclasses.replace(config, chunk=7)) == 7
    drawn = dataclasses.replace(default, batch=1000)
    assert memory.chunk_rows(drawn) == 1000  # drawn features: all at once


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto is the CPU only without CUDA")
def test_auto_without_cuda_runs_as_cpu_does(tmp_path: Path) -> None:
    """`device: auto` on a machine without CUDA takes the CPU's chunk (it took a GPU's, four
    times the rows): the same bits as `device: cpu`, and the record says where it ran."""
    features_path = tmp_path / "features.npy"
    read = dataclasses.replace(load(None, ["layers=[64, 256, 256, 1]"]), inputs="x", batch=None)
    rows = memory.chunk_rows(read)  # the CPU's chunk of rows read from a file
    X = np.random.default_rng(1).standard_normal((3 * rows, 64), np.float32)
    np.save(features_path, X)
    outputs = {}
    for device in ("cpu", "auto"):
        out = tmp_path / f"{device}.npy"
        code, printed, err = invoke(
            "run", "layers=[64, 256, 256, 1]", f"inputs={features_path}", f"device={device}",
            "-o", str(out), "-f", "json",
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(printed)["config"]["device"] == "cpu"
        outputs[device] = out.read_bytes()
    assert outputs["auto"] == outputs["cpu"]


@pytest.mark.skipif(not host.no_gpu(), reason="auto is planned as the CPU where torch sees no GPU")
def test_auto_without_a_gpu_is_checked_before_the_run_as_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check before any work counts `auto`'s run on the CPU where torch can see no GPU, as
    `cpu`'s: it counted the draw alone, as for a GPU's run, and let through what cpu refuses."""
    needs = memory.host_bytes(load(None, ["device=cpu"]), on_cpu=True, streamed=True)
    monkeypatch.setattr(host, "available_ram", lambda: needs - 1)
    for device in ("cpu", "auto"):
        code, _, err = invoke("run", f"device={device}", "-f", "json")
        assert code == 3
        assert re.fullmatch(r"mlpcli: error: default: needs about .+ of memory, .+\n", err)


@pytest.mark.skipif(not host.no_gpu(), reason="auto is planned as the CPU where torch sees no GPU")
def test_shapes_plans_auto_as_the_run_takes_it() -> None:
    """`shapes` plans `auto` with the CPU's chunk where torch can see no GPU (a pipeline's rank
    0 planned a GPU's: 138.4 MiB of activations against the 90.4 MiB its run takes)."""
    plans = {}
    for device in ("cpu", "auto"):
        code, printed, err = invoke(
            "shapes", "layers=[64, 256, 256, 1]", "batch=300000", f"device={device}",
            "parallel=pipeline", "--nproc", "2", "-f", "json",
        )  # fmt: skip
        assert code == 0, err
        plans[device] = json.loads(printed)
    for plan in plans.values():
        del plan["parallel"]["device_memory"]  # the available memory, asked each time
    assert plans["auto"]["parallel"] == plans["cpu"]["parallel"]
    assert plans["auto"]["config"]["device"] == "cpu"


def test_torch_build_is_read_without_importing_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """What torch/version.py says of the build is torch.version's own; CUDA_VISIBLE_DEVICES
    set to none hides any GPU; a CUDA build leaves `auto` for the run to settle."""
    build = host._torch_build()
    assert build is not None
    assert (build["cuda"], build["hip"]) == (torch.version.cuda, torch.version.hip)
    fresh = (
        "import sys; from mlpcli.engine import host; host.no_gpu(); print('torch' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", fresh], capture_output=True, text=True).stdout
        == "False\n"
    )
    monkeypatch.setattr(host, "_torch_build", lambda: {"__version__": "9.9"})  # unread: a GPU
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert not host.no_gpu()
    auto = load(None, ["device=auto"])
    monkeypatch.setattr(host, "_torch_build", lambda: {"cuda": "12.8", "hip": None})
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert not host.no_gpu()
    assert host.settled(auto) == auto
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert host.settled(auto).device == Device("cpu")
    monkeypatch.setattr(host, "_torch_build", lambda: {"cuda": None, "hip": None})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert host.settled(auto).device == Device("cpu")
    assert host.settled(load(None, ["device=cuda"])).device == Device("cuda")


def _peak_rss_of_run(tmp_path: Path, name: str, piped: bool) -> int:
    """Peak RSS in bytes of one `mlpcli run` of `name` (a path, or piped to `inputs=-`) to an
    .npy, in a fresh interpreter."""
    inputs = "-" if piped else name
    stdin = f"stdin=open({name!r}, 'rb')" if piped else "stdin=subprocess.DEVNULL"
    script = (
        "import resource, subprocess, sys;"
        f"subprocess.run([sys.executable, '-m', 'mlpcli', 'run', 'layers=[64, 32, 1]', "
        f"'inputs={inputs}', '-o', 'o.npy', '-q'], check=True, {stdin});"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout) * 1024


@pytest.mark.slow
@pytest.mark.parametrize("piped", [False, True], ids=["file", "stdin"])
def test_memory_does_not_grow_with_the_file(tmp_path: Path, piped: bool) -> None:
    small = np.ones((1000, 64), dtype=np.float32)
    np.save(tmp_path / "small.npy", small)
    big = np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.float32, (1_600_000, 64))
    big[:] = 1.0  # 410 MB of features
    big.flush()
    del big
    floor = _peak_rss_of_run(tmp_path, "small.npy", piped)  # Python, torch and one chunk
    peak = _peak_rss_of_run(tmp_path, "big.npy", piped)
    size = os.path.getsize(tmp_path / "big.npy")
    # held whole, the features alone were 410 MB more; a chunk is at most CHUNK_BYTES
    assert peak - floor < memory.CHUNK_BYTES, (floor, peak, size)
    assert np.load(tmp_path / "o.npy", mmap_mode="r").shape == (1_600_000, 1)


def test_csv_on_stdout_chains_into_a_run_that_reads_stdin(tmp_path: Path) -> None:
    WRITERS["x.npy"](tmp_path / "x.npy")
    first = _mlpcli("run", LAYERS, "inputs=x.npy", "chunk=7", "-f", "csv", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "name,output_0,output_1,output_2"
    assert len(first.stdout.splitlines()) == 1 + ROWS
    chained = subprocess.run(
        f"{sys.executable} -m mlpcli run '{LAYERS}' inputs=x.npy chunk=7 -f csv"
        f" | {sys.executable} -m mlpcli run 'layers=[3, 2]' inputs=- -o piped.npy -q",
        shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert chained.returncode == 0, chained.stderr
    (tmp_path / "first.csv").write_text(first.stdout)
    by_file = _mlpcli(
        "run", "layers=[3, 2]", "inputs=first.csv", "-o", "file.npy", "-q", cwd=tmp_path
    )
    assert by_file.returncode == 0, by_file.stderr
    assert np.array_equal(np.load(tmp_path / "piped.npy"), np.load(tmp_path / "file.npy"))


@pytest.mark.parametrize(
    ("options", "holds"),
    [
        ({}, None),  # a table: a preview
        ({"format": Format.CSV}, None),  # printed as it is computed
        ({"format": Format.JSON}, "--format json"),
        ({"format": Format.JSON, "quiet": True}, None),
        ({"path": Path("o.npy")}, None),
        ({"path": Path("o.json")}, "--output .json"),
        ({"fields": ["output.0.0"]}, "--field"),
    ],
)
def test_what_makes_a_run_hold_its_whole_output(
    options: dict[str, object], holds: str | None
) -> None:
    assert run_command._holds(Output(**options), expect=False) == holds  # type: ignore[arg-type]


def test_a_reader_gone_from_stdout_still_gets_the_file_written(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((200_000, 4)))
    done = subprocess.run(
        f"{sys.executable} -m mlpcli run '{LAYERS}' inputs=x.npy chunk=1000 -f csv -o o.npy"
        " | head -2",
        shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines()[0] == "name,output_0,output_1,output_2"
    assert np.load(tmp_path / "o.npy").shape == (200_000, 3)


def test_a_file_that_changed_since_it_was_planned_is_an_error(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(
        MlpcliError,
        match=r"holds more than the 40 rows its header or a first count gave \(a corrupt file, or",
    ):
        list(features.chunks(str(tmp_path / "x.npy"), features.Reading(), 7, expected=40))
    with pytest.raises(
        MlpcliError, match=r"holds 53 rows, not the 60 rows its header or a first count gave"
    ):
        list(features.chunks(str(tmp_path / "x.npy"), features.Reading(), 7, expected=60))


def test_a_late_line_that_is_not_pandas_index_is_an_error(tmp_path: Path) -> None:
    frame = _pandas().DataFrame(np.ones((1500, 2)), columns=["a", "b"])
    frame.to_csv(tmp_path / "x.csv")  # the index, headed by nothing: 0..1499
    lines = (tmp_path / "x.csv").read_text().splitlines()
    lines[1201] = "label," + lines[1201].split(",", 1)[1]
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    done = _mlpcli("run", "layers=[2, 1]", "inputs=x.csv", cwd=tmp_path)
    assert done.returncode == 2
    assert "x.csv: line 1202, column 1: 'label' is not a whole number, but the column was read" in (
        done.stderr
    )


def test_feathers_first_version_is_read(tmp_path: Path) -> None:
    import pyarrow.feather

    _pandas()  # pyarrow writes feather's first version through pandas
    with warnings.catch_warnings():  # pyarrow 25 on deprecates writing it, not reading it
        warnings.simplefilter("ignore", DeprecationWarning)
        pyarrow.feather.write_feather(_frame(), tmp_path / "v1.feather", version=1)
    got = torch.cat(list(features.chunks(str(tmp_path / "v1.feather"), features.Reading(), 7)))
    assert np.array_equal(got.numpy(), X)


def test_a_line_longer_than_the_limit_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "MAX_LINE", 100)
    monkeypatch.setattr(lines, "PIECE", 16)
    text = b"1,2\n" + b"3," * 100 + b"4\n"
    with pytest.raises(MlpcliError, match=r"x\.csv: line 2 is longer than"):
        list(lines.numbered("x.csv", io.BytesIO(text)))


@pytest.mark.parametrize(
    "command",
    [
        ["bench", "-n", "1"],
        ["bench", "-n", "1", "chunk=7"],  # read in every pass
        ["compare", "--devices", "cpu,cpu"],
        ["draw", "--values"],
    ],
    ids=lambda c: "-".join(c[::3]),
)
def test_a_nan_is_located_at_inputs_in_every_command(command: list[str], tmp_path: Path) -> None:
    bad = X.copy()
    row = 30 if "chunk=7" in command else 0  # draw reads row 0 alone
    bad[row, 2] = np.nan
    np.save(tmp_path / "x.npy", bad)
    done = _mlpcli(command[0], LAYERS, "inputs=x.npy", *command[1:], cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        f"override 'inputs=x.npy': inputs: x.npy: row {row}, column 2: nan is not finite"
    )


@pytest.fixture
def chunk_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Each pass over a features file from here: the rows of each block it read."""
    reads: list[list[int]] = []
    chunks = features.chunks

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(sizes := [])
        for block in chunks(*args, **kwargs):
            sizes.append(len(block))
            yield block

    monkeypatch.setattr(features, "chunks", counted)
    return reads


def test_bench_reads_a_file_of_several_chunks_in_every_pass(
    tmp_path: Path, chunk_reads: list[list[int]]
) -> None:
    """bench holds no more of a file than run does: every pass, warm-up or timed, reads each
    row a chunk at a time (it held the whole file); a file of one chunk is read once, held.
    The result says which, as its table and JSON do."""
    from mlpcli.engine import runners

    np.save(tmp_path / "x.npy", X)
    reads = chunk_reads
    config = load(None, [LAYERS, f"inputs={tmp_path / 'x.npy'}", "chunk=7", "device=cpu"])
    result = runners.bench(config, warmup=1, repeat=2)
    assert (len(result.forward_ms), result.reads_features) == (2, True)
    assert reads == [[7] * 7 + [4]] * 3
    reads.clear()
    assert not runners.bench(
        dataclasses.replace(config, chunk=None), warmup=1, repeat=2
    ).reads_features
    assert len(reads) == 1
    args = (LAYERS, f"inputs={tmp_path / 'x.npy'}", "-n", "1", "--warmup", "0")
    said = {"chunk=7": "read from their file in every pass", "chunk=null": "read once, held"}
    for chunk, words in said.items():
        code, out, _ = invoke("bench", *args, chunk)
        assert code == 0
        assert re.search(rf"features +{words}", out)


class _Rank(Alone):
    """Rank `rank` of `size`, in this process: what a rank sends waits in `sent` for rank 0 to
    receive it (rank 0 runs last)."""

    def __init__(self, rank: int, size: int, sent: dict[int, list[torch.Tensor]]) -> None:
        self.rank, self.world_size, self.sent = rank, size, sent

    @property
    def distributed(self) -> bool:  # type: ignore[override]
        return True

    def send(self, tensor: torch.Tensor, to: int) -> None:
        assert to == 0
        self.sent.setdefault(self.rank, []).append(tensor.clone())

    def recv(self, out: torch.Tensor, source: int) -> torch.Tensor:
        return out.copy_(self.sent[source].pop(0))


@pytest.mark.parametrize(
    ("chunk", "rows"),
    [
        ("chunk=7", [range(0, 21), range(21, 42), range(42, 53)]),  # whole chunks a rank
        ("chunk=null", [range(0, 18), range(18, 36), range(36, 53)]),  # one chunk, split
    ],
)
def test_compare_over_data_ranks_goes_a_chunk_at_a_time(
    chunk: str, rows: list[range], tmp_path: Path, chunk_reads: list[list[int]]
) -> None:
    """compare over the ranks of a data run: each rank runs its own rows a chunk at a time, as
    its run does, and sends each chunk to rank 0, which compares it with its single process's
    chunks of those rows (it gathered every tensor whole, as float64); what a rank computed
    otherwise is named at its row of the whole batch."""
    from mlpcli.engine import comparisons
    from mlpcli.model.closeness import tolerance_for

    np.save(tmp_path / "x.npy", X)
    overrides = [LAYERS, f"inputs={tmp_path / 'x.npy'}", chunk, "parallel=data", "device=cpu"]
    config = load(None, overrides)
    tolerance = tolerance_for(config.dtype, None, None)
    sent: dict[int, list[torch.Tensor]] = {}
    for rank in (1, 2):
        assert comparisons.compare(config, tolerance, _Rank(rank, 3, sent)) is None
    step = 7 if chunk == "chunk=7" else 53
    chunked = [[min(step, r.stop - first) for first in range(r.start, r.stop, step)] for r in rows]
    assert chunk_reads == chunked[1:]  # each rank its own rows, once
    # features, W1, W2, B1, B2, h1 and output, then features, h1 and output a chunk
    assert [len(sent[rank]) for rank in (1, 2)] == [4 + 3 * len(c) for c in chunked[1:]]
    sent[2][-1][3, 1] += 1e-3  # the output of rank 2's 4th row in its last chunk
    chunk_reads.clear()
    result = comparisons.compare(config, tolerance, _Rank(0, 3, sent))
    assert result is not None
    assert sorted(chunk_reads) == sorted(
        [chunked[0], [step] * (53 // step) + [53 % step] * (53 % step > 0)]
    )
    assert result.devices == ("cpu", "cpu ×3 (data)")
    shapes = [("features", (53, 4)), ("W1", (4, 6)), ("W2", (6, 3)), ("B1", (1, 6))]
    shapes += [("B2", (1, 3)), ("h1", (53, 6)), ("output", (53, 3))]
    assert [(diff.name, diff.shape) for diff in result.diffs] == shapes
    gaps = {diff.name: diff.difference for diff in result.diffs}
    exact = ["features", "W1", "W2", "B1", "B2"] + (["h1"] if chunk == "chunk=7" else [])
    assert {name: gaps[name].max_abs for name in exact} == dict.fromkeys(exact, 0.0)
    assert gaps["h1"].within  # a GEMM of fewer rows rounds apart: within the rule
    last = chunked[2][-1]
    assert gaps["output"].worst == (53 - last + 3, 1)
    assert gaps["output"].max_abs == pytest.approx(1e-3, rel=1e-3)
    assert not result.within


class _Meeting(Alone):
    """Rank `rank` of `size` ranks run as threads of this process, whose every send waits
    until its receiver has taken it, as an NCCL send may: ranks that send to each other in
    orders that do not match wait for ever (here, until a 10 s limit fails the test)."""

    def __init__(
        self, rank: int, size: int, posts: dict[tuple[int, int], queue.Queue[Any]]
    ) -> None:
        self.rank, self.world_size, self.posts = rank, size, posts

    @property
    def distributed(self) -> bool:  # type: ignore[override]
        return True

    def send(self, tensor: torch.Tensor, to: int) -> None:
        taken = threading.Event()
        self.posts[self.rank, to].put((tensor.clone(), taken))
        assert taken.wait(10), f"rank {self.rank}'s send to rank {to} was never received"

    def recv(self, out: torch.Tensor, source: int) -> torch.Tensor:
        try:
            tensor, taken = self.posts[source, self.rank].get(timeout=10)
        except queue.Empty:
            raise AssertionError(f"rank {self.rank} waited for rank {source}") from None
        taken.set()
        assert tensor.shape == out.shape, (self.rank, source)
        return out.copy_(tensor)

    def gather(self, value: Any) -> list[Any] | None:  # type: ignore[override]
        if self.rank:
            self.posts[self.rank, 0].put((value, threading.Event()))
            return None
        others = (self.posts[rank, 0].get(timeout=10)[0] for rank in range(1, self.world_size))
        return [value, *others]


def _threads(world: int, work: Callable[[_Meeting], Any]) -> dict[int, Any]:
    """`work` on each rank of `world` meeting ranks, run as threads: what each returned."""
    posts: dict[tuple[int, int], queue.Queue[Any]] = {
        pair: queue.Queue() for pair in itertools.permutations(range(world), 2)
    }
    results: dict[int, Any] = {}

    def rank(number: int) -> None:
        results[number] = work(_Meeting(number, world, posts))

    threads = [threading.Thread(target=rank, args=(number,)) for number in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == list(range(world)), "a rank failed (its error is above)"
    return results


@pytest.mark.parametrize(
    ("world", "chunk"),
    [(2, 7), (3, 7), (4, 7), (4, 30)],  # 2 micro-batches, fewer than the ranks
)
def test_a_pipeline_streams_its_rows_through_rank_0(
    world: int, chunk: int, tmp_path: Path, chunk_reads: list[list[int]]
) -> None:
    """A pipeline's first stage reads the features a chunk at a time (the later stages none),
    and rank 0 takes the output a chunk at a time while it still sends micro-batches, to its
    sinks: the same bits as one process, holding neither whole; bench reads them so in every
    pass. Sends and receives match in order where a send waits for its receiver (two ranks:
    the pair 0, 1 carries both ways)."""
    from mlpcli.engine import runners

    np.save(tmp_path / "x.npy", X)
    layers = "layers=[4,6,5,4,3]"
    overrides = [layers, f"inputs={tmp_path / 'x.npy'}", f"chunk={chunk}", "threads=1"]
    config = load(None, [*overrides, "parallel=pipeline", "device=cpu"])
    alone = runners.run(config)
    blocks = [min(chunk, ROWS - first) for first in range(0, ROWS, chunk)]
    chunk_reads.clear()
    sunk: list[np.ndarray] = []

    def run(rank: _Meeting) -> Any:
        sinks = [sunk.append] if rank.rank == 0 else []
        return runners.run(config, rank, hold=False, sinks=sinks)

    results = _threads(world, run)
    assert chunk_reads == [blocks]  # rank 0's, once
    assert [len(rows) for rows in sunk] == blocks
    np.testing.assert_array_equal(np.concatenate(sunk), alone.whole)
    assert results[0].output is None
    assert results[0].parallel.world_size == world
    np.testing.assert_array_equal(results[0].preview.tail, alone.preview.tail)
    assert all(results[number] is None for number in range(1, world))
    chunk_reads.clear()
    _threads(world, lambda rank: runners.bench(config, warmup=1, repeat=2, world=rank))
    assert chunk_reads == [blocks] * 3  # rank 0's, every pass


@pytest.mark.parametrize("world", [2, 3])
def test_a_pipeline_of_a_weights_file_keeps_each_stages_layers(world: int, tmp_path: Path) -> None:
    """Each stage reads a weights file a layer at a time on the CPU and keeps its own layers
    (placed on its device): the same bits as one process."""
    from mlpcli.engine import runners

    rng = np.random.default_rng(5)
    sizes = [4, 6, 5, 3]
    tensors = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), 1):
        tensors[f"W{i}"] = rng.standard_normal((n_in, n_out), np.float32)
        tensors[f"B{i}"] = rng.standard_normal((1, n_out), np.float32)
    save_file(tensors, str(tmp_path / "w.safetensors"))
    np.save(tmp_path / "x.npy", X)
    overrides = [f"weights={tmp_path / 'w.safetensors'}", f"inputs={tmp_path / 'x.npy'}"]
    config = load(None, [*overrides, "chunk=7", "threads=1", "parallel=pipeline", "device=cpu"])
    alone = runners.run(config)
    results = _threads(world, lambda rank: runners.run(config, rank))
    np.testing.assert_array_equal(results[0].whole, alone.whole)


@pytest.mark.parametrize("world", [2, 3])
def test_compare_over_a_pipeline_goes_a_micro_batch_at_a_time(
    world: int, tmp_path: Path, chunk_reads: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """compare over a pipeline's ranks: the first stage reads the features a micro-batch at a
    time, each micro-batch passes through the ranks on its own, and rank 0 puts its tensors
    together from the ranks' pieces and compares them with one process's chunk of the same
    rows (read the same way): nothing held whole, the same bits, and a changed value named at
    its row of the whole batch."""
    from mlpcli.engine import comparisons
    from mlpcli.model.closeness import tolerance_for

    np.save(tmp_path / "x.npy", X)
    overrides = ["layers=[4,6,5,3]", f"inputs={tmp_path / 'x.npy'}", "chunk=7", "threads=1"]
    config = load(None, [*overrides, "parallel=pipeline", "device=cpu"])
    tolerance = tolerance_for(config.dtype, None, None)
    compared = lambda rank: comparisons.compare(config, tolerance, rank)  # noqa: E731
    results = _threads(world, compared)
    blocks = [min(7, ROWS - first) for first in range(0, ROWS, 7)]
    assert chunk_reads == [blocks, blocks]  # rank 0's: one process's, and the first stage's
    assert all(results[rank] is None for rank in range(1, world))
    result = results[0]
    assert result.devices == ("cpu", f"cpu ×{world} (pipeline)")
    names = ["features", "W1", "W2", "W3", "B1", "B2", "B3", "h1", "h2", "output"]
    assert [diff.name for diff in result.diffs] == names
    assert result.diffs[-1].shape == (ROWS, 3)
    assert {diff.difference.max_abs for diff in result.diffs} == {0.0}
    gather = _Meeting.gather

    def altered(self: _Meeting, value: Any) -> list[Any] | None:
        """Rank 0 receives the output of row 38 changed in its column 1."""
        gathered = gather(self, value)
        for name, (rows, _), values in [] if gathered is None else gathered[-1]:
            if name == "output" and 38 in rows:
                values[38 - rows.start, 1] += 1e-3
        return gathered

    monkeypatch.setattr(_Meeting, "gather", altered)
    gaps = {diff.name: diff.difference for diff in _threads(world, compared)[0].diffs}
    assert gaps["output"].worst == (38, 1)
    assert gaps["output"].max_abs == pytest.approx(1e-3, rel=1e-3)
    assert {gap.max_abs for name, gap in gaps.items() if name != "output"} == {0.0}


@pytest.mark.parametrize("world", [2, 3])
def test_a_data_run_brings_every_row_to_rank_0_in_order(
    world: int, tmp_path: Path, chunk_reads: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`in_order` (CSV on stdout over `data` ranks): each rank reads and runs only its own
    rows, the others keeping theirs in a temporary file until rank 0, past its own, takes them
    rank by rank: rank 0's sinks get every row in row order, a block at a time, one process's
    bits; each temporary file is closed (an unnamed one: gone) at the end."""
    from mlpcli.engine import runners, spool

    np.save(tmp_path / "x.npy", X)
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    kept: list[str] = []  # where each block was kept
    add = spool.Spool.add

    def keeping(self: spool.Spool, rows: np.ndarray) -> None:
        kept.append(os.readlink(f"/proc/self/fd/{self.file.fileno()}"))
        add(self, rows)

    monkeypatch.setattr(spool.Spool, "add", keeping)
    overrides = [LAYERS, f"inputs={tmp_path / 'x.npy'}", "chunk=7", "threads=1", "device=cpu"]
    config = load(None, [*overrides, "parallel=data"])
    alone = runners.run(config)
    chunk_reads.clear()
    sunk: list[np.ndarray] = []

    def run(rank: _Meeting) -> Any:
        sinks = [sunk.append] if rank.rank == 0 else []
        return runners.run(config, rank, hold=False, sinks=sinks, in_order=True)

    _threads(world, run)
    shares = (
        [range(0, 28), range(28, 53)]
        if world == 2
        else [range(0, 21), range(21, 42), range(42, 53)]
    )
    assert sorted(chunk_reads) == sorted(
        [min(7, r.stop - a) for a in range(r.start, r.stop, 7)] for r in shares
    )
    first = shares[0]
    received = [min(7, len(r) - a) for r in shares[1:] for a in range(0, len(r), 7)]
    assert [len(rows) for rows in sunk] == [7] * (len(first) // 7) + received
    np.testing.assert_array_equal(np.concatenate(sunk), alone.whole)
    assert len(kept) == sum(len(r) // 7 + (len(r) % 7 > 0) for r in shares[1:])
    assert all(link.startswith(str(folder)) for link in kept)
    assert not [link for link in _open_files() if link.startswith(str(folder))]


def _open_files() -> list[str]:
    """What each of this process's file descriptors points at."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own, gone
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return links


def test_a_spool_without_room_names_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rank's rows kept for rank 0 on a full disk (/dev/full, whose writes fail so): one
    line naming the rank, the folder and what to do (exit 3)."""
    from mlpcli.engine import spool
    from mlpcli.errors import UnavailableError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with (
        spool.spooled(1, 3, np.dtype(np.float32)) as kept,
        open("/dev/full", "wb", buffering=0) as full,
    ):
        kept.file = full
        with pytest.raises(UnavailableError) as raised:
            kept.add(np.zeros((2, 3), np.float32))
    assert str(raised.value) == (
        f"rank 1: cannot keep its output rows in {tmp_path} until rank 0 takes them (No space "
        "left on device); set TMPDIR to a folder with room for them"
    )
    assert raised.value.exit_code == 3


@pytest.mark.slow
@pytest.mark.parametrize("chunk", ["chunk=7", "chunk=null"])
def test_compare_over_the_ranks_of_a_data_run_of_a_file(chunk: str, tmp_path: Path) -> None:
    """Two real ranks: bit for bit with whole chunks a rank; one chunk split evenly is within
    tolerance, and the gap is the run's own (the features and weights still equal)."""
    np.save(tmp_path / "x.npy", X)
    args = ("compare", LAYERS, "inputs=x.npy", "parallel=data", chunk, "--devices", "cpu")
    done = _mlpcli(*args, "--nproc", "2", "-f", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["devices"], result["within"]) == (["cpu", "cpu ×2 (data)"], True)
    assert result["config"]["chunk"] == (7 if chunk == "chunk=7" else None)  # the run's
    gaps = {t["name"]: (t["shape"], t["max_abs"]) for t in result["tensors"]}
    assert gaps["features"] == ([53, 4], 0.0)
    assert gaps["W1"] == ([4, 6], 0.0)
    assert gaps["output"][0] == [53, 3]
    if chunk == "chunk=7":
        assert {gap for _, gap in gaps.values()} == {0.0}


def test_chunks_of_two_runs_are_aligned_by_row() -> None:
    """A rank's chunks (3 rows) against one process's (4 rows), in pieces of at most 2: every
    row once, each piece the same rows of both."""
    from mlpcli.engine.comparisons import _aligned

    values = torch.arange(11.0)[:, None]

    def chunks(size: int) -> Iterator[dict[str, torch.Tensor]]:
        for start in range(0, 11, size):
            rows = values[start : start + size]
            yield {"features": rows, "output": -rows}

    pieces = list(_aligned(chunks(3), chunks(4), 2))
    got_rows = [got["features"][:, 0].tolist() for got, _ in pieces]
    assert got_rows == [[0, 1], [2], [3], [4, 5], [6, 7], [8], [9, 10]]
    for got, expected in pieces:
        assert all(torch.equal(got[name], expected[name]) for name in got)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt2", ".onnx"])
def test_export_verify_reads_a_file_a_chunk_at_a_time(
    suffix: str, tmp_path: Path, chunk_reads: list[list[int]]
) -> None:
    """--verify runs the exported file's runtime on each chunk of the features as run reads
    them (it held them whole); without --verify no feature is read."""
    if suffix == ".onnx":
        pytest.importorskip("onnxruntime")
    from mlpcli.engine import exports
    from mlpcli.model.closeness import tolerance_for

    np.save(tmp_path / "x.npy", X)
    config = load(None, [LAYERS, f"inputs={tmp_path / 'x.npy'}", "chunk=7", "device=cpu"])
    _, found = exports.export(config, suffix, tolerance_for(config.dtype, None, None))
    assert found is not None
    assert found.within
    assert found.max_abs < 1e-6
    assert chunk_reads == [[7] * 7 + [4]]
    chunk_reads.clear()
    assert exports.export(config, suffix, None)[1] is None
    assert chunk_reads == []


def test_export_reads_features_only_to_verify(tmp_path: Path) -> None:
    bad = X.copy()
    bad[30, 2] = np.nan
    np.save(tmp_path / "x.npy", bad)
    args = ("export", LAYERS, "inputs=x.npy", "chunk=7", "-o", "m.safetensors")
    done = _mlpcli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / "m.safetensors").unlink()
    done = _mlpcli(*args, "--verify", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("inputs: x.npy: row 30, column 2: nan is not finite")
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.slow
def test_bench_over_ranks_reads_each_ranks_rows_of_a_file(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", X)
    args = ("bench", LAYERS, "inputs=x.npy", "parallel=data", "chunk=7", "-n", "2", "-f", "json")
    done = _mlpcli(*args, "--nproc", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["parallel"] == {"mode": "data", "world_size": 2, "backend": "gloo"}
    assert len(result["forward_ms"]["all"]) == 2
    assert [rank["rank"] for rank in result["ranks"]] == [0, 1]


def test_json_lines_name_the_first_records_line(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('\n\n{"a": 1, "b": 2}\n{"a": 3, "c": 4}\n')
    done = _mlpcli("run", "layers=[2, 1]", "inputs=x.jsonl", cwd=tmp_path)
    assert done.returncode == 2
    assert "x.jsonl: line 4: a record with other keys than line 3's" in done.stderr


@pytest.mark.parametrize("name", WRITERS)
def test_a_share_of_rows_is_read_alone(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    if name == "x.parquet":  # row groups of 10 rows: some passed over, one cut
        _parquet(path, row_group_size=10)
    else:
        WRITERS[name](path)
    whole = features.read(str(path))
    for rows in (range(0, 53), range(23, 41), range(50, 53), range(7, 8)):
        got = features.read(str(path), features.Reading(), rows)
        assert torch.equal(got, whole[rows.start : rows.stop])


def test_parquet_record_batches_smaller_than_a_chunk_are_joined_into_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow holds more for a larger batch, so a chunk is read in batches of BATCH_ROWS."""
    path = tmp_path / "x.parquet"
    _parquet(path, row_group_size=10)
    monkeypatch.setattr(arrowtables, "BATCH_ROWS", 3)
    blocks = list(features.chunks(str(path), features.Reading(), 7, first=2))
    assert [len(block) for block in blocks] == [7] * 7 + [2]
    assert np.array_equal(torch.cat(blocks).numpy(), X[2:])


def test_parquet_chunks_smaller_than_a_batch_are_cut_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk of a few rows is cut from record batches of BATCH_BYTES: a batch of 7 rows cost
    340 us more than its numbers (50,000 rows at chunk=7: 10.9 s, 2.8 s now)."""
    path = tmp_path / "x.parquet"
    _parquet(path, row_group_size=20)
    monkeypatch.setattr(arrowtables, "BATCH_BYTES", 6 * 4 * 8)  # 6 rows of 4 float64s
    read = arrowtables._Batches.batches
    seen: list[int] = []

    def batches(self: Any, names: list[str], rows: int, first: int) -> Iterator[Any]:
        for batch in read(self, names, rows, first):
            seen.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(arrowtables._Batches, "batches", batches)
    blocks = list(features.chunks(str(path), features.Reading(), 2, first=3))
    assert [len(block) for block in blocks] == [2] * 25
    assert max(seen) == 6
    assert np.array_equal(torch.cat(blocks).numpy(), X[3:])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "out", "chunk"),
    [
        ("x.npy", "o.npy", "chunk=7"),  # rank 1's rows start at row 28, a chunk's first
        ("x.csv", "o.npy", "chunk=7"),
        ("x.parquet", "o.npy", "chunk=7"),
        ("x.npy", "o.csv", "chunk=7"),
        ("x.npy", "o.jsonl", "chunk=7"),
        ("x.npy", "o.parquet", "chunk=7"),
        ("x.csv", "o.csv", "chunk=null"),  # a batch of one chunk: split evenly (below)
    ],
)
def test_ranks_of_a_data_run_read_and_write_their_own_rows(
    name: str, out: str, chunk: str, tmp_path: Path
) -> None:
    """Each rank streams its own rows into its part of the output (the .npy's region, a part
    file appended by rank 0): the file is byte for byte one process's, nothing else is left."""
    WRITERS[name](tmp_path / name)
    args = ("run", LAYERS, f"inputs={name}", "parallel=data", chunk, "-q")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = _mlpcli(*args, "-o", f"one/{out}", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = _mlpcli(*args, "--nproc", "2", "-o", f"two/{out}", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert set(two.stderr.splitlines()) <= set(one.stderr.splitlines())  # notes said once
    if chunk == "chunk=null":  # each rank a GEMM of half the rows: within float rounding only
        # (bit for bit on one host; 3 of 159 values 1 ulp apart on an AVX-512 one: docs/contract.md)
        import pandas as pd

        halves, whole = (pd.read_csv(tmp_path / where / out) for where in ("two", "one"))
        assert list(halves.columns) == list(whole.columns)
        from mlpcli.model.closeness import difference, tolerance_for

        rule = tolerance_for(DType.FLOAT32, None, None)  # docs/contract.md section 3
        assert difference(halves.iloc[:, 1:].to_numpy(), whole.iloc[:, 1:].to_numpy(), rule).within
    else:
        assert (tmp_path / "two" / out).read_bytes() == (tmp_path / "one" / out).read_bytes()
    assert [p.name for p in (tmp_path / "two").iterdir()] == [out]


@pytest.mark.slow
@pytest.mark.parametrize("golden", ["gold.npy", "gold.csv"])
def test_ranks_of_a_data_run_compare_their_own_rows_with_expect(
    golden: str, tmp_path: Path
) -> None:
    """`--expect` over the ranks of a `data` run: each rank compares its own rows as it
    computes them (nothing is gathered), and the worst element is named as one process
    names it."""
    WRITERS["x.npy"](tmp_path / "x.npy")
    args = ("run", LAYERS, "inputs=x.npy", "parallel=data", "chunk=7", "-q")
    assert _mlpcli(*args, "-o", golden, cwd=tmp_path).returncode == 0
    two = _mlpcli(*args, "--nproc", "2", "-o", "o.npy", "--expect", golden, cwd=tmp_path)
    assert (two.returncode, two.stderr) == (0, f"mlpcli: note: every output matches {golden}\n")
    output = np.load(tmp_path / "o.npy")
    output[40, 2] += 1e-3  # in rank 1's rows (from row 28)
    output[3, 0] += 5e-4  # less far out, in rank 0's
    changed = f"changed{Path(golden).suffix}"
    np.save(tmp_path / "changed.npy", output)
    if golden.endswith(".csv"):
        header = "name," + ",".join(f"output_{j}" for j in range(3))
        lines = [",".join(["default", *map(repr, row)]) for row in output.tolist()]
        (tmp_path / changed).write_text("\n".join([header, *lines]) + "\n")
    one = _mlpcli(*args, "--expect", changed, cwd=tmp_path)
    two = _mlpcli(*args, "--nproc", "2", "--expect", changed, cwd=tmp_path)
    assert one.returncode == two.returncode == 1
    said = one.stderr.splitlines()[-1]  # after the note on `data` in one process
    assert said.startswith(f"mlpcli: error: default: output differs from {changed} at row 40, ")
    assert two.stderr == said + "\n"
    held = _mlpcli(*args, "--nproc", "2", "-f", "json", "--expect", changed, cwd=tmp_path)
    assert (held.returncode, held.stderr) == (1, two.stderr)  # gathered for JSON: compared whole


@pytest.mark.slow
def test_the_statistics_of_a_data_run_over_ranks_are_one_processs(tmp_path: Path) -> None:
    WRITERS["x.npy"](tmp_path / "x.npy")
    args = ("run", LAYERS, "inputs=x.npy", "parallel=data", "chunk=7", "activation=[tanh, sigmoid]")
    one = _mlpcli(*args, "--stats", "-f", "json", cwd=tmp_path)
    two = _mlpcli(*args, "--stats", "-f", "json", "--nproc", "2", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    alone, shared = json.loads(one.stdout)["stats"], json.loads(two.stdout)["stats"]
    assert [s["name"] for s in shared] == ["features", "h1", "output"]
    for got, expected in zip(shared, alone, strict=True):
        for exact in ("count", "min", "max", "zeros", "saturated", "nan", "inf", "histogram_range"):
            assert got[exact] == expected[exact], (got["name"], exact)
        assert got["mean"] == pytest.approx(expected["mean"], rel=1e-12, abs=1e-15)
        assert got["std"] == pytest.approx(expected["std"], rel=1e-12)
        if got["name"] != "features":  # tanh and sigmoid: one range, the same bins
            assert got["histogram"] == expected["histogram"]


@pytest.mark.slow
def test_a_bad_row_in_a_later_ranks_share_leaves_no_output(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i + 1}\n" for i in range(40))
    (tmp_path / "x.csv").write_text(f"a,b\n{rows}1,x\n")  # in rank 1's rows
    (tmp_path / "o.csv").write_text("kept\n")
    args = ("run", "layers=[2, 1]", "inputs=x.csv", "parallel=data", "chunk=7", "--nproc", "2")
    done = _mlpcli(*args, "-o", "o.csv", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.endswith("x.csv: line 42, column 2: 'x' is not a number\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.csv", "x.csv"]
    assert (tmp_path / "o.csv").read_text() == "kept\n"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["data", "pipeline", "tensor"])
def test_a_run_over_ranks_writes_and_prints_in_order_through_rank_0(
    mode: str, tmp_path: Path
) -> None:
    """One network over two ranks printing CSV: rank 0 writes the output file, prints CSV and
    compares `--expect` a block of rows at a time in row order, as one process does (`data`
    rank 1's rows spooled until rank 0 takes them; a pipeline's micro-batches; data and
    pipeline bit for bit, tensor's all-reduce within rounding); a bad cell (in rank 1's rows)
    is named as one process names it, before any rank runs (the pass that counts the lines
    finds it), and leaves the old output. (A rank that dies mid-run: test_parallel.py.)"""
    WRITERS["x.csv"](tmp_path / "x.csv")
    args = ("run", LAYERS, "inputs=x.csv", f"parallel={mode}", "chunk=7")
    one = _mlpcli(*args, "-o", "one.npy", "-f", "csv", cwd=tmp_path)
    two = _mlpcli(*args, "--nproc", "2", "-o", "two.npy", "-f", "csv", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert set(two.stderr.splitlines()) < set(one.stderr.splitlines())  # less the note on one
    got, expected = np.load(tmp_path / "two.npy"), np.load(tmp_path / "one.npy")
    printed = np.loadtxt(io.StringIO(two.stdout), delimiter=",", skiprows=1, usecols=(1, 2, 3))
    if mode != "tensor":
        assert (got.tobytes(), two.stdout) == (expected.tobytes(), one.stdout)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(printed, got)
    changed = expected.copy()
    changed[40, 2] += 1e-3  # a later micro-batch's
    np.save(tmp_path / "changed.npy", changed)
    checked = _mlpcli(*args, "--nproc", "2", "--expect", "changed.npy", "-f", "csv", cwd=tmp_path)
    assert checked.returncode == 1
    assert checked.stderr.splitlines()[-1].startswith(  # after the note on x.csv's header
        "mlpcli: error: default: output differs from changed.npy at row 40, column 2: "
    )
    lines = (tmp_path / "x.csv").read_text().splitlines()
    lines[45] = lines[45].replace(lines[45].split(",")[1], "x", 1)
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    bad = _mlpcli(*args, "--nproc", "2", "-o", "two.npy", "-q", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.endswith("x.csv: line 46, column 2: 'x' is not a number\n")
    assert np.load(tmp_path / "two.npy").tobytes() == got.tobytes()  # the old one, kept
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "changed.npy",
        "one.npy",
        "two.npy",
        "x.csv",
    ]


def test_what_stdin_and_late_blocks_say(tmp_path: Path) -> None:
    save_file({"features": X}, str(tmp_path / "x.safetensors"))
    with (tmp_path / "x.safetensors").open("rb") as piped:
        done = subprocess.run(
            [sys.executable, "-m", "mlpcli", "run", LAYERS, "inputs=-"],
            stdin=piped, capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.endswith(
        "<stdin>: looks like .safetensors, which is read from a file; give its path\n"
    )
    (tmp_path / "h.csv").write_text("# written by hand\na,b\n1,2\n")
    noted = _mlpcli("run", "layers=[2, 1]", "inputs=h.csv", "-q", cwd=tmp_path)
    assert noted.stderr == "mlpcli: note: h.csv: line 2 read as column names (a, b)\n"
    (tmp_path / "t.csv").write_text("1,2\n" * 2000 + "3,x\n")  # past the lines read up front
    late = _mlpcli(
        "run", "layers=[2, 1]", "inputs=t.csv", "chunk=100", "-o", "o.parquet", cwd=tmp_path
    )
    assert late.returncode == 2
    assert late.stderr.splitlines() == [  # no word of labels, nor pyarrow's of a closed file
        "mlpcli: error: override 'inputs=t.csv': inputs: t.csv: "
        "line 2001, column 2: 'x' is not a number"
    ]


@pytest.mark.parametrize("out", ["o.json", "o.safetensors", "o.npy"])
def test_a_reader_gone_at_once_still_gets_every_file_written(out: str, tmp_path: Path) -> None:
    done = subprocess.run(
        f"{sys.executable} -m mlpcli run 'layers=[3, 2, 1]' batch=100 -f csv -o {out}"
        " | (exec 0<&-; sleep 2)",
        shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert (tmp_path / out).stat().st_size > 0


def test_a_full_stdout_is_said_as_stdouts_failure(tmp_path: Path) -> None:
    with Path("/dev/full").open("w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "mlpcli", "run", "batch=10", "-f", "csv", "-o", "o.npy"],
            stdout=full, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr == "mlpcli: error: cannot write the results: No space left on device\n"
    assert list(tmp_path.iterdir()) == []


def test_a_rank_with_no_rows_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("a,b\n1,2\n")
    args = ("run", "--nproc", "2", "parallel=data", "inputs=one.csv", "layers=[2, 1]", "-f", "csv")
    done = _mlpcli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2
    assert features.read(str(tmp_path / "one.csv"), features.Reading(), range(1, 1)).shape == (0, 2)
    for out in ("o.csv", "o.npy"):  # rank 1 writes no rows of either
        written = _mlpcli(*args[:-2], "-o", out, "-q", cwd=tmp_path)
        assert written.returncode == 0, written.stderr
        _mlpcli("run", *args[3:-2], "-o", f"alone{out}", "-q", cwd=tmp_path)
        assert (tmp_path / out).read_bytes() == (tmp_path / f"alone{out}").read_bytes()


def test_a_later_json_lines_block_says_its_cell(tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_text('{"a": 0}\n{"a": 1}\n{"a": "q"}\n')
    done = _mlpcli("run", "layers=[1, 1]", "inputs=q.jsonl", "chunk=1", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.endswith("q.jsonl: line 3, column 'a': \"q\" is not a number\n")


def test_a_whole_read_is_cast_block_by_block(tmp_path: Path) -> None:
    WRITERS["x.csv"](tmp_path / "x.csv")  # float64 as read: the whole cast at once, as before
    whole = features.read(str(tmp_path / "x.csv"))
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        got = features.read(str(tmp_path / "x.csv"), features.Reading(), None, dtype)
        assert got.dtype == dtype
        assert torch.equal(got, whole.to(dtype))


def test_pandas_metadata_that_is_no_list_of_columns_leaves_every_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    odd = {b"pandas": json.dumps({"index_columns": 5, "columns": []}).encode()}
    pq.write_table(table.replace_schema_metadata(odd), tmp_path / "odd.parquet")
    got = features.read(str(tmp_path / "odd.parquet"))
    assert got.tolist() == [[1.0, 3.0], [2.0, 4.0]]


def test_a_chunk_reaches_its_sinks_a_block_of_values_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chunk's rows go to the sinks (stdout, a file) a block of at most SINK_VALUES values
    at a time, in order: formatting 30,000,000 rows in one C call held Ctrl-C for 12 s and
    4 GB; between blocks a signal is heard."""
    from mlpcli.engine import runners
    from mlpcli.loading.loader import load

    monkeypatch.setattr(runners, "SINK_VALUES", 1000)
    blocks: list[np.ndarray] = []
    result = runners.run(
        load(None, ["layers=[3,4,2]", "batch=4500"]), hold=True, sinks=[blocks.append]
    )
    assert [len(block) for block in blocks] == [500] * 9  # 1,000 values of rows of 2
    np.testing.assert_array_equal(np.concatenate(blocks), result.whole)


TRICKY = [
    "0.1", "1e-310", "123456789012345678901234567890", "-0", "+1.5", " 2.5 ", "1.", "  .5",
    "1E5", '"3"', "4.9406564584124654e-324", "1.7976931348623157e308", "0.30000000000000004",
]  # fmt: skip


def test_pyarrow_and_numpy_read_a_block_of_numbers_to_the_same_bits() -> None:
    """Where pyarrow is installed it reads a block of CSV numbers (NumPy's `loadtxt` where it
    is not, or where pyarrow reads no numbers): the same float64 bits, each number rounded
    correctly; what is not a finite number is left to the cell-by-cell reading either way."""
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(9)
    rows = [TRICKY, TRICKY[::-1]] + [
        [repr(v) for v in (rng.standard_normal(13) * 1e3).tolist()]
    ] * 5000
    layout = lines.TextLayout("t.csv", ",", len(TRICKY), None, tuple(range(len(TRICKY))), False)
    block = [(n, ",".join(row)) for n, row in enumerate(rows, 1)]
    by_arrow = lines._by_arrow(layout, block)
    assert by_arrow is not None
    by_numpy = np.loadtxt([text for _, text in block], delimiter=",", quotechar='"', ndmin=2)
    assert by_arrow.tobytes() == by_numpy.tobytes()
    for bad in ("x", "", "nan", "1,2"):  # a word, a blank cell, NaN, a ragged row
        broken = [*block[:3], (4, ",".join([bad, *TRICKY[1:]]))]
        assert lines.numeric_block(layout, broken) is None  # said cell by cell
    spaced = dataclasses.replace(layout, delimiter=None)
    assert lines._by_arrow(spaced, [(1, " ".join(TRICKY[:3]))]) is None  # NumPy's


def test_a_csv_reads_the_same_without_pyarrow(tmp_path: Path) -> None:
    WRITERS["x.csv"](tmp_path / "x.csv")
    hidden = "import sys; sys.modules['pyarrow'] = None; from mlpcli.cli import main; main()"
    args = [sys.executable, "-c", hidden, "run", LAYERS, "inputs=x.csv", "chunk=7", "-q"]
    done = subprocess.run(
        [*args, "-o", "without.npy"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    with_it = _mlpcli(
        "run", LAYERS, "inputs=x.csv", "chunk=7", "-q", "-o", "with.npy", cwd=tmp_path
    )
    assert with_it.returncode == 0, with_it.stderr
    assert (tmp_path / "without.npy").read_bytes() == (tmp_path / "with.npy").read_bytes()


@pytest.mark.parametrize("name", ["x.parquet", "x.feather", "x.csv"])
def test_a_run_through_pyarrow_does_not_import_pandas(name: str, tmp_path: Path) -> None:
    """pyarrow's `to_numpy` imports pandas (about 65 MB of a run's peak); mlpcli reads each
    column's buffer instead."""
    pytest.importorskip("pyarrow")
    WRITERS[name](tmp_path / name)
    code = (
        "import sys; from mlpcli.cli import run_app; code = run_app(sys.argv[1:]); "
        "print('pandas' in sys.modules, file=sys.stderr); sys.exit(code)"
    )
    args = [sys.executable, "-c", code, "run", LAYERS, f"inputs={name}", "chunk=7", "-q"]
    done = subprocess.run(
        [*args, "-o", "out.npy"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stderr.splitlines()[-1]) == (0, "False"), done.stderr
    np.save(tmp_path / "x.npy", X)
    done = _mlpcli("run", LAYERS, "inputs=x.npy", "chunk=7", "-q", "-o", "x.out.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.npy").read_bytes() == (tmp_path / "x.out.npy").read_bytes()


@pytest.mark.parametrize(
    "kind", ["int8", "int16", "int32", "int64", "uint8", "uint64", "float16", "float32", "float64"]
)
def test_an_arrow_column_reads_as_numpy_reads_it(kind: str) -> None:
    """`arrowtables.numbers`, each integer and float type, whole and sliced (an offset)."""
    pa = pytest.importorskip("pyarrow")
    values = (np.arange(-50, 50) * 3 % 251).astype(kind)
    array = pa.array(values)
    for part, expected in ((array, values), (array.slice(37, 21), values[37:58])):
        got = arrowtables.numbers(part)
        assert got.dtype == expected.dtype
        assert got.tobytes() == expected.tobytes()


def test_a_byte_order_mark_inside_a_block_is_no_number_either_way() -> None:
    """pyarrow passes over a byte-order mark at the start of each piece it is given; one on a
    later line (files joined with `cat`) is left to NumPy and the cell-by-cell reading."""
    layout = lines.TextLayout("t.csv", ",", 2, None, (0, 1), False)
    block = [(n, "1,2") for n in range(1, lines.ARROW_LINES + 1)]
    block.append((lines.ARROW_LINES + 1, "\ufeff3,4"))  # the first line of a piece
    assert lines._by_arrow(layout, block) is None
    assert lines.numeric_block(layout, block) is None
