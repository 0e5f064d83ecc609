"""Your own data and weights (docs/contract.md section 5): features and weights from files,
every tensor out, and `mlpcli export` round trips, against PyTorch's own modules and loaders.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from mlpcli.engine import network
from mlpcli.errors import UnavailableError
from mlpcli.loading import loader
from mlpcli.report import shares

from .conftest import ROOT, TWO_LAYER, invoke

FEATURES = torch.tensor([[0.5, -1.25, 2.0, 0.0], [1.0, 0.25, -0.75, 3.5], [-2.0, 1.5, 0.125, -0.5]])


def trained(bias: bool = True) -> nn.Sequential:
    """A network 'trained elsewhere': PyTorch's own modules and initialisation."""
    torch.manual_seed(123)
    return nn.Sequential(
        nn.Linear(4, 16, bias=bias), nn.GELU(), nn.Linear(16, 8, bias=bias), nn.Tanh(),
        nn.Linear(8, 3, bias=bias), nn.Softmax(dim=-1),
    ).eval()  # fmt: skip


def run_json(*args: str) -> dict[str, object]:
    code, out, err = invoke("run", *args, "--format", "json")
    assert code == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def output_of(*args: str) -> torch.Tensor:
    return torch.tensor(run_json(*args)["output"], dtype=torch.float64)


