"""Standard input read once, as it comes: `run` of one network whose output nothing holds whole
reads a .npy, a text table or JSON Lines from the pipe, never copied, its rows counted as they
are read; the same answer as the file's path gives, bit for bit with the same chunk. What holds
its output whole, or reads its features again, reads a copy of it (docs/contract.md)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlpcli.data import features, lines
from mlpcli.errors import MlpcliError, UnavailableError
from mlpcli.loading.loader import load
from tests.test_streaming import LAYERS, ROWS, WRITERS, X

READ = features.Reading()

STREAMED = ["x.npy", "x.csv", "index.csv", "x.tsv", "x.txt", "x.jsonl"]  # from the pipe
COPIED = ["x.parquet", "x.feather", "x.json"]  # read from a copy, as before
RUN = [sys.executable, "-m", "mlpcli", "run", LAYERS, "chunk=7"]


def _run(tmp_path: Path, *args: str, piped: str | None = None) -> subprocess.CompletedProcess[str]:
    """`mlpcli run LAYERS chunk=7 ARGS`, with the file `piped` on standard input."""
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context((tmp_path / piped).open("rb")) if piped else subprocess.DEVNULL
        return subprocess.run(
            [*RUN, *args], stdin=stdin, capture_output=True, text=True, cwd=tmp_path, timeout=120
        )


@pytest.mark.slow
@pytest.mark.parametrize("name", STREAMED + COPIED)
def test_a_piped_file_runs_as_its_path_does(name: str, tmp_path: Path) -> None:
    """The same output bits, the same CSV, the batch counted, and an .npy whose header written
    before the rows were counted reads as NumPy's own."""
    WRITERS[name](tmp_path / name)
    by_path = _run(tmp_path, f"inputs={name}", "-f", "csv", "-o", "path.npy")
    piped = _run(tmp_path, "inputs=-", "-f", "csv", "-o", "piped.npy", piped=name)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == by_path.stdout
    output = np.load(tmp_path / "piped.npy")
    assert output.shape == (ROWS, 3)
    assert output.tobytes() == np.load(tmp_path / "path.npy").tobytes()
    record = json.loads(_run(tmp_path, "inputs=-", "-f", "json", piped=name).stdout)
    assert record["config"]["batch"] == ROWS
    assert [t["shape"] for t in record["tensors"] if t["name"] in ("features", "h1")] == [
        [ROWS, 4],
        [ROWS, 6],
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["x.jsonl", "x.json", "x.csv"])
def test_a_piped_file_that_starts_with_a_bom_runs_as_its_path_does(
    name: str, tmp_path: Path
) -> None:
    """A UTF-8 byte-order mark (Windows' editors and PowerShell write one) is passed over on
    standard input as in a file: JSON was taken for CSV, a JSON document for .safetensors."""
    WRITERS[name](tmp_path / name)
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + (tmp_path / name).read_bytes())
    by_path = _run(tmp_path, f"inputs={name}", "-f", "csv")
    piped = _run(tmp_path, "inputs=-", "-f", "csv", piped=name)
    assert by_path.returncode == 0, by_path.stderr
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == by_path.stdout


