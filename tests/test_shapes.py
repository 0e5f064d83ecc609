"""`shapes`: the arithmetic, checked against counts written out by hand."""

from __future__ import annotations

import time

from mlpcli.loading.loader import load
from mlpcli.model.config import Activation
from mlpcli.model.shapes import layer_flops, shapes, tensor_shapes


def test_notebook_network_by_hand() -> None:
    report = shapes(load(None))
    # W1 3x2 + B1 2 = 8; W2 2x1 + B2 1 = 3
    assert [layer.params for layer in report.layers] == [8, 3]
    # layer 1: 2*1*3*2 matmul + 2 bias + 2 sigmoid = 16; layer 2: 4 + 1 + 1 = 6
    assert [layer.flops for layer in report.layers] == [16, 6]
    assert (report.total_params, report.total_flops) == (11, 22)
    assert report.param_bytes == 44  # float32
    assert report.largest_activation_bytes == 12  # features (1, 3) in float32
    layer = report.layers[0]
    assert (layer.weight, layer.bias, layer.output) == ((3, 2), (1, 2), (1, 2))


def test_tensors_in_the_notebooks_order() -> None:
    config = load(None, ["layers=[5, 4, 3, 2]", "batch=6"])
    assert [(t.name, t.shape) for t in tensor_shapes(config)] == [
        ("features", (6, 5)),
        ("W1", (5, 4)),
        ("W2", (4, 3)),
        ("W3", (3, 2)),
        ("B1", (1, 4)),
        ("B2", (1, 3)),
        ("B3", (1, 2)),
        ("h1", (6, 4)),
        ("h2", (6, 3)),
        ("output", (6, 2)),
    ]


def test_without_bias_there_are_no_b_tensors_and_no_bias_flops() -> None:
    report = shapes(load(None, ["bias=false", "batch=4"]))
    assert [t.name for t in report.tensors] == ["features", "W1", "W2", "h1", "output"]
    assert [layer.params for layer in report.layers] == [6, 2]
    assert [layer.bias for layer in report.layers] == [None, None]
    assert report.layers[0].flops == 2 * 4 * 3 * 2 + 4 * 2  # matmul + sigmoid


def test_identity_costs_no_activation_flops() -> None:
    assert layer_flops(10, 3, 4, Activation.IDENTITY, bias=True) == 2 * 10 * 3 * 4 + 10 * 4
    assert layer_flops(10, 3, 4, Activation.RELU, bias=False) == 2 * 10 * 3 * 4 + 10 * 4


def test_dtype_and_batch_set_the_bytes() -> None:
    report = shapes(load(None, ["layers=[100, 300, 10]", "dtype=bfloat16", "batch=7"]))
    assert report.param_bytes == (100 * 300 + 300 + 300 * 10 + 10) * 2
    assert report.largest_activation_bytes == 7 * 300 * 2


def test_huge_network_is_instant_arithmetic() -> None:
    start = time.perf_counter()
    shapes(load(None, ["layers=[10, 10, 10]"]))
    floor = time.perf_counter() - start  # this machine, now, on a network of 210 weights
    start = time.perf_counter()
    report = shapes(load(None, ["layers=[100000, 100000, 10]"]))
    assert time.perf_counter() - start < 0.5 + 20 * floor  # nothing is allocated (40 GB)
    assert report.total_params == 100000 * 100000 + 100000 + 100000 * 10 + 10
    assert report.param_bytes == report.total_params * 4
