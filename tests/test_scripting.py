"""Scripting and CI: --expect, --output, --field, sweeps, config, compare, env, MLPCLI_DEVICE."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import re
import stat
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
import yaml

from mlpcli.engine import comparisons, runners
from mlpcli.loading import schema
from mlpcli.loading.loader import load
from mlpcli.model.closeness import Difference, PerTensor, Tolerance, difference
from mlpcli.model.config import KNOWN_KEYS
from mlpcli.model.results import CompareResult, TensorDiff
from mlpcli.report import files

from .conftest import CONFIGS, NOTEBOOK_TENSORS, ROOT, TWO_LAYER, invoke

NOTEBOOK = 0.3170831501483917


# --- --expect --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--expect", str(NOTEBOOK)], 0),
        (["--expect", "[[0.3170831501483917]]"], 0),
        (["--expect", "0.3171", "--atol", "1e-4"], 0),
        (["--expect", "0.3171"], 1),
        (["--expect", "0.31709"], 0),  # float32: within atol 1e-5 + rtol 1.3e-6 * 0.31709
        (["--expect", "0.3171", "--rtol", "1e-3"], 0),
        (["--expect", "0.32", "--atol", "1e-4"], 1),
    ],
)
def test_expect_values(args: list[str], code: int) -> None:
    assert invoke("run", TWO_LAYER, "-f", "json", *args)[0] == code


@pytest.mark.parametrize(
    ("dtype", "atol", "rtol"),
    [("float64", 1e-7, 1e-7), ("float32", 1e-5, 1.3e-6), ("bfloat16", 1e-5, 1.6e-2)],
)
def test_default_tolerances_follow_the_dtype(dtype: str, atol: float, rtol: float) -> None:
    code, _, err = invoke("run", f"dtype={dtype}", "-f", "json", "--expect", "0.5")
    assert code == 1
    assert err.endswith(f"(atol {atol:g} + rtol {rtol:g} × |expected|)\n")
    code, out, _ = invoke("compare", f"dtype={dtype}", "--devices", "cpu,cpu", "-f", "json")
    assert (json.loads(out)["atol"], json.loads(out)["rtol"]) == (atol, rtol)
    code, _, err = invoke("run", f"dtype={dtype}", "--expect", "0.5", "--atol", "0.3")
    assert code == 0, err  # an option given replaces that part of the default alone


def test_expect_mismatch_names_the_worst_element() -> None:
    code, out, err = invoke(
        "run", "layers=[3, 2]", "batch=2", "-f", "json", "--expect", "[[0.5, 0.5], [0.5, 0.5]]"
    )
    assert code == 1
    assert json.loads(out)["name"] == "default"  # the results are still printed
    got = json.loads(out)["output"]
    worst = max(
        ((r, c) for r in range(2) for c in range(2)), key=lambda rc: abs(got[rc[0]][rc[1]] - 0.5)
    )
    assert err.count("\n") == 1
    row, column = worst
    assert err.startswith(
        "mlpcli: error: default: output differs from --expect [[0.5, 0.5], [0.5, 0.5]] "
        f"at row {row}, column {column}: got {got[row][column]!r}, expected 0.5, difference "
    )


def test_expect_shape_mismatch_says_both_shapes() -> None:
    code, _, err = invoke("run", "--expect", "[0.1, 0.2]", "-f", "json")
    assert code == 1
    assert (
        err
        == "mlpcli: error: default: output has shape (1, 1), --expect [0.1, 0.2] has shape (1, 2)\n"
    )


def test_expect_a_json_file_from_an_earlier_run(tmp_path: Path) -> None:
    golden = tmp_path / "golden.json"
    golden.write_text(invoke("run", TWO_LAYER, "batch=5", "-f", "json")[1])
    assert invoke("run", TWO_LAYER, "batch=5", "--expect", str(golden))[0] == 0
    code, _, err = invoke(
        "run", TWO_LAYER, "batch=5", "seed=8", "--expect", str(golden), "-f", "json"
    )
    assert code == 1
    assert f"two_layer: output differs from {golden} at row " in err


def test_expect_an_npy_output_is_compared_a_chunk_at_a_time(tmp_path: Path) -> None:
    """`run -o gold.npy` then `--expect gold.npy`: compared as the rows come (chunks of 7),
    the worst element named by its row in the whole output, as a whole comparison names it."""
    net = [TWO_LAYER, "batch=50", "chunk=7"]
    golden, changed = tmp_path / "gold.npy", tmp_path / "changed.npy"
    assert invoke("run", *net, "-q", "-o", str(golden))[0] == 0
    code, _, err = invoke("run", *net, "-q", "--expect", str(golden))
    assert (code, err) == (0, f"mlpcli: note: every output matches {golden}\n")
    values = np.load(golden)
    values[37, 0] += 1e-3  # in the sixth chunk
    values[8, 0] += 5e-4  # less far out, in an earlier one
    np.save(changed, values)
    code, _, err = invoke("run", *net, "-q", "--expect", str(changed))
    assert code == 1
    assert err.startswith(f"mlpcli: error: two_layer: output differs from {changed} at row 37, ")
    whole = invoke("run", *net, "-q", "-f", "json", "--expect", str(changed))  # held: the same
    assert whole[2] == err
    code, _, err = invoke("run", TWO_LAYER, "batch=49", "-q", "--expect", str(golden))
    assert (code, err) == (
        1, f"mlpcli: error: two_layer: output has shape (49, 1), {golden} has shape (50, 1)\n"
    )  # fmt: skip
    np.save(tmp_path / "three.npy", np.zeros((2, 2, 2)))
    code, _, err = invoke("run", *net, "--expect", str(tmp_path / "three.npy"))
    assert code == 2
    said = "three.npy: holds a float64 array of shape (2, 2, 2); expected an output array"
    assert err.endswith(f"{said} of numbers (rows, units), as run -o out.npy writes it\n")


def test_expect_a_csv_output_is_read_and_compared_a_chunk_at_a_time(tmp_path: Path) -> None:
    """`run -o gold.csv` then `--expect gold.csv`: read through once to check every cell,
    then compared as the rows come (chunks of 7), naming the worst element and its line as a
    whole comparison does; its values are never held."""
    from mlpcli.data import expect

    net = [TWO_LAYER, "batch=50", "chunk=7"]
    golden, changed = tmp_path / "gold.csv", tmp_path / "changed.csv"
    assert invoke("run", *net, "-q", "-o", str(golden))[0] == 0
    code, _, err = invoke("run", *net, "-q", "--expect", str(golden))
    assert (code, err) == (0, f"mlpcli: note: every output matches {golden}\n")
    lines = golden.read_text().splitlines(keepends=True)  # a header, then row r

    def bumped(row: int, by: float) -> None:
        name, value = lines[row + 1].rstrip("\n").split(",")
        lines[row + 1] = f"{name},{float(value) + by!r}\n"

    bumped(37, 1e-3)  # in the sixth chunk
    bumped(8, 5e-4)  # less far out, in an earlier one
    changed.write_text("".join(lines))
    code, _, err = invoke("run", *net, "-q", "--expect", str(changed))
    assert code == 1
    assert err.startswith(f"mlpcli: error: two_layer: output differs from {changed} at row 37, ")
    whole = invoke("run", *net, "-q", "-f", "json", "--expect", str(changed))  # held: the same
    assert whole[2] == err
    parsed = expect.parse(str(changed))
    assert expect.streams(str(changed))
    rows = parsed.output("two_layer").values
    assert rows.shape == (50, 1)
    assert isinstance(rows, expect.CsvRows)  # read as asked, in order, and again from the start
    first, rest, again = rows[0:7], rows[7:50], rows[5:9]
    np.testing.assert_array_equal(np.concatenate([first, rest])[5:9], again)
    code, _, err = invoke("run", TWO_LAYER, "batch=49", "-q", "--expect", str(golden))
    assert (code, err) == (
        1, f"mlpcli: error: two_layer: output has shape (49, 1), {golden} has shape (50, 1)\n"
    )  # fmt: skip


def test_a_bad_cell_of_a_csv_golden_file_is_refused_before_the_run(tmp_path: Path) -> None:
    golden, out = tmp_path / "gold.csv", tmp_path / "out.npy"
    assert invoke("run", TWO_LAYER, "batch=30", "-q", "-o", str(golden))[0] == 0
    lines = golden.read_text().splitlines(keepends=True)
    lines[29] = "two_layer,0.5x\n"  # row 27, its last but two
    golden.write_text("".join(lines))
    code, _, err = invoke("run", TWO_LAYER, "batch=30", "-o", str(out), "--expect", str(golden))
    assert (code, err) == (2, f"mlpcli: error: {golden}: expected numbers, got '0.5x'\n")
    assert not out.exists()


def test_csv_golden_files_as_editors_and_sweeps_leave_them(tmp_path: Path) -> None:
    """A byte-order mark, a network's rows read once each (and the file closed after its
    last), rows of two widths for one network, a header without rows, a byte that is not
    UTF-8 named by its offset in the file."""
    from mlpcli.data import expect

    golden = tmp_path / "sweep.csv"
    sweep = ["-m", "seed=1,2,3", "batch=4"]
    assert invoke("run", *sweep, "-o", str(golden), "-q")[0] == 0
    marked = tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + golden.read_bytes())
    assert invoke("run", *sweep, "--expect", str(marked), "-q")[0] == 0
    parsed = expect.parse(str(golden))
    for output in parsed.outputs:
        rows = output.values
        assert isinstance(rows, expect.CsvRows)
        assert rows[0:4].shape == (4, 1)
        assert rows._rows is None  # every row read: closed
    widths = tmp_path / "widths.csv"
    widths.write_text("name,output_0\ndefault,1\nname,output_0,output_1\ndefault,1,2\n")
    code, _, err = invoke("run", "--expect", str(widths), "-q")
    assert (code, err) == (2, f"mlpcli: error: {widths}: rows of different lengths [1, 2]\n")
    (tmp_path / "header.csv").write_text("name,output_0\n")
    code, _, err = invoke("run", "--expect", str(tmp_path / "header.csv"), "-q")
    assert err.endswith("header.csv: holds no rows under a header of `mlpcli run --format csv`\n")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(golden.read_bytes() + b"default,0.5" + b"\xff" * 3 + b"\n")
    code, _, err = invoke("run", *sweep, "--expect", str(bad), "-q")
    offset = golden.stat().st_size + len("default,0.5")
    assert (code, err) == (
        2,
        f"mlpcli: error: --expect {bad}: not UTF-8 text (byte offset {offset})\n",
    )


def test_an_output_too_large_to_hold_for_expect_names_the_golden_files_that_stream() -> None:
    code, out, err = invoke("run", "layers=[2, 3]", "batch=100000000", "--expect", "0.5")
    assert (code, out) == (2, "")
    assert err == (
        "mlpcli: error: default: its output, 1.1 GiB, is more than the 1.0 GiB a run holds whole "
        "for --expect; compare it with --expect FILE.npy or FILE.csv (run -o gold.npy), which "
        "are read as it runs\n"
    )


@pytest.mark.parametrize("command", [["--version"], ["shapes", "layers=[2, 1]"], ["env"]])
def test_a_launchers_environment_that_cannot_be_read_is_every_commands_error(
    command: list[str],
) -> None:
    code, out, err = invoke(*command, env={"RANK": "x", "WORLD_SIZE": "2"})
    assert (code, out) == (2, "")
    assert err == (
        "mlpcli: error: RANK='x': the launcher's environment needs a whole number from 0 to "
        "1048576\n"
    )


def test_a_json_golden_file_past_its_cap_names_the_formats_read_as_compared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlpcli.data import expect

    golden = tmp_path / "gold.json"
    assert invoke("run", TWO_LAYER, "batch=30", "-q", "-o", str(golden))[0] == 0
    assert invoke("run", TWO_LAYER, "batch=30", "-q", "--expect", str(golden))[0] == 0
    monkeypatch.setattr(expect, "MAX_JSON_BYTES", golden.stat().st_size - 1)
    code, _, err = invoke("run", TWO_LAYER, "batch=30", "-q", "--expect", str(golden))
    assert code == 2
    assert err.startswith(f"mlpcli: error: --expect {golden}: a JSON golden file is parsed whole")
    assert err.endswith("write the expected output with -o gold.npy or -o gold.csv, which are "
                        "compared as they are read\n")  # fmt: skip


def test_expect_a_csv_file_of_several_networks_checks_each_by_name(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    other = write_config("name: other\nlayers: [3, 4, 1]\n")
    golden = tmp_path / "golden.csv"
    assert invoke("run", TWO_LAYER, str(other), "batch=2", "-o", str(golden), "-q")[0] == 0
    assert invoke("run", TWO_LAYER, str(other), "batch=2", "--expect", str(golden))[0] == 0
    code, _, err = invoke(
        "run", TWO_LAYER, str(other), "batch=2", "seed=3", "--expect", str(golden)
    )
    assert code == 1
    assert err.count("differs from") == 2


@pytest.mark.parametrize("suffix", ["json", "csv"])
def test_a_sweep_checks_each_run_against_its_own_golden_output(tmp_path: Path, suffix: str) -> None:
    golden = tmp_path / f"sweep.{suffix}"
    sweep = ["-m", "seed=1,2", "activation=relu,tanh", "batch=2"]
    assert invoke("run", *sweep, "-o", str(golden), "-q")[0] == 0
    code, _, err = invoke("run", *sweep, "--expect", str(golden))
    assert code == 0, err
    code, _, err = invoke(
        "run", "-m", "seed=2,1", "activation=relu,tanh", "batch=2", "--expect", str(golden)
    )
    assert code == 0, err  # matched by overrides, not by order
    code, _, err = invoke("run", "seed=3", "activation=relu", "--expect", str(golden))
    assert code == 2
    assert (
        "none of its 4 outputs of network 'default' came from a run with seed=3 activation=relu"
        in err
    )


def test_expect_a_csv_file_without_names_from_an_older_run(tmp_path: Path) -> None:
    golden = tmp_path / "old.csv"
    golden.write_text("output_0\n0.3170831501483917\n")
    assert invoke("run", TWO_LAYER, "--expect", str(golden))[0] == 0


def test_expect_a_csv_file_from_an_earlier_run(tmp_path: Path) -> None:
    golden = tmp_path / "golden.csv"
    golden.write_text(invoke("run", "layers=[3, 4]", "batch=3", "-f", "csv")[1])
    assert invoke("run", "layers=[3, 4]", "batch=3", "--expect", str(golden))[0] == 0
    assert invoke("run", "layers=[3, 4]", "batch=3", "seed=1", "--expect", str(golden))[0] == 1


def test_expect_checks_each_of_several_configs_by_name(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    other = write_config("name: other\nlayers: [3, 4]\n", name="other.yaml")
    golden = tmp_path / "both.json"
    golden.write_text(invoke("run", TWO_LAYER, str(other), "-f", "json")[1])
    assert invoke("run", TWO_LAYER, str(other), "--expect", str(golden), "-f", "json")[0] == 0
    code, _, err = invoke(
        "run", TWO_LAYER, str(other), "seed=3", "--expect", str(golden), "-f", "json"
    )
    assert code == 1
    assert [line.split(":")[2].strip() for line in err.splitlines()] == ["two_layer", "other"]
    code, out, err = invoke("run", "--expect", str(golden), "-f", "json")
    assert (code, out) == (2, "")
    assert "no expected output for network 'default'; it has two_layer, other" in err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "expected numbers, got 'abc'"),
        ("[[1, 2], [3]]", "rows of different lengths"),
        ("missing.json", "--expect missing.json: no such file"),
        ("[1, [2]]", "mixes numbers and rows"),
    ],
)
def test_bad_expectation_is_a_usage_error_before_running(value: str, message: str) -> None:
    code, out, err = invoke("run", "--expect", value)
    assert (code, out) == (2, "")
    assert message in err


def test_expect_a_json_file_of_another_network_is_refused(tmp_path: Path) -> None:
    golden = tmp_path / "golden.json"
    assert invoke("run", TWO_LAYER, "-o", str(golden), "-q")[0] == 0
    code, out, err = invoke("run", "--expect", str(golden))
    assert (code, out) == (2, "")
    assert err == (
        f"mlpcli: error: {golden} holds the output of network 'two_layer', not of 'default'; "
        "check the network against its own golden file\n"
    )


def test_expected_nan_matches_nan() -> None:
    # float16 overflows to inf in h1, and inf - inf in the next layer is NaN
    args = ["layers=[1, 1, 1]", "dtype=float16", "activation=identity", "bias=false"]
    result = runners.run(load(None, [*args, "seed=0"]))
    assert (
        invoke("run", *args, "seed=0", "--expect", json.dumps(result.whole.tolist()), "-f", "json")[
            0
        ]
        == 0
    )


OVERFLOWING = ["dtype=float16", "activation=identity", "layers=[512,512,512,512,4]", "batch=2"]


def test_a_golden_file_with_infinities_matches_its_own_rerun(tmp_path: Path) -> None:
    golden = tmp_path / "golden.json"
    assert invoke("run", *OVERFLOWING, "-f", "json", "--output", str(golden))[0] == 0
    output = json.loads(golden.read_text())["output"]
    assert {"Infinity", "-Infinity"} <= {v for row in output for v in row}  # kept apart
    code, _, err = invoke("run", *OVERFLOWING, "--expect", str(golden))
    assert code == 0, err


def test_expect_reads_a_schema_1_file_whose_nulls_are_nan(tmp_path: Path) -> None:
    # softmax of an overflowed float16 row is NaN: here row 0; rows 1 and 2 are one-hot
    args = ["dtype=float16", "activation=[identity,identity,identity,softmax]", "seed=2"]
    args += ["layers=[512,512,512,512,4]", "batch=3"]
    old = tmp_path / "old.json"
    nan_row = "[null,null,null,null]"
    old.write_text(
        f'{{"schema":"mlpcli.run/1","name":"default","output":[{nan_row},[0,0,0,1],[0,1,0,0]]}}\n'
    )
    assert invoke("run", *args, "--expect", str(old))[0] == 0


# --- --output --------------------------------------------------------------------------------


def test_output_files_match_stdout(tmp_path: Path) -> None:
    stdout_json = invoke("run", TWO_LAYER, "batch=3", "-f", "json")[1]
    for suffix in ("json", "csv"):
        path = tmp_path / f"out.{suffix}"
        code, out, _ = invoke("run", TWO_LAYER, "batch=3", "-o", str(path), "-f", suffix)
        assert code == 0
        content = path.read_text()
        if suffix == "csv":
            assert content == out
        else:  # timings differ from run to run; everything else is the same
            assert {k: v for k, v in json.loads(content).items() if k != "timing_ms"} == {
                k: v for k, v in json.loads(stdout_json).items() if k != "timing_ms"
            }
    npy = tmp_path / "out.npy"
    assert invoke("run", TWO_LAYER, "batch=3", "-o", str(npy))[0] == 0
    array = np.load(npy)
    assert array.dtype == np.float32
    assert array.tolist() == json.loads(stdout_json)["output"]


def test_a_csv_output_whose_name_starts_with_a_hash_reads_back_whole(tmp_path: Path) -> None:
    """A name such as `#2` is quoted in CSV rows: a line starting with '#' is a comment to
    mlpcli, and its rows were lost reading the output back, with exit 0."""
    named = tmp_path / "hash.yaml"
    named.write_text('name: " #2"\nlayers: [3, 2]\n')
    other = tmp_path / "other.yaml"
    other.write_text("name: other\nlayers: [3, 2]\n")
    path, back = tmp_path / "out.csv", tmp_path / "back.npy"
    code, _, _ = invoke("run", str(named), str(other), "batch=4", "-o", str(path), "-q")
    assert code == 0
    with path.open(newline="") as file:  # as the csv module (and pandas) reads it
        assert [row["name"] for row in csv.DictReader(file)] == [" #2"] * 4 + ["other"] * 4
    assert invoke("run", "layers=[2,1]", f"inputs={path}", "-o", str(back), "-q")[0] == 0
    assert np.load(back).shape == (8, 1)


def test_shapes_output_files(tmp_path: Path) -> None:
    csv_path, json_path = tmp_path / "s.csv", tmp_path / "s.json"
    assert invoke("shapes", "-o", str(csv_path))[0] == 0
    assert (
        csv_path.read_text()
        == "layer,in,out,activation,params,flops\n1,3,2,sigmoid,8,16\n2,2,1,sigmoid,3,6\n"
    )
    assert invoke("shapes", "-o", str(json_path))[0] == 0
    assert json.loads(json_path.read_text())["total_params"] == 11


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("out.txt", "the suffix names the format; use one of .json, .csv, .npy"),
        ("nowhere/out.json", "no such directory"),
        ("folder.json", "is a directory"),
    ],
)
def test_bad_output_path_fails_before_running(tmp_path: Path, output: str, message: str) -> None:
    (tmp_path / "folder.json").mkdir()
    code, out, err = invoke("run", "-o", str(tmp_path / output))
    assert (code, out) == (2, "")
    assert message in err


def test_output_equal_to_an_input_is_refused(tmp_path: Path) -> None:
    golden = tmp_path / "golden.json"
    golden.write_text(invoke("run", "-f", "json")[1])
    before = golden.read_bytes()
    code, _, err = invoke("run", "--expect", str(golden), "-o", str(golden))
    assert code == 2
    assert "is also an input; refusing to overwrite it" in err
    assert golden.read_bytes() == before


def test_failed_run_leaves_an_existing_output_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.json"
    path.write_bytes(b"precious")

    def broken(*_: object, **__: object) -> None:
        raise MemoryError

    monkeypatch.setattr(runners, "run", broken)
    assert invoke("run", "-o", str(path))[0] == 4
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_write_atomic_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("old and longer than the new content")
    files.write_atomic(path, b"new")
    assert path.read_bytes() == b"new"


# --- --field ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "path", "printed"),
    [
        ("run", "output.0.0", f"{NOTEBOOK}\n"),
        ("run", "tensors.1.shape", "[3,2]\n"),
        ("run", "name", "two_layer\n"),
        ("run", "config.bias", "true\n"),
        ("run", "output", f"[[{NOTEBOOK}]]\n"),
        ("shapes", "total_params", "11\n"),
        ("shapes", "layers.1.activation", "sigmoid\n"),
    ],
)
def test_field_prints_one_value(command: str, path: str, printed: str) -> None:
    assert invoke(command, TWO_LAYER, "--field", path)[:2] == (0, printed)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("outputs", "no key 'outputs' in the result; keys there: schema, name, config, overrides,"),
        ("output.3", "output is a list; indices there: 0..0"),
        ("output.x", "output is a list; indices there: 0..0"),
        ("name.first", 'name is "two_layer", with no fields'),
        ("config.layer", "no key 'layer' in config; keys there: name, seed, layers,"),
    ],
)
def test_bad_field_names_what_exists(path: str, message: str) -> None:
    code, out, err = invoke("run", TWO_LAYER, "--field", path)
    assert (code, out) == (2, "")
    assert message in err


def test_several_fields_label_each_line_of_a_sweep() -> None:
    code, out, _ = invoke(
        "run", "-m", "seed=1,2", "--field", "overrides.0", "--field", "output.0.0"
    )
    assert code == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert [label for label, _ in lines] == ["seed=1", "seed=2"]
    single = invoke("run", "seed=2", "--field", "output.0.0")[1].strip()
    assert lines[1][1] == single


def test_field_with_several_configs_prints_a_line_each() -> None:
    code, out, _ = invoke("run", TWO_LAYER, TWO_LAYER, "seed=1", "--field", "config.seed")
    assert (code, out) == (0, "1\n1\n")


# --- sweeps ----------------------------------------------------------------------------------


def test_multirun_is_the_cartesian_product() -> None:
    code, out, _ = invoke("run", "-m", "seed=1,2,3", "activation=relu,tanh", "-f", "json")
    assert code == 0
    runs = [json.loads(line) for line in out.splitlines()]
    assert [r["overrides"] for r in runs] == [
        [f"seed={s}", f"activation={a}"] for s in (1, 2, 3) for a in ("relu", "tanh")
    ]
    assert [(r["config"]["seed"], r["config"]["activation"]) for r in runs] == [
        (s, a) for s in (1, 2, 3) for a in ("relu", "tanh")
    ]
    single = json.loads(invoke("run", "seed=2", "activation=tanh", "-f", "json")[1])
    assert runs[3]["output"] == single["output"]


@pytest.mark.parametrize(
    "args", [["-m", "seed=1,2", "seed=3"], ["seed=3", "-m", "seed=1,2"], ["seed=1", "seed=3"]]
)
def test_a_key_given_twice_is_refused_as_in_a_file(args: list[str]) -> None:
    code, out, err = invoke("run", *args, "-f", "json")
    assert (code, out) == (2, "")
    assert "seed is given twice" in err
    assert err.count("\n") == 1


def test_multirun_keeps_brackets_together_and_shows_one_table() -> None:
    code, out, _ = invoke("run", "--multirun", "layers=[3,4],[3,5,2]", "seed=0,1")
    assert code == 0
    assert len(re.findall(r"^─+ *$", out, re.MULTILINE)) == 1  # one table: one rule
    assert "4 runs" in out
    assert "layers=[3,5,2] seed=1" in out


def test_without_multirun_a_comma_is_plain_yaml() -> None:
    code, _, err = invoke("run", "seed=1,2")
    assert code == 2
    assert "seed: expected an integer, got string '1,2'" in err


# --- config show, schema, init ---------------------------------------------------------------


def test_config_show_round_trips(write_config: Callable[..., Path]) -> None:
    code, out, _ = invoke("config", "show", str(CONFIGS / "deep_relu.yaml"), "seed=3", "batch=2")
    assert code == 0
    assert out.splitlines()[:3] == ["name: deep_relu", "seed: 3", "layers: [784, 256, 128, 64, 10]"]
    assert list(yaml.safe_load(out)) == list(KNOWN_KEYS)
    again = load(write_config(out, name="deep_relu.yaml"))
    assert again == load(CONFIGS / "deep_relu.yaml", ["seed=3", "batch=2"])


def test_config_schema_is_the_committed_file_and_checks_configs() -> None:
    code, out, _ = invoke("config", "schema")
    assert code == 0
    assert out == (ROOT / "schema" / "config.schema.json").read_text()
    checker = jsonschema.Draft202012Validator(json.loads(out))
    checker.check_schema(json.loads(out))
    for path in CONFIGS.glob("*.yaml"):
        assert "# yaml-language-server: $schema=../schema/config.schema.json" in path.read_text()
        checker.validate(yaml.safe_load(path.read_text()))
    for bad in ({"layers": [3]}, {"layers": [3, 0]}, {"layers": [3, 2], "layer": 1},
                {"layers": [3, 2], "device": "gpu"}, {"layers": [3, 2], "activation": "sigmod"},
                {"seed": 1}):  # fmt: skip
        assert not checker.is_valid(bad), bad


def test_config_init(tmp_path: Path) -> None:
    code, out, _ = invoke("config", "init")
    assert (code, out) == (0, schema.starter_yaml())
    path = tmp_path / "net.yaml"
    assert invoke("config", "init", str(path)) == (0, "", f"mlpcli: note: wrote {path}\n")
    assert path.read_text() == schema.starter_yaml()
    config = load(path)
    assert (config.name, config.layers) == ("my_network", (4, 16, 3))
    path.write_text("mine")
    code, _, err = invoke("config", "init", str(path))
    assert code == 2
    assert "exists; --force replaces it" in err
    assert path.read_text() == "mine"
    assert invoke("config", "init", str(path), "--force")[0] == 0
    assert path.read_text() == schema.starter_yaml()


# --- compare ---------------------------------------------------------------------------------


def test_compare_a_device_with_itself() -> None:
    code, out, _ = invoke("compare", TWO_LAYER, "--devices", "cpu,cpu", "-f", "json")
    assert code == 0
    report = json.loads(out)
    assert report["schema"] == "mlpcli.compare/2"
    assert report["within"] is True
    assert [t["name"] for t in report["tensors"]] == NOTEBOOK_TENSORS
    assert {t["max_abs"] for t in report["tensors"]} == {0.0}


def test_compare_allows_each_tensor_its_scale() -> None:
    # a sum that cancels to about zero keeps the rounding error of its terms, which are about 10
    reference = np.array([[10.0, 1e-6]])
    device = np.array([[10.0, 1e-6 + 2e-5]])
    tolerance = Tolerance(atol=1e-5, rtol=1.3e-6)

    def per_tensor(got: np.ndarray) -> Difference:
        closeness = PerTensor()
        closeness.add(got, reference)
        return closeness.result(tolerance)

    assert per_tensor(device).within
    assert per_tensor(device).allowed == pytest.approx(1e-5 + 1.3e-5)
    assert not difference(device, reference, tolerance).within  # --expect: element by element
    assert not per_tensor(device * 1.001).within


def _at_scale(got: np.ndarray, expected: np.ndarray, tolerance: Tolerance) -> tuple[object, ...]:
    """An independent reference of `compare`'s check, element by element in Python: the
    largest gap against atol + rtol x the largest finite |expected| (NaN equal to NaN)."""
    scale = max((abs(v) for v in expected.flat if math.isfinite(v)), default=0.0)
    allowed = tolerance.atol + tolerance.rtol * scale
    gaps = {}
    for index in np.ndindex(got.shape):
        a, b = float(got[index]), float(expected[index])
        same = a == b or (math.isnan(a) and math.isnan(b))
        gap = 0.0 if same else abs(a - b)
        gaps[index] = math.inf if math.isnan(gap) else gap
    over = [i for i, gap in gaps.items() if gap > 0]
    largest = max(gaps.values())
    worst = max(gaps, key=lambda i: gaps[i]) if allowed or not over else over[0]  # x/0: inf
    return largest, worst, allowed, largest <= allowed


@pytest.mark.parametrize("rows", [1, 3, 7, 40])
def test_compare_takes_a_tensor_a_chunk_of_rows_at_a_time(rows: int) -> None:
    """Row blocks of any size give the whole tensor's answer: the worst element (the first of
    equal gaps), its allowance at the reference's scale, NaN and infinities as they compare."""
    rng = np.random.default_rng(5)
    expected = rng.standard_normal((40, 6)) * 10
    expected[3, 1], expected[30, 2], expected[12, 0] = np.nan, np.inf, 0.0
    got = expected + rng.standard_normal((40, 6)) * 1e-6
    got[3, 1], got[30, 2] = np.nan, np.inf  # equal where not finite
    got[17, 4] = got[33, 5] = expected[17, 4] + 1e-4  # a tie: the first one is named
    got[33, 5] = expected[33, 5] + 1e-4
    for tolerance in (Tolerance(1e-5, 1.3e-6), Tolerance(0.0, 0.0)):
        closeness = PerTensor()
        for start in range(0, 40, rows):
            closeness.add(got[start : start + rows], expected[start : start + rows])
        found = closeness.result(tolerance)
        gap, worst, allowed, within = _at_scale(got, expected, tolerance)
        assert (found.worst, found.within) == (worst, within)
        assert found.max_abs == pytest.approx(gap)
        assert found.allowed == pytest.approx(allowed)
        assert (closeness.rows, closeness.columns) == (40, 6)
    got[8, 3] = np.nan  # NaN against a number: infinitely far
    closeness = PerTensor()
    for start in range(0, 40, rows):
        closeness.add(got[start : start + rows], expected[start : start + rows])
    assert closeness.result(Tolerance(1e-5, 1e-5)).worst == (8, 3)