MANY = np.random.default_rng(4).standard_normal((3000, 4)).astype(np.float32)
FEEDS = {  # 3,000 rows: more than the first lines a text table's layout is found from
    "x.npy": lambda path: np.save(path, MANY),
    "x.csv": lambda path: np.savetxt(path, MANY, delimiter=",", fmt="%.9g"),
    "x.jsonl": lambda path: path.write_text("".join(json.dumps(r) + "\n" for r in MANY.tolist())),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", FEEDS)
def test_rows_are_run_while_more_are_piped_in(name: str, tmp_path: Path) -> None:
    """The first chunks' output comes before the pipe closes (a copy first waited for its
    end), and the rest once it does: as the file's path gives it."""
    FEEDS[name](tmp_path / name)
    data = (tmp_path / name).read_bytes()
    run = subprocess.Popen(
        [*RUN, "inputs=-", "-f", "csv"], bufsize=0,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    assert run.stdin is not None
    assert run.stdout is not None
    cut = len(data) * 2 // 3  # 2,000 rows
    try:
        run.stdin.write(data[:cut])
        first = _read_within(run.stdout.fileno(), 3, timeout=60)
        assert first.count(b"\n") >= 3, first  # the heading and two rows, at least
        rest, errors = run.communicate(data[cut:], timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, errors
    assert (first + rest).decode() == _run(tmp_path, f"inputs={name}", "-f", "csv").stdout


def _read_within(descriptor: int, lines: int, timeout: float) -> bytes:
    """What a pipe gives until it has given `lines` lines, or `timeout` seconds have passed."""
    data = b""
    until = time.monotonic() + timeout
    while data.count(b"\n") < lines and (left := until - time.monotonic()) > 0:
        if select.select([descriptor], [], [], left)[0]:
            if not (piece := os.read(descriptor, 1 << 16)):
                break
            data += piece
    return data


@pytest.mark.slow
def test_an_endless_pipe_runs_until_its_reader_goes(tmp_path: Path) -> None:
    """`yes 1,2,3,4 | mlpcli run inputs=- -f csv | head`: rows run as they come, and the
    run ends once its reader has gone (a copy first read until the disk was full)."""
    done = subprocess.run(
        f"yes 1,2,3,4 | {' '.join(RUN[:3])} run '{LAYERS}' chunk=1000 inputs=- -f csv | head -3",
        shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "name,output_0,output_1,output_2"
    assert len(done.stdout.splitlines()) == 3


@pytest.mark.slow
def test_a_bad_row_far_down_the_pipe_is_named_and_writes_nothing(tmp_path: Path) -> None:
    """Named at its line and column as in the file, no output written, an old one kept."""
    (tmp_path / "bad.csv").write_text("a,b,c,d\n" + "1,2,3,4\n" * 5000 + "1,2,x,4\n" + "1,2,3,4\n")
    (tmp_path / "out.npy").write_bytes(b"kept")
    done = _run(tmp_path, "inputs=-", "-o", "out.npy", "-q", piped="bad.csv")
    assert done.returncode == 2
    by_path = _run(tmp_path, "inputs=bad.csv", "-o", "out.npy", "-q")
    assert done.stderr == by_path.stderr.replace("bad.csv", "<stdin>").replace(
        "'inputs=<stdin>'", "'inputs=-'"
    )
    assert done.stderr.splitlines()[-1].endswith("line 5002, column 3: 'x' is not a number")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.npy"]
    assert (tmp_path / "out.npy").read_bytes() == b"kept"


@pytest.mark.slow
def test_a_pipe_of_a_header_alone_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [*RUN, "inputs=-", "-o", "o.npy"], input=b"a,b,c,d\n" + b"\n" * 3000,
        capture_output=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.decode().rstrip().endswith("<stdin>: holds a header and no rows of features")
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.slow
def test_a_piped_npy_that_ends_early_or_runs_on_is_named(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", X)
    data = (tmp_path / "x.npy").read_bytes()
    row = X.shape[1] * X.itemsize
    short = subprocess.run(
        [*RUN, "inputs=-", "-q"], input=data[: -row - 1], capture_output=True, timeout=120
    )
    assert short.returncode == 2
    assert (
        short.stderr.decode()
        .rstrip()
        .endswith(f"<stdin>: truncated: its header says {ROWS} rows; it ended after {ROWS - 2}")
    )
    long = subprocess.run(
        [*RUN, "inputs=-", "-q"], input=data + b"\0" * row, capture_output=True, timeout=120
    )
    assert long.returncode == 2
    assert (
        long.stderr.decode()
        .rstrip()
        .endswith(f"<stdin>: corrupt: more bytes follow the {ROWS} rows its header says")
    )


def test_a_piped_zip_is_named_stdin_and_a_torch_file_as_such(tmp_path: Path) -> None:
    """A piped .npz (copied to a file first) that is cut short names `<stdin>` (it named its
    copy, /dev/fd/N), and torch.save's zip is said to be one (it was read as a .npz)."""
    import torch

    np.savez(tmp_path / "x.npz", features=X)
    torch.save(torch.from_numpy(X), tmp_path / "x.pt")
    cut = subprocess.run(
        [*RUN, "inputs=-", "-q"],
        input=(tmp_path / "x.npz").read_bytes()[:300],
        capture_output=True,
        timeout=120,
    )
    assert cut.returncode == 2
    assert cut.stderr.decode().endswith(
        "inputs: <stdin>: not a readable .npz file (File is not a zip file)\n"
    )
    pickled = _run(tmp_path, "inputs=-", "-q", piped="x.pt")
    assert pickled.returncode == 2
    assert pickled.stderr.endswith(
        f"inputs: <stdin>: looks like a PyTorch file (torch.save); {features.TORCH_FEATURES}\n"
    )


@pytest.mark.slow
def test_expect_and_stats_count_the_piped_rows(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", X)
    (tmp_path / "x.csv").write_text("\n".join(",".join(map(repr, row)) for row in X.tolist()))
    assert _run(tmp_path, "inputs=x.npy", "-o", "gold.npy", "-q").returncode == 0
    matched = _run(tmp_path, "inputs=-", "--expect", "gold.npy", "-q", piped="x.npy")
    assert matched.returncode == 0, matched.stderr
    (tmp_path / "few.csv").write_text("1,2,3,4\n" * 20)
    missed = _run(tmp_path, "inputs=-", "--expect", "gold.npy", "-q", piped="few.csv")
    assert missed.returncode == 1
    assert missed.stderr.splitlines()[-1] == (
        f"mlpcli: error: default: output has shape (20, 3), gold.npy has shape ({ROWS}, 3)"
    )
    stats = json.loads(_run(tmp_path, "inputs=-", "--stats", "-f", "json", piped="x.csv").stdout)
    by_name = {figures["name"]: figures for figures in stats["stats"]}
    assert by_name["output"]["count"] == ROWS * 3
    assert by_name["features"]["mean"] == pytest.approx(float(X.astype(np.float64).mean()))


@pytest.mark.slow
def test_what_holds_the_output_reads_a_copy(tmp_path: Path) -> None:
    """JSON of every value, a sweep, and several configs read standard input from a copy:
    each still gives the file's answer."""
    WRITERS["x.csv"](tmp_path / "x.csv")
    whole = json.loads(_run(tmp_path, "inputs=x.csv", "-f", "json").stdout)["output"]
    piped = json.loads(_run(tmp_path, "inputs=-", "-f", "json", piped="x.csv").stdout)["output"]
    assert piped == whole
    swept = _run(tmp_path, "inputs=-", "seed=1,2", "-m", "-f", "csv", piped="x.csv")
    assert swept.returncode == 0, swept.stderr
    assert len(swept.stdout.splitlines()) == 1 + 2 * ROWS
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(f"name: {name}\nlayers: [4, 6, 3]\ninputs: '-'\n")
    with (tmp_path / "x.csv").open("rb") as stdin:
        both = subprocess.run(
            [sys.executable, "-m", "mlpcli", "run", "a.yaml", "b.yaml", "-f", "csv"],
            stdin=stdin, capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
    assert both.returncode == 0, both.stderr
    assert [line.split(",")[0] for line in both.stdout.splitlines()[1:]] == ["a"] * ROWS + [
        "b"
    ] * ROWS


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["run", "-f", "json"],  # held: a copy
        ["run", "-q"],  # streamed
        ["bench", "-n", "1", "-f", "csv"],  # every command but run: a copy
        ["compare", "--devices", "cpu,cpu", "-f", "json"],
    ],
)
@pytest.mark.parametrize("piped", [b"1,2,3,4\n", b"[[1, 2, 3, 4]]\n"], ids=["csv", "json"])
def test_a_few_bytes_piped_in_run_either_way(args: list[str], piped: bytes) -> None:
    """Less than the first bytes looked at, read as it comes or from a copy."""
    done = subprocess.run(
        [sys.executable, "-m", "mlpcli", *args, LAYERS, "inputs=-"],
        input=piped, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def _piped_past_the_room(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """`yes 1,2,3` on standard input, and a temporary folder (`tmp_path`) of 100,000 bytes
    free."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=100_000))
    with subprocess.Popen(["yes", "1,2,3"], stdout=subprocess.PIPE) as writer:
        piped = writer.stdout
        assert isinstance(piped, io.BufferedReader)
        monkeypatch.setattr(features, "_pipe", lambda: features._Pipe(piped))
        try:
            yield
        finally:
            writer.kill()


def test_more_piped_in_than_the_temporary_folder_has_room_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A copy of standard input stops where the temporary folder's free space (less a tenth
    kept spare) runs out: one line naming the folder and what to do, exit 3, not a full
    disk."""
    with _piped_past_the_room(monkeypatch, tmp_path), pytest.raises(MlpcliError) as raised:
        features._copied.__wrapped__(features.STDIN)  # type: ignore[attr-defined]
    assert raised.value.exit_code == 3
    assert str(raised.value) == (
        f"<stdin>: more is piped in than the 87.9 KiB free in {tmp_path} for its copy; give "
        "the file's path, or TMPDIR=a larger folder"
    )


def test_more_piped_in_than_there_is_room_for_is_located_at_inputs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The copy's error, met as the config is read, names the override that asked for it."""
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # a stream no copy was made of
    with _piped_past_the_room(monkeypatch, tmp_path), pytest.raises(UnavailableError) as raised:
        load(None, ["layers=[3, 2]", "inputs=-"])
    assert str(raised.value).startswith(
        "override 'inputs=-': inputs: <stdin>: more is piped in than the 87.9 KiB free in"
    )


@pytest.mark.slow
def test_an_npy_onto_a_fifo_reads_a_copy(tmp_path: Path) -> None:
    """An `.npy` whose header is written again at the end needs a regular file: onto a FIFO,
    standard input is copied first and the rows counted before the header goes out."""
    WRITERS["x.csv"](tmp_path / "x.csv")
    fifo = tmp_path / "f.npy"
    os.mkfifo(fifo)
    with subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE) as reader:
        done = _run(tmp_path, "inputs=-", "-o", "f.npy", "-q", piped="x.csv")
        got = reader.communicate(timeout=60)[0]
    assert done.returncode == 0, done.stderr
    assert np.load(io.BytesIO(got)).shape == (ROWS, 3)


def test_a_line_too_long_to_look_at_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Looking for the first lines of a table reads at most MAX_LINE bytes past a break (a
    line is looked at 64 KiB at a time)."""
    monkeypatch.setattr(lines, "MAX_LINE", 1000)
    (tmp_path / "long.csv").write_bytes(b"1,2,3,4\n" * 3 + b"5" * 200_000 + b"\n1,2,3,4\n")
    with (tmp_path / "long.csv").open("rb") as stdin:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
        with features.piped(), pytest.raises(MlpcliError, match=r"^<stdin>: line 4 is longer"):
            features.describe("-")


def test_a_wide_table_piped_in_is_looked_at_to_its_first_megabyte(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Standard input's lines looked at for a table's layout stop at FIRST_CHARS characters
    (three lines at least), as a file's do: 1,025 lines of 10,000 columns were held. The rows
    read are every one piped in."""
    values = np.random.default_rng(5).standard_normal((400, 4))
    np.savetxt(tmp_path / "x.csv", values, delimiter=",", header="a,b,c,d", comments="")
    line = len((tmp_path / "x.csv").read_text().splitlines()[1]) + 1
    monkeypatch.setattr(features, "FIRST_CHARS", 10 * line)
    monkeypatch.setattr(features, "HEAD_BYTES", line)
    with (tmp_path / "x.csv").open("rb") as stdin:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
        with features.piped():
            assert features.describe("-").width == 4
            assert 10 * line < len(features._pipe().head) < 13 * line  # not 1,025 lines
            read = np.concatenate([block.numpy() for block in features.chunks("-", READ, 7)])
    np.testing.assert_array_equal(read, values)


def test_lines_piped_in_are_looked_at_once_each(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Looking for a table's first lines piped in reads each byte once: past FIRST_CHARS, each
    read parsed the whole head again (20 MB of comments before a table: 15.2 s, 2.8 s now)."""
    text = "# a comment\n" * 300 + "a,b\n" + "1,2\n" * 5
    (tmp_path / "x.csv").write_text(text)
    monkeypatch.setattr(features, "FIRST_CHARS", 100)
    monkeypatch.setattr(features, "HEAD_BYTES", 64)
    looked: list[int] = []
    numbered = lines.numbered

    def counted(source: str, stream: io.BytesIO, *where: int) -> Iterator[lines.Line]:
        looked.append(len(stream.getbuffer()))
        return numbered(source, stream, *where)

    monkeypatch.setattr(lines, "numbered", counted)
    with (tmp_path / "x.csv").open("rb") as stdin:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
        with features.piped():
            assert features.describe("-").width == 2
    assert sum(looked) == len(text)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (5, "holds more than the 5 rows batch says"),
        (ROWS + 1, f"holds {ROWS} rows, not the {ROWS + 1} rows batch says"),
    ],
)
def test_a_batch_set_for_a_pipe_is_checked_as_it_is_read(
    batch: int, message: str, tmp_path: Path
) -> None:
    WRITERS["x.csv"](tmp_path / "x.csv")
    done = _run(tmp_path, "inputs=-", f"batch={batch}", "-o", "o.npy", piped="x.csv")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"mlpcli: error: override 'inputs=-': inputs: <stdin>: {message}; "
        "leave batch out, or set batch=null, to take every row piped in"
    )
    assert not (tmp_path / "o.npy").exists()
    exact = _run(tmp_path, "inputs=-", f"batch={ROWS}", "-f", "csv", piped="x.csv")
    assert exact.stdout == _run(tmp_path, "inputs=x.csv", "-f", "csv").stdout


@pytest.mark.slow
def test_a_pipe_of_rows_not_counted_shows_a_bar_without_an_end(tmp_path: Path) -> None:
    """On a terminal, a run whose rows are counted as they come shows its bar after a second:
    the time it has taken, and no time left (nothing says how many rows will come)."""
    controller, terminal = pty.openpty()
    run = subprocess.Popen(
        [*RUN, "inputs=-", "-o", "o.npy", "-q"],
        stdin=subprocess.PIPE, stdout=terminal, stderr=terminal, cwd=tmp_path,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )  # fmt: skip
    os.close(terminal)
    assert run.stdin is not None
    screen = b""
    run.stdin.write(b"1,2,3,4\n" * 1100)  # past the lines that decide the layout
    fed, until = 1100, time.monotonic() + 60
    while b"left" not in screen and time.monotonic() < until:  # rows, 7 each 0.1 s, until
        run.stdin.write(b"1,2,3,4\n" * 7)  # the bar shows
        run.stdin.flush()
        fed += 7
        if select.select([controller], [], [], 0.1)[0]:
            screen += os.read(controller, 1 << 16)
    run.stdin.close()
    while select.select([controller], [], [], 60)[0]:  # until the run closes the terminal
        try:
            screen += os.read(controller, 1 << 16)
        except OSError:
            break
    os.close(controller)
    assert run.wait(timeout=60) == 0
    assert b"running default" in screen
    plain = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", screen)
    assert re.search(rb"\d:\d\d:\d\d, -:--:-- left", plain), plain[-300:]
    assert not re.search(rb"\d+%", plain)
    assert np.load(tmp_path / "o.npy").shape == (fed, 3)
