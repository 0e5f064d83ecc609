"""The network of docs/contract.md section 2 against the independent reference in `reference.py`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from mlpcli.engine import devices, host, network, runners
from mlpcli.engine.world import Alone
from mlpcli.errors import ExitCode, UnavailableError
from mlpcli.loading.loader import load
from mlpcli.model import memory, plan
from mlpcli.model.config import Activation, Config, Device, Parallel
from mlpcli.model.shapes import tensor_shapes

from . import reference


def output_of(config: Config) -> torch.Tensor:
    """The output of a run, as a tensor for torch.testing."""
    return torch.from_numpy(runners.run(config).output)


def test_notebook_output_exactly() -> None:
    result = runners.run(load(None))
    assert result.whole.tolist() == [[0.3170831501483917]]
    assert round(result.whole.tolist()[0][0], 4) == 0.3171  # what the notebook prints


def test_notebook_computed_the_notebooks_way() -> None:
    torch.manual_seed(7)
    features = torch.randn((1, 3))
    W1, W2 = torch.randn(3, 2), torch.randn(2, 1)
    B1, B2 = torch.randn((1, 2)), torch.randn((1, 1))

    def activation(x: torch.Tensor) -> torch.Tensor:
        return 1 / (1 + torch.exp(-x))

    h = activation(torch.mm(features, W1) + B1)
    output = activation(torch.mm(h, W2) + B2)
    assert output_of(load(None)).item() == pytest.approx(output.item(), abs=1e-6)


DRAWS = [
    ([3, 2, 1], 1, True, "normal", 7),
    ([5, 4, 3, 2], 6, True, "normal", 0),
    ([20, 17, 9], 33, False, "normal", 123456789),
    ([8, 16, 4], 3, True, "xavier", 5),
    ([8, 16, 4], 3, True, "kaiming", 2**63 - 1),
]


@pytest.mark.parametrize(("layers", "batch", "bias", "init", "seed"), DRAWS)
def test_draw_order_matches_reference(
    layers: list[int], batch: int, bias: bool, init: str, seed: int
) -> None:
    overrides = [f"layers={layers}", f"batch={batch}", f"bias={str(bias).lower()}", f"init={init}"]
    features, weights, biases = network.draw(load(None, [*overrides, f"seed={seed}"]))
    assert features is not None
    ref_features, ref_weights, ref_biases = reference.draw(
        seed, layers, batch, bias=bias, init=init
    )
    assert torch.equal(features, ref_features)
    assert (len(weights), len(biases)) == (len(ref_weights), len(ref_biases))
    for got, expected in zip([*weights, *biases], [*ref_weights, *ref_biases], strict=True):
        assert got is not None
        assert torch.equal(got, expected)


@pytest.mark.parametrize("mode", ["data", "pipeline", "tensor"])
@pytest.mark.parametrize("world", [2, 3, 5])
@pytest.mark.parametrize("extra", [[], ["bias=false", "init=xavier"], ["batch=2", "chunk=1"]])
def test_each_rank_draws_exactly_its_share_of_the_whole_draw(
    mode: str, world: int, extra: list[str]
) -> None:
    config = load(None, ["layers=[6,10,7,5,9,4]", "batch=7", f"parallel={mode}", *extra])
    features, weights, biases = network.draw(config)
    for rank in range(world):
        share = plan.share(config, world, rank)
        mine = network.draw(config, share=share)
        if share.features is None:
            assert mine[0] is None
        else:
            assert features is not None
            assert mine[0] is not None
            assert torch.equal(mine[0], features[share.features.start : share.features.stop])
        held = [*zip(mine[1], weights, share.weights, strict=True)]
        held += [
            (B, whole, (range(1), columns))
            for B, whole, columns in zip(mine[2], biases, share.biases, strict=True)
            if columns is not None
        ]
        for got, whole, region in held:
            assert (got is None) == (region is None)
            if got is not None and whole is not None and region is not None:
                assert torch.equal(got, network.part(whole, region))
                assert got.is_contiguous()


@pytest.mark.parametrize(("layers", "batch", "bias", "init", "seed"), DRAWS)
def test_forward_matches_reference(
    layers: list[int], batch: int, bias: bool, init: str, seed: int
) -> None:
    overrides = [f"layers={layers}", f"batch={batch}", f"bias={str(bias).lower()}", f"init={init}"]
    config = load(None, [*overrides, f"seed={seed}", "activation=tanh"])
    expected = reference.forward(
        *reference.draw(seed, layers, batch, bias=bias, init=init), ["tanh"] * (len(layers) - 1)
    )
    torch.testing.assert_close(output_of(config), expected)


@pytest.mark.parametrize("activation", list(Activation))
def test_every_activation_against_torch(activation: Activation) -> None:
    layers, batch = [6, 9, 5], 4
    config = load(
        None, [f"layers={layers}", f"batch={batch}", f"activation={activation}", "seed=3"]
    )
    expected = reference.forward(*reference.draw(3, layers, batch), [activation.value] * 2)
    torch.testing.assert_close(output_of(config), expected)


def test_mixed_activations_apply_per_layer() -> None:
    config = load(
        None, ["layers=[4, 6, 5, 3]", "activation=[relu, gelu, softmax]", "batch=5", "seed=0"]
    )
    expected = reference.forward(*reference.draw(0, [4, 6, 5, 3], 5), ["relu", "gelu", "softmax"])
    output = output_of(config)
    torch.testing.assert_close(output, expected)
    torch.testing.assert_close(output.sum(dim=-1), torch.ones(5))


def test_network_does_not_depend_on_batch_dtype_or_device() -> None:
    small = network.draw(load(None, ["layers=[7, 5, 3]", "batch=1"]))
    large = network.draw(
        load(None, ["layers=[7, 5, 3]", "batch=40", "dtype=float64", "device=auto"])
    )
    assert small[0] is not None
    assert large[0] is not None
    assert torch.equal(small[0][0], large[0][0])
    for got, expected in zip([*small[1], *small[2]], [*large[1], *large[2]], strict=True):
        assert got is not None
        assert expected is not None
        assert torch.equal(got, expected)


def test_row_zero_of_the_output_does_not_depend_on_batch() -> None:
    one = output_of(load(None, ["layers=[16, 32, 4]", "batch=1"]))
    many = output_of(load(None, ["layers=[16, 32, 4]", "batch=64"]))
    torch.testing.assert_close(many[:1], one)


@pytest.mark.parametrize(
    ("dtype", "tolerance"),
    [("float32", 1e-6), ("float64", 1e-6), ("float16", 2e-3), ("bfloat16", 2e-2)],
)
def test_dtypes_cast_after_the_float32_draw(dtype: str, tolerance: float) -> None:
    config = load(None, ["layers=[8, 6, 3]", "batch=4", f"dtype={dtype}", "seed=0"])
    result = runners.run(config)
    assert {t.dtype for t in result.tensors} == {dtype}
    expected = reference.forward(*reference.draw(0, [8, 6, 3], 4), ["sigmoid"] * 2)
    output = torch.from_numpy(result.whole).double()
    torch.testing.assert_close(output, expected.double(), rtol=0, atol=tolerance)


def test_built_tensors_have_the_predicted_names_and_shapes() -> None:
    config = load(None, ["layers=[5, 4, 3, 2]", "batch=6"])
    result = runners.run(config)
    assert [(t.name, t.shape) for t in result.tensors] == [
        (t.name, t.shape) for t in tensor_shapes(config)
    ]
    assert {t.device for t in result.tensors} == {"cpu"}


def test_nonfinite_outputs_are_counted() -> None:
    config = load(None, ["layers=[4, 3]", "activation=identity", "dtype=float16", "init=normal"])
    assert runners.run(config).nonfinite == 0
    huge = network.Network(
        features=torch.full((1, 2), 6e4, dtype=torch.float16),
        weights=(torch.full((2, 1), 10.0, dtype=torch.float16),),
        biases=(),
        activations=(Activation.IDENTITY,),
    )
    assert torch.isinf(network.forward(huge)).all()


# --- devices ---------------------------------------------------------------------------------


def test_auto_runs_on_the_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve(load(None, ["device=auto"])) == torch.device("cpu")


@pytest.mark.parametrize(("cuda", "settled"), [(False, Device("cpu")), (True, Device("cuda"))])
def test_auto_is_settled_on_the_device_a_run_takes(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, settled: Device
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    config = load(None, ["device=auto", "chunk=3"])
    assert devices.settled(config) == dataclasses.replace(config, device=settled)
    assert devices.settled(load(None, ["device=cuda:1"])).device == Device("cuda", 1)


@pytest.mark.parametrize(
    ("device", "cuda_version", "count", "message"),
    [
        ("cuda", None, 0, "torch .* was built without CUDA"),
        ("cuda:0", "12.4", 0, "no CUDA device is visible"),
        ("cuda:3", "12.4", 2, r"this machine has 2 CUDA device\(s\), cuda:0..1"),
    ],
)
def test_missing_cuda_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, device: str, cuda_version: str | None, count: int, message: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.version, "cuda", cuda_version)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(
        UnavailableError,
        match=f"^override 'device={device}': device: {device} is not available here: {message}",
    ) as caught:
        devices.resolve(load(None, [f"device={device}"]))
    assert caught.value.exit_code == ExitCode.UNAVAILABLE


class _RankOf(Alone):
    """Rank `rank` of `size`, as far as a device's check needs to know."""

    distributed = True

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.world_size = rank, size