@pytest.mark.parametrize("saved", ["safetensors", "pt"])
@pytest.mark.parametrize("inputs", ["npy", "csv", "json", "safetensors"])
@pytest.mark.parametrize("bias", [True, False])
def test_a_network_trained_elsewhere_gives_pytorchs_outputs(
    tmp_path: Path, saved: str, inputs: str, bias: bool
) -> None:
    model = trained(bias)
    weights = tmp_path / f"model.{saved}"
    if saved == "pt":
        torch.save(model.state_dict(), weights)
    else:
        save_file(model.state_dict(), weights)
    data = tmp_path / f"x.{inputs}"
    if inputs == "npy":
        np.save(data, FEATURES.numpy())
    elif inputs == "csv":
        data.write_text("a,b,c,d\n" + "\n".join(",".join(map(str, r)) for r in FEATURES.tolist()))
    elif inputs == "json":
        data.write_text(json.dumps(FEATURES.tolist()))
    else:
        save_file({"features": FEATURES}, data)
    config = tmp_path / "net.yaml"  # no layers, no batch, no bias: the files give them
    config.write_text(
        f"activation: [gelu, tanh, softmax]\ninputs: x.{inputs}\nweights: model.{saved}\n"
    )
    result = run_json(str(config))
    with torch.no_grad():
        expected = model(FEATURES).double()
    got = torch.tensor(result["output"], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    assert result["config"]["layers"] == [4, 16, 8, 3]  # type: ignore[index]
    assert result["config"]["batch"] == 3  # type: ignore[index]
    assert result["config"]["bias"] is bias  # type: ignore[index]


def test_mlpcli_layout_with_vector_biases_and_layers_checked(tmp_path: Path) -> None:
    torch.manual_seed(0)
    W1, W2, B1, B2 = torch.randn(3, 5), torch.randn(5, 2), torch.randn(5), torch.randn(1, 2)
    path = tmp_path / "w.safetensors"
    save_file({"W1": W1, "W2": W2, "B1": B1, "B2": B2}, path)
    got = output_of(f"weights={path}", "layers=[3, 5, 2]", "batch=4", "activation=relu")
    features, _, _ = network.draw(loader.load(None, ["layers=[3, 5, 2]", "batch=4"]))
    assert features is not None
    expected = torch.relu(torch.relu(features @ W1 + B1) @ W2 + B2).double()
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_features_are_the_same_whatever_the_weights_file(tmp_path: Path) -> None:
    """The draw runs through the weights it drops: features depend on the seed alone."""
    args = ("layers=[6, 9, 4]", "batch=5", "seed=11", "init=kaiming", "bias=false")
    code, _, _ = invoke("run", *args, "-o", str(tmp_path / "all.safetensors"), "-q")
    assert code == 0
    drawn = load_file(tmp_path / "all.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"W1": torch.ones(6, 9), "W2": torch.ones(9, 4)}, other)
    code, _, _ = invoke("run", *args, f"weights={other}", "-o", str(tmp_path / "o.safetensors"))
    assert code == 0
    assert torch.equal(load_file(tmp_path / "o.safetensors")["features"], drawn["features"])


def test_inputs_keep_the_weights_of_the_seed(tmp_path: Path) -> None:
    """The same weights as without `inputs`; the first feature row is drawn and dropped."""
    args = ("layers=[4, 7, 2]", "batch=3", "seed=5", "activation=tanh")
    invoke("run", *args, "-o", str(tmp_path / "drawn.safetensors"), "-q")
    np.save(tmp_path / "x.npy", FEATURES.numpy())
    code, _, err = invoke(
        "run",
        *args[:1],
        *args[2:],
        f"inputs={tmp_path / 'x.npy'}",
        "-o",
        str(tmp_path / "file.safetensors"),
        "-q",
    )
    assert code == 0, err
    drawn, given = (
        load_file(tmp_path / "drawn.safetensors"),
        load_file(tmp_path / "file.safetensors"),
    )
    for name in ("W1", "W2", "B1", "B2"):
        assert torch.equal(drawn[name], given[name]), name
    assert torch.equal(given["features"], FEATURES)


def test_run_output_safetensors_holds_every_tensor_in_its_dtype_with_the_config(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.safetensors"
    code, _, err = invoke(
        "run", TWO_LAYER, "dtype=bfloat16", "batch=5", "chunk=2", "-o", str(path), "-q"
    )
    assert code == 0, err
    with safe_open(str(path), framework="pt") as file:
        names = list(file.keys())
        metadata = file.metadata()
        tensors = {name: file.get_tensor(name) for name in names}
    assert sorted(names) == sorted(["features", "W1", "W2", "B1", "B2", "h1", "output"])
    assert all(t.dtype is torch.bfloat16 for t in tensors.values())
    assert tensors["h1"].shape == (5, 2)
    config = json.loads(metadata["mlpcli.config"])
    assert config["dtype"] == "bfloat16"
    assert config["layers"] == [3, 2, 1]
    expected = output_of(TWO_LAYER, "dtype=bfloat16", "batch=5", "chunk=2")
    assert torch.equal(tensors["output"].double(), expected)
    h1 = torch.sigmoid(torch.addmm(tensors["B1"], tensors["features"], tensors["W1"]))
    assert torch.equal(h1, tensors["h1"])
    # it reads back as weights (features, h1, output passed over) and as features
    same = output_of(TWO_LAYER, "dtype=bfloat16", "batch=5", f"weights={path}")
    assert torch.equal(same, expected)
    chained = output_of(TWO_LAYER, "dtype=bfloat16", "batch=5", f"inputs={path}")
    assert chained.shape == (5, 1)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_export_state_dict_loads_in_pytorch_and_back_bit_identically(
    tmp_path: Path, suffix: str
) -> None:
    config = ROOT / "configs" / "deep_relu.yaml"
    path = tmp_path / f"model{suffix}"
    code, out, err = invoke("export", str(config), "batch=6", "-o", str(path), "--verify")
    assert (code, out) == (0, ""), err
    assert "within float32 tolerance" in err
    state = load_file(path) if suffix == ".safetensors" else torch.load(path, weights_only=True)
    sizes = loader.load(config).layers
    linears = [nn.Linear(n_in, n_out) for n_in, n_out in itertools.pairwise(sizes)]
    activations = [nn.ReLU(), nn.ReLU(), nn.ReLU(), nn.Softmax(dim=-1)]  # deep_relu's
    model = nn.Sequential(*(m for pair in zip(linears, activations, strict=True) for m in pair))
    model.load_state_dict(state)  # the README's lines
    kept = tmp_path / "run.safetensors"
    assert invoke("run", str(config), "batch=6", "-o", str(kept), "-q")[0] == 0
    # a fresh copy of the features: in the file's buffer their alignment follows the header's
    # length, and BLAS kernels round by alignment (more config fields moved it by a few bytes)
    with torch.no_grad():  # PyTorch's layout runs as PyTorch runs it: nn.Sequential's bits
        expected = model.eval()(load_file(kept)["features"].clone())
    got = output_of(str(config), "batch=6", f"weights={path}")
    assert torch.equal(got, expected.double())
    torch.testing.assert_close(got, load_file(kept)["output"].double(), rtol=1e-6, atol=1e-7)
    if suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as file:
            assert json.loads(file.metadata()["mlpcli.config"])["name"] == "deep_relu"


def test_export_pt2_has_a_dynamic_batch(tmp_path: Path) -> None:
    path = tmp_path / "model.pt2"
    code, out, err = invoke("export", TWO_LAYER, "-o", str(path), "--verify")
    assert (code, out) == (0, ""), err
    program = torch.export.load(path)
    for rows in (1, 7):
        assert program.module()(torch.randn(rows, 3)).shape == (rows, 1)


def test_export_onnx_runs_in_onnxruntime(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "model.onnx"
    code, out, err = invoke(
        "export",
        TWO_LAYER,
        "activation=[gelu, softmax]",
        "layers=[3, 5, 4]",
        "-o",
        str(path),
        "--verify",
    )
    assert (code, out) == (0, ""), err
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]  # the notebook's names,
    assert [o.name for o in session.get_outputs()] == ["output"]  # whatever the activation
    assert session.run(["output"], {"features": np.zeros((9, 3), np.float32)})[0].shape == (9, 4)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_every_onnx_written_passes_the_onnx_checker(tmp_path: Path, dtype: str) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from mlpcli.model.config import Activation

    every = ", ".join(a.value for a in Activation)  # elu, softplus: no bfloat16 in ONNX
    path = tmp_path / "every.onnx"
    layers = f"layers=[3{', 4' * len(Activation)}]"
    code, _, err = invoke(
        "export", TWO_LAYER, layers, f"activation=[{every}]", f"dtype={dtype}", "-o", str(path)
    )
    assert code == 0, err
    onnx.checker.check_model(onnx.load(path), full_check=True)


def test_export_pth_is_a_state_dict_like_pt(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    code, out, err = invoke("export", TWO_LAYER, "-o", str(path), "--verify")
    assert (code, out) == (0, ""), err
    state = torch.load(path, weights_only=True)
    assert sorted(state) == ["0.bias", "0.weight", "2.bias", "2.weight"]


def test_a_bfloat16_onnx_that_cannot_be_verified_is_refused_before_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    from mlpcli.engine import exports

    def not_reached(*_: object) -> None:
        raise AssertionError("the export ran")

    monkeypatch.setattr(exports, "export", not_reached)
    path = tmp_path / "model.onnx"
    code, _, err = invoke("export", TWO_LAYER, "dtype=bfloat16", "-o", str(path), "--verify")
    assert code == 3
    assert "onnxruntime's CPU kernels do not run bfloat16" in err
    assert not path.exists()


def test_export_verify_fails_beyond_the_tolerance_and_writes_nothing(tmp_path: Path) -> None:
    """onnxruntime's Gemm rounds its sums otherwise than torch.addmm: at zero tolerance, exit 1."""
    pytest.importorskip("onnxruntime")
    path = tmp_path / "model.onnx"
    deep = str(ROOT / "configs" / "deep_relu.yaml")
    code, out, err = invoke(
        "export", deep, "--atol", "0", "--rtol", "0", "-o", str(path), "--verify"
    )
    assert (code, out) == (1, "")
    assert "onnxruntime differs from run by" in err
    assert "not written" in err
    assert not path.exists()


def test_export_onnx_without_the_extra_names_the_install_command(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['onnxscript'] = None; from mlpcli.cli import run_app; "
        f"sys.exit(run_app(['export', '-o', {str(tmp_path / 'm.onnx')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 3
    assert "pip install onnx onnxscript onnxruntime" in done.stderr
    assert "mlpcli[" not in done.stderr  # `mlpcli` on PyPI is another project
    assert done.stdout == ""
    assert not (tmp_path / "m.onnx").exists()


def test_chaining_runs_through_a_pipe(mlpcli_script: str, tmp_path: Path) -> None:
    shell = (
        f"'{mlpcli_script}' run layers=[3,5,4] batch=6 --format csv | "
        f"'{mlpcli_script}' run layers=[4,2] inputs=- --format json"
    )
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["config"]["batch"] == 6
    first = output_of("layers=[3,5,4]", "batch=6")
    (tmp_path / "first.json").write_text(json.dumps(run_json("layers=[3,5,4]", "batch=6")))
    second = output_of("layers=[4,2]", f"inputs={tmp_path / 'first.json'}")
    assert torch.equal(torch.tensor(result["output"], dtype=torch.float64), second)
    assert first.shape == (6, 4)


def test_paths_in_a_config_are_relative_to_its_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "x.npy", FEATURES[0].numpy())  # one row: shape (n0,)
    config = tmp_path / "net.yaml"
    config.write_text("layers: [4, 2]\ninputs: data/x.npy\n")
    result = run_json(str(config))
    assert result["config"]["inputs"] == str(tmp_path / "data" / "x.npy")  # type: ignore[index]
    assert result["config"]["batch"] == 1  # type: ignore[index]


def test_shapes_and_validate_read_safetensors_headers_without_torch(tmp_path: Path) -> None:
    save_file(trained().state_dict(), tmp_path / "m.safetensors")
    config = tmp_path / "net.yaml"
    config.write_text("weights: m.safetensors\nactivation: relu\n")
    script = (
        "import sys; from mlpcli.cli import run_app; "
        f"code = run_app(['shapes', {str(config)!r}, '-f', 'json']); "
        "assert 'torch' not in sys.modules, 'torch'; "
        f"code += run_app(['validate', {str(config)!r}]); "
        "assert 'torch' not in sys.modules, 'torch'; sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["config"]["layers"] == [4, 16, 8, 3]


def test_validate_calls_a_config_with_a_bad_weights_file_invalid(tmp_path: Path) -> None:
    save_file({"W1": torch.ones(3, 4)}, tmp_path / "w.safetensors")
    config = tmp_path / "net.yaml"
    config.write_text("layers: [3, 5]\nweights: w.safetensors\n")
    code, out, _ = invoke("validate", str(config))
    assert code == 1
    assert "W1 has shape [3, 4], but layers" in out


def test_init_with_weights_from_a_file_gets_a_note(tmp_path: Path) -> None:
    save_file({"W1": torch.ones(3, 2)}, tmp_path / "w.safetensors")
    code, _, err = invoke(
        "run", f"weights={tmp_path / 'w.safetensors'}", "init=xavier", "bias=false"
    )
    assert code == 0
    assert "init (override 'init=xavier') is ignored" in err


@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_parquet_and_feather_through_pyarrow(tmp_path: Path, suffix: str) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.feather
    import pyarrow.parquet

    table = pa.table(
        {"id": ["a", "b", "c"], "x": FEATURES[:, 0].numpy(), "y": np.array([1, 2, 3], np.int32)}
    )
    path = tmp_path / f"x{suffix}"
    if suffix == ".parquet":
        pyarrow.parquet.write_table(table, path)
    else:
        pyarrow.feather.write_feather(table, path)
    code, _, err = invoke("run", f"inputs={path}", "layers=[3, 1]")
    assert code == 2
    assert "column 'id' is string, not numbers; pick the feature columns with input_columns" in err
    got = run_json(f"inputs={path}", "input_columns=[y, x]", "layers=[2, 1]", "dtype=float64")
    assert got["config"]["batch"] == 3  # type: ignore[index]
    kept = tmp_path / "kept.safetensors"
    assert invoke("run", f"inputs={path}", "input_columns=[y, x]", "layers=[2, 1]", "dtype=float64",
                  "-o", str(kept), "-q")[0] == 0  # fmt: skip
    expected = np.stack([[1.0, 2.0, 3.0], FEATURES[:3, 0].double().numpy()], axis=1)
    np.testing.assert_array_equal(load_file(kept)["features"].numpy(), expected)


def test_an_output_that_is_a_fifo_is_written_into_not_replaced(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()))
    reader.start()
    code, _, err = invoke("run", "-o", str(fifo), "-q")
    reader.join(timeout=30)
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the FIFO its reader opened
    assert json.loads(read[0])["schema"] == "mlpcli.run/2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary


@pytest.mark.parametrize("nproc", [[], ["parallel=data", "--nproc", "2"]], ids=["one", "ranks"])
def test_an_output_that_is_a_link_is_written_through(tmp_path: Path, nproc: list[str]) -> None:
    """A symbolic link is written through: its target is replaced, in the target's folder, and
    the link stays (it was replaced by a file, the target left as it was)."""
    (tmp_path / "shared").mkdir()
    target = tmp_path / "shared" / "scores.csv"
    target.write_text("the old file\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(Path("shared") / "scores.csv")
    code, _, err = invoke("run", "batch=5", "-o", str(link), "-q", *nproc)
    assert code == 0, err
    assert link.is_symlink()
    assert target.read_text() == invoke("run", "batch=5", "-f", "csv")[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.csv", "shared"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["scores.csv"]  # no temporary
    (tmp_path / "nowhere.csv").symlink_to(Path("missing") / "scores.csv")  # checked first
    code, _, err = invoke("run", "batch=5", "-o", str(tmp_path / "nowhere.csv"), *nproc)
    assert (code, err) == (
        2,
        f"mlpcli: error: --output {tmp_path}/nowhere.csv: no such directory {tmp_path}/missing\n",
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_device_is_the_machines_exit_3(tmp_path: Path) -> None:
    """An output on a device that is full (/dev/full, through a link) is exit 3, as a full disk
    is: it was exit 2, a usage error."""
    (tmp_path / "full.csv").symlink_to("/dev/full")
    code, _, err = invoke("run", "batch=5000", "-o", str(tmp_path / "full.csv"), "-q")
    assert (code, err) == (
        3,
        f"mlpcli: error: {tmp_path}/full.csv: cannot write: No space left on device\n",
    )


def test_a_ranks_region_of_an_npy_names_it_when_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rank's rows written into rank 0's .npy name the output when the disk is full (exit 3;
    the line said 'cannot write the results')."""
    temporary = tmp_path / "t.npy"
    temporary.write_bytes(bytes(1024))
    config = loader.load(None, [])

    def full(*_: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with (
        pytest.raises(
            UnavailableError, match=r"^.*out\.npy: cannot write: No space left on device$"
        ),
        shares._region(tmp_path / "out.npy", temporary, config, range(2)) as writer,
    ):
        writer.add(np.zeros((2, config.layers[-1]), np.float32))


def test_expect_names_what_it_reads_for_an_output_it_does_not(tmp_path: Path) -> None:
    """`--expect` of a run's .parquet, .jsonl or .safetensors output says which it reads (it
    tried them as JSON: 'not UTF-8 text')."""
    for suffix in (".parquet", ".jsonl"):
        gold = tmp_path / f"gold{suffix}"
        assert invoke("run", "batch=5", "-o", str(gold), "-q")[0] == 0
        code, _, err = invoke("run", "batch=5", "--expect", str(gold))
        assert code == 2
        assert err == (
            f"mlpcli: error: --expect {gold}: reads a run's output as .npy, .csv or .json "
            f"(-f json), not {suffix}; write the expected output with -o gold.npy\n"
        )


def test_a_weight_past_the_dtypes_range_is_named(tmp_path: Path) -> None:
    """A float64 weight that the run's float32 cannot hold is an error naming the tensor (it
    became an infinity, and the outputs 1.0, silently); float64 runs it."""
    weight = torch.randn(4, 3, dtype=torch.float64)
    weight[1, 1] = 1e39
    path = tmp_path / "w.safetensors"
    save_file({"0.weight": weight, "0.bias": torch.zeros(4, dtype=torch.float64)}, path)
    args = ["run", "layers=[3, 4]", f"weights={path}", "activation=sigmoid", "batch=2"]
    code, _, err = invoke(*args)
    assert (code, err) == (
        2,
        f"mlpcli: error: override 'weights={path}': weights: {path}: 0.weight: 1e+39 is past "
        "the range of float32 (±3.40282347e+38); run in float64\n",
    )
    assert invoke(*args, "dtype=float64")[0] == 0


def test_a_file_cut_short_between_two_counts_of_its_rows_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """batch is the file's rows, counted once for batch and again for the checks; a file cut
    short in between (another process truncating it) was an internal error (KeyError)."""
    import dataclasses

    from mlpcli.data import features
    from mlpcli.errors import ConfigError
    from mlpcli.loading.loader import load

    path = tmp_path / "x.csv"
    path.write_text("1,2,3\n" * 10)
    counts = iter([10, 4])
    described = features.describe

    def shrinking(path: str, reading: features.Reading) -> features.FeaturesFile:
        return dataclasses.replace(described(path, reading), rows=next(counts))

    monkeypatch.setattr(features, "describe", shrinking)
    with pytest.raises(ConfigError, match=r"holds 4 rows, not the 10 counted a moment before; "):
        load(None, [f"inputs={path}"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_width_that_does_not_fit_says_pandas_index_was_left_out(
    tmp_path: Path, suffix: str
) -> None:
    """The note that pandas' index is left out shows only where a run goes on; where the width
    does not fit the network, the error says so itself."""
    pd = pytest.importorskip("pandas", exc_type=ImportError)
    frame = pd.DataFrame(FEATURES[:, :3].numpy(), columns=["a", "b", "c"])
    path = tmp_path / f"x{suffix}"
    if suffix == ".csv":
        frame.to_csv(path)  # pandas' default: an unnamed index first, then a, b, c
        said = "rows of 3 features, but layers[0] is 4 (override 'layers=[4, 1]'); its first "
        said += "column, pandas' index, is left out"
    else:
        pytest.importorskip("pyarrow")
        frame.set_index("a").to_parquet(path)  # b, c
        said = "rows of 2 features, but layers[0] is 4 (override 'layers=[4, 1]'); pandas' "
        said += "index (a) is left out"
    code, _, err = invoke("run", f"inputs={path}", "layers=[4, 1]")
    assert code == 2
    assert err.strip().endswith(said)


def test_keras_weights_written_with_h5py_run_as_numpy_computes(tmp_path: Path) -> None:
    """A `.weights.h5` and a `.keras` archive in Keras 3's layout, written with h5py alone (so
    that the oldest h5py that pyproject.toml allows runs it in CI): the Dense kernels (in, out)
    and biases, run as NumPy computes them."""
    import zipfile

    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(23)
    W1, B1, W2, B2 = (rng.standard_normal(s).astype(np.float32) for s in ((4, 6), 6, (6, 3), 3))
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    with h5py.File(tmp_path / "m.weights.h5", "w") as file:
        for name, kernel, bias in (("dense", W1, B1), ("dense_1", W2, B2)):
            file[f"layers/{name}/vars/0"], file[f"layers/{name}/vars/1"] = kernel, bias
    dense = [{"class_name": "Dense", "config": {"name": n, "activation": a}}
             for n, a in (("dense", "tanh"), ("dense_1", "linear"))]  # fmt: skip
    config = {"class_name": "Sequential", "config": {"name": "m", "layers": dense}}
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:  # stored, as Keras saves it
        archive.writestr("config.json", json.dumps(config))
        archive.write(tmp_path / "m.weights.h5", "model.weights.h5")
    expected = np.tanh(x.astype(np.float64) @ W1 + B1) @ W2 + B2
    for weights, extra in (("m.weights.h5", ["activation=[tanh, identity]"]), ("m.keras", [])):
        code, out, err = invoke(
            "run", f"weights={tmp_path / weights}", f"inputs={tmp_path / 'x.npy'}", *extra,
            "-f", "json",
        )  # fmt: skip
        assert code == 0, err
        np.testing.assert_allclose(json.loads(out)["output"], expected, rtol=1e-5, atol=1e-5)
