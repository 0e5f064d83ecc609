"""The command line, in this process: formats, several configs, exit codes, error lines."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import NOTEBOOK_TENSORS, TWO_LAYER, invoke


def test_run_table_shows_the_notebook_value() -> None:
    code, out, err = invoke("run", TWO_LAYER)
    assert (code, err) == (0, "")
    assert "two_layer  seed 7  device cpu  dtype float32  batch 1" in out
    assert "0.3171" in out
    for name in ("features", "W1", "W2", "B1", "B2", "h1", "output"):
        assert re.search(rf"^{name} ", out, re.MULTILINE), name


def test_run_without_config_uses_the_builtin_default() -> None:
    code, out, _ = invoke("run", "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert result["name"] == "default"
    assert result["output"] == [[0.3170831501483917]]


def test_run_json_carries_the_schema_and_full_precision() -> None:
    code, out, _ = invoke("run", TWO_LAYER, "-f", "json")
    assert code == 0
    assert '"output":[[0.3170831501483917]]' in out
    result = json.loads(out)
    assert result["schema"] == "mlpcli.run/2"
    assert result["config"] == {
        "name": "two_layer", "seed": 7, "layers": [3, 2, 1], "activation": "sigmoid",
        "device": "cpu", "dtype": "float32", "batch": 1, "init": "normal", "bias": True,
        "chunk": None, "rng": "cpu", "threads": None, "inputs": None, "weights": None,
        "parallel": "none", "timeout": 60, "input_columns": None, "input_header": None,
        "input_orient": None, "weights_order": None, "batchnorm": None,
    }  # fmt: skip
    assert [t["name"] for t in result["tensors"]] == NOTEBOOK_TENSORS
    assert result["tensors"][1] == {
        "name": "W1",
        "shape": [3, 2],
        "dtype": "float32",
        "device": "cpu",
    }
    assert set(result["timing_ms"]) == {"build", "forward"}
    assert all(v >= 0 for v in result["timing_ms"].values())


def test_run_csv_has_a_header_and_one_line_per_sample() -> None:
    code, out, _ = invoke("run", TWO_LAYER, "--format", "csv", "batch=3", "layers=[3, 2, 2]")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["name", "output_0", "output_1"]
    assert len(rows) == 4
    expected = json.loads(invoke("run", TWO_LAYER, "-f", "json", "batch=3", "layers=[3,2,2]")[1])
    assert [row[0] for row in rows[1:]] == ["two_layer"] * 3
    assert [[float(v) for v in row[1:]] for row in rows[1:]] == expected["output"]


def test_csv_of_several_networks_labels_every_line_under_one_header(
    write_config: Callable[..., Path],
) -> None:
    other = write_config("name: other\nlayers: [3, 4, 1]\n")
    code, out, _ = invoke("run", TWO_LAYER, str(other), "batch=2", "-f", "csv")
    assert code == 0
    assert out.splitlines()[0] == "name,output_0"
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["two_layer"] * 2 + [
        "other"
    ] * 2
    wider = write_config("name: wide\nlayers: [3, 2]\n", name="wide.yaml")
    out = invoke("run", TWO_LAYER, str(wider), "-f", "csv")[1]
    assert [line.split(",")[0] for line in out.splitlines()] == [
        "name",
        "two_layer",
        "name",
        "wide",
    ]


def test_csv_of_a_sweep_has_a_column_per_swept_key() -> None:
    code, out, _ = invoke("run", "-m", "seed=1,2", "activation=relu,tanh", "batch=1", "-f", "csv")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["name", "seed", "activation", "output_0"]
    assert [row[:3] for row in rows[1:]] == [
        ["default", s, a] for s in ("1", "2") for a in ("relu", "tanh")
    ]


def test_several_configs_run_in_order_with_shared_overrides(
    write_config: Callable[..., Path],
) -> None:
    other = write_config("name: other\nlayers: [3, 4]\nseed: 1\n")
    code, out, _ = invoke("run", TWO_LAYER, str(other), "batch=2", "-f", "json")
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["name"] for r in results] == ["two_layer", "other"]
    assert [len(r["output"]) for r in results] == [2, 2]
    assert results[0]["output"][0] == [0.3170831501483917]


def test_overrides_change_the_run() -> None:
    _, out, _ = invoke("run", TWO_LAYER, "seed=3", "-f", "json")
    assert json.loads(out)["config"]["seed"] == 3
    assert json.loads(out)["output"] != [[0.3170831501483917]]


def test_long_output_is_cut_with_a_note_and_full_shows_all() -> None:
    code, out, err = invoke("run", "layers=[3, 20]", "batch=30")
    assert code == 0
    labels = re.findall(r"^ *(\d+|…)  ", out, re.MULTILINE)  # the output table's row labels
    assert labels[-11:] == ["0", "1", "2", "3", "4", "…", "25", "26", "27", "28", "29"]
    assert err.startswith("mlpcli: note: showing 10 of 30 rows")
    assert "--full" in err
    code, out, err = invoke("run", "layers=[3, 20]", "batch=30", "--full", env={"COLUMNS": "300"})
    assert (code, err) == (0, "")
    assert re.findall(r"^ *(\d+|…)  ", out, re.MULTILINE) == [str(i) for i in range(30)]
    assert "…" not in out


def test_shapes_json() -> None:
    code, out, _ = invoke("shapes", TWO_LAYER, "--format", "json", "batch=4")
    assert code == 0
    report = json.loads(out)
    assert report["schema"] == "mlpcli.shapes/1"
    assert report["total_params"] == 11
    assert [layer["flops"] for layer in report["layers"]] == [
        2 * 4 * 3 * 2 + 8 + 8,
        2 * 4 * 2 + 4 + 4,
    ]
    assert report["layers"][0] | {"flops": 0} == {
        "index": 1, "in": 3, "out": 2, "weight": [3, 2], "bias": [1, 2], "output": [4, 2],
        "activation": "sigmoid", "params": 8, "flops": 0,
    }  # fmt: skip
    assert report["param_bytes"] == 44
    assert report["largest_activation_bytes"] == 4 * 3 * 4


def test_shapes_table() -> None:
    code, out, _ = invoke("shapes", "layers=[100000, 100000, 10]")
    assert code == 0
    assert "100000 → 100000" in out
    assert "10,001,100,010 (37.3 GiB in float32)" in out


def test_validate_reports_each_file(write_config: Callable[..., Path]) -> None:
    good = write_config("layers: [3, 2]\n", name="good.yaml")
    bad = write_config("layers: [3, 0]\n", name="bad.yaml")
    code, out, _ = invoke("validate", str(good), str(bad))
    assert code == 1
    assert out.splitlines() == [
        f"{good}: ok (good, layers 3 → 2)",
        f"{bad}:1:13: layers[1]: must be >= 1, got 0",
    ]
    code, out, _ = invoke("validate", str(good), str(good.parent / "missing.yaml"))
    assert code == 2
    assert out.splitlines()[1] == f"{good.parent / 'missing.yaml'}: no such file"
    assert invoke("validate", str(good))[0] == 0


def test_version_and_help() -> None:
    code, out, _ = invoke("--version")
    assert code == 0
    assert out.startswith("mlpcli 0.")
    code, out, _ = invoke("--help")
    assert code == 0
    for command in ("run", "shapes", "validate"):
        assert command in out


def test_bad_config_file_names_file_line_and_field(write_config: Callable[..., Path]) -> None:
    path = write_config("seed: 7\nlayers: [3, 2, 0]\n")
    code, out, err = invoke("run", str(path))
    assert (code, out) == (2, "")
    assert err == f"mlpcli: error: {path}:2:16: layers[2]: must be >= 1, got 0\n"


def test_one_bad_config_stops_every_run_before_any_output(
    write_config: Callable[..., Path],
) -> None:
    bad = write_config("layers: [3, 0]\n")
    code, out, _ = invoke("run", TWO_LAYER, str(bad))
    assert (code, out) == (2, "")


def test_internal_error_asks_for_a_report(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlpcli.engine import runners

    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(runners, "run", broken)
    code, out, err = invoke("run")
    assert (code, out) == (4, "")
    assert err == (
        "mlpcli: error: internal error (ZeroDivisionError: division by zero); "
        "rerun with MLPCLI_DEBUG=1 and report the traceback\n"
    )
    code, _, err = invoke("run", env={"MLPCLI_DEBUG": "1"})
    assert code == 4
    assert "Traceback (most recent call last)" in err


def test_interrupt_exits_130_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlpcli.engine import runners

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runners, "run", interrupted)
    code, out, err = invoke("run")
    assert (code, out, err) == (130, "", "mlpcli: error: interrupted\n")


def test_bare_command_shows_help_and_no_error_line() -> None:
    code, out, err = invoke()
    assert code == 2
    assert "Usage: mlpcli" in out + err
    assert "mlpcli: error" not in err


def test_nonfinite_outputs_are_strings_in_json_and_noted_on_stderr() -> None:
    # float16 overflows: each identity layer of 1024 multiplies the scale by about 32
    layers = "layers=[1024, 1024, 1024, 1024, 1024, 1024]"
    code, out, err = invoke("run", layers, "dtype=float16", "activation=identity", "-f", "json")
    assert code == 0
    result = json.loads(out)
    assert result["nonfinite"] > 0
    assert result["nonfinite"] == sum(isinstance(v, str) for v in result["output"][0])
    assert (
        err == f"mlpcli: note: default: output has {result['nonfinite']} NaN or infinite values\n"
    )


def test_markup_in_names_and_overrides_prints_literally() -> None:
    code, out, _ = invoke("run", "name='[bold]n[/]'", "-m", "seed=1,2", env={"COLUMNS": "200"})
    assert code == 0
    assert out.count("[bold]n[/]") == 4  # the name column and the overrides column, twice
    code, out, _ = invoke("run", "name='[red]x'", env={"COLUMNS": "200"})
    assert out.startswith("[red]x  seed 7")


def test_short_version_and_quiet() -> None:
    assert invoke("-V")[:2] == invoke("--version")[:2]
    code, out, err = invoke("run", "--quiet", "--expect", "0.3170831501483917")
    assert (code, out) == (0, "")
    assert err == "mlpcli: note: every output matches --expect 0.3170831501483917\n"


@pytest.mark.parametrize(
    ("args", "schema"),
    [
        (["validate", TWO_LAYER], "mlpcli.validate/1"),
        (["config", "show", TWO_LAYER], "mlpcli.config/1"),
    ],
)
def test_every_command_that_prints_results_takes_format_json(args: list[str], schema: str) -> None:
    for spelling in ("--format", "-f"):
        code, out, _ = invoke(*args, spelling, "json")
        assert code == 0
        assert json.loads(out)["schema"] == schema


def test_validate_json_has_path_ok_error_and_location(write_config: Callable[..., Path]) -> None:
    bad = write_config("layers: [3, 0]\n")
    code, out, _ = invoke(
        "validate", TWO_LAYER, str(bad), str(bad.parent / "missing.yaml"), "-f", "json"
    )
    assert code == 2
    good, invalid, missing = map(json.loads, out.splitlines())
    assert (good["ok"], good["name"], good["error"]) == (True, "two_layer", None)
    assert invalid == {
        "schema": "mlpcli.validate/1", "path": str(bad), "ok": False, "name": None,
        "error": "layers[1]: must be >= 1, got 0", "location": f"{bad}:1:13",
    }  # fmt: skip
    assert (missing["ok"], missing["error"], missing["location"]) == (False, "no such file", None)


FAST = {"compare": ["--devices", "cpu,cpu"], "bench": ["-n", "1", "--warmup", "0"]}


@pytest.mark.parametrize("command", ["run", "shapes", "bench", "compare", "env"])
def test_field_help_names_keys_the_command_has(command: str) -> None:
    code, out, _ = invoke(command, "--help")
    assert code == 0
    text = " ".join(out.split())  # Click wraps and names the metavar as it likes
    examples = re.search(
        r"--field \S+ Print one value of the JSON result instead \(([^)]*)\)", text
    )
    assert examples is not None, out
    record = json.loads(invoke(command, "-f", "json", *FAST.get(command, []))[1])
    for key in examples[1].split(", "):
        current = record
        for part in key.split("."):
            current = current[int(part)] if isinstance(current, list) else current[part]
