"""Files as other tools write them (docs/files.md): written here by numpy, pandas, pyarrow,
torch, safetensors and scikit-learn in the ways those libraries write them by default, and read
by mlpcli; each checked against the library's own reading of the file, or its own prediction.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file, save_model
from torch import nn

from .conftest import invoke

RNG = np.random.default_rng(7)
X = RNG.standard_normal((6, 4))  # features: 6 rows of 4
FRAME = pd.DataFrame(X)  # pandas' default column names 0..3, default index 0..5
NAMED = pd.DataFrame(X, columns=["a", "b", "c", "d"])


def features_read(path: Path, *overrides: str) -> tuple[np.ndarray, str]:
    """The features mlpcli read from `path` (float64, as the run kept them), and its notes."""
    out = path.parent / "read.safetensors"
    code, _, err = invoke(
        "run", f"inputs={path}", "dtype=float64", "activation=identity", *overrides,
        "-o", str(out), "-q",
    )  # fmt: skip
    assert code == 0, err
    return load_file(out)["features"].numpy(), err


def widths(columns: int) -> str:
    return f"layers=[{columns}, 1]"


# Features: the producing call, and the library's own reading of what it wrote.
Writer = Callable[[Path], tuple[Path, np.ndarray]]


def _csv(**kwargs: object) -> Writer:
    def write(folder: Path) -> tuple[Path, np.ndarray]:
        path = folder / "x.csv"
        FRAME.to_csv(path, **kwargs)
        index_col = 0 if kwargs.get("index", True) else None
        expected = pd.read_csv(
            path,
            index_col=index_col,
            header=0 if kwargs.get("header", True) else None,
            sep=str(kwargs.get("sep", ",")),
            decimal=str(kwargs.get("decimal", ".")),
        )
        return path, expected.to_numpy()

    return write


def _npy(array: Callable[[], np.ndarray]) -> Writer:
    def write(folder: Path) -> tuple[Path, np.ndarray]:
        path = folder / "x.npy"
        np.save(path, array())
        return path, np.load(path).astype(np.float64).reshape(-1, np.load(path).shape[-1])

    return write


def _npz(save: Callable[[Path], None]) -> Writer:
    def write(folder: Path) -> tuple[Path, np.ndarray]:
        path = folder / "x.npz"
        save(path)
        with np.load(path, allow_pickle=False) as archive:
            name = "features" if "features" in archive else archive.files[0]
            return path, archive[name].astype(np.float64)

    return write


def _savetxt(suffix: str, delimiter: str | None = None, header: str = "") -> Writer:
    def write(folder: Path) -> tuple[Path, np.ndarray]:
        path = folder / f"x{suffix}"
        np.savetxt(path, X, delimiter=delimiter or " ", header=header)
        return path, np.loadtxt(path, delimiter=delimiter)

    return write


def _json(orient: str, lines: bool = False) -> Writer:
    def write(folder: Path) -> tuple[Path, np.ndarray]:
        path = folder / ("x.jsonl" if lines else "x.json")
        NAMED.to_json(path, orient=orient, lines=lines)
        read = pd.read_json(path, orient=orient, lines=lines, precise_float=True)
        return path, np.asarray(read, dtype=np.float64)

    return write


def _arrow(suffix: str) -> Writer:
    def write(folder: Path) -> tuple[Path, np.ndarray]:
        path = folder / f"x{suffix}"
        frame = NAMED.set_index(pd.Index(range(10, 16))) if suffix == ".parquet" else NAMED
        if suffix == ".parquet":
            frame.to_parquet(path)  # its index (not a range from 0) is stored as a column
            return path, pd.read_parquet(path).to_numpy()
        frame.to_feather(path)
        return path, pd.read_feather(path).to_numpy()

    return write


FEATURE_FILES: dict[str, Writer] = {
    "pd.to_csv(index=False): header 0..n-1": _csv(index=False),
    "pd.to_csv(): index column, header ,0..n-1": _csv(),
    "pd.to_csv(sep='\\t') as .csv": _csv(sep="\t", index=False),
    "pd.to_csv(sep=';')": _csv(sep=";", index=False),
    "pd.to_csv(sep=';', decimal=',') (European)": _csv(sep=";", decimal=",", index=False),
    "pd.to_csv(sep='\\t', decimal=',')": _csv(sep="\t", decimal=",", index=False),
    "pd.to_csv(sep=';', decimal=',', header=False)": _csv(
        sep=";", decimal=",", index=False, header=False
    ),
    "pd.to_csv(lineterminator='\\r')": _csv(index=False, lineterminator="\r"),
    "np.save C order": _npy(lambda: X),
    "np.save(df.to_numpy()) Fortran order": _npy(lambda: NAMED.to_numpy()),
    "np.save(X.T.T) Fortran order, float32": _npy(lambda: np.asfortranarray(X, np.float32)),
    "np.save big-endian float64": _npy(lambda: X.astype(">f8")),
    "np.save big-endian float32": _npy(lambda: X.astype(">f4")),
    "np.save float16": _npy(lambda: X.astype(np.float16)),
    "np.save int16": _npy(lambda: (X * 100).astype(np.int16)),
    "np.save uint32 big-endian": _npy(lambda: (abs(X) * 1000).astype(">u4")),
    "np.save uint64": _npy(lambda: (abs(X) * 1000).astype(np.uint64)),
    "np.save long double": _npy(lambda: X.astype(np.longdouble)),
    "np.save one row (n0,)": _npy(lambda: X[0]),
    "np.savez(X) (its one array, arr_0)": _npz(lambda path: np.savez(path, X)),
    "np.savez_compressed(features=X, labels=y)": _npz(
        lambda path: np.savez_compressed(path, features=X, labels=np.arange(6))
    ),
    "np.savez(features=Fortran-order float32)": _npz(
        lambda path: np.savez(path, features=np.asfortranarray(X, np.float32))
    ),
    "np.savetxt default (spaces) .txt": _savetxt(".txt"),
    "np.savetxt default as .csv": _savetxt(".csv"),
    "np.savetxt(header=...) commented": _savetxt(".txt", header="a b c d"),
    "np.savetxt(delimiter=',')": _savetxt(".csv", delimiter=","),
    "np.savetxt(delimiter='\\t') .tsv": _savetxt(".tsv", delimiter="\t"),
    "df.to_json() (orient columns)": _json("columns"),
    "df.to_json(orient='values')": _json("values"),
    "df.to_json(orient='records')": _json("records"),
    "df.to_json(orient='split')": _json("split"),
    "df.to_json(orient='table')": _json("table"),
    "df.to_json(orient='records', lines=True)": _json("records", lines=True),
    "df.to_parquet() with an index": _arrow(".parquet"),
    "df.to_feather()": _arrow(".feather"),
}


@pytest.mark.parametrize("write", FEATURE_FILES.values(), ids=FEATURE_FILES.keys())
def test_features_as_the_library_reads_them(tmp_path: Path, write: Writer) -> None:
    path, expected = write(tmp_path)
    got, _ = features_read(path, widths(expected.shape[1]))
    np.testing.assert_array_equal(got, expected.astype(np.float64))


def test_a_header_and_an_index_column_are_said(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    FRAME.to_csv(path)
    got, err = features_read(path, widths(4))
    assert got.shape == (6, 4)
    assert "x.csv: line 1 read as column names (0, 1, 2, 3)" in err
    assert "is pandas' index and is left out" in err
    assert "index=False" in err


def test_a_label_column_is_picked_out_by_name_or_index(tmp_path: Path) -> None:
    path = tmp_path / "iris.csv"
    NAMED.assign(species=["setosa"] * 3 + ["virginica"] * 3, id=range(6)).to_csv(path, index=False)
    expected = pd.read_csv(path)[["c", "a"]].to_numpy()
    got, _ = features_read(path, widths(2), "input_columns=[c, a]")
    np.testing.assert_array_equal(got, expected)
    got, _ = features_read(path, widths(2), "input_columns=[2, 0]")
    np.testing.assert_array_equal(got, expected)
    code, _, err = invoke("run", f"inputs={path}", widths(4))
    assert code == 2
    assert "column 'species' is not numbers" in err
    assert "input_columns" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("index", [False, True])
def test_a_column_name_holding_a_line_break_is_one_header(
    tmp_path: Path, mlpcli_script: str, index: bool
) -> None:
    """pandas quotes a name that holds a line break, and its header goes on over two lines:
    those lines are the header (the second was read as a row of one value)."""
    path = tmp_path / "x.csv"
    frame = NAMED.rename(columns={"a": "temp\n(C)", "c": 'say "c"\nover\nlines'})
    frame.to_csv(path, index=index)
    expected = pd.read_csv(path, index_col=0 if index else None)
    got, err = features_read(path, widths(4), "chunk=2")
    np.testing.assert_array_equal(got, expected.to_numpy())
    assert "x.csv: line 1 read as column names (temp\\n(C), b, say" in err
    got, _ = features_read(path, widths(2), 'input_columns=[d, "temp\\n(C)"]', "chunk=2")
    np.testing.assert_array_equal(got, expected[["d", "temp\n(C)"]].to_numpy())
    done = subprocess.run(
        [mlpcli_script, "run", "inputs=-", widths(4), "chunk=2", "-f", "csv"],
        input=path.read_bytes(), capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 7
    frame.rename(columns={"b": "x\n\ny"}).to_csv(path, index=index)  # a blank line in a name
    code, _, err = invoke("run", f"inputs={path}", widths(4))
    assert code == 2
    assert err.strip().endswith(
        "x.csv: line 1: a quoted column name holds a blank or '#' line; rename it"
    )


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([[True, False]]), "holds an array of bool"),
        (np.array([[1 + 2j, 3j]]), "holds an array of complex128"),
        (np.zeros(2, dtype=[("a", "f4"), ("b", "f4")]), "holds an array of"),
        (np.array([["a", "b"]]), "holds an array of <U1"),
    ],
)
def test_arrays_that_are_not_real_numbers_stay_refused(
    tmp_path: Path, array: np.ndarray, message: str
) -> None:
    path = tmp_path / "x.npy"
    np.save(path, array)
    code, _, err = invoke("run", f"inputs={path}", "layers=[2, 1]")
    assert code == 2
    assert message in err


def test_npy_bytes_and_csv_on_stdin(tmp_path: Path, mlpcli_script: str) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.asfortranarray(X.astype(">f4")))
    for data in (path.read_bytes(), FRAME.to_csv(index=False).encode()):
        done = subprocess.run(
            [mlpcli_script, "run", "inputs=-", widths(4), "dtype=float64", "-f", "json"],
            input=data, capture_output=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert len(json.loads(done.stdout)["output"]) == 6
    done = subprocess.run(
        [mlpcli_script, "run", "inputs=-", widths(4)], input=b"", capture_output=True, check=False
    )
    assert done.returncode == 2
    assert (
        done.stderr.decode().strip()
        == "mlpcli: error: override 'inputs=-': inputs: <stdin>: empty: nothing was piped in"
    )


def test_parquet_without_pyarrow_names_the_package(tmp_path: Path, mlpcli_script: str) -> None:
    path = tmp_path / "x.parquet"
    NAMED.to_parquet(path)
    code = "import sys; sys.modules['pyarrow'] = None; from mlpcli.cli import main; main()"
    python = str(Path(mlpcli_script).parent / "python")
    done = subprocess.run(
        [python, "-c", code, "run", f"inputs={path}", widths(4)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.startswith("mlpcli: error: override 'inputs=")  # located, as a bad file
    assert f"': inputs: {path}: reading it needs pyarrow: pip install pyarrow" in done.stderr
    assert "mlpcli[" not in done.stderr


def test_validate_without_pyarrow_checks_every_file_then_exits_3(
    tmp_path: Path, mlpcli_script: str
) -> None:
    """A config whose data needs a missing package cannot be checked here: its line says so,
    located, the other files are checked still, and the exit is 3 (it stopped at that file)."""
    NAMED.to_parquet(tmp_path / "x.parquet")
    (tmp_path / "pq.yaml").write_text(f"{widths(4)}\ninputs: x.parquet\n".replace("=", ": "))
    (tmp_path / "ok.yaml").write_text("layers: [2, 3]\n")
    (tmp_path / "bad.yaml").write_text("layers: [2, x]\n")
    code = "import sys; sys.modules['pyarrow'] = None; from mlpcli.cli import main; main()"
    python = str(Path(mlpcli_script).parent / "python")
    done = subprocess.run(
        [python, "-c", code, "validate", "pq.yaml", "ok.yaml", "bad.yaml"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("pq.yaml:2:9: inputs: x.parquet: reading it needs pyarrow")
    assert lines[1].startswith("ok.yaml: ok")
    assert lines[2].startswith("bad.yaml:1:13: layers[1]: expected an integer")


# Models as training code saves them


class Named(nn.Module):
    """Layers registered out of running order (`out` before `fc1`), as people write them."""

    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.out = nn.Linear(16, 3, bias=bias)
        self.fc1 = nn.Linear(4, 16, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.out(torch.relu(self.fc1(x)))
        return output


class EncoderDecoder(nn.Module):
    def __init__(self, bias: bool) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 8, bias=bias)
        self.decoder = nn.Linear(8, 3, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.decoder(torch.relu(self.encoder(x)))
        return output


def sequential(bias: bool) -> nn.Module:
    return nn.Sequential(
        nn.Linear(4, 16, bias=bias), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3, bias=bias)
    )


MODELS = {"fc1/out": Named, "encoder/decoder": EncoderDecoder, "nn.Sequential": sequential}
FEATURES32 = torch.from_numpy(X.astype(np.float32))


def output_of(*args: str) -> tuple[torch.Tensor, str]:
    code, out, err = invoke("run", *args, "-f", "json")
    assert code == 0, err
    return torch.tensor(json.loads(out)["output"], dtype=torch.float32), err


@pytest.fixture
def features_file(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, FEATURES32.numpy())
    return path


@pytest.mark.parametrize("save", ["safetensors", "pt", "checkpoint", "lightning", "ddp"])
@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())
@pytest.mark.parametrize("bias", [True, False])
def test_models_as_code_saves_them_run_bit_for_bit(
    tmp_path: Path, features_file: Path, save: str, model: Callable[[bool], nn.Module], bias: bool
) -> None:
    torch.manual_seed(3)
    net = model(bias).eval()
    state = net.state_dict()
    path = tmp_path / ("model.safetensors" if save == "safetensors" else "model.ckpt")
    if save == "safetensors":
        save_file(state, path)
    elif save == "pt":
        torch.save(state, path)
    elif save == "checkpoint":  # PyTorch's tutorial
        optimizer = torch.optim.Adam(net.parameters())
        torch.save(
            {"epoch": 5, "model_state_dict": state, "optimizer_state_dict": optimizer.state_dict(),
             "loss": 0.25},
            path,
        )  # fmt: skip
    elif save == "lightning":  # the keys Lightning writes, its module's attribute `model.`
        torch.save(
            {"epoch": 2, "global_step": 40, "pytorch-lightning_version": "2.4.0",
             "state_dict": {f"model.{k}": v for k, v in state.items()},
             "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [],
             "hyper_parameters": {"hidden": 16, "lr": 0.001}},
            path,
        )  # fmt: skip
    else:  # DistributedDataParallel's state dict
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    got, err = output_of(f"weights={path}", f"inputs={features_file}", "activation=[relu,identity]")
    with torch.no_grad():
        expected = net(FEATURES32)
    assert torch.equal(got, expected), (got - expected).abs().max()
    assert "activation is not set" not in err


def test_tied_weights_saved_with_save_model(tmp_path: Path, features_file: Path) -> None:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh()).eval()
    net[2].weight = net[0].weight  # tied
    path = tmp_path / "tied.safetensors"
    save_model(net, str(path))
    got, _ = output_of(f"weights={path}", f"inputs={features_file}", "activation=tanh")
    with torch.no_grad():
        assert torch.equal(got, net(FEATURES32))


def test_batchnorm_after_a_linear_is_folded(tmp_path: Path, features_file: Path) -> None:
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Linear(4, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
        nn.Linear(16, 8), nn.BatchNorm1d(8, affine=False), nn.ReLU(), nn.Linear(8, 3),
    )  # fmt: skip
    with torch.no_grad():  # running statistics that are not the defaults
        for _ in range(20):
            net(torch.randn(64, 4) * 3 + 1)
    net.eval()
    for suffix in ("pt", "safetensors"):
        path, activation = tmp_path / f"bn.{suffix}", "activation=[relu,relu,identity]"
        err = _runs_as_saved(net, path, f"inputs={features_file}", activation, atol=1e-6)
        assert "BatchNorm1d folded" in err


def test_equal_widths_run_in_the_files_order_and_weights_order_chooses(
    tmp_path: Path, features_file: Path
) -> None:
    torch.manual_seed(6)
    hidden, head = nn.Linear(4, 4), nn.Linear(4, 4)
    path = tmp_path / "square.pt"
    torch.save({"hidden.weight": hidden.weight, "hidden.bias": hidden.bias,
                "head.weight": head.weight, "head.bias": head.bias}, path)  # fmt: skip
    got, err = output_of(f"weights={path}", f"inputs={features_file}", "activation=identity")
    with torch.no_grad():
        assert torch.equal(got, head(hidden(FEATURES32)))
    assert "allow several orders; ran hidden → head" in err
    got, err = output_of(
        f"weights={path}", f"inputs={features_file}", "activation=identity",
        "weights_order=[head, hidden]",
    )  # fmt: skip
    with torch.no_grad():
        assert torch.equal(got, hidden(head(FEATURES32)))
    assert "several orders" not in err


def test_a_transposed_weight_is_named(tmp_path: Path) -> None:
    torch.manual_seed(7)
    state = {"fc1.weight": torch.randn(16, 4), "fc2.weight": torch.randn(16, 3)}  # fc2 transposed
    path = tmp_path / "t.safetensors"
    save_file(state, path)
    code, _, err = invoke("run", f"weights={path}")
    assert code == 2
    assert "fc2.weight has shape [16, 3]" in err
    assert "transpose it" in err


def test_a_hostile_pickle_is_one_line(tmp_path: Path, mlpcli_script: str) -> None:
    from .test_reliability import malicious  # a pickle that would run os.system

    path = tmp_path / "evil.pt"
    malicious(path)
    done = subprocess.run(
        [mlpcli_script, "run", f"weights={path}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # torch's warning kept off
    assert "holds Python objects, not plain tensors" in done.stderr
    assert not (tmp_path / "pwned").exists()


# What mlpcli itself wrote, read back with the config that made it


def test_a_file_mlpcli_wrote_brings_its_config(tmp_path: Path) -> None:
    exported = tmp_path / "net.safetensors"
    made = ["seed=11", "layers=[5, 7, 2]", "activation=[tanh, softmax]", "batch=3", "name=mine"]
    code, _, err = invoke("export", *made, "-o", str(exported))
    assert code == 0, err
    original, _ = output_of(*made)
    again, err = output_of(f"weights={exported}")
    torch.testing.assert_close(again, original, rtol=1e-6, atol=1e-7)
    assert "name, seed, activation, init, dtype, batch from" in err
    code, out, _ = invoke("run", f"weights={exported}", "-f", "json")
    assert json.loads(out)["name"] == "mine"
    run_output = tmp_path / "run.safetensors"
    assert invoke("run", *made, "-o", str(run_output), "-q")[0] == 0
    bits, _ = output_of(f"weights={run_output}")  # mlpcli's layout: the same bits
    assert torch.equal(bits, original)


# scikit-learn: the README's recipe


def sklearn_weights(model: object, path: Path) -> None:
    """The README's recipe: coefs_ are (n_in, n_out), mlpcli's W1.., intercepts_ its B1.."""
    from safetensors.numpy import save_file as save_arrays

    tensors = {f"W{i}": w for i, w in enumerate(model.coefs_, 1)}  # type: ignore[attr-defined]
    tensors |= {f"B{i}": b for i, b in enumerate(model.intercepts_, 1)}  # type: ignore[attr-defined]
    save_arrays(tensors, str(path))


@pytest.mark.slow
def test_the_readmes_scikit_learn_recipe(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    features, labels = load_iris(return_X_y=True)
    np.save(tmp_path / "iris.npy", features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier = MLPClassifier(
            hidden_layer_sizes=(10, 8), activation="logistic", max_iter=300, random_state=0
        )
        classifier.fit(features, labels)
        regressor = MLPRegressor(
            hidden_layer_sizes=(6,), activation="tanh", max_iter=300, random_state=0
        )
        regressor.fit(features[:, :3], features[:, 3])
    sklearn_weights(classifier, tmp_path / "clf.safetensors")
    sklearn_weights(regressor, tmp_path / "reg.safetensors")
    code, out, err = invoke(
        "run", f"weights={tmp_path / 'clf.safetensors'}", f"inputs={tmp_path / 'iris.npy'}",
        "activation=[sigmoid, sigmoid, softmax]", "dtype=float64", "-f", "json",
    )  # fmt: skip
    assert code == 0, err
    probabilities = np.array(json.loads(out)["output"])
    np.testing.assert_allclose(probabilities, classifier.predict_proba(features), atol=1e-12)
    assert (classifier.classes_[probabilities.argmax(1)] == classifier.predict(features)).all()
    np.save(tmp_path / "three.npy", features[:, :3])
    code, out, err = invoke(
        "run", f"weights={tmp_path / 'reg.safetensors'}", f"inputs={tmp_path / 'three.npy'}",
        "activation=[tanh, identity]", "dtype=float64", "-f", "json",
    )  # fmt: skip
    assert code == 0, err
    predicted = np.array(json.loads(out)["output"])[:, 0]
    np.testing.assert_allclose(predicted, regressor.predict(features[:, :3]), atol=1e-12)


# Outputs never destroy inputs


@pytest.mark.parametrize(
    ("args", "victim"),
    [
        (["run", "inputs={f}", "layers=[4, 1]", "-o", "{f}"], "x.npy"),
        (["export", "weights={w}", "-o", "{w}"], "w.safetensors"),
        (["shapes", "inputs={c}", "layers=[4, 1]", "-o", "{c}"], "x.csv"),
        (["run", "inputs={c}", "layers=[4, 1]", "-o", "{c}"], "x.csv"),
    ],
)
def test_an_output_that_is_an_input_is_refused(
    tmp_path: Path, args: list[str], victim: str
) -> None:
    features, weights, table = tmp_path / "x.npy", tmp_path / "w.safetensors", tmp_path / "x.csv"
    np.save(features, FEATURES32.numpy())
    FRAME.to_csv(table, index=False)
    save_file(sequential(True).state_dict(), weights)
    before = (tmp_path / victim).read_bytes()
    filled = [a.format(f=features, w=weights, c=table) for a in args]
    code, _, err = invoke(*filled)
    assert code == 2, err
    assert "is also an input" in err
    assert (tmp_path / victim).read_bytes() == before


# The command line around files


def test_null_means_the_default_so_a_files_rows_decide(tmp_path: Path) -> None:
    from .conftest import TWO_LAYER

    path = tmp_path / "x.npy"
    np.save(path, X[:, :3])
    code, _, err = invoke("run", TWO_LAYER, f"inputs={path}")  # batch: 1 in the file
    assert code == 2
    assert "leave batch out, or set batch=null, to take the file's rows" in err
    code, out, err = invoke("run", TWO_LAYER, f"inputs={path}", "batch=null", "-f", "json")
    assert code == 0, err
    assert json.loads(out)["config"]["batch"] == 6
    code, out, _ = invoke("config", "show", TWO_LAYER, "seed=null", "-f", "json")
    assert json.loads(out)["seed"] == 0  # the field's default, not the file's 7


@pytest.mark.parametrize("command", ["run", "shapes", "export", "draw", "validate"])
def test_an_activation_list_of_the_wrong_length_says_what_the_weights_need(
    tmp_path: Path, command: str
) -> None:
    weights = tmp_path / "w.safetensors"
    save_file(sequential(True).state_dict(), weights)
    config = tmp_path / "net.yaml"
    config.write_text("weights: w.safetensors\nactivation: [relu, relu, identity]\n")
    args = [str(config)] + (["-o", str(tmp_path / "x.pt")] if command == "export" else [])
    code, out, err = invoke(command, *args)
    assert code == (1 if command == "validate" else 2), err
    said = out if command == "validate" else err  # validate's verdict is its result
    assert "lists 3 names, but the weights" in said
    assert "hold 2 weight layers" in said


def test_a_terminal_on_stdin_is_refused_at_once(mlpcli_script: str) -> None:
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [mlpcli_script, "run", "inputs=-", "layers=[3, 1]"],
            stdin=follower, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(leader)
        os.close(follower)
    assert done.returncode == 2
    assert "standard input is a terminal; pipe a file in" in done.stderr


def test_json_numbered_both_ways_reads_as_pandas_does_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    square = pd.DataFrame(X[:4])  # 4 x 4, pandas' default names and index
    square.to_json(path)  # orient='columns', pandas' default
    got, err = features_read(path, widths(4))
    np.testing.assert_array_equal(got, pd.read_json(path, precise_float=True).to_numpy())
    assert "written with orient='index', it needs input_orient: index" in err


def test_an_error_about_the_output_is_the_only_line(tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    save_file(sequential(True).state_dict(), weights)
    code, _, err = invoke("export", f"weights={weights}", "-o", str(weights))
    assert code == 2
    assert err.count("\n") == 1, err  # no note about the activation before it
    assert "is also an input" in err


# Cases a review found


def test_pandas_json_by_columns_or_by_index_whatever_the_order(tmp_path: Path) -> None:
    shuffled = FRAME.sample(frac=1, random_state=0)  # index 3, 0, 5, ...: not 0..n-1
    path = tmp_path / "shuffled.json"
    shuffled.to_json(path)
    got, _ = features_read(path, widths(4))
    np.testing.assert_array_equal(got, pd.read_json(path, precise_float=True).to_numpy())
    by_index = NAMED.set_axis([5, 7, 9, 11, 13, 15])
    path = tmp_path / "index.json"
    by_index.to_json(path, orient="index")
    got, _ = features_read(path, widths(4), "input_orient=index")
    read = pd.read_json(path, orient="index", precise_float=True)
    np.testing.assert_array_equal(got, read.to_numpy())


def test_batchnorm_in_safetensors_folds_into_the_linear_named_alike(
    tmp_path: Path, features_file: Path
) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.bn2, self.out = (
                nn.Linear(4, 8), nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)
            )  # fmt: skip

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.fc1(x))
            output: torch.Tensor = self.out(torch.relu(self.bn2(self.fc2(h))))
            return output

    torch.manual_seed(8)
    net = Net()
    with torch.no_grad():
        for _ in range(10):
            net(torch.randn(32, 4) * 2)
    net.eval()
    path = tmp_path / "bn.safetensors"
    save_file(net.state_dict(), path)
    activation = "activation=[relu,relu,identity]"
    code, _, err = invoke("run", f"weights={path}", f"inputs={features_file}", activation)
    assert code == 2  # fc2, bn2: the names do not say which side of the activation bn2 is on
    assert "set batchnorm: after_linear" in err
    got, err = output_of(
        f"weights={path}", f"inputs={features_file}", activation, "batchnorm=after_linear"
    )
    with torch.no_grad():
        torch.testing.assert_close(got, net(FEATURES32), rtol=1e-5, atol=1e-6)
    assert "bn2 into fc2" in err


def test_the_features_width_chooses_between_orders(tmp_path: Path) -> None:
    torch.manual_seed(9)
    encoder = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    decoder = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 5))
    model = nn.Sequential(encoder, decoder).eval()  # 5 → 3 → 5; names sort decoder first
    state = {f"{'encoder' if k.startswith('0') else 'decoder'}{k[1:]}": v
             for k, v in model.state_dict().items()}  # fmt: skip
    path, features = tmp_path / "ed.safetensors", tmp_path / "x.npy"
    save_file(state, path)
    np.save(features, np.asarray(X[:, :1].repeat(5, 1), np.float32))
    activation = "activation=[relu,identity,relu,identity]"
    got, _ = output_of(f"weights={path}", f"inputs={features}", activation)
    with torch.no_grad():
        expected = model(torch.from_numpy(np.load(features)))
    assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("zero.parquet", lambda p: NAMED.iloc[:0].to_parquet(p)),
        ("zero.json", lambda p: NAMED.iloc[:0].to_json(p, orient="split")),
        ("zero.jsonl", lambda p: NAMED.iloc[:0].to_json(p, orient="records", lines=True)),
        ("blank.jsonl", lambda p: p.write_text("\n \n\t\n")),  # was "line 4: invalid JSON"
    ],
)
def test_a_table_of_no_rows_is_refused(tmp_path: Path, name: str, write: Writer) -> None:
    path = tmp_path / name
    write(path)
    code, _, err = invoke("run", f"inputs={path}", widths(4))
    assert code == 2, err
    assert "holds no rows of features" in err


def test_a_missing_value_in_the_first_row_is_not_a_header(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("0.5,,0.3\n1,2,3\n")
    code, _, err = invoke("run", f"inputs={path}", widths(3))
    assert code == 2
    assert "line 1, column 2: an empty cell is a missing value (pandas writes NaN" in err


def test_json_lines_of_one_record(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    NAMED.iloc[:1].to_json(path, orient="records", lines=True)
    got, _ = features_read(path, widths(4))
    read = pd.read_json(path, orient="records", lines=True, precise_float=True)
    np.testing.assert_array_equal(got, read.to_numpy())


def test_an_output_that_is_a_directory_says_so(tmp_path: Path) -> None:
    code, _, err = invoke("export", "-o", f"{tmp_path}/")
    assert code == 2
    assert "is a directory" in err


# No silent wrong answer: where the file cannot say, a note and a field


@pytest.mark.parametrize("names", [[400, 500, 600, 700], [1, 2, 3, 4]])
def test_columns_named_by_numbers_are_a_header_as_pandas_reads_them(
    tmp_path: Path, names: list[float]
) -> None:
    path = tmp_path / "spectra.csv"
    pd.DataFrame(X, columns=names).to_csv(path, index=False)
    got, err = features_read(path, widths(4))
    np.testing.assert_array_equal(got, pd.read_csv(path).to_numpy())
    assert "line 1 read as column names" in err
    assert "input_header: false" in err
    got, _ = features_read(path, widths(4), "input_header=false", "batch=7")
    assert got.shape == (7, 4)  # as the user says: the first line is a row


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame((abs(X) * 100).astype(int), columns=[1, 2, 3, 4]),  # counts
        pd.DataFrame(X, columns=[0.5, 1, 2, 4]),  # written 0.5,1.0,2.0,4.0: decimals too
    ],
    ids=["whole numbers", "decimals"],
)
def test_numbers_above_numbers_of_their_kind_are_read_as_data_and_said(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    path = tmp_path / "counts.csv"
    frame.to_csv(path, index=False)
    got, err = features_read(path, widths(4), "batch=7")
    assert got.shape == (7, 4)
    assert "counts.csv: line 1 is numbers like the rows below and could be column names" in err
    got, err = features_read(path, widths(4), "input_header=true")
    np.testing.assert_array_equal(got, pd.read_csv(path).to_numpy())
    assert "could be column names" not in err
    rows = tmp_path / "rows.csv"  # data of whole numbers whose first row does not rise
    np.savetxt(rows, [[3, 1, 2], [4, 4, 4]], delimiter=",", fmt="%d")
    _, err = features_read(rows, widths(3))
    assert "could be column names" not in err


@pytest.mark.parametrize("orient", ["columns", "index"])
def test_pandas_json_with_a_string_index(tmp_path: Path, orient: str) -> None:
    frame = (FRAME if orient == "columns" else NAMED).set_axis([f"s{i}" for i in range(6)])
    path = tmp_path / "x.json"
    frame.to_json(path, orient=orient)
    expected = pd.read_json(path, orient=orient, precise_float=True).to_numpy()
    if orient == "columns":  # pandas' default: read as pandas reads it by default
        got, err = features_read(path, widths(4))
        np.testing.assert_array_equal(got, expected)
        assert "orient='columns' (6 rows of 4 columns)" in err
        return
    code, _, err = invoke("run", f"inputs={path}", widths(4))
    assert code == 2  # read as pandas' default, the rows are 6 wide: said, with the field
    assert "rows of 6 features, but layers[0] is 4" in err
    assert "input_orient: index" in err
    got, _ = features_read(path, widths(4), "input_orient=index")
    np.testing.assert_array_equal(got, expected)


def _save(net: nn.Module, path: Path) -> None:
    """`net`'s state dict as its suffix says: torch.save, or safetensors' save_file."""
    (save_file if path.suffix == ".safetensors" else torch.save)(net.state_dict(), path)


def _runs_as_saved(net: nn.Module, path: Path, *args: str, atol: float = 1e-5) -> str:
    """`net` saved to `path` and run by mlpcli with `args`: its output is `net`'s (float32
    rounding); the run's notes."""
    _save(net, path)
    got, err = output_of(f"weights={path}", *args)
    with torch.no_grad():
        torch.testing.assert_close(got, net(FEATURES32), rtol=1e-5, atol=atol)
    return err