def test_compare_of_features_from_a_file_runs_a_chunk_at_a_time(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(1).standard_normal((50, 3)))
    inputs = f"inputs={tmp_path / 'x.npy'}"
    args = ("compare", TWO_LAYER, inputs, "batch=null", "--devices", "cpu,cpu")
    whole = invoke(*args, "-f", "json")
    chunked = invoke(*args, "chunk=7", "-f", "json")
    assert whole[0] == chunked[0] == 0
    shapes = [(t["name"], t["shape"], t["max_abs"]) for t in json.loads(chunked[1])["tensors"]]
    assert shapes == [(t["name"], t["shape"], 0.0) for t in json.loads(whole[1])["tensors"]]
    assert ("output", [50, 1], 0.0) in shapes


def test_compare_beyond_tolerance_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def compare(config: object, tolerance: Tolerance, *_: object, **__: object) -> CompareResult:
        off = Difference(3e-4, 1e-3, (0, 0), 0.3003, 0.3, 1e-5, within=False)
        same = Difference(0.0, 0.0, (0, 0), 1.0, 1.0, 1e-5, within=True)
        diffs = (
            TensorDiff("W1", (3, 2), "cuda:0", same),
            TensorDiff("output", (1, 1), "cuda:0", off),
        )
        return CompareResult(load(None), ("cpu", "cuda:0"), tolerance, diffs)

    monkeypatch.setattr(comparisons, "compare", compare)
    code, out, err = invoke("compare")
    assert code == 1
    assert "NO" in out
    assert err == (
        "mlpcli: error: default: 1 of 2 tensors differ from cpu beyond tolerance; "
        "the largest: output on cuda:0, max abs 0.0003\n"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_compare_with_a_missing_device_exits_3() -> None:
    code, out, err = invoke("compare", "--devices", "cpu,cuda")
    assert (code, out) == (3, "")
    assert err.startswith("mlpcli: error: --devices: device: cuda is not available here")


@pytest.mark.parametrize(
    ("devices", "message"),
    [("cpu", "name two or more devices"), ("cpu,tpu", "--devices: device: expected cpu, cuda")],
)
def test_compare_bad_devices(devices: str, message: str) -> None:
    code, _, err = invoke("compare", "--devices", devices)
    assert code == 2
    assert message in err


# --- env -------------------------------------------------------------------------------------


def test_env() -> None:
    code, out, _ = invoke("env", "--format", "json")
    assert code == 0
    info = json.loads(out)
    assert info["schema"] == "mlpcli.env/1"
    assert info["torch"] == torch.__version__
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["safetensors"] == metadata.version("safetensors")
    for package in ("pyarrow", "onnx", "h5py"):  # the extras': None where not installed
        assert info[package] == (
            metadata.version(package) if importlib.util.find_spec(package) else None
        )
    assert len(info["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    code, out, _ = invoke("env")
    assert code == 0
    assert re.search(rf"^torch +{re.escape(torch.__version__)} *$", out, re.MULTILINE)


# --- MLPCLI_DEVICE ---------------------------------------------------------------------------


def test_device_precedence(write_config: Callable[..., Path]) -> None:
    path = str(write_config("layers: [3, 2]\ndevice: cuda\n"))

    def device(*args: str, env: str | None = None) -> str:
        code, out, err = invoke("config", "show", path, *args, env={"MLPCLI_DEVICE": env or ""})
        assert code == 0, err
        return str(yaml.safe_load(out)["device"])

    assert device() == "cuda"  # the file
    assert device(env="cpu") == "cpu"  # the environment beats the file
    assert device("device=auto", env="cpu") == "auto"  # KEY=VALUE beats the environment
    assert (
        json.loads(invoke("run", path, "-f", "json", env={"MLPCLI_DEVICE": "cpu"})[1])["device"]
        == "cpu"
    )


def test_bad_environment_device_names_the_variable() -> None:
    code, _, err = invoke("run", env={"MLPCLI_DEVICE": "gpu"})
    assert code == 2
    assert err == (
        "mlpcli: error: environment MLPCLI_DEVICE=gpu: device: expected cpu, cuda, cuda:N or auto, "
        "got 'gpu' (did you mean 'cuda'?)\n"
    )


def test_validate_applies_the_environment_as_every_command_does() -> None:
    code, out, _ = invoke("validate", TWO_LAYER, env={"MLPCLI_DEVICE": "gpu"})
    assert code == 1  # invalid, as `run` and `shapes` find it
    assert out == (
        "environment MLPCLI_DEVICE=gpu: device: expected cpu, cuda, cuda:N or auto, got 'gpu' "
        "(did you mean 'cuda'?)\n"
    )


# --- terminals -------------------------------------------------------------------------------


def test_columns_sets_the_table_width() -> None:
    wide = invoke("run", "layers=[3, 12]", env={"COLUMNS": "200"})[1]
    narrow = invoke("run", "layers=[3, 12]", env={"COLUMNS": "50"})[1]
    assert max(map(len, narrow.splitlines())) <= 50
    assert "…" in narrow
    assert "…" not in wide


# --- bench -----------------------------------------------------------------------------------


def test_bench_times_the_forward_apart_from_the_build() -> None:
    code, out, err = invoke("bench", TWO_LAYER, "--repeat", "5", "--warmup", "1", "-f", "json")
    assert (code, err) == (0, "")
    record = json.loads(out)
    assert record["schema"] == "mlpcli.bench/1"
    times = record["forward_ms"]
    assert len(times["all"]) == 5
    assert times["min"] <= times["median"] <= times["max"]
    assert record["build_ms"] > 0
    assert record["flops"] == 22
    assert record["tflops_per_s"] == pytest.approx(22 / (times["median"] / 1e3) / 1e12)
    assert record["samples_per_s"] == pytest.approx(1 / (times["median"] / 1e3))
    assert record["peak_bytes"] is None  # measured on a GPU only
    assert record["cuda_graph"] is False
    assert record["reads_features"] is False  # drawn, held for every pass
    code, out, _ = invoke("bench", "--repeat", "2")
    assert code == 0
    assert "forward, median of 2" in out


def test_bench_refuses_what_cannot_fit_before_trying() -> None:
    code, out, err = invoke("bench", "layers=[2147483647, 2147483647]")
    assert (code, out) == (3, "")
    assert "needs about 16.0 EiB of memory" in err


# --- files written -----------------------------------------------------------------------------


def test_output_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path: Path) -> None:
    fresh, kept = tmp_path / "fresh.json", tmp_path / "kept.json"
    kept.write_text("old")
    kept.chmod(0o640)
    old_umask = os.umask(0o022)
    try:
        assert invoke("run", "-o", str(fresh), "-q")[0] == 0
        assert invoke("run", "-o", str(kept), "-q")[0] == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert json.loads(kept.read_text())["name"] == "default"


def test_a_write_removes_temporaries_of_killed_runs_and_no_others(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    stale = tmp_path / f".out.json.{2**22 + 17}.abcd1234.tmp"  # above Linux's pid_max default
    live = tmp_path / f".out.json.{os.getpid()}.abcd1234.tmp"
    other = tmp_path / ".other.json.1.abcd1234.tmp"
    for path in (stale, live, other):
        path.write_text("partial")
    assert invoke("run", "-o", str(target), "-q")[0] == 0
    assert not stale.exists()
    assert live.exists()
    assert other.exists()
