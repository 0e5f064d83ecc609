"""Runs over several processes (docs/distributed.md): the plan's arithmetic, then real process
groups with Gloo on the CPU, 2 and 3 ranks, every mode, started once per world size under
torchrun (tests/ranks.py), then the installed `mlpcli` with --nproc and under torchrun.

The reference is one process with the same `threads` (BLAS kernels round by thread count).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlpcli import session
from mlpcli.commands import world as worlds
from mlpcli.engine import runners
from mlpcli.engine.world import ALONE
from mlpcli.loading import loader
from mlpcli.model import memory, plan
from mlpcli.model.closeness import tolerance_for
from mlpcli.model.config import Parallel
from mlpcli.model.results import PREVIEW_ROWS
from mlpcli.ranks import launch, process

from .conftest import invoke
from .ranks import all_tensors

NET = ["layers=[12,10,9,7,5]", "batch=5", "init=kaiming", "threads=1"]  # 10, 9, 7 over 3: uneven
CASES = {
    "data": [*NET, "parallel=data"],
    "data_even": [*NET, "batch=64", "parallel=data"],  # 32 rows a rank over 2 ranks
    "data_chunks": [*NET, "batch=7", "chunk=2", "parallel=data"],  # whole chunks a rank
    "pipeline": [*NET, "parallel=pipeline"],
    "pipeline_micro": [*NET, "batch=7", "chunk=3", "parallel=pipeline"],
    "tensor": [*NET, "parallel=tensor"],
    "tensor_softmax": [*NET, "activation=[relu,softmax,tanh,softmax]", "parallel=tensor"],
    "tensor_odd_nobias": [*NET, "layers=[6,10,7,4]", "bias=false", "parallel=tensor"],
    "tensor_bf16": [*NET, "dtype=bfloat16", "parallel=tensor"],
    "tensor_tiny": [*NET, "layers=[3,2,2,1]", "batch=2", "parallel=tensor"],  # ranks without units
    "tensor_micro": [*NET, "batch=7", "chunk=3", "parallel=tensor"],  # 3 micro-batches
    "pipeline_chunk_bf16": [*NET, "dtype=bfloat16", "chunk=2", "parallel=pipeline"],
}
BIT_IDENTICAL = {"pipeline", "pipeline_micro", "pipeline_chunk_bf16"}
# the tensors put together (`all_tensors`) are of the whole batch at once, so `data` with `chunk`
# is bit-identical in the run's output only (each rank runs whole chunks, as one process would)
BIG = ["layers=[2048,2048,2048,2048,2048,2048,2048,2048,2048]", "batch=4096", "threads=1"]


def torchrun(nproc: int, *command: str) -> list[str]:
    """The command line of PyTorch's launcher, single host."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return [*launcher, "--nproc-per-node", str(nproc), *command]


def launched(*command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def single(overrides: list[str]) -> dict[str, np.ndarray]:
    """Every tensor of one process, and its run's output."""
    config = loader.load(None, [*overrides, "parallel=none"], {})
    tensors = all_tensors(config, ALONE)
    tensors["run_output"] = runners.run(config).whole.astype(np.float64)
    return tensors


# --- the plan, without torch ---------------------------------------------------------------


def test_splits_are_contiguous_and_the_first_ranks_larger() -> None:
    assert plan.split(10, 3) == (range(0, 4), range(4, 7), range(7, 10))
    assert plan.split(2, 3) == (range(0, 1), range(1, 2), range(2, 2))
    config = loader.load(None, ["batch=7", "chunk=2", "parallel=data"], {})
    assert plan.data_rows(config, 3) == (range(0, 4), range(4, 6), range(6, 7))


@pytest.mark.parametrize(
    ("layers", "world", "expected"),
    [
        ("[8,8,8,8,8]", 2, [range(0, 2), range(2, 4)]),
        ("[8,64,8,8,8]", 2, [range(0, 1), range(1, 4)]),  # W1, W2 are 512 each: 1 + 3 layers
        ("[8,8,8,8]", 3, [range(0, 1), range(1, 2), range(2, 3)]),
    ],
)
def test_pipeline_stages_balance_bytes(layers: str, world: int, expected: list[range]) -> None:
    config = loader.load(None, [f"layers={layers}", "parallel=pipeline"], {})
    assert list(plan.stages(config, world)) == expected


def test_a_rank_per_layer_at_most_for_pipeline() -> None:
    code, out, err = invoke("run", "layers=[3,4,2]", "parallel=pipeline", "--nproc", "3")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "mlpcli: error: override 'parallel=pipeline': parallel: pipeline over 3 ranks needs at "
        "least 3 weight layers; this network has 2 (use fewer ranks, or parallel=tensor)"
    ]