def _trained(net: nn.Module, width: int) -> nn.Module:
    """`net` in eval mode after running statistics that are not the defaults."""
    torch.manual_seed(11)
    with torch.no_grad():
        for _ in range(20):
            net(torch.randn(64, width) * 3 + 1)
    return net.eval()


@pytest.mark.parametrize("suffix", ["pt", "safetensors"])
@pytest.mark.parametrize("dropout", [False, True])
def test_batchnorm_after_the_activation_folds_into_the_next_linear(
    tmp_path: Path, features_file: Path, suffix: str, dropout: bool
) -> None:
    torch.manual_seed(12)
    between = [nn.Dropout(0.2)] if dropout else []
    net = _trained(
        nn.Sequential(
            nn.Linear(4, 16), nn.ReLU(), *between, nn.BatchNorm1d(16), nn.Linear(16, 3)
        ),
        4,
    )  # fmt: skip
    path, activation = tmp_path / f"bn.{suffix}", "activation=[relu,identity]"
    err = _runs_as_saved(net, path, f"inputs={features_file}", activation)
    last = 3 + len(between)
    assert f"{last - 1} into the inputs of {last}" in err


def test_batchnorm_on_the_inputs_folds_into_the_first_linear(
    tmp_path: Path, features_file: Path
) -> None:
    torch.manual_seed(13)
    net = _trained(nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), 4)
    for suffix in ("pt", "safetensors"):
        path, activation = tmp_path / f"bn0.{suffix}", "activation=[relu,identity]"
        err = _runs_as_saved(net, path, f"inputs={features_file}", activation)
        assert "0 into the inputs of 1" in err


