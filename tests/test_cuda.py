"""The CUDA path on a real GPU; every test here is skipped on a machine without one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlpcli.engine import devices, network, runners
from mlpcli.errors import UnavailableError
from mlpcli.loading.loader import load

from .conftest import CONFIGS, invoke

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

FLOAT32_NETWORKS = [
    (CONFIGS / "two_layer.yaml", []),
    (CONFIGS / "deep_relu.yaml", []),
    (None, ["layers=[1024, 1024, 1024, 1024]", "batch=256", "activation=tanh", "init=xavier"]),
    (None, ["layers=[64, 128, 10]", "batch=100", "activation=[gelu, softmax]", "bias=false"]),
]


@pytest.mark.parametrize(("path", "overrides"), FLOAT32_NETWORKS)
def test_cpu_and_cuda_agree_to_float32_rounding(path: object, overrides: list[str]) -> None:
    cpu = runners.run(load(path, [*overrides, "device=cpu"]))  # type: ignore[arg-type]
    cuda = runners.run(load(path, [*overrides, "device=cuda"]))  # type: ignore[arg-type]
    assert cuda.device.startswith("cuda")
    assert {t.device for t in cuda.tensors} == {cuda.device}
    # torch's float32 defaults, which mlpcli compare uses: a sum that cancels differs by a few 1e-6
    torch.testing.assert_close(torch.from_numpy(cuda.whole), torch.from_numpy(cpu.whole))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_compare_cpu_and_cuda_within_the_default_tolerance(dtype: str) -> None:
    deep = str(CONFIGS / "deep_relu.yaml")
    code, out, err = invoke("compare", deep, f"dtype={dtype}", "--devices", "cpu,cuda")
    assert code == 0, out + err


def test_the_notebook_value_on_cuda() -> None:
    output = runners.run(load(None, ["device=cuda"])).whole
    assert output.item() == pytest.approx(0.3170831501483917, abs=1e-7)


def test_auto_picks_cuda() -> None:
    assert devices.resolve(load(None, ["device=auto"])).type == "cuda"


def test_weights_on_cuda_are_the_cpu_draw() -> None:
    config = load(None, ["layers=[32, 16, 8]", "device=cuda", "dtype=bfloat16"])
    built = network.build(config, devices.resolve(config))
    features, weights, _ = network.draw(config)
    assert features is not None
    assert weights[0] is not None
    assert torch.equal(built.weights[0].cpu(), weights[0].to(torch.bfloat16))
    assert torch.equal(built.features.cpu(), features.to(torch.bfloat16))


def test_device_beyond_the_count_is_unavailable() -> None:
    index = torch.cuda.device_count()
    with pytest.raises(UnavailableError, match=f"cuda:{index} is not available here"):
        devices.resolve(load(None, [f"device=cuda:{index}"]))


def test_no_tf32() -> None:
    runners.run(load(None, ["device=cuda"]))
    assert torch.get_float32_matmul_precision() == "highest"
    assert not torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("activation", ["relu", "gelu", "softmax"])
def test_forward_holds_at_most_two_activation_buffers(activation: str) -> None:
    config = load(
        None,
        [
            "layers=[2048, 2048, 2048, 2048]",
            "batch=2048",
            f"activation={activation}",
            "device=cuda",
        ],
    )
    result = runners.bench(config, warmup=1, repeat=2)
    buffer = 2048 * 2048 * 4
    assert result.peak_bytes is not None
    assert result.peak_bytes <= 2.05 * buffer, result.peak_bytes / buffer


def test_rng_device_draws_on_the_gpu_reproducibly() -> None:
    overrides = ["layers=[64, 32, 8]", "batch=16", "device=cuda", "rng=device"]
    first = runners.run(load(None, overrides)).whole
    again = runners.run(load(None, overrides)).whole
    contract = runners.run(load(None, ["layers=[64, 32, 8]", "batch=16", "device=cuda"])).whole
    assert first.tolist() == again.tolist()
    assert first.tolist() != contract.tolist()


@pytest.mark.parametrize(
    "overrides",
    [
        ["layers=[3, 2, 1]"],
        ["layers=[256, 512, 512, 10]", "batch=64", "activation=[relu, gelu, softmax]"],
        ["layers=[256, 256, 256]", "batch=96", "chunk=32", "dtype=bfloat16", "activation=tanh"],
    ],
)
def test_cuda_graph_replays_equal_the_eager_forward(overrides: list[str]) -> None:
    config = load(None, [*overrides, "device=cuda"])
    built = network.build(config, devices.resolve(config))
    eager = network.forward_in_chunks(built, config.chunk)
    replay = runners.captured(built, config.chunk)
    first = replay().clone()
    assert torch.equal(first, eager)
    assert torch.equal(replay(), eager)


def test_bench_with_cuda_graph() -> None:
    config = load(None, ["layers=[256, 256, 256]", "batch=64", "device=cuda"])
    result = runners.bench(config, warmup=2, repeat=5, cuda_graph=True)
    assert result.cuda_graph
    assert len(result.forward_ms) == 5
    assert all(ms > 0 for ms in result.forward_ms)
    assert result.peak_bytes is not None


def test_bench_of_a_file_of_several_chunks_on_cuda(tmp_path: Path) -> None:
    """Read in every pass (features to the GPU a chunk at a time), or held for --cuda-graph."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((53, 4), np.float32))
    args = ["layers=[4, 6, 3]", f"inputs={tmp_path / 'x.npy'}", "chunk=7", "device=cuda", "-n", "2"]
    for extra in ([], ["--cuda-graph"]):
        code, out, err = invoke("bench", *args, *extra, "-f", "json")
        assert code == 0, err
        result = json.loads(out)
        assert (len(result["forward_ms"]["all"]), result["cuda_graph"]) == (2, bool(extra))