@pytest.mark.parametrize("mode", ["data", "pipeline", "tensor"])
def test_shapes_plans_every_rank(mode: str) -> None:
    code, out, err = invoke(
        "shapes", *NET, f"parallel={mode}", "--nproc", "3", "--device-memory", "1KiB", "-f", "json"
    )
    assert code == 3  # the plan is shown, and then that it does not fit
    assert re.fullmatch(
        r"mlpcli: error: the plan does not fit: rank \d needs .*, a device has 1\.0 KiB\n", err
    )
    planned = json.loads(out)["parallel"]
    assert (planned["mode"], planned["world_size"], planned["device_memory"]) == (mode, 3, 1024)
    assert planned["fits"] is False  # 1 KiB: nothing fits
    ranks = planned["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1, 2]
    config = loader.load(None, NET, {})
    all_weights = sum(n_in * n_out + n_out for n_in, n_out in itertools.pairwise(config.layers))
    held = sum(r["weight_bytes"] for r in ranks)
    if mode == "data":  # every rank holds every weight
        assert held == 3 * 4 * all_weights
        assert [r["holds"] for r in ranks] == ["rows 0-1 of 5", "rows 2-3 of 5", "row 4 of 5"]
        assert [r["features_rows"] for r in ranks] == [[0, 2], [2, 4], [4, 5]]
        assert all(r["layers"] == [1, 2, 3, 4] for r in ranks)
    elif mode == "pipeline":  # each weight on one rank
        assert held == 4 * all_weights
        stages = [r["layers"] for r in ranks]
        assert sorted(itertools.chain.from_iterable(stages)) == [1, 2, 3, 4]
        assert all(stage == list(range(stage[0], stage[-1] + 1)) for stage in stages if stage)
        for r in ranks:  # the words say the same layers as the numbers
            words = r["holds"].removeprefix("layers ").removeprefix("layer ").split("-")
            assert [int(words[0]), int(words[-1])] == [r["layers"][0], r["layers"][-1]]
            assert [w["name"] for w in r["weights"]] == [f"W{i}" for i in r["layers"]]
    else:  # split weights once, the row layers' biases on every rank
        biases_of_row_layers = 9 + 5
        assert held == 4 * (all_weights + 2 * biases_of_row_layers)
        assert ranks[0]["holds"] == (
            "columns 0-3 of W1, rows 0-3 of W2, columns 0-2 of W3, rows 0-2 of W4"
        )
        assert ranks[0]["layers"] == [1, 2, 3, 4]
        sizes = config.layers
        for i in range(4):  # every rank's parts of W(i+1) tile it exactly once
            parts = [r["weights"][i] for r in ranks]
            cells = sum((p["rows"][1] - p["rows"][0]) * (p["columns"][1] - p["columns"][0])
                        for p in parts)  # fmt: skip
            assert cells == sizes[i] * sizes[i + 1]
        assert ranks[0]["weights"][0] == {"name": "W1", "rows": [0, 12], "columns": [0, 4]}


def test_a_plan_counts_a_runs_chunk_and_a_file_read_a_micro_batch_at_a_time() -> None:
    """Each rank's activations are a chunk's (`memory.chunk_rows`, a pipeline's micro-batch):
    two at its widest layer, with a micro-batch of features read from a file or all of the
    drawn ones, and the output rank 0 keeps where a run holds it; its float32 draw has the
    features only where they are drawn, and the scratch space of what it drops."""
    wide = ["layers=[64,1024,1024,8]", "batch=100000", "parallel=pipeline"]
    drawn = loader.load(None, wide, {})
    read = dataclasses.replace(drawn, inputs="x.npy")
    step = memory.chunk_rows(drawn)
    assert step < 100000
    for config, features in ((drawn, 100000 * 64), (read, memory.chunk_rows(read) * 64)):
        first, second = plan.plan(config, 2, None).ranks
        micro = memory.chunk_rows(config)
        assert first.activation_bytes == 4 * (features + 2 * micro * 1024 + 100000 * 8)
        assert second.activation_bytes == 4 * 2 * micro * 1024
        drawn_features = 100000 * 64 if config is drawn else 0  # a file's are read, not drawn
        scratch = 1024 * 1024  # W2, the largest it draws and drops
        assert first.draw_bytes == first.weight_bytes + 4 * (drawn_features + scratch)


@pytest.mark.parametrize(
    ("world", "waits"), [(2, "the other rank waits"), (3, "the other 2 ranks wait")]
)
def test_one_network_that_does_not_share_says_the_others_wait(
    world: int, waits: str, capsys: pytest.CaptureFixture[str]
) -> None:
    worlds.check([loader.load(None, NET, {})], world, "run")
    assert capsys.readouterr().err.splitlines()[-1] == (
        "mlpcli: note: parallel: none (<built-in default>) runs each network on one rank: with one "
        f"network {waits} (parallel=data, pipeline or tensor shares it)"
    )


def test_shapes_plans_the_8_h200_model() -> None:
    code, out, _ = invoke(
        "shapes", "layers=[65536,65536,65536,65536,65536,65536,65536,65536,65536]",
        "dtype=bfloat16", "batch=16384", "parallel=tensor", "--nproc", "8",
        "--device-memory", "141GB", "-f", "json",
    )  # fmt: skip
    assert code == 0
    planned = json.loads(out)["parallel"]
    assert planned["fits"] is True
    assert all(r["weight_bytes"] < 9 * 2**30 for r in planned["ranks"])  # 1/8 of 68.7 GB


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device-memory", "80GiB"], "--device-memory plans with --nproc N: give both"),
        (["--nproc", "2", "--device-memory", "lots"], "--device-memory lots: not a size"),
    ],
)
def test_shapes_refuses_bad_plans(args: list[str], message: str) -> None:
    code, _, err = invoke("shapes", *args)
    assert code == 2
    assert message in err