class AfterActivation(nn.Module):
    """fc1, ReLU, bn1, fc2: the state dict's names read like fc1, bn1, ReLU, fc2."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn1, self.fc2 = nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.fc2(self.bn1(torch.relu(self.fc1(x))))
        return output


@pytest.mark.parametrize("suffix", ["pt", "safetensors"])
def test_a_custom_modules_batchnorm_needs_the_field_that_places_it(
    tmp_path: Path, features_file: Path, suffix: str
) -> None:
    net = _trained(AfterActivation(), 4)
    path = tmp_path / f"custom.{suffix}"
    _save(net, path)
    inputs, activation = f"inputs={features_file}", "activation=[relu,identity]"
    code, _, err = invoke("run", f"weights={path}", inputs, activation)
    assert code == 2
    assert "bn1: the names do not say whether this BatchNorm1d of 8 sits" in err
    assert err.count("\n") == 1
    err = _runs_as_saved(net, path, inputs, activation, "batchnorm=after_activation")
    assert "bn1 into the inputs of fc2" in err


def test_a_decimal_comma_is_read_and_said(tmp_path: Path) -> None:
    path = tmp_path / "eu.csv"
    FRAME.to_csv(path, sep=";", decimal=",", index=False)
    _, err = features_read(path, widths(4))
    assert "eu.csv: decimal commas read as points" in err


@pytest.mark.parametrize("cell", ["1.234", "1.234,5"])
@pytest.mark.parametrize("chunk", ["chunk=null", "chunk=7"])
@pytest.mark.parametrize("row", [1, 3000])
def test_a_decimal_point_in_a_table_of_decimal_commas_is_refused(
    tmp_path: Path, row: int, chunk: str, cell: str
) -> None:
    """pandas' decimal=',' reads 1.234 as no number (and a point may separate thousands): a run
    refuses it naming its line and column, whether it is among the first lines or far down, and
    leaves no output; a point in a column that is not a feature is no matter."""
    frame = pd.DataFrame(np.arange(4000 * 3).reshape(4000, 3) / 8, columns=["a", "b", "c"])
    frame["label"] = "x.y"
    text = frame.to_csv(sep=";", decimal=",", index=False).splitlines()
    cells = text[row + 1].split(";")
    text[row + 1] = ";".join([cells[0], cell, *cells[2:]])
    path, out = tmp_path / "eu.csv", tmp_path / "out.npy"
    path.write_text("\n".join(text) + "\n")
    columns = "input_columns=[a,b,c]"
    code, _, err = invoke("run", "layers=[3,1]", f"inputs={path}", columns, chunk, "-o", str(out))
    assert code == 2
    assert err.endswith(f"eu.csv: line {row + 2}, column 2: '{cell}' has a decimal point, where "
                        "the file's numbers have decimal commas; write them one way\n")  # fmt: skip
    assert err.count("error:") == 1  # after the notes of what the first lines said
    assert not out.exists()
    frame.to_csv(path, sep=";", decimal=",", index=False)
    code, _, _ = invoke("run", "layers=[3,1]", f"inputs={path}", columns, chunk, "-o", str(out))
    assert code == 0
    got = np.load(out)
    assert got.shape == (4000, 1)


def test_numbers_with_points_over_decimal_commas_are_column_names(tmp_path: Path) -> None:
    """pandas reads such a first line as the header: it was read as data (and then refused
    for its points)."""
    path = tmp_path / "eu.csv"
    path.write_text("400.5;500.5\n0,125;0,25\n0,5;1,5\n")
    code, out, err = invoke("run", "layers=[2,1]", f"inputs={path}", "-f", "json")
    assert code == 0, err
    assert "line 1 read as column names (400.5, 500.5)" in err
    assert json.loads(out)["config"]["batch"] == len(pd.read_csv(path, sep=";", decimal=","))


# Messages that name the right thing


def test_a_bad_inputs_file_is_named_as_inputs_when_the_weights_give_the_layers(
    tmp_path: Path,
) -> None:
    weights, inputs = tmp_path / "w.pt", tmp_path / "x.csv"
    torch.save(sequential(True).state_dict(), weights)
    inputs.write_text("a,b,c,d\n1,2,3,x\n")
    code, _, err = invoke("run", f"weights={weights}", f"inputs={inputs}", "activation=relu")
    assert code == 2
    assert err.startswith(f"mlpcli: error: override 'inputs={inputs}': inputs: {inputs}: ")
    np.save(inputs.with_suffix(".npy"), X[:, :3])  # 3 features; the weights take 4
    code, _, err = invoke("run", f"weights={weights}", f"inputs={inputs.with_suffix('.npy')}")
    assert code == 2
    assert f"inputs: {inputs.with_suffix('.npy')}: rows of 3 features, but the weights" in err
    assert "take 4 (layers [4, 16, 3])" in err


@pytest.mark.parametrize("bias", [True, False])
def test_a_weight_saved_transposed_says_transpose_it_with_or_without_bias(
    tmp_path: Path, bias: bool
) -> None:
    state = sequential(bias).state_dict()
    state["0.weight"] = state["0.weight"].t().contiguous()
    path = tmp_path / "t.pt"
    torch.save(state, path)
    code, _, err = invoke("run", f"weights={path}", "activation=relu")
    assert code == 2
    assert "0.weight has shape [4, 16], expected [16, 4]" in err
    assert err.rstrip().endswith("transpose it")


# NumPy archives


@pytest.mark.parametrize("compressed", [False, True])
def test_a_state_dict_in_an_npz_runs_bit_for_bit(
    tmp_path: Path, features_file: Path, compressed: bool
) -> None:
    torch.manual_seed(14)
    net = sequential(True).eval()
    path = tmp_path / "m.npz"
    arrays = {name: tensor.numpy() for name, tensor in net.state_dict().items()}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    got, _ = output_of(f"weights={path}", f"inputs={features_file}", "activation=[relu,identity]")
    with torch.no_grad():
        assert torch.equal(got, net(FEATURES32))


def test_mlpcli_layout_in_an_npz_and_features_piped_as_npz(
    tmp_path: Path, mlpcli_script: str
) -> None:
    torch.manual_seed(15)
    W1, B1, W2, B2 = (torch.randn(shape).numpy() for shape in ((4, 5), (5,), (5, 2), (2,)))
    weights, features = tmp_path / "w.npz", tmp_path / "x.npz"
    np.savez(weights, W1=W1, B1=B1, W2=W2, B2=B2)
    np.savez(features, features=X)
    done = subprocess.run(
        [mlpcli_script, "run", f"weights={weights}", "inputs=-", "dtype=float64",
         "activation=[tanh,identity]", "-f", "json"],
        input=features.read_bytes(), capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = np.tanh(X @ W1.astype(np.float64) + B1) @ W2.astype(np.float64) + B2
    np.testing.assert_allclose(json.loads(done.stdout)["output"], expected, rtol=1e-12)


def test_an_npz_of_python_objects_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "o.npz"
    np.savez(path, features=np.array([{"a": 1}], dtype=object))
    for field in ("inputs", "weights"):
        code, _, err = invoke("run", f"{field}={path}")
        assert code == 2
        assert "holds an array of object" in err


# ONNX graphs as weights


def _onnx_model(net: nn.Module, path: Path, dynamo: bool = True) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (FEATURES32,), str(path), dynamo=dynamo, input_names=["x"], verbose=False
        )
    onnx.checker.check_model(onnx.load(path), full_check=True)


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_a_torch_onnx_export_of_every_activation_runs_bit_for_bit(
    tmp_path: Path, features_file: Path, dynamo: bool
) -> None:
    torch.manual_seed(16)
    activations = [nn.ReLU(), nn.Tanh(), nn.GELU(), nn.SiLU(), nn.Softplus(), nn.LeakyReLU(),
                   nn.ELU(), nn.Sigmoid(), nn.Dropout(0.3), nn.Softmax(dim=-1)]  # fmt: skip
    widths = [4, 32, *[4] * (len(activations) - 1)]  # 32 x 4 floats: past 1 KiB, kept apart
    linears = [nn.Linear(n_in, n_out) for n_in, n_out in itertools.pairwise(widths)]
    net = nn.Sequential(*(m for p in zip(linears, activations, strict=True) for m in p)).eval()
    path = tmp_path / "user.onnx"
    _onnx_model(net, path, dynamo)
    if dynamo:  # the dynamo exporter keeps initializers of 1 KiB or more in a file beside it
        assert (tmp_path / "user.onnx.data").exists()
    got, err = output_of(f"weights={path}", f"inputs={features_file}")
    with torch.no_grad():
        assert torch.equal(got, net(FEATURES32))
    assert "activation from" in err
    assert "relu, tanh, gelu, silu, softplus, leaky_relu, elu, sigmoid, identity, softmax" in err


def test_mlpclis_own_onnx_export_reads_back_as_its_state_dict(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    config = ["layers=[5, 7, 3]", "activation=[tanh, softmax]", "seed=3"]
    for suffix in ("onnx", "safetensors"):
        code, _, err = invoke("export", *config, "-o", str(tmp_path / f"m.{suffix}"))
        assert code == 0, err
    onnx_run, err = output_of(f"weights={tmp_path / 'm.onnx'}", "seed=3", "batch=4")
    state_run, _ = output_of(f"weights={tmp_path / 'm.safetensors'}", "seed=3", "batch=4")
    assert torch.equal(onnx_run, state_run)
    assert "activation from" in err


def test_a_graph_made_with_onnx_helper_matmul_add(tmp_path: Path, features_file: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(17)
    W1, B1, W2 = (rng.standard_normal(s).astype(np.float32) for s in ((4, 6), (6,), (6, 3)))
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["p1"]),
        helper.make_node("Add", ["B1", "p1"], ["z1"]),
        helper.make_node("LeakyRelu", ["z1"], ["h1"], alpha=0.01),
        helper.make_node("MatMul", ["h1", "W2"], ["y"]),  # no bias, no activation
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (B1, "B1"), (W2, "W2"))],
    )  # fmt: skip
    path = tmp_path / "helper.onnx"
    onnx.save(helper.make_model(graph), path)
    got, err = output_of(f"weights={path}", f"inputs={features_file}", "dtype=float64")
    z = X.astype(np.float32).astype(np.float64) @ W1 + B1
    expected = np.where(z > 0, z, 0.01 * z) @ W2
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert "leaky_relu, identity" in err


@pytest.mark.parametrize("mode", ["false", "true", "constant", "computed"])
def test_a_dropout_in_training_mode_is_refused(tmp_path: Path, mode: str) -> None:
    """A Dropout passes its input on at inference; one whose training_mode is true (or not a
    constant) drops values at random, and was read as passing them on."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((3, 2), np.float32), "W")
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["z"]),
        helper.make_node("Dropout", ["z", "", "training"], ["y"]),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])]
    initializers = [weight]
    if mode == "constant":
        true = numpy_helper.from_array(np.array(True))
        nodes.insert(0, helper.make_node("Constant", [], ["training"], value=true))
    elif mode == "computed":
        nodes.insert(0, helper.make_node("Not", ["off"], ["training"]))
        initializers.append(numpy_helper.from_array(np.array(False), "off"))
    else:
        initializers.append(numpy_helper.from_array(np.array(mode == "true"), "training"))
    graph = helper.make_graph(
        nodes, "mlp", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], initializers,
    )  # fmt: skip
    path = tmp_path / "dropout.onnx"
    onnx.save(helper.make_model(graph), path)
    code, _, err = invoke("run", f"weights={path}", "batch=2", "-f", "json")
    if mode == "false":
        assert code == 0, err
        return
    assert code == 2
    told = "not a constant" if mode == "computed" else "true"
    assert err.strip().endswith(
        f"Dropout at node {1 + (mode != 'true')} drops values at random (its "
        f"training_mode is {told}); export the model after model.eval()"
    )