@pytest.mark.parametrize("mode", ["pipeline", "tensor"])
def test_a_rank_of_a_split_network_needs_room_for_its_share(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """A network split over 4 GPUs because it fits none of them whole: each rank's GPU is
    checked for the rank's share (`plan`), a world of one's for the whole network."""
    layers = "layers=[4096,4096,4096,4096,4096]"
    config = load(None, [layers, "batch=64", f"parallel={mode}", "device=cuda"])
    whole = memory.device_bytes(config, on_cpu=False, streamed=True)
    shares = [rank.total_bytes for rank in plan.plan(config, 4, None, held=False).ranks]
    free = (max(shares) + whole) // 2
    assert max(shares) < free < whole
    monkeypatch.setattr(devices, "resolve", lambda _: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _: (free, 2 * free))
    for rank in range(4):
        assert devices.prepare(config, _RankOf(rank, 4), streamed=True).type == "cuda"
    with pytest.raises(UnavailableError, match=r"needs about .* on cuda:0, .* is free$"):
        devices.prepare(config, streamed=True)


def test_a_pass_over_held_features_needs_the_whole_batch_on_each_rank() -> None:
    """bench over drawn features runs the whole batch as one micro-batch (no `chunk`) and
    gathers the output on rank 0: each rank's room is the whole batch's activations, not a
    streamed run's micro-batch."""
    layers = "layers=[64,4096,4096,8]"
    config = load(None, [layers, "batch=1000000", "parallel=tensor", "device=cuda"])
    for rank in (0, 1):
        world = _RankOf(rank, 4)
        held = devices.room(config, world, streamed=False)
        assert held >= 4 * 2 * 1000000 * 4096 > devices.room(config, world, streamed=True)
    assert devices.room(config, _RankOf(0, 4), streamed=False) >= (
        devices.room(config, _RankOf(1, 4), streamed=False) + 4 * 1000000 * 8  # the output
    )


def test_a_draw_on_the_device_counts_its_scratch_space() -> None:
    """With `rng: device` a rank draws every weight it does not hold whole into a scratch
    space of the largest of them, on its GPU: the plan's draw counts it."""
    config = load(None, ["layers=[8192,8192,8192]", "parallel=tensor", "rng=device"])
    first = plan.plan(config, 4, None).ranks[0]
    assert first.draw_bytes >= 4 * (first.weight_bytes // 4 + 8192 * 8192)


@pytest.mark.parametrize(("world", "on"), [(1, "meta"), (2, "cpu")])
def test_a_share_of_a_weights_file_is_read_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, world: int, on: str
) -> None:
    """A rank that holds a share of the weights reads the file on the CPU and places its
    share alone on its device; a rank that holds them all reads them onto the device."""
    from safetensors.torch import save_file

    from mlpcli.data import weightfiles

    path = tmp_path / "w.safetensors"
    save_file({"W1": torch.ones(4, 6), "W2": torch.ones(6, 2)}, str(path))
    config = load(None, [f"weights={path}", "bias=false", "parallel=tensor"])
    layers = weightfiles.layers
    onto: list[torch.device] = []

    def recorded(described: object, dtype: torch.dtype, device: torch.device) -> object:
        onto.append(device)
        return layers(described, dtype, torch.device("cpu"))  # type: ignore[arg-type]

    monkeypatch.setattr(weightfiles, "layers", recorded)
    _, weights, _ = network.placed(config, torch.device("meta"), plan.share(config, world, 0))
    assert onto == [torch.device(on)]
    assert [tuple(W.shape) for W in weights if W is not None] == [(4, 6 // world), (6 // world, 2)]
    assert all(W is not None and W.device.type == "meta" for W in weights)


def test_compare_s_rank_0_needs_room_for_its_share_and_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """compare over ranks builds the whole network on rank 0 beside its share, for the
    single-process reference: rank 0's GPU is checked for both together."""
    config = load(None, ["layers=[4096,4096,4096]", "batch=64", "parallel=pipeline"])
    config = dataclasses.replace(config, device=Device("cuda", 0))
    single = dataclasses.replace(config, parallel=Parallel.NONE)
    share = devices.room(config, _RankOf(0, 2), streamed=True)
    whole = devices.room(single, streamed=True)
    free = max(share, whole) + min(share, whole) // 2
    monkeypatch.setattr(devices, "resolve", lambda _: torch.device("cuda", 0))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _: (free, 2 * free))
    assert devices.prepare(config, _RankOf(1, 2), streamed=True).type == "cuda"
    with pytest.raises(UnavailableError, match=r"needs about .* on cuda:0, .* is free$"):
        devices.prepare(config, _RankOf(0, 2), streamed=True, beside=single)


def test_out_of_memory_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(*_: object) -> network.Network:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB\nmore detail")

    monkeypatch.setattr(runners, "build", build)
    with pytest.raises(
        UnavailableError,
        match=r"^not enough memory on cpu: CUDA out of memory\. Tried to allocate 40\.00 GiB$",
    ):
        runners.run(load(None))


@pytest.mark.parametrize(
    ("layers", "batch", "chunk", "activation"),
    [
        ([3, 2, 1], 7, 3, "sigmoid"),
        ([64, 128, 10], 1000, 100, "gelu"),
        ([16, 8, 4], 10, 1, "softmax"),
    ],
)
def test_chunks_give_the_whole_batch_result(
    layers: list[int], batch: int, chunk: int, activation: str
) -> None:
    overrides = [f"layers={layers}", f"batch={batch}", f"activation={activation}"]
    whole = runners.run(load(None, overrides))
    chunked = runners.run(load(None, [*overrides, f"chunk={chunk}"]))
    torch.testing.assert_close(torch.from_numpy(chunked.whole), torch.from_numpy(whole.whole))
    assert [(t.name, t.shape) for t in chunked.tensors] == [
        (t.name, t.shape) for t in whole.tensors
    ]


def test_a_chunk_fits_what_the_whole_batch_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(None, ["layers=[1, 100000, 1]", "batch=100000"])
    # two activations of 100000 x 100000 float32, against a chunk of 10 rows and the output
    assert memory.estimate(config).activations == 2 * 100000 * 100000 * 4
    chunked = load(None, ["layers=[1, 100000, 1]", "batch=100000", "chunk=10"])
    assert memory.estimate(chunked).activations == (2 * 10 * 100000 + 100000) * 4
    monkeypatch.setattr(host, "available_ram", lambda: 2**33)
    with pytest.raises(
        UnavailableError, match=r"needs about 74\.5 GiB of memory, 8\.0 GiB is available"
    ):
        host.check_host(config, on_cpu=True)
    host.check_host(chunked, on_cpu=True)


def test_rng_device_on_the_cpu_is_the_cpu_draw() -> None:
    cpu = runners.run(load(None, ["layers=[8, 6, 3]", "batch=4"]))
    device = runners.run(load(None, ["layers=[8, 6, 3]", "batch=4", "rng=device"]))
    assert device.whole.tolist() == cpu.whole.tolist()


@pytest.mark.parametrize(
    ("rng", "dtype", "on_cpu", "host", "gpu"),
    [
        ("cpu", "float32", True, 124 + 40, None),  # the draw, two activations; the cast is a no-op
        ("cpu", "bfloat16", False, 124, 62 + 20),  # the draw on the host; cast copies on the GPU
        ("device", "bfloat16", False, 0, 124 + 62 + 20),  # drawn and cast on the GPU
        ("device", "float32", False, 0, 124 + 40),  # drawn on the GPU in its dtype already
    ],
)
def test_memory_follows_where_the_draw_happens(
    rng: str, dtype: str, on_cpu: bool, host: int, gpu: int | None
) -> None:
    # 1*4 features + 4*3 + 3*5 weights = 31 values, drawn as 124 bytes of float32; widest layer 5
    config = load(
        None, ["layers=[4, 3, 5]", "batch=1", "bias=false", f"rng={rng}", f"dtype={dtype}"]
    )
    assert memory.estimate(config).draw == 124
    assert memory.host_bytes(config, on_cpu=on_cpu) == host
    if gpu is not None:
        assert memory.device_bytes(config, on_cpu=False) == gpu


def test_each_layer_is_exactly_addmm() -> None:
    config = load(None, ["layers=[784, 256, 128, 64, 10]", "batch=32", "activation=identity"])
    net = network.build(config, torch.device("cpu"))
    got = network.forward(net)
    by_addmm = net.features
    for W, B in zip(net.weights, net.biases, strict=True):
        by_addmm = torch.addmm(B, by_addmm, W)
    assert torch.equal(got, by_addmm)  # the README's exact operation (mm then add can differ)


def test_chunk_1_reproduces_a_batch_of_one_bit_for_bit() -> None:
    sizes = ["layers=[64, 1000, 1000, 8]", "activation=gelu"]
    one = runners.run(load(None, [*sizes, "batch=1"])).whole
    whole = runners.run(load(None, [*sizes, "batch=64"])).whole
    chunked = runners.run(load(None, [*sizes, "batch=64", "chunk=1"])).whole
    assert (chunked[:1] == one).all()
    np.testing.assert_allclose(whole[:1], one, rtol=1e-5)  # equal to rounding only


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_nonfinite_counts_nan_and_infinities_not_a_sum_that_overflows(dtype: torch.dtype) -> None:
    """The count first asks whether the sum is finite; a sum of finite values that overflows
    (the largest value of the dtype, many times) must still count 0."""
    from mlpcli.engine.runners import nonfinite

    largest = torch.full((64, 8), torch.finfo(dtype).max, dtype=dtype)
    assert nonfinite(largest) == 0
    largest[3, 4], largest[5, 5], largest[6, 6] = float("nan"), float("inf"), float("-inf")
    assert nonfinite(largest) == 3
    assert nonfinite(torch.zeros(0, 3, dtype=dtype)) == 0


def test_the_estimate_scales_each_probed_layer_by_its_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each distinct layer is probed once (at most 1,024 wide on the CPU) and its time scaled
    by rows and multiply-adds: checked with a probe that answers 1 ms per million of its own
    multiply-adds, whatever the machine."""
    from mlpcli.engine import estimates
    from mlpcli.loading.loader import load

    probed: list[tuple[int, int, int]] = []

    def probe(layer: estimates._Layer, rows: int, dtype: object, device: object) -> float:
        probed.append((rows, layer.inputs, layer.units))
        return rows * layer.inputs * layer.units / 1e9

    monkeypatch.setattr(estimates, "_seconds", probe)
    config = load(None, ["layers=[4096,64,4096,4096]", "batch=100000"])
    estimate = estimates.forward_estimate(config, torch.device("cpu"))
    assert estimate is not None
    # 1 ms per million multiply-adds of the whole layers, whatever the probe's rows and width
    work = 100_000 * (4096 * 64 + 64 * 4096 + 4096 * 4096)
    assert estimate.seconds == pytest.approx(work / 1e9)
    assert estimate.rate == pytest.approx(estimate.flops / estimate.seconds)
    assert sorted({(i, u) for _, i, u in probed}) == [(64, 1024), (1024, 64), (1024, 1024)]
    assert all(rows * 4 * (i + u) <= 8 << 20 for rows, i, u in probed)  # within its bytes
    assert estimates.forward_estimate(load(None, []), torch.device("cpu")) is None  # too small


def test_the_estimate_measures_the_forward_s_own_layer() -> None:
    """A real probe: positive, cached for the process, one entry per distinct layer."""
    from mlpcli.engine import estimates
    from mlpcli.loading.loader import load
    from mlpcli.model.config import Activation, DType

    layer = estimates._Layer(64, 32, Activation.RELU, True)
    first = estimates._seconds(layer, 256, DType.FLOAT32, torch.device("cpu"))
    assert first > 0
    assert estimates._seconds(layer, 256, DType.FLOAT32, torch.device("cpu")) == first
    config = load(None, ["layers=[2048,2048,2048]", "batch=4096"])  # 68.7 GFLOP
    estimate = estimates.forward_estimate(config, torch.device("cpu"))
    assert estimate is not None
    assert estimate.seconds > 0