# --- process groups, started once per world size -----------------------------------------


@pytest.fixture(scope="module", params=[2, 3])
def ranks_ran(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every case over `param` ranks, run once under torchrun; rank 0's files."""
    out = tmp_path_factory.mktemp(f"ranks{request.param}")
    (out / "cases.json").write_text(json.dumps(CASES))
    script = str(Path(__file__).with_name("ranks.py"))
    done = launched(*torchrun(request.param, script, str(out), str(out / "cases.json")))
    assert done.returncode == 0, done.stderr
    out.joinpath("world").write_text(str(request.param))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_shards_put_together_are_the_single_draw_and_outputs_agree(
    ranks_ran: Path, case: str
) -> None:
    world = int((ranks_ran / "world").read_text())
    got = dict(np.load(ranks_ran / f"{case}.npz"))
    head, tail = got.pop("preview_head"), got.pop("preview_tail")  # the ranks' put together
    np.testing.assert_array_equal(head, got["run_output"][:PREVIEW_ROWS])
    np.testing.assert_array_equal(tail, got["run_output"][-PREVIEW_ROWS:])
    config = loader.load(None, CASES[case], {})
    sunk, blocks = got.pop("sunk"), got.pop("sunk_rows").tolist()
    rows = plan.data_rows(config, world)[0] if case.startswith("data") else range(config.batch_size)
    step = config.chunk or len(rows)  # rank 0's output a chunk (a micro-batch) at a time
    assert blocks == [min(step, rows.stop - first) for first in range(rows.start, rows.stop, step)]
    np.testing.assert_array_equal(sunk, got["run_output"][rows.start : rows.stop])
    np.testing.assert_array_equal(got.pop("in_order"), got["run_output"])  # every rank's rows
    info = json.loads((ranks_ran / f"{case}.json").read_text())
    assert (info["mode"], info["world_size"]) == (case.split("_")[0], world)
    expected = single(CASES[case])
    shapes = {name: list(values.shape) for name, values in expected.items() if name != "run_output"}
    compared = info["compared"]  # compare over the ranks: every tensor, a micro-batch at a time
    assert {name: shape for name, (shape, _) in compared.items()} == shapes
    assert info["within"]
    if case in BIT_IDENTICAL:
        assert {gap for _, gap in compared.values()} == {0.0}
    assert set(got) == set(expected)
    tolerance = tolerance_for(config.dtype, None, None)
    for name, values in expected.items():
        assert not np.isnan(got[name]).any(), f"{name}: a piece is missing"
        drawn = name == "features" or name[0] in "WB"
        chunked_output = case == "data_chunks" and name == "run_output"
        if drawn or case in BIT_IDENTICAL or chunked_output or (case, world) == ("data_even", 2):
            np.testing.assert_array_equal(got[name], values, err_msg=name)  # the same bits
        else:
            scale = float(np.abs(values).max())
            allowed = tolerance.atol + tolerance.rtol * scale
            assert float(np.abs(got[name] - values).max()) <= allowed, name


def test_each_rank_holds_about_a_share_of_the_weights() -> None:
    config = loader.load(None, [*NET, "layers=[512,512,512,512,512,512,512]"], {})
    whole = plan.plan(config, 1, None).ranks[0].weight_bytes
    for world in (2, 3):
        for mode in (Parallel.PIPELINE, Parallel.TENSOR):
            planned = plan.plan(dataclasses.replace(config, parallel=mode), world, None)
            assert all(rank.weight_bytes <= 1.01 * whole / world for rank in planned.ranks)


# --- the installed mlpcli over ranks -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["data", "pipeline", "tensor"])
def test_run_nproc_3_prints_one_result_equal_to_one_process(mlpcli_script: str, mode: str) -> None:
    done = launched(mlpcli_script, "run", "--nproc", "3", *NET, f"parallel={mode}", "-f", "json")
    assert done.returncode == 0, done.stderr
    cores = os.cpu_count() or 1
    crowded = [f"mlpcli: note: 3 ranks on {cores} CPU cores: each rank gets less than a core"]
    assert done.stderr.splitlines() == (crowded if cores < 3 else [])  # said once
    [line] = done.stdout.splitlines()  # one voice: rank 0's
    result = json.loads(line)
    assert result["parallel"] == {"mode": mode, "world_size": 3, "backend": "gloo"}
    alone = json.loads(invoke("run", *NET, "-f", "json")[1])
    got, expected = np.array(result["output"]), np.array(alone["output"])
    if mode == "pipeline":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert [t["shape"] for t in result["tensors"]] == [t["shape"] for t in alone["tensors"]]


@pytest.mark.slow
def test_under_torchrun_the_same_one_result(tmp_path: Path) -> None:
    output = tmp_path / "out.json"
    command = ["-m", "mlpcli", "run", *NET, "parallel=pipeline", "-f", "json", "-o", str(output)]
    done = launched(*torchrun(3, *command))
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    alone = json.loads(invoke("run", *NET, "-f", "json")[1])
    assert json.loads(line)["output"] == alone["output"]
    assert json.loads(output.read_text())["output"] == alone["output"]  # written by rank 0
    assert "mlpcli: error" not in done.stderr


@pytest.mark.slow
def test_two_hosts_sharing_a_folder_write_one_output(tmp_path: Path) -> None:
    """Two launchers, as on two hosts (over loopback), each rank reading its rows of one file
    and writing them into one output in the folder both share: one process's file, bit for
    bit."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    np.save(tmp_path / "x.npy", np.random.default_rng(5).standard_normal((50, 12), "f4"))
    net = [o for o in NET if not o.startswith("batch=")]  # the file's 50 rows
    run = ["run", *net, f"inputs={tmp_path / 'x.npy'}", "chunk=8", "parallel=data", "-q"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
    rendezvous = ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"]
    command = [*launcher, "--nproc-per-node", "1", *rendezvous, "--rdzv-id", "shared-folder"]
    host = [*command, "-m", "mlpcli", *run, "-o", str(tmp_path / "two.npy")]
    pipe = subprocess.PIPE
    hosts = [
        subprocess.Popen(host, cwd=tmp_path, stdout=pipe, stderr=pipe, text=True) for _ in range(2)
    ]
    ended = [host.communicate(timeout=120) for host in hosts]
    assert [host.returncode for host in hosts] == [0, 0], ended
    alone = invoke(*run, "-o", str(tmp_path / "one.npy"))
    assert alone[0] == 0
    assert (tmp_path / "two.npy").read_bytes() == (tmp_path / "one.npy").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.npy", "two.npy", "x.npy"]


@pytest.mark.slow
def test_a_config_error_under_torchrun_is_one_line(tmp_path: Path) -> None:
    done = launched(*torchrun(3, "-m", "mlpcli", "run", "layers=[3,x]", "parallel=data"))
    assert done.returncode != 0  # torchrun's own code: 1 for any failed rank
    said = [line for line in done.stderr.splitlines() if line.startswith("mlpcli: error")]
    assert said == [
        "mlpcli: error: override 'layers=[3,x]': layers[1]: expected an integer, got string 'x'"
    ]


@pytest.mark.slow
def test_a_check_that_fails_on_rank_0_ends_every_rank_with_1(mlpcli_script: str) -> None:
    zeros = json.dumps([[0] * 5] * 5)
    done = launched(mlpcli_script, "run", "--nproc", "2", *NET, "parallel=data", "--expect", zeros)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mlpcli: error: default: output differs")


@pytest.mark.slow
def test_a_sweep_goes_round_the_ranks_and_prints_in_order(mlpcli_script: str) -> None:
    sweep = ["-m", "seed=1,2,3", "activation=relu,tanh"]
    done = launched(mlpcli_script, "run", "--nproc", "2", *NET, *sweep, "-f", "json")
    assert done.returncode == 0, done.stderr
    alone = invoke("run", *NET, *sweep, "-f", "json")[1]
    got, expected = done.stdout.splitlines(), alone.splitlines()
    assert len(got) == 6
    for mine, theirs in zip(got, expected, strict=True):
        a, b = json.loads(mine), json.loads(theirs)
        assert (a["config"]["seed"], a["config"]["activation"], a["output"]) == (
            b["config"]["seed"], b["config"]["activation"], b["output"]
        )  # fmt: skip


@pytest.mark.slow
def test_compare_nproc_checks_a_parallel_run_against_one_process(mlpcli_script: str) -> None:
    done = launched(
        mlpcli_script, "compare", *NET, "--devices", "cpu", "--nproc", "2", "parallel=tensor",
        "-f", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["devices"] == ["cpu", "cpu ×2 (tensor)"]
    assert result["within"] is True
    drawn = [t for t in result["tensors"] if t["name"] == "features" or t["name"][0] in "WB"]
    assert drawn
    assert all(t["max_abs"] == 0 for t in drawn)


@pytest.mark.slow
def test_bench_over_ranks_reports_the_group_and_each_rank(mlpcli_script: str) -> None:
    done = launched(mlpcli_script, "bench", *NET, "parallel=pipeline", "--nproc", "2", "-n", "3",
                    "-f", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["parallel"] == {"mode": "pipeline", "world_size": 2, "backend": "gloo"}
    assert result["tflops_per_s"] > 0
    assert [r["rank"] for r in result["ranks"]] == [0, 1]
    assert all(r["peak_bytes"] > 0 and r["comm_ms"] >= 0 for r in result["ranks"])
    assert result["overrides"] == [*NET, "parallel=pipeline"]


def said(stderr: str) -> list[str]:
    """stderr's lines less the notes (3 ranks on a 2-core machine get one)."""
    return [line for line in stderr.splitlines() if not line.startswith("mlpcli: note:")]


def _ranks_of(parent: int) -> dict[int, int]:
    """The pids of the ranks that a launcher `parent` started, by rank."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if f"PPid:\t{parent}\n" not in status:
            continue
        variables = dict(item.split(b"=", 1) for item in environ if b"=" in item)
        if b"RANK" in variables:
            found[int(variables[b"RANK"])] = int(pid)
    return found


def _started(
    mlpcli_script: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], dict[int, int]]:
    """`mlpcli ARGS` started, once its 3 ranks are running."""
    process = subprocess.Popen(
        [mlpcli_script, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while len(ranks := _ranks_of(process.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(ranks) == 3
    # into the run: torch imported and the group joined (each rank holds a socket to the store
    # and to both other ranks; before that, a kill makes Gloo's own logger say "failed to
    # connect" on stderr, however long importing torch took on a busy machine)
    while not all(_sockets(pid) >= 3 for pid in ranks.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # the draw under way
    return process, ranks


def _sockets(pid: int) -> int:
    """How many sockets process `pid` has open."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return 0
    return sum(link.startswith("socket:") for link in links)


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])  # rank 0 also serves the store the others use
def test_a_rank_killed_mid_run_ends_every_rank_with_3_naming_it(
    mlpcli_script: str, start_up_s: float, victim: int, tmp_path: Path
) -> None:
    """Rank 0 writes a pipeline's output as it comes: a rank killed leaves none of it (a
    killed rank 0 its temporary, which the next run for the path removes)."""
    output = str(tmp_path / "out.npy")
    process, ranks = _started(
        mlpcli_script, "run", "--nproc", "3", *BIG, "parallel=pipeline", "-o", output, "-q"
    )
    os.kill(ranks[victim], signal.SIGKILL)
    start = time.monotonic()
    _, err = process.communicate(timeout=60)
    # the launcher ends the others within its interval (a busy machine: a start-up more)
    assert time.monotonic() - start < 10 + start_up_s
    assert process.returncode == 3
    line = f"mlpcli: error: rank {victim} died (SIGKILL); the other ranks were ended"
    assert said(err) == [line]
    assert _ranks_of(process.pid) == {}
    left = [path.name for path in tmp_path.iterdir()]  # rank 0's temporary where it was killed
    assert left == [] if victim else [name for name in left if name.startswith(".out.npy.")]