def test_a_graph_that_is_no_mlp_is_refused_naming_its_node(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    kernel = numpy_helper.from_array(np.ones((1, 1, 3), np.float32), "k")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "k"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 6])], [kernel],
    )  # fmt: skip
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph), path)
    code, _, err = invoke("run", f"weights={path}")
    assert code == 2
    assert "conv.onnx: Conv at node 0: mlpcli reads Linear layers" in err
    assert err.count("\n") == 1


def test_an_activation_that_is_not_the_graphs_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    path = tmp_path / "m.onnx"
    assert invoke("export", "layers=[3, 2]", "activation=tanh", "-o", str(path))[0] == 0
    code, _, err = invoke("run", f"weights={path}", "activation=relu")
    assert code == 2
    assert "['relu'] differs from what the model in" in err
    assert "runs, ['tanh']" in err


# Keras 3 models as weights


def _keras() -> object:
    """Keras on PyTorch's backend, where it installs."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def test_a_keras_model_runs_as_model_predict(tmp_path: Path, features_file: Path) -> None:
    keras: Any = _keras()
    keras.utils.set_random_seed(18)
    activations = ["relu", "tanh", "gelu", "silu", "softplus", "elu", "sigmoid", "linear"]
    layers = [keras.Input((4,))]
    for activation in activations:
        layers += [keras.layers.Dense(5, activation=activation), keras.layers.Dropout(0.1)]
    layers += [keras.layers.Dense(3), keras.layers.Activation("softmax")]
    model = keras.Sequential(layers)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    expected = model.predict(X.astype(np.float32), verbose=0)
    got, err = output_of(f"weights={tmp_path / 'm.keras'}", f"inputs={features_file}")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert "relu, tanh, gelu, silu, softplus, elu, sigmoid, identity, softmax" in err
    names = [*activations[:-1], "identity", "softmax"]
    got, _ = output_of(
        f"weights={tmp_path / 'm.weights.h5'}", f"inputs={features_file}",
        f"activation=[{', '.join(names)}]",
    )  # fmt: skip
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_keras_archives_weights_are_read_in_place(
    tmp_path: Path, features_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keras stores `model.weights.h5` uncompressed in its archive: h5py reads it in place, not
    a copy of it in memory (which doubled the weights' peak); a compressed one still reads."""
    keras: Any = _keras()
    keras.utils.set_random_seed(19)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6), keras.layers.Dense(3)])
    model.save(tmp_path / "m.keras")
    expected = model.predict(X.astype(np.float32), verbose=0)
    with (
        zipfile.ZipFile(tmp_path / "m.keras") as stored,
        zipfile.ZipFile(tmp_path / "z.keras", "w", zipfile.ZIP_DEFLATED) as deflated,
    ):
        for info in stored.infolist():
            deflated.writestr(info.filename, stored.read(info))
    read = zipfile.ZipFile.read

    def read_but_the_weights(
        archive: zipfile.ZipFile, name: Any, pwd: bytes | None = None
    ) -> bytes:
        member = name.filename if isinstance(name, zipfile.ZipInfo) else name
        stored = "z.keras" not in str(archive.filename)
        assert not (stored and member == "model.weights.h5"), "the weights read whole"
        return read(archive, name, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "read", read_but_the_weights)
    for name in ("m.keras", "z.keras"):
        got, _ = output_of(f"weights={tmp_path / name}", f"inputs={features_file}")
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ("batchnorm", "(BatchNormalization) is no Dense layer"),
        ("leaky_relu", "activation 'leaky_relu' is not one mlpcli computes alike"),
    ],
)
def test_a_keras_layer_mlpcli_does_not_run_is_named(
    tmp_path: Path, layer: str, message: str
) -> None:
    keras: Any = _keras()
    middle = (
        keras.layers.BatchNormalization()
        if layer == "batchnorm"
        else keras.layers.Dense(4, activation="leaky_relu")
    )
    model = keras.Sequential([keras.Input((4,)), middle, keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    code, _, err = invoke("run", f"weights={tmp_path / 'm.keras'}")
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


def test_keras_weights_without_h5py_name_the_install(tmp_path: Path, mlpcli_script: str) -> None:
    path = tmp_path / "m.weights.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n")
    code = "import sys; sys.modules['h5py'] = None; from mlpcli.cli import main; main()"
    python = str(Path(mlpcli_script).parent / "python")
    done = subprocess.run(
        [python, "-c", code, "run", f"weights={path}"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 3
    assert "pip install h5py" in done.stderr


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        ("L D B R L", "modules without tensors sit on both sides of this BatchNorm1d"),
        ("L R B D L", "modules without tensors sit on both sides of this BatchNorm1d"),
        ("L R L R B", "follows the last Linear's activation"),
    ],
)
def test_a_batchnorm_the_indices_cannot_place_is_refused(
    tmp_path: Path, features_file: Path, modules: str, message: str
) -> None:
    made = {"L": None, "R": nn.ReLU, "D": lambda: nn.Dropout(0.2), "B": lambda: nn.BatchNorm1d(8)}
    layers: list[nn.Module] = []
    widths = iter([(4, 8), (8, 8)])
    for kind in modules.split():
        layers.append(nn.Linear(*next(widths)) if kind == "L" else made[kind]())  # type: ignore[misc]
    net = _trained(nn.Sequential(*layers), 4)
    path = tmp_path / "m.pt"
    torch.save(net.state_dict(), path)
    code, _, err = invoke("run", f"weights={path}", f"inputs={features_file}", "activation=relu")
    assert code == 2
    assert message in err
    if "both sides" in message:  # the field decides
        place = "after_linear" if modules.startswith("L D") else "after_activation"
        got, _ = output_of(
            f"weights={path}", f"inputs={features_file}", "activation=[relu, identity]",
            f"batchnorm={place}",
        )  # fmt: skip
        with torch.no_grad():
            torch.testing.assert_close(got, net(FEATURES32), rtol=1e-5, atol=1e-5)


def test_a_batchnorm_field_that_contradicts_the_indices_is_refused(
    tmp_path: Path, features_file: Path
) -> None:
    net = _trained(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)), 4)
    path = tmp_path / "m.pt"
    torch.save(net.state_dict(), path)
    code, _, err = invoke("run", f"weights={path}", "batchnorm=after_activation")
    assert code == 2
    assert "indices put this BatchNorm1d right after 0; leave batchnorm out" in err


