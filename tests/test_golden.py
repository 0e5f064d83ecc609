"""Table output rendered at a fixed width against files in tests/golden (`--overwrite-golden`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpcli.engine import runners
from mlpcli.loading.loader import load
from mlpcli.model.shapes import shapes
from mlpcli.report.views import run as run_view
from mlpcli.report.views import shapes as shapes_view

from .conftest import CONFIGS, invoke, rendered

GOLDEN = Path(__file__).parent / "golden"
WIDTH = 100


def check(name: str, text: str, overwrite: bool) -> None:
    path = GOLDEN / f"{name}.txt"
    if overwrite:
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run pytest --overwrite-golden"
    assert text == path.read_text()


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("run_two_layer", []), ("run_deep_relu_cut", ["device=cpu", "dtype=float64"])],
)
def test_run_table(name: str, overrides: list[str], overwrite_golden: bool) -> None:
    path = CONFIGS / ("two_layer.yaml" if "two_layer" in name else "deep_relu.yaml")
    table, cut = run_view.run_table(runners.run(load(path, overrides)), full=False, width=WIDTH)
    check(name, rendered(table, WIDTH) + (f"note: {cut}\n" if cut else ""), overwrite_golden)


@pytest.mark.parametrize("config", ["two_layer", "large_bf16"])
def test_shapes_table(config: str, overwrite_golden: bool) -> None:
    report = shapes(load(CONFIGS / f"{config}.yaml"))
    check(
        f"shapes_{config}",
        rendered(shapes_view.shapes_table(report, WIDTH)[0], WIDTH),
        overwrite_golden,
    )


def test_top_level_help(overwrite_golden: bool) -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    check("help", "\n".join(line.rstrip() for line in out.splitlines()) + "\n", overwrite_golden)


def test_markup_in_a_name_prints_literally() -> None:
    config = load(None, ["name='[red]x[/]'"])
    text = rendered(shapes_view.shapes_table(shapes(config), 100)[0])
    assert text.startswith("[red]x[/]  layers 3 → 2 → 1")
