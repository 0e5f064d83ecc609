"""`run --stats` against NumPy on the same values, chunks included; the trouble notes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlpcli.engine import network, runners
from mlpcli.engine.stats import Accumulator, combined
from mlpcli.loading.loader import load
from mlpcli.model.config import Activation

from .conftest import invoke


def reference_stats(values: np.ndarray, activation: str | None) -> dict[str, float | None]:
    finite = values[np.isfinite(values)]
    saturated = {
        "sigmoid": lambda: float(((values < 1e-3) | (values > 1 - 1e-3)).mean()),
        "tanh": lambda: float((np.abs(values) > 1 - 1e-3).mean()),
        "softmax": lambda: float((values.max(axis=-1) > 0.99).mean()),
    }
    return {
        "mean": float(finite.mean()), "std": float(finite.std()), "min": float(finite.min()),
        "max": float(finite.max()), "zeros": float((values == 0).mean()),
        "saturated": saturated[activation]() if activation in saturated else None,
    }  # fmt: skip


@pytest.mark.parametrize(
    "overrides",
    [
        ["activation=sigmoid"],
        ["activation=[relu, tanh, softmax]", "chunk=7"],
        ["activation=[relu, relu, identity]", "dtype=bfloat16", "chunk=16"],
    ],
)
def test_stats_agree_with_numpy_over_the_whole_batch(overrides: list[str]) -> None:
    config = load(None, ["layers=[5, 12, 9, 4]", "batch=50", "seed=3", *overrides])
    result = runners.run(config, with_stats=True)
    built = network.build(config, torch.device("cpu"))
    values = {"features": built.features.float().numpy()}
    network.forward(built, lambda name, h: values.update({name: h.float().numpy()}))
    activations = [None, *(a.value for a in config.activations)]
    assert [s.name for s in result.stats] == list(values)
    for stats, (name, array), activation in zip(
        result.stats, values.items(), activations, strict=True
    ):
        expected = reference_stats(array, activation)
        for key, value in expected.items():
            got = getattr(stats, key)
            if value is None:
                assert got is None, (name, key)
            else:
                assert got == pytest.approx(value, rel=1e-6, abs=1e-9), (name, key)
        assert sum(stats.histogram) == np.isfinite(array).sum()
        assert (stats.nan, stats.inf) == (int(np.isnan(array).sum()), int(np.isinf(array).sum()))


def test_sigmoid_saturates_with_normal_init_and_not_with_xavier() -> None:
    deep = ["layers=[64,512,512,512,512,10]", "batch=256", "--stats", "-f", "json"]
    code, _, err = invoke("run", *deep, "init=normal")
    assert code == 0
    assert err == (
        "mlpcli: note: default: activations saturate from h2 on (65% of its values saturated)\n"
    )
    code, _, err = invoke("run", *deep, "init=xavier")
    assert (code, err) == (0, "")


def test_explosion_is_named_at_its_first_layer() -> None:
    args = ["layers=[1024,1024,1024,1024,1024,1024]", "dtype=float16", "activation=identity"]
    code, _, err = invoke("run", *args, "--stats", "-q")
    assert code == 0
    assert err.splitlines()[0].startswith("mlpcli: note: default: activations explode from h")


def test_vanishing_is_named_at_its_first_layer() -> None:
    # ReLU halves the variance of each bias-free xavier layer: 2**-10 of the features' std by h19
    sizes = ",".join(["256"] * 30)
    args = [f"layers=[{sizes}]", "activation=relu", "init=xavier", "bias=false", "batch=64"]
    code, _, err = invoke("run", *args, "--stats", "-q")
    assert code == 0
    assert err == "mlpcli: note: default: activations vanish from h19 on (std 0.00096)\n"


def test_chunks_change_no_figure_and_the_histogram_holds_every_value() -> None:
    sizes = ["layers=[4, 8, 1]", "activation=identity", "batch=1000"]
    whole = runners.run(load(None, sizes), with_stats=True).stats[-1]
    chunked = runners.run(load(None, [*sizes, "chunk=1"]), with_stats=True).stats[-1]
    assert chunked.mean == pytest.approx(whole.mean, rel=1e-6)  # chunks round differently
    assert chunked.std == pytest.approx(whole.std, rel=1e-6)
    assert chunked.histogram_range is not None
    low, high = chunked.histogram_range
    assert low <= chunked.min <= chunked.max <= high  # the range grew to hold every chunk
    assert sum(chunked.histogram) == sum(whole.histogram) == 1000
    bounded = ["layers=[4, 8, 3]", "activation=sigmoid", "batch=300"]
    assert (
        runners.run(load(None, bounded), with_stats=True).stats[-1].histogram
        == runners.run(load(None, [*bounded, "chunk=7"]), with_stats=True).stats[-1].histogram
    )


def test_nonfinite_values_are_counted_and_left_out_of_the_figures() -> None:
    args = ["layers=[1024,1024,1024,1024,1024,1024]", "dtype=float16", "activation=identity"]
    config = load(None, [*args, "batch=4"])
    result = runners.run(config, with_stats=True)
    output = result.whole
    last = result.stats[-1]
    assert (last.nan, last.inf) == (int(np.isnan(output).sum()), int(np.isinf(output).sum()))
    assert last.nan + last.inf > 0
    assert last.count == int(np.isfinite(output).sum())


def test_a_spread_far_below_the_mean_is_kept() -> None:
    accumulator = Accumulator("h1", None, torch.device("cpu"))
    values = 1e5 + np.array([[-1e-3, 1e-3, -1e-3, 1e-3]])
    for row in values.T:  # four chunks of one value
        accumulator.add(torch.from_numpy(row.reshape(1, 1)))
    assert accumulator.result().std == pytest.approx(float(values.std()), rel=1e-6)


def test_the_notebook_gets_no_note() -> None:
    assert invoke("run", "--stats", "-q")[2] == ""


@pytest.mark.parametrize("activation", [Activation.SIGMOID, Activation.SOFTMAX, Activation.RELU])
def test_the_ranks_figures_combined_are_the_whole_tensors(activation: Activation) -> None:
    """Rows split as a `data` run splits them (a rank with none too), each part's figures
    combined: every figure the whole tensor's; the histogram too where the range is the
    activation's own, and over the whole tensor's range where it is not."""
    values = torch.randn(301, 6, dtype=torch.float64) * 4
    values[7, 2], values[200, 1] = math.nan, math.inf
    values = torch.sigmoid(values) if activation is Activation.SIGMOID else values
    values = torch.softmax(values, -1) if activation is Activation.SOFTMAX else values
    whole = Accumulator("h1", activation, torch.device("cpu"))
    whole.add(values[:160])  # rank 0's rows, as its first chunk: the range starts there
    whole.add(values[160:])
    parts = []
    for rows in (slice(0, 160), slice(160, 301), None):  # None: a rank with no rows
        part = Accumulator("h1", activation, torch.device("cpu"))
        if rows is not None:
            part.add(values[rows])
        parts.append(part.result())
    got, expected = combined(parts), whole.result()
    for name in ("count", "min", "max", "nan", "inf", "histogram_range"):
        assert getattr(got, name) == getattr(expected, name), name
    for name in ("mean", "std", "zeros"):
        assert getattr(got, name) == pytest.approx(getattr(expected, name), rel=1e-12), name
    assert got.saturated == (expected.saturated and pytest.approx(expected.saturated, rel=1e-12))
    assert sum(got.histogram) == sum(expected.histogram) == got.count
    if activation is not Activation.RELU:  # bounded: one range, the same bins
        assert got.histogram == expected.histogram
