"""mlpcli against plain PyTorch, measured side by side in one process and one run.

    python benchmarks/bench.py               # the CPU ladder here; the GPU ladders too on a GPU
    python benchmarks/bench.py --quick       # fewer repeats and sizes, for a smoke test
    python benchmarks/bench.py --no-startup  # leave out the start-up ladder
    python benchmarks/bench.py --startup-only  # only the start-up ladder
    python benchmarks/bench.py --weights-only  # only reading a 1 GiB weights file
    python benchmarks/bench.py --parallel-only  # only two ranks against one process
    python benchmarks/bench.py --streaming-only  # only features files of 256 MiB to 4 GiB
    python benchmarks/bench.py --estimate-only  # only the run-time estimate against the run

Prints Markdown tables (paste them into docs/performance.md):
- forward: mlpcli's `network.forward` against raw eager loops on the same tensors (the
  notebook's spelling, `1/(1+exp(-x))` after `mm` + `B`, and the best of the plain spellings),
  timed round-robin so that machine noise hits all of them alike; ratio = mlpcli / best raw;
- on a GPU: `mlpcli bench`'s peak memory and build time (per `rng`) for the big network, and
  small networks eager against a CUDA graph (`bench --cuda-graph`) and torch.compile;
- start-up: whole processes (`python -c pass`, `import torch`, the framework's floor (a
  one-command Typer app that prints a Rich table), `mlpcli --help`, `shapes`, `validate`, `run`,
  and a bare script doing the notebook's work), median wall time;
- weights: reading a 1 GiB .safetensors of weights as `weights:` does, against
  `safetensors.torch.load_file` plus the same cast, each in a fresh process (time, peak RSS);
- parallel: `mlpcli bench --nproc 2` in each mode (Gloo, the CPU) against one process on the
  same cores (the floor: two ranks are that process's threads, split), forward median each;
- streaming: `mlpcli run` of .npy, Parquet and CSV features of 256 MiB to 4 GiB through
  [64, 256, 256, 1] to an .npy, against a hand-written loop (memmap, iter_batches or
  read_csv chunks, a torch forward per chunk, an open_memmap output), each in a fresh process
  (rows/s, peak RSS), and `.npy`/Parquet over 2 ranks (`parallel=data --nproc 2`, each rank
  reading and writing its own rows) against that one process;
- estimate: the note's estimate of a long run's forward against that forward (CPU);
- last, every target of docs/performance.md with what this run measured, met or not.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from mlpcli.engine import devices, network, runners
from mlpcli.loading.loader import load
from mlpcli.model.config import Config
from mlpcli.model.shapes import shapes

Loop = Callable[[network.Network], torch.Tensor]


def notebook_spelling(net: network.Network) -> torch.Tensor:
    h = net.features
    for W, B in zip(net.weights, net.biases, strict=True):
        h = 1 / (1 + torch.exp(-(torch.mm(h, W) + B)))
    return h


def addmm_inplace(net: network.Network) -> torch.Tensor:
    h = net.features
    for W, B in zip(net.weights, net.biases, strict=True):
        h = torch.addmm(B, h, W).sigmoid_()
    return h


def matmul_sigmoid(net: network.Network) -> torch.Tensor:
    h = net.features
    for W, B in zip(net.weights, net.biases, strict=True):
        h = torch.sigmoid(h @ W + B)
    return h


def linear_sigmoid(net: network.Network) -> torch.Tensor:
    h = net.features
    for W, B in zip(net.weights, net.biases, strict=True):
        h = torch.sigmoid(torch.nn.functional.linear(h, W.T, B[0]))
    return h


RAW: dict[str, Loop] = {
    "addmm + sigmoid_": addmm_inplace,
    "h @ W + B": matmul_sigmoid,
    "linear": linear_sigmoid,
}


def time_loops(
    net: network.Network, device: torch.device, loops: dict[str, Loop], repeat: int
) -> dict[str, float]:
    """Median ms of each loop, run round-robin after one warm-up each."""
    for loop in loops.values():
        loop(net)
    devices.synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeat):
        for name, loop in loops.items():
            devices.synchronize(device)
            start = time.perf_counter()
            loop(net)
            devices.synchronize(device)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


NOTEBOOK = ["layers=[3,2,1]", "batch=1"]
SMALL = ["layers=[256,256,256,256]", "batch=64"]
MEDIUM = ["layers=[1024,1024,1024,1024]", "batch=1024"]
LARGE = ["layers=[4096,4096,4096,4096,4096]", "batch=4096"]
BIG_BF16 = ["layers=[8192,8192,8192,8192,8192,8192,8192,8192,8192]", "batch=16384"]
BIG_BF16 += ["dtype=bfloat16", "init=xavier"]


def network_for(overrides: list[str], device_name: str) -> tuple[network.Network, Config]:
    """A sigmoid network built as mlpcli builds it (seed 0, no TF32), and its config."""
    config = load(None, [*overrides, "activation=sigmoid", "seed=0", f"device={device_name}"])
    torch.set_float32_matmul_precision("highest")
    return network.build(config, devices.resolve(config)), config


@dataclass(frozen=True)
class Target:
    """One of the performance targets (docs/performance.md) and what this run measured."""

    target: str
    measured: str
    met: bool


def forward_ladder(quick: bool, targets: list[Target]) -> None:
    rungs = [
        ("notebook [3,2,1] b1", "cpu", NOTEBOOK, 200),
        ("[1024]*4 b1024", "cpu", MEDIUM, 20 if quick else 50),
    ]
    if not quick:
        rungs.append(("[4096]*5 b4096", "cpu", LARGE, 5))
    if torch.cuda.is_available():
        rungs += [
            ("notebook [3,2,1] b1", "cuda", NOTEBOOK, 500),
            ("[1024]*4 b1024", "cuda", MEDIUM, 200),
            ("[4096]*5 b4096", "cuda", LARGE, 50),
            ("[8192]*9 b16384 bf16", "cuda", BIG_BF16, 20),
        ]
    columns = ["network", "device", "mlpcli ms", "notebook spelling ms", "best raw ms (which)"]
    print("| " + " | ".join([*columns, "mlpcli / best raw", "mlpcli TFLOP/s"]) + " |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, device_name, overrides, repeat in rungs:
        net, config = network_for(overrides, device_name)
        device = net.features.device
        loops: dict[str, Loop] = {"mlpcli": network.forward, "notebook": notebook_spelling, **RAW}
        medians = time_loops(net, device, loops, repeat)
        best = min(RAW, key=lambda name: medians[name])
        flops = shapes(config).total_flops
        ratio = medians["mlpcli"] / medians[best]
        tflops = flops / (medians["mlpcli"] / 1e3) / 1e12
        print(
            f"| {label} | {device} | {medians['mlpcli']:.4f} | {medians['notebook']:.4f} | "
            f"{medians[best]:.4f} ({best}) | {ratio:.3f} | {tflops:.4g} |"
        )
        targets.append(
            Target(f"forward {label} {device}: <= 1.02x best raw", f"{ratio:.3f}x", ratio <= 1.02)
        )
        if overrides is BIG_BF16:
            targets.append(
                Target(f"forward {label} {device}: >= 600 TFLOP/s", f"{tflops:.0f}", tflops >= 600)
            )
        del net


def gpu_memory_and_build(targets: list[Target]) -> None:
    """`mlpcli bench`'s own figures for the big GPU network: peak memory, build per `rng`."""
    columns = ["rng", "build ms", "forward median ms", "TFLOP/s", "peak extra", "/ activation"]
    print("| [8192]*9 b16384 bf16, `mlpcli bench` | " + " | ".join(columns) + " |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for rng in ("cpu", "device"):
        config = load(None, [*BIG_BF16, "activation=sigmoid", "device=cuda", f"rng={rng}"])
        result = runners.bench(config, warmup=2, repeat=10)
        assert result.peak_bytes is not None
        activation = config.batch_size * config.layers[1] * 2  # bytes of one bfloat16 activation
        tflops = shapes(config).total_flops / (result.median_ms / 1e3) / 1e12
        print(
            f"| | {rng} | {result.build_ms:.0f} | {result.median_ms:.3f} | {tflops:.1f} | "
            f"{result.peak_bytes / 2**20:.0f} MiB | {result.peak_bytes / activation:.3f} |"
        )
        buffers = result.peak_bytes / activation
        targets.append(
            Target(
                f"peak extra memory, rng {rng}: <= 2.05 activations",
                f"{buffers:.3f}",
                buffers <= 2.05,
            )
        )
        del result
        torch.cuda.empty_cache()


Step = Callable[[], torch.Tensor]


def per_call_us(step: Step, calls: int = 200, rounds: int = 5) -> float:
    """Median over `rounds` of the microseconds per call of `calls` back-to-back calls."""
    values = []
    for _ in range(rounds):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            step()
        torch.cuda.synchronize()
        values.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(values)


def eager(net: network.Network) -> Step:
    return functools.partial(network.forward, net)


def cuda_graph(net: network.Network) -> Step:
    return runners.captured(net, None)


def compiled(mode: str) -> Callable[[network.Network], Step]:
    def make(net: network.Network) -> Step:
        return functools.partial(torch.compile(network.forward, mode=mode, dynamic=False), net)

    return make


def latency_ladder() -> None:
    """Small networks on a GPU: eager against a CUDA graph and torch.compile, set-up apart."""
    variants: dict[str, Callable[[network.Network], Step]] = {
        "eager (mlpcli run)": eager,
        "CUDA graph (bench --cuda-graph)": cuda_graph,
    }
    for mode in ["default", "reduce-overhead"]:
        variants[f"torch.compile {mode}"] = compiled(mode)
    rungs = [("notebook [3,2,1] b1", NOTEBOOK), ("[256]*4 b64", SMALL), ("[1024]*4 b1024", MEDIUM)]
    print("| network | forward | set-up s | µs per forward | / eager | output vs eager |")
    print("|---|---|---:|---:|---:|---|")
    for label, overrides in rungs:
        net, _ = network_for(overrides, "cuda")
        reference = network.forward(net)
        eager_us = None
        for name, make in variants.items():
            torch.cuda.synchronize()
            start = time.perf_counter()
            try:
                step = make(net)
                output = step()
                torch.cuda.synchronize()
            except Exception as error:  # a variant that fails is a row, not the end
                print(f"| {label} | {name} | failed: {type(error).__name__}: {str(error)[:80]} |||")
                continue
            setup = time.perf_counter() - start
            diff = (output.float() - reference.float()).abs().max().item()
            same = "identical" if torch.equal(output, reference) else f"max abs diff {diff:.2g}"
            us = per_call_us(step)
            eager_us = eager_us or us
            print(f"| {label} | {name} | {setup:.3f} | {us:.1f} | {us / eager_us:.2f} | {same} |")
        torch._dynamo.reset()


NOTEBOOK_SCRIPT = (
    "import torch\n"
    "torch.manual_seed(7)\n"
    "features = torch.randn((1, 3))\n"
    "W1 = torch.randn(3, 2); W2 = torch.randn(2, 1)\n"
    "B1 = torch.randn((1, 2)); B2 = torch.randn((1, 1))\n"
    "activation = lambda x: 1 / (1 + torch.exp(-x))\n"
    "h = activation(torch.mm(features, W1) + B1)\n"
    "print(activation(torch.mm(h, W2) + B2))\n"
)


# The least any Typer command that prints a Rich table costs, in this environment.
TYPER_FLOOR_SCRIPT = (
    "import typer\n"
    "from rich.console import Console\n"
    "from rich.table import Table\n"
    "app = typer.Typer()\n"
    "@app.command()\n"
    "def main() -> None:\n"
    "    table = Table('name', 'value')\n"
    "    table.add_row('seed', '7')\n"
    "    Console().print(table)\n"
    "app()\n"
)
STARTUP_OVER_FLOOR_S = 0.1
DEEP_LAYERS = "layers=[" + ",".join(str(64 + i % 7) for i in range(1025)) + "]"  # no two alike


def bytecode_kept() -> dict[str, str]:
    """The environment less PYTHONDONTWRITEBYTECODE: an untimed run writes the bytecode cache
    that timed runs read, as an installed package has (it would recompile mlpcli every run)."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def walls(commands: dict[str, list[str]], repeat: int) -> dict[str, float]:
    """Median seconds of each whole process, run in rounds after one untimed run each.

    Each round runs every command once, in a shuffled order, so that machine noise and the
    command run just before (a torch import leaves the caches cold) hit every command alike.
    Python's default is kept: the untimed run writes the bytecode cache that the timed runs
    read, also where PYTHONDONTWRITEBYTECODE is set (it would recompile mlpcli on every run).
    """
    env = bytecode_kept()
    for command in commands.values():
        subprocess.run(command, capture_output=True, check=True, env=env)
    samples: dict[str, list[float]] = {label: [] for label in commands}
    order = list(commands)
    shuffle = random.Random(0).shuffle
    for _ in range(repeat):
        shuffle(order)
        for label in order:
            start = time.perf_counter()
            subprocess.run(commands[label], capture_output=True, check=True, env=env)
            samples[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) for label, values in samples.items()}


def startup_ladder(quick: bool, targets: list[Target]) -> None:
    python = sys.executable
    script = shutil.which("mlpcli", path=str(Path(python).parent))
    mlpcli = [script] if script else [python, "-m", "mlpcli"]  # run from source: python -m
    repeat = 3 if quick else 11
    seconds = walls(
        {
            "python -c pass": [python, "-c", "pass"],
            'python -c "import torch"': [python, "-c", "import torch"],
            "bare notebook script": [python, "-c", NOTEBOOK_SCRIPT],
            "Typer floor: one command, a Rich table": [python, "-c", TYPER_FLOOR_SCRIPT],
            "mlpcli --help": [*mlpcli, "--help"],
            "mlpcli shapes": [*mlpcli, "shapes"],
            "mlpcli validate configs/two_layer.yaml": [
                *mlpcli,
                "validate",
                "configs/two_layer.yaml",
            ],
            "mlpcli run": [*mlpcli, "run"],
            "mlpcli shapes, 1024 layers": [*mlpcli, "shapes", DEEP_LAYERS],
            "mlpcli draw configs/two_layer.yaml": [*mlpcli, "draw", "configs/two_layer.yaml"],
            "mlpcli draw, 1024 layers": [*mlpcli, "draw", DEEP_LAYERS],
        },
        repeat,
    )
    bare = seconds["bare notebook script"]
    floor = seconds["Typer floor: one command, a Rich table"]
    print(f"Typer {metadata.version('typer')}, Rich {metadata.version('rich')}")
    print()
    columns = f"median wall s (of {repeat}) | / bare notebook script | over the Typer floor s"
    print(f"| command | {columns} |")
    print("|---|---:|---:|---:|")
    for label, value in seconds.items():
        print(f"| {label} | {value:.3f} | {value / bare:.2f} | {value - floor:+.3f} |")
    for label in ("mlpcli --help", "mlpcli shapes", "mlpcli validate configs/two_layer.yaml"):
        over = seconds[label] - floor
        targets.append(
            Target(
                f"{label}: <= {STARTUP_OVER_FLOOR_S} s over the Typer floor",
                f"{over:+.3f} s ({seconds[label]:.3f} s)",
                over <= STARTUP_OVER_FLOOR_S,
            )
        )
    deep = seconds["mlpcli shapes, 1024 layers"]
    targets.append(Target("mlpcli shapes, 1024 layers: <= 0.5 s", f"{deep:.3f} s", deep <= 0.5))
    for label, like in (("mlpcli draw configs/two_layer.yaml", "mlpcli shapes"),
                        ("mlpcli draw, 1024 layers", "mlpcli shapes, 1024 layers")):  # fmt: skip
        gap = seconds[label] - seconds[like]
        targets.append(
            Target(f"{label}: as fast as {like} (+0.05 s)", f"{gap:+.3f} s", gap <= 0.05)
        )
    ratio = seconds["mlpcli run"] / bare
    targets.append(
        Target("mlpcli run: <= 1.1x the bare notebook script", f"{ratio:.3f}x", ratio <= 1.1)
    )


WEIGHTS_LAYERS = [8192] * 5  # four 256 MiB float32 matrices: 1 GiB
READ_WEIGHTS = """
import resource, sys, time
import torch
path, how, dtype = sys.argv[1], sys.argv[2], getattr(torch, sys.argv[3])
start = time.perf_counter()
if how == "mlpcli":
    from mlpcli.data import weightfiles
    tensors = weightfiles.read(weightfiles.describe(path), dtype, torch.device("cpu"))
else:
    from safetensors.torch import load_file
    tensors = {name: t.to(dtype) for name, t in load_file(path).items()}
for t in (tensors[0] if how == "mlpcli" else tensors.values()):
    t.sum()  # every value read: a memory-mapped tensor is not in memory until touched
seconds = time.perf_counter() - start
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def weights_file(folder: Path, layout: str) -> Path:
    """1 GiB of float32 weights in mlpcli's layout or as an nn.Linear state dict."""
    from safetensors.torch import save_file

    path = folder / f"{layout}.safetensors"
    generator = torch.Generator().manual_seed(0)
    pairs = list(itertools.pairwise(WEIGHTS_LAYERS))
    if layout == "mlpcli":
        named = {
            f"W{i}": torch.randn(a, b, generator=generator) for i, (a, b) in enumerate(pairs, 1)
        }
    else:
        named = {
            f"{2 * i}.weight": torch.randn(b, a, generator=generator)
            for i, (a, b) in enumerate(pairs)
        }
    save_file(named, path)
    return path


def weights_ladder(quick: bool, targets: list[Target]) -> None:
    """`weights:` reading 1 GiB against safetensors.torch.load_file + the same cast, each in a
    fresh process, alternating, each value touched once; the best time and its peak RSS."""
    import tempfile

    print(
        "| 1 GiB of weights | dtype | load_file + cast | mlpcli | ratio "
        "| peak RSS, load_file | peak RSS, mlpcli |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for layout in ("mlpcli", "nn.Linear"):
            path = weights_file(Path(folder), layout)
            for dtype in ("float32", "bfloat16"):
                runs: dict[str, list[tuple[float, int]]] = {"safetensors": [], "mlpcli": []}
                env = bytecode_kept()
                for attempt in range(1 + (2 if quick else 4)):  # the first untimed
                    for how, measured in runs.items():
                        command = [sys.executable, "-c", READ_WEIGHTS, str(path), how, dtype]
                        done = subprocess.run(
                            command, capture_output=True, text=True, check=True, env=env
                        )
                        if not attempt:
                            continue
                        seconds, peak = done.stdout.split()
                        measured.append((float(seconds), int(peak)))
                base, ours = min(runs["safetensors"]), min(runs["mlpcli"])
                ratio = ours[0] / base[0]
                print(
                    f"| {layout} layout | {dtype} | {base[0]:.3f} s | {ours[0]:.3f} s | "
                    f"{ratio:.2f}x | {base[1] / 2**30:.2f} GiB | {ours[1] / 2**30:.2f} GiB |"
                )
                name = f"weights: 1 GiB, {layout} layout, {dtype}: <= 1.2x load_file + cast"
                targets.append(Target(name, f"{ratio:.2f}x", ratio <= 1.2))


STREAM_LAYERS = [64, 256, 256, 1]
STREAM_FORMATS = {".npy", ".parquet", ".csv"}
MIB = 1 << 20
# One process that reads features a chunk at a time and writes the output as it goes, the way a
# careful user would by hand: NumPy's memmap or pyarrow's iter_batches or pandas' read_csv
# chunks, a torch forward per chunk, an open_memmap output. Prints seconds and peak RSS.
HAND_LOOP = """
import resource, sys, time
import numpy as np, torch
path, rows = sys.argv[1], int(sys.argv[2])
layers = [64, 256, 256, 1]
g = torch.Generator().manual_seed(0)
pairs = zip(layers, layers[1:])
weights = [(torch.randn(a, b, generator=g), torch.randn(b, generator=g)) for a, b in pairs]
start = time.perf_counter()
if path.endswith(".npy"):
    features = np.load(path, mmap_mode="r")
    total = features.shape[0]
    blocks = (features[i : i + rows] for i in range(0, total, rows))
elif path.endswith(".parquet"):
    import pyarrow.parquet as pq
    file = pq.ParquetFile(path)
    total = file.metadata.num_rows
    blocks = (np.column_stack([c.to_numpy() for c in b.columns]) for b in file.iter_batches(rows))
else:
    import pandas as pd
    total = sum(1 for _ in open(path)) - 1
    blocks = (chunk.to_numpy() for chunk in pd.read_csv(path, chunksize=rows))
out = np.lib.format.open_memmap("hand.npy", "w+", np.float32, (total, 1))
done = 0
for block in blocks:
    h = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
    for W, B in weights:
        h = torch.sigmoid_(torch.addmm(B, h, W))
    out[done : done + len(h)] = h.numpy()
    done += len(h)
out.flush()
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""
TIMED_CHILD = """
import resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, capture_output=True)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def features_file(folder: Path, suffix: str, size: int) -> tuple[Path, int]:
    """`size` bytes of float32 features, 64 a row, as .npy, Parquet (pandas' default: snappy,
    row groups of 1M rows) or CSV (pandas' `to_csv`, written a block at a time); its rows."""
    import numpy as np

    rows = size // (4 * STREAM_LAYERS[0]) if suffix != ".csv" else size // (64 * 11)
    path = folder / f"features_{size // MIB}MiB{suffix}"
    generator = np.random.default_rng(0)
    block = 1 << 20
    if suffix == ".npy":
        array = np.lib.format.open_memmap(path, "w+", np.float32, (rows, STREAM_LAYERS[0]))
        for start in range(0, rows, block):
            count = min(block, rows - start)
            array[start : start + count] = generator.standard_normal((count, 64), np.float32)
        array.flush()
        return path, rows
    import pandas as pd

    names = [f"f{j}" for j in range(STREAM_LAYERS[0])]
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        with pq.ParquetWriter(path, pa.schema([(name, pa.float32()) for name in names])) as out:
            for start in range(0, rows, block):
                count = min(block, rows - start)
                values = generator.standard_normal((count, 64), np.float32)
                out.write_table(pa.Table.from_pandas(pd.DataFrame(values, columns=names)))
        return path, rows
    with path.open("w") as out:
        for start in range(0, rows, block // 4):
            count = min(block // 4, rows - start)
            values = generator.standard_normal((count, 64), np.float32).round(6)
            pd.DataFrame(values, columns=names).to_csv(out, header=not start, index=False)
    return path, rows


def _timed_child(command: list[str], folder: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS of `command` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", TIMED_CHILD, *command],
        capture_output=True, text=True, check=True, cwd=folder, env=bytecode_kept(),
    )  # fmt: skip
    seconds, peak = done.stdout.split()
    return float(seconds), int(peak)


def streaming_ladder(quick: bool, targets: list[Target], formats: set[str] | None = None) -> None:
    """`mlpcli run` of a features file to an .npy through STREAM_LAYERS against the hand loop,
    each in a fresh process, alternating, the best of the repeats: rows/s and peak RSS by size;
    the files of every format, or of `formats` (suffixes: ".csv")."""
    import tempfile

    script = shutil.which("mlpcli", path=str(Path(sys.executable).parent))
    mlpcli = [script] if script else [sys.executable, "-m", "mlpcli"]
    sizes = {".npy": [64, 256], ".parquet": [64, 256], ".csv": [32]} if quick else {
        ".npy": [256, 1024, 4096], ".parquet": [256, 1024, 4096], ".csv": [256, 1024]
    }  # fmt: skip
    sizes = {suffix: sizes[suffix] for suffix in sizes if formats is None or suffix in formats}
    repeat = 1 if quick else 2
    layers = f"layers={STREAM_LAYERS}"
    print(f"| features through {STREAM_LAYERS}, float32, to .npy | rows | mlpcli rows/s "
          "| hand loop rows/s | ratio | peak RSS, mlpcli | peak RSS, hand loop "
          "| 2 ranks rows/s | 2 ranks / 1 | peak RSS, a rank |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    peaks: dict[str, dict[int, int]] = {}
    for suffix, megabytes in sizes.items():
        for size in megabytes:
            with tempfile.TemporaryDirectory(dir=Path.cwd()) as temporary:
                folder = Path(temporary)
                path, rows = features_file(folder, suffix, size * MIB)
                chunk = str(min(rows, 65536))
                ours = [sys.executable, "-c", HAND_LOOP, str(path), chunk]
                run = [*mlpcli, "run", layers, f"inputs={path}", "-o", "out.npy", "-q"]
                runs: dict[str, list[tuple[float, int]]] = {"mlpcli": [], "hand": [], "ranks": []}
                for _ in range(repeat):
                    runs["mlpcli"].append(_timed_child(run, folder))
                    runs["hand"].append(_timed_child(ours, folder))
                    ranks = [*run, "parallel=data", "--nproc", "2"]  # each rank reads and
                    runs["ranks"].append(_timed_child(ranks, folder))  # writes its own rows
            mine, hand = min(runs["mlpcli"]), min(runs["hand"])
            ratio = hand[0] / mine[0]  # of rates: mlpcli's rows/s over the hand loop's
            peaks.setdefault(suffix, {})[size] = mine[1]
            two = min(runs["ranks"])
            print(
                f"| {size} MiB {suffix} | {rows:,} | {rows / mine[0]:,.0f} | {rows / hand[0]:,.0f} "
                f"| {ratio:.2f}x | {mine[1] / MIB:.0f} MiB | {hand[1] / MIB:.0f} MiB "
                f"| {rows / two[0]:,.0f} | {mine[0] / two[0]:.2f}x | {two[1] / MIB:.0f} MiB |"
            )
            targets.append(Target(
                f"streaming {size} MiB {suffix}: 2 ranks (data) rows/s >= 0.9x one process",
                f"{mine[0] / two[0]:.2f}x", mine[0] / two[0] >= 0.9,
            ))  # fmt: skip
            floor = 1.0 if suffix == ".csv" else 0.9
            what = "pandas.read_csv chunks" if suffix == ".csv" else "the hand loop"
            targets.append(Target(
                f"streaming {size} MiB {suffix}: rows/s >= {floor}x {what}", f"{ratio:.2f}x",
                ratio >= floor,
            ))  # fmt: skip
    for suffix, by_size in peaks.items():
        low, high = min(by_size), max(by_size)
        growth = by_size[high] - by_size[low]
        targets.append(Target(
            f"streaming {suffix}: peak RSS at {high} MiB within 64 MiB of {low} MiB, under 600 MB",
            f"{growth / MIB:+.0f} MiB ({by_size[high] / 1e6:.0f} MB)",
            growth <= 64 * MIB and by_size[high] < 600e6,
        ))  # fmt: skip


def parallel_ladder(quick: bool, targets: list[Target]) -> None:
    """`mlpcli bench` over 2 ranks (Gloo) in each mode against one process on the same cores."""
    import json

    script = shutil.which("mlpcli", path=str(Path(sys.executable).parent))
    mlpcli = [script] if script else [sys.executable, "-m", "mlpcli"]
    width, batch = (512, 256) if quick else (1024, 1024)
    net = [f"layers=[{','.join([str(width)] * 9)}]", f"batch={batch}", "device=cpu"]
    cores = os.cpu_count() or 1
    repeat = "5" if quick else "10"

    def median_ms(*extra: str) -> float:
        command = [*mlpcli, "bench", *net, "-n", repeat, "-f", "json", *extra]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        return float(json.loads(done.stdout)["forward_ms"]["median"])

    floor = median_ms(f"threads={cores}")
    share = f"threads={max(1, cores // 2)}"
    print(f"| [{width}]*9 b{batch}, float32 | forward median ms | / one process, {cores} threads |")
    print("|---|---:|---:|")
    print(f"| one process, {cores} threads | {floor:.2f} | 1.00 |")
    for mode, extra in (("data", ()), ("tensor", ()), ("pipeline", (f"chunk={batch // 8}",))):
        ms = median_ms("--nproc", "2", share, f"parallel={mode}", *extra)
        label = f"{mode}, 2 ranks" + (f" ({extra[0]})" if extra else "")
        print(f"| {label} | {ms:.2f} | {ms / floor:.2f} |")
        if mode == "data":
            name = "data over 2 ranks at most 1.1x one process on the same cores (CPU, Gloo)"
            targets.append(Target(name, f"{ms / floor:.2f}x", ms <= 1.1 * floor))


def estimate_ladder(quick: bool, targets: list[Target]) -> None:
    """The note's estimate (`engine.estimates`, measured before the run) against the forward
    of `runners.run` that follows it, on the CPU, for the configs in configs/ at sizes that get
    an estimate and the networks the estimate once missed by 12-50x."""
    from mlpcli.engine import estimates

    root = Path(__file__).resolve().parent.parent / "configs"
    cases = [
        ("configs/large_bf16.yaml, CPU", root / "large_bf16.yaml", ["device=cpu"]),
        ("configs/deep_relu.yaml, batch 65536", root / "deep_relu.yaml", ["batch=65536"]),
        ("[4096]*8, batch 4096", None, ["layers=[" + ",".join(["4096"] * 8) + "]", "batch=4096"]),
        ("[64]*6, batch 4M, drawn", None, ["layers=[64,64,64,64,64,64]", "batch=4000000"]),
    ]
    print("| network | estimate s | run's forward s | estimate / run |")
    print("|---|---:|---:|---:|")
    for label, path, overrides in cases[:2] if quick else cases:
        config = load(path, overrides)
        estimates._seconds.cache_clear()  # each as a fresh process measures it
        estimate = estimates.forward_estimate(config, torch.device("cpu"))
        assert estimate is not None, label
        seconds = runners.run(config, hold=False).forward_ms / 1e3
        ratio = estimate.seconds / seconds
        print(f"| {label} | {estimate.seconds:.2f} | {seconds:.2f} | {ratio:.2f} |")
        targets.append(Target(f"estimate within 3x: {label}", f"{ratio:.2f}x", 1 / 3 <= ratio <= 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    parser.add_argument("--no-startup", action="store_true", help="leave out the start-up ladder")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up ladder")
    parser.add_argument("--weights-only", action="store_true", help="only the weights ladder")
    parser.add_argument("--parallel-only", action="store_true", help="only the parallel ladder")
    parser.add_argument(
        "--streaming-only", action="store_true", help="only the streaming ladder (GiB files)"
    )
    parser.add_argument(
        "--streaming-formats",
        help="the streaming ladder's formats, comma-separated (npy,parquet,csv; default: all)",
    )
    parser.add_argument(
        "--estimate-only", action="store_true", help="only the run-time estimate's ladder"
    )
    arguments = parser.parse_args()
    quick = arguments.quick
    named = arguments.streaming_formats
    formats = None if named is None else {f".{name.strip()}" for name in named.split(",")}
    if formats is not None and not formats <= STREAM_FORMATS:
        names = ", ".join(sorted(suffix[1:] for suffix in STREAM_FORMATS))
        parser.error(f"--streaming-formats: one of {names}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU")
    )
    targets: list[Target] = []
    only = (
        arguments.startup_only
        or arguments.weights_only
        or arguments.parallel_only
        or arguments.streaming_only
        or arguments.estimate_only
    )
    if not only:
        print()
        forward_ladder(quick, targets)
    if not only or arguments.weights_only:
        print()
        weights_ladder(quick, targets)
    if not only or arguments.parallel_only:
        print()
        parallel_ladder(quick, targets)
    if not only or arguments.streaming_only:
        print()
        streaming_ladder(quick, targets, formats)
    if not only or arguments.estimate_only:
        print()
        estimate_ladder(quick, targets)
    if torch.cuda.is_available() and not only:
        print()
        gpu_memory_and_build(targets)
        print()
        latency_ladder()
    if (not arguments.no_startup and not only) or arguments.startup_only:
        print()
        startup_ladder(quick, targets)
    print()
    print("| target | measured | met |")
    print("|---|---:|---|")
    for target in targets:
        print(f"| {target.target} | {target.measured} | {'yes' if target.met else '**no**'} |")


if __name__ == "__main__":
    main()