def test_keras_layers_are_found_by_where_keras_saves_them(
    tmp_path: Path, features_file: Path
) -> None:
    keras: Any = _keras()
    keras.utils.set_random_seed(19)
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])  # takes the names dense, ...
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(6, activation="tanh", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(hidden))
    model.save(tmp_path / "f.keras")
    got, _ = output_of(f"weights={tmp_path / 'f.keras'}", f"inputs={features_file}")
    expected = model.predict(X.astype(np.float32), verbose=0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    branch = keras.layers.Dense(2)(inputs)
    keras.Model(inputs, [hidden, branch]).save(tmp_path / "b.keras")
    code, _, err = invoke("run", f"weights={tmp_path / 'b.keras'}")
    assert code == 2
    assert "does not read the layer before it; mlpcli reads one chain" in err


def test_hostile_keras_weights_are_one_line(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(64))
    makers = {
        "dataset": lambda f: f.create_dataset("layers/dense", data=[1, 2]),
        "names": lambda f: f.create_dataset("layers/dense/vars/x", data=[1, 2]),
        "link": lambda f: f.__setitem__("layers/dense/vars/0", h5py.ExternalLink("o.h5", "/x")),
        "external": lambda f: f.create_dataset(
            "layers/dense/vars/0", shape=(4, 2), dtype="f4", external=[(str(secret), 0, 32)]
        ),
    }
    for name, make in makers.items():
        path = tmp_path / f"{name}.weights.h5"
        with h5py.File(path, "w") as file:
            make(file)
        code, _, err = invoke("run", f"weights={path}", "activation=relu")
        assert code == 2, (name, err)
        assert err.count("\n") == 1


def test_an_onnx_graph_that_loops_or_reads_outside_its_folder_is_refused(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, 2), np.float32), "W")
    io = ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])  # fmt: skip
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["a"]),
        helper.make_node("Identity", ["a"], ["a"]),
    ]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", *io, [weight])), tmp_path / "l.onnx")
    code, _, err = invoke("run", f"weights={tmp_path / 'l.onnx'}")
    assert code == 2
    assert "the graph loops back to Identity at node 1" in err
    outside = helper.make_graph([helper.make_node("Gemm", ["x", "W"], ["y"])], "g", *io, [weight])
    from onnx.external_data_helper import set_external_data

    set_external_data(outside.initializer[0], location="../secret.bin")
    outside.initializer[0].ClearField("raw_data")
    outside.initializer[0].data_location = TensorProto.EXTERNAL
    onnx.save(helper.make_model(outside), tmp_path / "o.onnx")
    code, _, err = invoke("run", f"weights={tmp_path / 'o.onnx'}")
    assert code == 2
    assert "W's external data '../secret.bin' is not in the model's folder" in err