def test_rank_0_tells_the_launcher_what_it_finished_and_wrote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rank 0's records reach the launcher on its pipe, whole, in order (any path, a newline in
    it too); another rank, and a process no launcher started, tell nothing."""
    told = launch._Told()
    monkeypatch.setenv(process.REPORTS, str(told.pipe))
    monkeypatch.setenv("RANK", "1")
    process.tell_the_launcher(process.FINISHED)  # not rank 0: nothing
    monkeypatch.setenv("RANK", "0")
    process._wrote(Path("out\nput.npy"))
    process.tell_the_launcher(process.FINISHED)
    os.write(told.pipe, b"written:cut sho")  # a rank 0 killed mid-record
    told.handed_on()
    assert told.records() == [b"written:out\nput.npy", process.FINISHED]
    assert told.written() == ["out\nput.npy"]
    monkeypatch.delenv(process.REPORTS)
    process.tell_the_launcher(process.FINISHED)  # no launcher listens: nothing, no error


def test_ranks_start_with_the_signals_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal passed on while a rank's Python is still starting waits for its watcher: the
    ranks start with SIGINT, SIGTERM and SIGHUP blocked (2 of 30 early Ctrl-Cs printed a
    rank's traceback before), and the launcher's own mask is as it was after."""
    masks: list[set[int]] = []

    def started(*args: object, **kwargs: object) -> object:
        masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        return object()

    session.begin(["run"])
    monkeypatch.setattr(subprocess, "Popen", started)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    reading, writing = os.pipe()
    launch._start([], 2, {}, writing)
    os.close(reading)
    os.close(writing)
    assert len(masks) == 2
    assert all({signal.SIGINT, signal.SIGTERM, signal.SIGHUP} <= mask for mask in masks)
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


@pytest.mark.slow
def test_ctrl_c_ends_every_rank_with_130(mlpcli_script: str) -> None:
    process, _ = _started(mlpcli_script, "run", "--nproc", "3", *BIG, "parallel=tensor")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert said(err) == ["mlpcli: error: interrupted"]


@pytest.mark.slow
@pytest.mark.parametrize("victim", [2, 0])  # rank 0's heartbeat the others watch
def test_a_rank_that_stops_answering_is_named_within_the_timeout(
    mlpcli_script: str, start_up_s: float, victim: int
) -> None:
    process, ranks = _started(mlpcli_script, "run", "--nproc", "3", *BIG, "parallel=tensor",
                              "timeout=3")  # fmt: skip
    os.kill(ranks[victim], signal.SIGSTOP)
    start = time.monotonic()
    others = {pid for rank, pid in ranks.items() if rank != victim}
    while others & set(_ranks_of(process.pid).values()) and time.monotonic() - start < 60:
        time.sleep(0.1)
    ended_in = time.monotonic() - start
    assert _ranks_of(process.pid).get(victim) == ranks[victim]  # within the launcher's grace
    os.kill(ranks[victim], signal.SIGCONT)  # the launcher's SIGTERM, pending, ends it at once
    _, err = process.communicate(timeout=60)
    # the timeout and two heartbeats, a busy machine a start-up more; no wait for an
    # acknowledgement the stopped rank cannot give (that took 5 s more)
    assert ended_in < 3 + 2 + start_up_s, err
    assert process.returncode == 3, err
    assert len(said(err)) == 1, err
    [line] = said(err)
    assert re.fullmatch(
        rf"mlpcli: error: rank {victim} stopped answering \((silent for \d+ s|never answered); "
        r"timeout: 3 s\); "
        r"every rank ends",
        line,
    )


@pytest.mark.slow
def test_one_rank_is_the_single_process_run(mlpcli_script: str, tmp_path: Path) -> None:
    kept = tmp_path / "run.safetensors"
    args = ["run", *NET, "parallel=tensor", "--stats", "-o", str(kept), "-f", "json"]
    done = launched(mlpcli_script, *args, "--nproc", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["parallel"] == {"mode": "tensor", "world_size": 1, "backend": None}
    assert [s["name"] for s in result["stats"]] == ["features", "h1", "h2", "h3", "output"]
    from safetensors import safe_open

    with safe_open(str(kept), "np") as tensors:
        assert "W4" in tensors.keys()  # noqa: SIM118 - safe_open has no __contains__
    alone = json.loads(invoke(*args[:-4], "-f", "json")[1])
    assert result["output"] == alone["output"]


@pytest.mark.slow
def test_a_reader_gone_ends_every_rank_quietly(mlpcli_script: str) -> None:
    command = [mlpcli_script, "run", "--nproc", "2", "layers=[8,600]", "batch=2000", "threads=1",
               "parallel=data", "-f", "csv"]  # fmt: skip
    done = subprocess.run(
        f"{' '.join(map(repr, command))} | head -c 100 > /dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.strip() == "0"
    assert done.stderr == ""


@pytest.mark.slow
def test_ranks_wait_past_the_timeout_for_a_slow_rank(mlpcli_script: str) -> None:
    # rank 0 computes the single-process reference alone: minutes on a big network, here
    # seconds; the other rank waits for it, alive, past `timeout`
    done = launched(
        mlpcli_script, "compare", "--nproc", "2", "--devices", "cpu", "layers=[1024,1024,1024]",
        "batch=4096", "init=kaiming", "threads=1", "parallel=data", "timeout=1", "--field",
        "within",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "true\n"


@pytest.mark.slow
def test_bench_over_ranks_needs_a_mode(mlpcli_script: str) -> None:
    done = launched(mlpcli_script, "bench", "--nproc", "2")
    assert done.returncode == 2
    assert done.stderr == (
        "mlpcli: error: parallel: none (<built-in default>) runs each network on one rank: name "
        "a mode for bench over ranks, such as parallel=tensor\n"
    )


@pytest.mark.slow
def test_ranks_end_with_a_killed_launcher(mlpcli_script: str, tmp_path: Path) -> None:
    """SIGKILL, which the launcher cannot answer, ends the ranks too and leaves nothing in the
    temporary folder (it left an empty folder of its own there before)."""
    command = ["run", "--nproc", "3", *BIG, "parallel=pipeline"]
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    process, ranks = _started(mlpcli_script, *command, env=env)
    process.kill()
    process.communicate(timeout=60)
    time.sleep(1)
    running = [pid for pid in ranks.values() if Path(f"/proc/{pid}").exists()]
    states = [Path(f"/proc/{pid}/stat").read_text().split()[2] for pid in running]
    assert all(state == "Z" for state in states)  # gone, or only waiting to be reaped
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_on_one_rank_is_said_once_by_the_launcher(mlpcli_script: str) -> None:
    process, ranks = _started(mlpcli_script, "run", "--nproc", "3", *BIG, "parallel=tensor")
    os.kill(ranks[1], signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert said(err) == ["mlpcli: error: interrupted"]


def test_a_world_of_one_rank_is_the_single_process_run() -> None:
    """WORLD_SIZE=1 needs no store: port 1 (nobody's) is never dialled, the answer is alone's."""
    launcher = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "localhost", "MASTER_PORT": "1"}
    code, out, err = invoke("run", *NET, "parallel=tensor", "-f", "json", env=launcher)
    alone = invoke("run", *NET, "parallel=tensor", "-f", "json")
    assert (code, err) == (0, alone[2])
    assert json.loads(out)["output"] == json.loads(alone[1])["output"]


@pytest.mark.parametrize("expected", [0, 1])
def test_nproc_leaves_nothing_in_the_temporary_folder(
    mlpcli_script: str, tmp_path: Path, expected: int
) -> None:
    """The launcher leaves nothing in the temporary folder, after success and failure."""
    command = [mlpcli_script, "run", "--nproc", "2", *NET, "parallel=data", "-f", "json"]
    expect = ["--expect", json.dumps([[0] * 5] * 5)] if expected else []  # a check that fails
    done = subprocess.run(
        [*command, *expect],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == expected, done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_once_the_result_is_written_says_it_was(
    mlpcli_script: str, tmp_path: Path, signum: signal.Signals
) -> None:
    """A signal as rank 0 finishes ends the run with its code, and its line says the output
    was written in full (it ended 0 with no word: 8 of 38 tries)."""
    out = tmp_path / "out.json"
    command = [mlpcli_script, "run", "--nproc", "2", *NET, "parallel=data", "-o", str(out)]
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not out.exists():  # rank 0 has put it in place
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    launcher.send_signal(signum)
    _, err = launcher.communicate(timeout=120)
    what = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}[signum]
    assert (launcher.returncode, err) == (
        what[0],
        f"mlpcli: error: {what[1]}; {out} was written in full before\n",
    )
    assert (
        json.loads(out.read_text())["output"]
        == json.loads(invoke("run", *NET, "-f", "json")[1])["output"]
    )


def _hand_started(mlpcli_script: str, rank: int, port: int) -> tuple[int, str, float]:
    """A rank of two started by hand at 127.0.0.1:`port` with timeout=3: its exit code, its
    stderr and the seconds it took."""
    launcher = {
        "RANK": str(rank),
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    start = time.monotonic()
    done = subprocess.run(
        [mlpcli_script, "run", *NET, "parallel=data", "timeout=3"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **launcher},
    )  # fmt: skip
    return done.returncode, done.stderr, time.monotonic() - start


@pytest.mark.slow
def test_a_rank_alone_ends_within_its_timeout_when_the_others_never_arrive(
    mlpcli_script: str, start_up_s: float
) -> None:
    """Started by hand (no launcher's store): rank 0 waits `timeout` for the group to form,
    then one line and exit 3 (it took 190 s and printed 82 lines)."""
    import socket

    with socket.socket() as probe:  # a port no one listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, err, took = _hand_started(mlpcli_script, 0, port)
    assert code == 3
    assert re.fullmatch(
        r"mlpcli: error: the 2 ranks did not all arrive within the timeout \(3 s\): .*\n", err
    )
    assert took < 3 + 30 + start_up_s, f"{took:.0f} s"  # it was 190 s; torch's import counts


def test_a_rank_pointed_at_a_port_where_no_store_answers_ends_within_its_timeout(
    mlpcli_script: str, start_up_s: float
) -> None:
    """Something other than a store on MASTER_PORT (an HTTP server, which holds the connection
    open) held a hand-started rank past 150 s with timeout=5; it ends within its timeout and
    a few seconds, one line, exit 3."""
    import socket
    import threading

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        held: list[socket.socket] = []
        threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
        code, err, took = _hand_started(mlpcli_script, 1, server.getsockname()[1])
    assert code == 3
    assert re.fullmatch(
        r"mlpcli: error: the process group did not form at MASTER_ADDR:MASTER_PORT "
        r"\(127\.0\.0\.1:\d+\) within the timeout \(3 s\): no rank 0 is there, or something "
        r"other than its store answers on that port\n",
        err,
    )
    assert took < 3 + 30 + start_up_s, f"{took:.0f} s"  # torch's import counts here too
