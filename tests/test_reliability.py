"""The catalogue of bad inputs and faults, through the whole command line.

Each row: the exit code, exactly one stderr line `mlpcli: error: ...` naming the file and field
where there is one, nothing on stdout, and `results.json`, a file that was there before, untouched.
docs/reliability.md counts the rows by category (`test_the_documented_counts_are_true`).
"""

from __future__ import annotations

import errno
import os
import re
import struct
import subprocess
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from mlpcli.engine import environment, runners

from .catalogue import BAD_CONFIG_FILES, Case
from .conftest import ROOT, TWO_LAYER, invoke

Setup = Callable[[Path, pytest.MonkeyPatch], None]


@dataclass(frozen=True)
class Fault:
    """A command line (with {dir}, {out} placeholders) that must fail in one documented way."""

    category: str
    args: list[str]
    code: int
    message: str  # a regex for the error line after "mlpcli: error: "
    setup: Setup | None = None
    env: dict[str, str] = field(default_factory=dict)


def raising(target: object, name: str, error: BaseException) -> Setup:
    def setup(_: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def fail(*_: object, **__: object) -> None:
            raise error

        monkeypatch.setattr(target, name, fail)

    return setup


def making(name: str, make: Callable[[Path], object]) -> Setup:
    def setup(directory: Path, _: pytest.MonkeyPatch) -> None:
        make(directory / name)

    return setup


def files(**made: Callable[[Path], object]) -> Setup:
    """Make each named file in the test's folder."""

    def setup(directory: Path, _: pytest.MonkeyPatch) -> None:
        for name, make in made.items():
            make(directory / name)

    return setup


def text(content: str | bytes) -> Callable[[Path], object]:
    return lambda path: path.write_bytes(
        content if isinstance(content, bytes) else content.encode()
    )


def tensors(**named: torch.Tensor) -> Callable[[Path], object]:
    from safetensors.torch import save_file

    return lambda path: save_file(named, path)


def npy(array: Any) -> Callable[[Path], object]:
    import numpy as np

    return lambda path: np.save(path, array, allow_pickle=True)


def conv_graph(path: Path) -> None:
    """An ONNX graph of one Conv: a model that is not an MLP."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "k"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 6])],
        [numpy_helper.from_array(np.ones((1, 1, 3), np.float32), "k")],
    )  # fmt: skip
    onnx.save(helper.make_model(graph), path)


def cut(make: Callable[[Path], object], keep: int) -> Callable[[Path], object]:
    """A file made by `make`, then truncated by `keep` bytes from its end (negative) or to it."""

    def truncated(path: Path) -> None:
        make(path)
        data = path.read_bytes()
        path.write_bytes(data[:keep])

    return truncated


def lying_header(path: Path) -> None:
    """A safetensors header that says a tensor is larger than its bytes."""
    header = b'{"W1":{"dtype":"F32","shape":[30,2],"data_offsets":[0,24]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(24))


def huge_shape(path: Path) -> None:
    """A safetensors header whose shape is a number of 5,000 digits."""
    header = b'{"W1":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,4]}}'
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))


def npy_version(major: int) -> Callable[[Path], object]:
    """A .npy whose magic says format version `major`.0 (NumPy writes 1.0 to 3.0)."""

    def made(path: Path) -> None:
        import numpy as np

        np.save(path, np.ones((2, 3), np.float32))
        data = bytearray(path.read_bytes())
        data[6] = major
        path.write_bytes(bytes(data))

    return made


def twice_named(path: Path) -> None:
    """A safetensors header that names W1 twice (serde keeps the last; Python's json too)."""
    entry = '{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}'
    header = ('{"W1":' + entry + ',"W1":' + entry + "}").encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(24))


def sparse_npy(path: Path) -> None:
    """A .npy of 3,000,000,000 rows that takes no room: its header, and a hole for the data."""
    import numpy as np

    with path.open("wb") as file:
        header = {"descr": "<f4", "fortran_order": False, "shape": (3_000_000_000, 3)}
        np.lib.format.write_array_header_1_0(file, header)
        file.truncate(file.tell() + 3_000_000_000 * 3 * 4)


def sparse_features(path: Path) -> None:
    """A .npy of 300,000 rows of 64 features (77 MB) that takes no room: its header and a hole."""
    import numpy as np

    with path.open("wb") as file:
        header = {"descr": "<f4", "fortran_order": False, "shape": (300_000, 64)}
        np.lib.format.write_array_header_1_0(file, header)
        file.truncate(file.tell() + 300_000 * 64 * 4)


def compressed_pt(path: Path) -> None:
    """A state dict torch.save wrote, its archive then deflated (torch never compresses)."""
    plain = path.with_suffix(".plain")
    torch.save({"fc.weight": torch.ones(1, 3)}, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for member in source.infolist():
            out.writestr(member.filename, source.read(member))
    plain.unlink()


def retyped_pt(path: Path) -> None:
    """A state dict torch.save wrote, its pickle then naming DoubleStorage over float32 records
    (torch, memory-mapping, would read past each record into the next)."""
    plain = path.with_suffix(".plain")
    torch.save({"0.weight": torch.ones(2, 3), "2.weight": torch.ones(1, 2)}, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as out:
        for member in source.infolist():
            data = source.read(member)
            if member.filename.endswith("data.pkl"):
                data = data.replace(b"FloatStorage", b"DoubleStorage")
            out.writestr(member.filename, data)
    plain.unlink()


def unmappable(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .pt file that this machine cannot memory-map (its address space, `ulimit -v`)."""
    path = directory / "w.pt"
    torch.save({"0.weight": torch.ones(2, 3), "2.weight": torch.ones(1, 2)}, path)
    error = f"unable to mmap 2800000000 bytes from file <{path}>: Cannot allocate memory (12)"
    raising(torch, "load", RuntimeError(error))(directory, monkeypatch)


class _Boom:
    """Unpickled, it would run `touch pwned` (os.system); weights_only must refuse it first."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.target}",)

    def __init__(self, target: Path) -> None:
        self.target = target


def malicious(path: Path) -> None:
    torch.save({"W1": _Boom(path.parent / "pwned")}, path)


W = torch.ones(3, 2)
NO_CUDA = not torch.cuda.is_available()
FAULTS = [
    # the command line
    Fault("command line", ["run", "--seed", "3"], 2, r"^no such option: --seed; config fields are set as KEY=VALUE: seed=3 \(see 'mlpcli run --help'\)$"),
    Fault("command line", ["run", "name=\x1b]0;title\x07\x1b[31m", "-o", "{out}"], 2, r"^override 'name=\\x1b\]0;title\\x07\\x1b\[31m': invalid YAML: character U\+001B is not allowed$"),
    Fault("command line", ["run", "-m", "seed=" + ",".join(map(str, range(101))), "batch=" + ",".join(map(str, range(1, 101))), "-o", "{out}"], 2, r"^-m: the sweep is 101 x 100 = 10,100 runs; at most 10,000 in one command \(split it, or sweep fewer values\)$"),
    Fault("command line", ["run", "seed:3", "-o", "{out}"], 2, r"^seed:3: no such file \(to set seed, write seed=3\)$"),
    Fault("command line", ["run", "layers=3,2,1", "-o", "{out}"], 2, r"^override 'layers=3,2,1': layers: expected a list, got string '3,2,1'; write it in brackets: layers=\[3,2,1\]$"),
    Fault("command line", ["run", "layers=[64, 1024, 1]", "inputs={dir}/x.npy", "-o", "{dir}/x.safetensors"], 2, r"^default: its tensors, 1\.2 GiB, are more than the 1\.0 GiB a run holds whole for --output \.safetensors; write the output with --output FILE\.npy, \.csv, \.jsonl or \.parquet, which grow as it runs$", files(**{"x.npy": sparse_features})),
    Fault("command line", ["run", "layers=[2, 3]", "batch=100000000", "-f", "json", "-o", "{out}"], 2, r"^default: its output, 1\.1 GiB, is more than the 1\.0 GiB a run holds whole for --format json; write the output with --output FILE\.npy, \.csv, \.jsonl or \.parquet, which grow as it runs$"),
    Fault("command line", ["run", "seed=", "-o", "{out}"], 2, r"^override 'seed=': an empty value \(an unset shell variable\?\); seed=null gives seed its default$"),
    Fault("command line", ["run", "layers=[3,", "2,", "1]", "-o", "{out}"], 2, r"^override 'layers=\[3,': the shell split its list at the spaces; quote it: 'layers=\[3, 2, 1\]'$"),
    Fault("command line", ["run", "seed=1", "seed=2", "-o", "{out}"], 2, r"^override 'seed=2': seed is given twice \(also 'seed=1'\); give it once, or sweep its values with -m seed=A,B$"),
    Fault("command line", ["export", "seed=1", "seed=2", "-o", "{dir}/m.pt"], 2, r"^override 'seed=2': seed is given twice \(also 'seed=1'\); give it once$"),
    Fault("command line", ["run", "layers=null", "-o", "{out}"], 2, r"^override 'layers=null': layers: required; null leaves it unset$"),
    Fault("command line", ["run", "layers=[" + "3," * 1025 + "1]", "-o", "{out}"], 2, r"^override 'layers=\[[3,]{110,130}…[3,]{30,50}1\]': layers: needs 2 to 1025 sizes \(input, \.\.\., output\), got 1026$"),
    Fault("command line", ["run", "-", "-o", "{out}"], 2, r"^-: a config is read from its file, not from standard input; `-` is for the features: inputs=-$"),
    Fault("command line", ["run", "{dir}/x.npy", "-o", "{out}"], 2, r"/x\.npy: a \.npy file is no config; give it as inputs=.*/x\.npy$", files(**{"x.npy": npy([[1.0, 2.0, 3.0]])})),
    Fault("command line", ["run", "{dir}/c.toml", "-o", "{out}"], 2, r"/c\.toml: TOML; a config is YAML \(mlpcli config init FILE\.yaml writes one\)$", files(**{"c.toml": text("layers = [3, 2, 1]\n")})),
    Fault("command line", ["draw", "layers=[5000,1]", "--max-units", "5000", "-o", "{dir}/x.svg"], 2, r"^--max-units 5000 draws a picture 230,145 px tall, more than renderers draw \(32,767 px\); use at most --max-units 691$"),
    Fault("command line", ["help", "rnu"], 2, r"^help: no command 'rnu' \(did you mean 'run'\?\)$"),
    Fault("command line", ["run", "--bogus"], 2, r"No such option:? '?--bogus'?\.? \(see 'mlpcli run --help'\)"),
    Fault("command line", ["rn"], 2, r"No such command 'rn'\. Did you mean 'run'\?"),
    Fault("command line", ["config", "shw"], 2, r"No such command 'shw'\. Did you mean 'show'\? \(see 'mlpcli config --help'\)"),
    Fault("command line", ["run", "-f", "xml"], 2, r"Invalid value for '--format'"),
    Fault("command line", ["run", "--atol", "-1"], 2, r"Invalid value for '--atol'"),
    Fault("command line", ["shapes", "-f", "xml"], 2, r"^Invalid value for '--format' / '-f': (?!.*env var).*'xml'"),
    Fault("command line", ["run", "seed=1,2", "-o", "{out}"], 2, r"^override 'seed=1,2': seed: expected an integer, got string '1,2' \(to sweep several values, use -m\)$"),
    Fault("command line", ["run", str(ROOT / "configs" / "large_bf16.yaml"), "layers=[64,64]", "-o", "{out}"], 2, r"^override 'layers=\[64,64\]': layers has 1 weight layer, but activation lists 4 names \(.*large_bf16\.yaml:8:13\); override activation too"),
    Fault("command line", ["run", "seed", "-o", "{out}"], 2, r"^seed: no such file \(seed is a config key: to set it, write seed=VALUE\)$"),
    Fault("command line", ["--install-completion", "zsh"], 2, r"^--install-completion takes no shell name: it is for the shell it runs in; to set up zsh"),
    Fault("command line", ["validate"], 2, r"Missing argument 'CONFIG'"),
    Fault("command line", ["run", "seed=x", "-o", "{out}"], 2, r"^override 'seed=x': seed: expected an integer"),
    Fault("command line", ["run", "layer=[3]", "-o", "{out}"], 2, r"^override 'layer=\[3\]': unknown key 'layer' \(did you mean 'layers'\?\)"),
    Fault("command line", ["run", "-m", "seed=1,,2", "-o", "{out}"], 2, r"^override 'seed=1,,2': an empty value"),
    Fault("command line", ["shapes", TWO_LAYER, TWO_LAYER, "-o", "{out}"], 2, r"shapes takes one CONFIG"),
    Fault("command line", ["run", "--expect", "abc", "-o", "{out}"], 2, r"^--expect abc: expected numbers, got 'abc'"),
    Fault("command line", ["run", "--field", "nope", "-o", "{out}"], 2, r"^--field nope: no key 'nope' in the result; keys there: schema,"),
    Fault("command line", ["compare", "--devices", "cpu"], 2, r"^--devices cpu: name two or more devices"),
    Fault("command line", ["compare", "--devices", "cpu,tpu"], 2, r"^--devices: device: expected cpu, cuda, cuda:N or auto, got 'tpu'"),
    Fault("command line", ["compare", "rng=device", "--devices", "cpu,cuda"], 2, r"^--devices cpu,cuda: with rng: device each device draws its own weights"),
    Fault("command line", ["bench", "--cuda-graph", "device=cpu"], 2, r"^--cuda-graph needs a CUDA device; this config runs on cpu$"),
    Fault("command line", ["bench", "-m", "device=cpu,cpu", "--cuda-graph"], 2, r"^--cuda-graph needs a CUDA device; the sweep's device=cpu runs on cpu$"),
    Fault("command line", ["bench", "--plot", "{out}.svg", "-o", "{out}"], 2, r"^--plot .*\.svg: a plot draws a sweep: -m with a key of two values or more \(-m batch=1,16,256\)$"),
    Fault("command line", ["bench", "-m", "batch=1,2", "--plot", "{out}.pdf", "-o", "{out}"], 2, r"^--plot .*\.pdf: .*use one of \.svg, \.png"),
    Fault("command line", ["bench", "-m", "batch=1,2", "--nproc", "2", "-o", "{out}"], 2, r"^a sweep times one process at a time: leave --nproc out of bench -m$"),
    Fault("command line", ["draw", "layers=[256,256,256]", "--max-units", "200", "-o", "{out}.svg"], 2, r"^--max-units 200 draws 80,000 connections, more than a picture opens readily \(12,000\); use at most --max-units 77 for this network$"),
    Fault("command line", ["run", "-o", "{out}"], 2, r"^environment MLPCLI_DEVICE=gpu: device: expected .* \(did you mean 'cuda'\?\)", env={"MLPCLI_DEVICE": "gpu"}),
    # runs over several processes: refused before any rank starts
    Fault("parallel runs", ["run", "--nproc", "0", "-o", "{out}"], 2, r"Invalid value for '--nproc'"),
    Fault("parallel runs", ["run", "layers=[3,4,2]", "parallel=pipeline", "--nproc", "3", "-o", "{out}"], 2, r"^override 'parallel=pipeline': parallel: pipeline over 3 ranks needs at least 3 weight layers; this network has 2"),
    Fault("parallel runs", ["run", "inputs=-", "--nproc", "2", "-o", "{out}"], 2, r"^override 'inputs=-': inputs: - \(standard input\) reaches one process; over several ranks give the features in a file$"),
    Fault("parallel runs", ["run", "parallel=tensor", "--stats", "--nproc", "2", "-o", "{out}"], 2, r"^--stats needs every tensor in one process; with parallel: tensor \(override 'parallel=tensor'\)"),
    Fault("parallel runs", ["bench", "--cuda-graph", "device=cuda", "--nproc", "2", "-o", "{out}"], 2, r"^--cuda-graph times one process; leave it out of a run over ranks$"),
    Fault("parallel runs", ["compare", "--nproc", "2", "-o", "{out}"], 2, r"^parallel: none \(<built-in default>\) runs each network on one rank: name a mode for compare over ranks"),
    Fault("parallel runs", ["compare", "--nproc", "2", "--devices", "cpu,cpu", "parallel=tensor", "-o", "{out}"], 2, r"^--devices cpu,cpu: over ranks, name one device"),
    Fault("parallel runs", ["shapes", "--device-memory", "80GiB", "-o", "{out}"], 2, r"^--device-memory plans with --nproc N: give both$"),
    Fault("parallel runs", ["shapes", "--nproc", "2", "--device-memory", "lots", "-o", "{out}"], 2, r"^--device-memory lots: not a size with a unit \(such as 80GiB or 512MB\)$"),
    Fault("parallel runs", ["run", "--nproc", "2", "-o", "{out}"], 2, r"^--nproc under a launcher \(torchrun\): the launcher started the ranks; leave it out$", env={"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}),
    Fault("parallel runs", ["run", "-o", "{out}"], 2, r"^RANK and WORLD_SIZE are set but MASTER_ADDR and MASTER_PORT are not: start the ranks with torchrun or --nproc, or unset RANK and WORLD_SIZE$", env={"RANK": "0", "WORLD_SIZE": "2"}),
    Fault("parallel runs", ["bench", "--nproc", "2", "-o", "{out}"], 2, r"^parallel: none \(<built-in default>\) runs each network on one rank: name a mode for bench over ranks"),
    Fault("parallel runs", ["shapes", "--nproc", "2", "--device-memory", "80", "-o", "{out}"], 2, r"^--device-memory 80: not a size with a unit"),
    Fault("parallel runs", ["run", "-o", "{out}"], 2, r"^RANK='x': the launcher's environment needs a whole number from 0 to 1048576$", env={"RANK": "x", "WORLD_SIZE": "2"}),
    Fault("parallel runs", ["run", "--nproc", "1000", "parallel=data", "-o", "{out}"], 3, r"^--nproc 1000: this machine runs at most \d+ ranks on its \d+ CPU cores \(2 a core\)"),
    Fault("parallel runs", ["run", "parallel=data", "-o", "{out}"], 2, r"^MASTER_PORT='abc': the launcher's environment needs a whole number from 1 to 65535$", env={"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost", "MASTER_PORT": "abc"}),
    Fault("parallel runs", ["run", "parallel=data", "-o", "{out}"], 2, r"^MASTER_ADDR='': expected the host name or address of rank 0$", env={"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "", "MASTER_PORT": "29500"}),
    # files and paths
    Fault("files and paths", ["run", "{dir}/missing.yaml", "-o", "{out}"], 2, r"/missing\.yaml: no such file$"),
    Fault("files and paths", ["run", "inputs={dir}/" + "a" * 300 + ".csv", "-o", "{out}"], 2, r"/a{300}\.csv: File name too long$"),
    Fault("files and paths", ["run", "{dir}/folder", "-o", "{out}"], 2, r"/folder: a directory, not a config file; give the configs in it: .*/folder/\*\.yaml$", making("folder", Path.mkdir)),
    Fault("files and paths", ["run", "{dir}/pipe", "-o", "{out}"], 2, r"/pipe: not a regular file$", making("pipe", os.mkfifo)),
    Fault("files and paths", ["run", "{dir}/big.yaml", "-o", "{out}"], 2, r"/big\.yaml: larger than 1 MiB", making("big.yaml", lambda p: p.write_bytes(b"#" * (1 << 20 + 1)))),
    Fault("files and paths", ["run", "-o", "{dir}/results.txt"], 2, r"results\.txt: the suffix names the format; use one of \.json, \.csv, \.npy"),
    Fault("files and paths", ["run", "-o", "{dir}/nowhere/x.json"], 2, r"x\.json: no such directory"),
    Fault("files and paths", ["run", "--expect", "{out}", "-o", "{out}"], 2, r"results\.json: is also an input; refusing to overwrite it"),
    Fault("files and paths", ["run", "--expect", "{dir}/missing.json", "-o", "{out}"], 2, r"^--expect .*missing\.json: no such file"),
    Fault("files and paths", ["run", TWO_LAYER, TWO_LAYER, "-o", "{dir}/two.npy"], 2, r"two\.npy: a \.npy file holds one output"),
    Fault("files and paths", ["config", "init", "{out}"], 2, r"results\.json: exists; --force replaces it"),
    # bad files: features (inputs) and weights
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: truncated: (\d+) bytes by its header, \d+ on disk$", files(**{"w.safetensors": cut(tensors(W1=W, W2=torch.ones(2, 1)), -10)})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: not a safetensors file \(a header of \d+ bytes in 12\)$", files(**{"w.safetensors": text(b"not a tensor")})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: corrupt safetensors header: W1 is F32 \[30, 2\], 240 bytes, but spans 24$", files(**{"w.safetensors": lying_header})),
    Fault("bad files", ["run", "weights={dir}/w.pt", "-o", "{out}"], 2, r"/w\.pt: holds Python objects, not plain tensors \(posix\.system\); refused \(save model\.state_dict\(\)\)$", files(**{"w.pt": malicious})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: W2 has shape \[5, 1\], expected \[2, 1\] \(2 units come out of the layer before\)$", files(**{"w.safetensors": tensors(W1=W, W2=torch.ones(5, 1))})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "layers=[3, 2, 4]", "-o", "{out}"], 2, r"/w\.safetensors: W2 has shape \[2, 1\], but layers \(override 'layers=\[3, 2, 4\]'\) needs \[2, 4\]$", files(**{"w.safetensors": tensors(W1=W, W2=torch.ones(2, 1), B1=torch.ones(2), B2=torch.ones(1))})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: missing W2, B1, B2; unexpected extra \(every layer has a weight, and a bias or none\)$", files(**{"w.safetensors": tensors(W1=W, W3=torch.ones(2, 1), B3=torch.ones(1), extra=torch.ones(1))})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "bias=true", "-o", "{out}"], 2, r"/w\.safetensors: holds no biases, but bias is true \(override 'bias=true'\)$", files(**{"w.safetensors": tensors(W1=W)})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: W1 is I64; weights must be floating point$", files(**{"w.safetensors": tensors(W1=torch.ones(3, 2, dtype=torch.int64))})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: no weights in a known layout .*; found bias, kernel$", files(**{"w.safetensors": tensors(kernel=W, bias=torch.ones(2))})),
    Fault("bad files", ["run", "weights={dir}/folder", "-o", "{out}"], 2, r"/folder: is a directory, not a weights file$", making("folder", Path.mkdir)),
    Fault("bad files", ["run", "inputs={dir}/folder", "-o", "{out}"], 2, r"/folder: is a directory, not a features file$", making("folder", Path.mkdir)),
    Fault("bad files", ["run", "weights={dir}/w.pt", "-o", "{out}"], 2, r"/w\.pt: not a readable \.pt file \(Unsupported operand 110\)$", files(**{"w.pt": text(b"not a zip")})),
    Fault("bad files", ["run", "inputs={dir}/x.csv", "input_columns=[a, 0]", "layers=[2, 1]", "-o", "{out}"], 2, r"/x\.csv: input_columns\[1\]: 0 picks a column already picked$", files(**{"x.csv": text("a,b\n1,2\n")})),
    Fault("bad files", ["run", "weights={dir}/d.safetensors", "-o", "{out}"], 2, r"/d\.safetensors: is a directory, not a safetensors file$", making("d.safetensors", Path.mkdir)),
    Fault("bad files", ["run", "inputs={dir}/x.npy", "-o", "{out}"], 2, r"/x\.npy: truncated: \(4, 3\) of float64 needs 224 bytes, the file has 200$", files(**{"x.npy": cut(npy(__import__("numpy").zeros((4, 3))), 200)})),
    Fault("bad files", ["run", "inputs={dir}/x.npy", "-o", "{out}"], 2, r"/x\.npy: holds an array of object; features must be numbers", files(**{"x.npy": npy(__import__("numpy").array([[1, "a", None]], dtype=object))})),
    Fault("bad files", ["run", "inputs={dir}/x.npy", "-o", "{out}"], 2, r"/x\.npy: not a readable \.npy file", files(**{"x.npy": text("1,2,3\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.npy", "-o", "{out}"], 2, r"^override 'inputs=.*/x\.npy': inputs: .*/x\.npy: row 1, column 2: nan is not finite$", files(**{"x.npy": npy(__import__("numpy").array([[1.0, 2, 3], [4, 5, float("nan")]]))})),
    Fault("bad files", ["run", "inputs={dir}/x.csv", "-o", "{out}"], 2, r"/x\.csv: line 3, column 2: 'nan' is not finite$", files(**{"x.csv": text("a,b,c\n1,2,3\n4,nan,6\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.csv", "-o", "{out}"], 2, r"/x\.csv: line 2, column 3: 'three' is not a number$", files(**{"x.csv": text("1,2,3\n4,5,three\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.csv", "-o", "{out}"], 2, r"/x\.csv: line 2: 2 values, but the first row has 3$", files(**{"x.csv": text("1,2,3\n4,5\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.csv", "-o", "{out}"], 2, r"/x\.csv: rows of 2 features, but layers\[0\] is 3 \(<built-in default>\)$", files(**{"x.csv": text("1,2\n3,4\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.csv", "batch=3", "-o", "{out}"], 2, r"/x\.csv: 2 rows, but batch is 3 \(override 'batch=3'\); leave batch out, or set batch=null, to take the file's rows$", files(**{"x.csv": text("1,2,3\n3,4,5\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.json", "-o", "{out}"], 2, r"/x\.json: a JSON document larger than 64 MiB, which is parsed whole; write JSON Lines \(\.jsonl: .*\), which stream$", files(**{"x.json": lambda p: p.write_bytes(b"[" + b" " * (65 << 20) + b"]")})),
    Fault("bad files", ["run", "inputs={dir}/x.json", "-o", "{out}"], 2, r"/x\.json: row 0, column 1: \"NaN\" is not finite$", files(**{"x.json": text('{"schema": "mlpcli.run/2", "output": [[1, "NaN", 3]]}')})),
    Fault("bad files", ["run", "inputs={dir}/x.json", "-o", "{out}"], 2, r"/x\.json: line 1: invalid JSON: ", files(**{"x.json": text("[[1, 2, 3]")})),
    Fault("bad files", ["run", "inputs={dir}/pipe.csv", "-o", "{out}"], 2, r"/pipe\.csv: not a regular file; a features file must be one$", making("pipe.csv", os.mkfifo)),
    Fault("bad files", ["run", "inputs={dir}/x.xlsx", "-o", "{out}"], 2, r"/x\.xlsx: features are read from \.npy, \.npz, \.csv, \.tsv, \.txt, \.json, \.jsonl, \.safetensors, \.parquet, \.feather or - \(stdin\)$", files(**{"x.xlsx": text("1,2,3\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.csv", "layers=[2, 1]", "-o", "{out}"], 2, r"/x\.csv: column 'label' is not numbers \(line 2, column 3: 'cat'\); pick the feature columns with input_columns: \[name or 0-based index, \.\.\.\]$", files(**{"x.csv": text("a,b,label\n1,2,cat\n3,4,dog\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.csv", "input_columns=[a, z]", "layers=[2, 1]", "-o", "{out}"], 2, r"/x\.csv: input_columns\[1\]: no column 'z'; it has 'a', 'b', 'label'$", files(**{"x.csv": text("a,b,label\n1,2,cat\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.npy", "input_columns=[a]", "layers=[1, 1]", "-o", "{out}"], 2, r"/x\.npy: input_columns\[0\]: 'a': the file names no columns; give 0-based indices$", files(**{"x.npy": npy(__import__("numpy").zeros((2, 3)))})),
    Fault("bad files", ["run", "input_columns=[0]", "-o", "{out}"], 2, r"^override 'input_columns=\[0\]': input_columns: says how to read the inputs file, but inputs is not set$"),
    Fault("bad files", ["run", "inputs={dir}/x.npy", "-o", "{out}"], 2, r"/x\.npy: holds an array of complex128; features must be numbers \(real ones\)$", files(**{"x.npy": npy(__import__("numpy").ones((2, 3), complex))})),
    Fault("bad files", ["run", "inputs={dir}/x.json", "-o", "{out}"], 2, r"/x\.json: not a table of features: expected a list of rows, pandas' to_json", files(**{"x.json": text('{"a": [1, 2], "b": 3}')})),
    Fault("bad files", ["run", "inputs={dir}/x.json", "layers=[2, 1]", "-o", "{out}"], 2, r"/x\.json: row 1, column 'b': null is a missing value; features must be finite numbers$", files(**{"x.json": text('[{"a": 1, "b": 2}, {"a": 3, "b": null}]')})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: fc2\.weight has shape \[16, 3\], expected \[3, 16\]: no order of the layers fits it as saved; transpose it$", files(**{"w.safetensors": tensors(**{"fc1.weight": torch.ones(16, 4), "fc2.weight": torch.ones(16, 3)})})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "weights_order=[fc1]", "-o", "{out}"], 2, r"/w\.safetensors: weights_order leaves out fc2; list every Linear layer once$", files(**{"w.safetensors": tensors(**{"fc1.weight": torch.ones(16, 4), "fc2.weight": torch.ones(3, 16)})})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: layer 'norm' \(bias \[16\], weight \[16\]\) is neither a Linear layer \(a 2-D weight\) nor a BatchNorm1d \(running statistics\); mlpcli runs only those$", files(**{"w.safetensors": tensors(**{"fc1.weight": torch.ones(16, 4), "norm.weight": torch.ones(16), "norm.bias": torch.ones(16)})})),
    Fault("bad files", ["run", "weights={dir}/w.pt", "-o", "{out}"], 2, r"/w\.pt: bn1: the names do not say whether this BatchNorm1d of 8 sits before its Linear's activation or after it; set batchnorm: after_linear \(Linear, BatchNorm1d, activation\) or after_activation \(activation, BatchNorm1d, next Linear\)$", files(**{"w.pt": lambda p: torch.save({"fc1.weight": torch.ones(8, 4), "bn1.running_mean": torch.zeros(8), "bn1.running_var": torch.ones(8), "fc2.weight": torch.ones(3, 8)}, p)})),
    Fault("bad files", ["run", "weights={dir}/w.pt", "-o", "{out}"], 2, r"/w\.pt: 0\.weight: a view of \[2000, 2000\] over 4 stored bytes \(an expanded tensor\); save a tensor that holds its values \(\.contiguous\(\)\)$", files(**{"w.pt": lambda p: torch.save({"0.weight": torch.zeros(1).expand(2000, 2000)}, p)})),
    Fault("bad files", ["run", "weights={dir}/w.pt", "-o", "{out}"], 2, r"/w\.pt: holds a tensor keyed 1; a state dict's keys are names$", files(**{"w.pt": lambda p: torch.save({1: torch.ones(2, 2)}, p)})),
    Fault("bad files", ["run", "weights={dir}/w.npz", "-o", "{out}"], 2, r"/w\.npz \(W1\): holds an array of object; weights must be numbers \(real ones\)$", files(**{"w.npz": lambda p: __import__("numpy").savez(p, W1=__import__("numpy").array([{}], dtype=object))})),
    Fault("bad files", ["run", "weights={dir}/m.onnx", "-o", "{out}"], 2, r"/m\.onnx: Conv at node 0: mlpcli reads Linear layers \(Gemm, MatMul and Add\) and the activations", files(**{"m.onnx": lambda p: conv_graph(p)})),
    Fault("bad files", ["run", "weights={dir}/w.pt", "-o", "{out}"], 2, r"/w\.pt: holds entries that are not tensors \(epoch, optimizer, weights\) and no state dict under state_dict, model_state_dict, model, module$", files(**{"w.pt": lambda p: torch.save({"epoch": 3, "optimizer": {}, "weights": {"fc.weight": torch.ones(2, 2)}}, p)})),
    Fault("bad files", ["shapes", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: W99999999: mlpcli's layers are W1 to W1024 \(and B1\.\.\)$", files(**{"w.safetensors": tensors(W1=W, W99999999=torch.ones(2, 1))})),
    Fault("bad files", ["shapes", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: W9{19}: mlpcli's layers are W1 to W1024", files(**{"w.safetensors": tensors(**{"W" + "9" * 5000: torch.ones(2, 1)})})),
    Fault("bad files", ["shapes", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: not a safetensors file \(its header is not JSON mlpcli reads: Exceeds the limit", files(**{"w.safetensors": huge_shape})),
    Fault("bad files", ["run", "weights={dir}/w.pt", "-o", "{out}"], 2, r"/w\.pt: not a file torch\.save wrote: '[^']+' is compressed in the archive \(torch stores every record as it is\)$", files(**{"w.pt": compressed_pt})),
    Fault("bad files", ["run", "inputs={dir}/x.csv", "-o", "{out}"], 2, r"/x\.csv: line 1: field larger than field limit \(131072\)$", files(**{"x.csv": text("1,2," + "3" * 140_000 + "\n")})),
    Fault("bad files", ["run", "--expect", "{dir}/e.json", "-o", "{out}"], 2, r"/e\.json:1: 9{20}… \(400 digits\) is past float64's range$", files(**{"e.json": text('{"output": [[' + "9" * 400 + "]]}\n")})),
    Fault("bad files", ["run", "layers=[3, 2, 1]", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: holds 1,100 Linear layers; a network has at most 1,024$", files(**{"w.safetensors": tensors(**{f"l.{i}.weight": torch.ones(1, 1) for i in range(1100)})})),
    Fault("bad files", ["run", "inputs={dir}/x.npy", "-o", "{out}"], 2, r"/x\.npy: holds 3,000,000,000 rows; a batch is at most 2,147,483,647$", files(**{"x.npy": sparse_npy})),
    Fault("bad files", ["run", "inputs={dir}/x.npy", "-o", "{out}"], 2, r"/x\.npy: a \.npy of format version 4\.0; NumPy writes 1\.0, 2\.0, 3\.0$", files(**{"x.npy": npy_version(4)})),
    Fault("bad files", ["run", "weights={dir}/w.safetensors", "-o", "{out}"], 2, r"/w\.safetensors: not a safetensors file \(its header is not JSON mlpcli reads: the key 'W1' twice in one object\)$", files(**{"w.safetensors": twice_named})),
    Fault("bad files", ["run", "inputs={dir}/x.json", "-o", "{out}"], 2, r"/x\.json: invalid JSON: the key 'a' twice in one object$", files(**{"x.json": text('[{"a": 1, "b": 2, "c": 3, "a": 4}]')})),
    Fault("bad files", ["run", "inputs={dir}/x.jsonl", "-o", "{out}"], 2, r"/x\.jsonl: rows of 1 feature, but layers\[0\] is 3 ", files(**{"x.jsonl": text("1\n2\n3\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.json", "-o", "{out}"], 2, r"/x\.json: orient 'split': an index of 3 for 1 row$", files(**{"x.json": text('{"columns": ["a", "b", "c"], "index": [0, 1, 2], "data": [[1, 2, 3]]}')})),
    Fault("bad files", ["run", "--expect", "{dir}/e.json", "-o", "{out}"], 2, r"/e\.json:1: schema 'mlpcli\.run/99' is not one this mlpcli reads \(mlpcli\.run/1, mlpcli\.run/2\)$", files(**{"e.json": text('{"schema": "mlpcli.run/99", "name": "default", "output": [[0.5]]}\n')})),
    Fault("bad files", ["run", "--expect", "{dir}/e.npy", "-o", "{out}"], 2, r"/e\.npy: not an \.npy array mlpcli reads: Array can't be memory-mapped: Python objects in dtype\.$", files(**{"e.npy": npy(__import__("numpy").array([[{"a": 1}]], dtype=object))})),
    Fault("bad files", ["run", "--expect", "{dir}/e.npy", "-o", "{out}"], 2, r"/e\.npy: holds a float64 array of shape \(1, 1, 1\); expected an output array of numbers \(rows, units\), as run -o out\.npy writes it$", files(**{"e.npy": npy([[[0.5]]])})),
    Fault("bad files", ["run", "weights={dir}/m.pt", "-o", "{out}"], 2, r"/m\.pt: a TorchScript archive \(torch\.jit\.save\), which holds code; mlpcli reads weights: save the model's weights with torch\.save\(model\.state_dict\(\), PATH\)$", files(**{"m.pt": lambda p: torch.jit.save(torch.jit.script(torch.nn.Linear(3, 1)), p)})),
    Fault("bad files", ["run", "weights={dir}/w.pt", "-o", "{out}"], 2, r"/w\.pt: its tensors' storages declare 64 bytes, but its records hold 32 \(a storage type that is not its record's\); not a file torch\.save wrote$", files(**{"w.pt": retyped_pt})),
    Fault("bad files", ["run", "weights=-", "-o", "{out}"], 2, r"^override 'weights=-': weights: cannot be read from standard input; give a file's path$"),
    # streamed: found when the run reaches the chunk, and still nothing written
    Fault("bad files", ["run", "inputs={dir}/x.csv", "chunk=7", "-o", "{out}"], 2, r"^override 'inputs=.*/x\.csv': inputs: .*/x\.csv: line 2001, column 2: 'n/a' is not a number$", files(**{"x.csv": lambda p: p.write_text("1,2,3\n" * 2000 + "1,n/a,3\n")})),
    Fault("bad files", ["run", "inputs={dir}/x.npy", "chunk=7", "-o", "{out}"], 2, r"^override 'inputs=.*/x\.npy': inputs: .*/x\.npy: row 1999, column 0: inf is not finite$", files(**{"x.npy": npy([[1.0, 1.0, 1.0]] * 1999 + [[float("inf"), 1.0, 1.0]])})),
    # the machine
    Fault("machine", ["run", "device=cuda:99", "-o", "{out}"], 3, r"^override 'device=cuda:99': device: cuda:99 is not available here"),
    Fault("machine", ["run", "layers=[2147483647, 2147483647]", "-o", "{out}"], 3, r"^default: needs about 16\.0 EiB of memory, .* is available$"),
    Fault("machine", ["run", "-o", "{out}"], 3, r"^default: needs about .* of memory, 1 B is available$", lambda _, patch: patch.setattr("mlpcli.engine.host.available_ram", lambda: 1)),
    Fault("machine", ["run", "-o", "{out}"], 3, r"^not enough memory on cpu: CUDA out of memory\. Tried to allocate 2\.00 GiB$", raising(runners, "build", torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nsecond line"))),
    Fault("machine", ["run", "-o", "{out}"], 3, r"^not enough memory on cpu: DefaultCPUAllocator: can't allocate memory", raising(runners, "build", RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes."))),
    Fault("machine", ["run", "-o", "{out}", "-f", "json"], 3, r"results\.json: cannot write: No space left on device$", raising(os, "fsync", OSError(errno.ENOSPC, "No space left on device"))),
    Fault("machine", ["run", "-o", "{out}", "-f", "json"], 130, r"^interrupted$", raising(os, "fsync", KeyboardInterrupt())),
    Fault("machine", ["run", "-o", "{out}"], 130, r"^interrupted$", raising(runners, "run", KeyboardInterrupt())),
    Fault("machine", ["run", "weights={dir}/w.pt", "-o", "{out}"], 3, r"/w\.pt: cannot be memory-mapped here \(unable to mmap 2800000000 bytes from file <.*w\.pt>: Cannot allocate memory \(12\)\)$", unmappable),
    Fault("machine", ["env"], 4, r"^internal error \(ZeroDivisionError: boom\); rerun with MLPCLI_DEBUG=1 and report the traceback$", raising(environment, "environment", ZeroDivisionError("boom"))),
]  # fmt: skip
# Cases that only a machine without CUDA shows; not counted in docs/reliability.md.
NO_CUDA_FAULTS = [
    Fault("machine", ["run", "device=cuda", "-o", "{out}"], 3, r"device: cuda is not available here: torch .* was built without CUDA"),
    Fault("machine", ["bench", "--cuda-graph", "device=auto"], 3, r"^--cuda-graph needs a CUDA device; this config runs on cpu$"),
    Fault("machine", ["compare"], 3, r"^compare's default devices cpu,cuda \(--devices chooses others\): device: cuda is not available here"),
    Fault("machine", ["compare", "--devices", "cpu,cuda"], 3, r"^--devices: device: cuda is not available here"),
]  # fmt: skip
if NO_CUDA:
    FAULTS.extend(NO_CUDA_FAULTS)

# Faults that only a real process shows: a full disk behind stdout, a reader that goes away.
PROCESS_FAULTS = [
    ("process", f"'{{mlpcli}}' run '{TWO_LAYER}' > /dev/full", 3, "mlpcli: error: cannot write the results: No space left on device\n"),
    ("process", "'{mlpcli}' shapes --format json > /dev/full", 3, "mlpcli: error: cannot write the results: No space left on device\n"),
    ("process", "'{mlpcli}' run batch=100000 --format csv | head -1 > /dev/null", 0, ""),
    # a FIFO output's reader gone: said, as not every row reached it (stdout's is quiet)
    ("process", "cd \"$(mktemp -d)\"; mkfifo o.csv; head -c 100 o.csv > /dev/null & '{mlpcli}' run batch=100000 -q -o o.csv; c=$?; kill %1 2>/dev/null; wait; rm -r \"$PWD\"; exit $c", 2, "mlpcli: error: o.csv: cannot write: Broken pipe\n"),
    # stdout closed before the start: printing fails as on /dev/full; nothing printed runs
    ("process", "'{mlpcli}' run 1>&- 0<&-", 3, "mlpcli: error: cannot write the results: Bad file descriptor\n"),
    ("process", "d=$(mktemp -d); '{mlpcli}' run -q -o \"$d/o.npy\" 1>&-; c=$?; rm -r \"$d\"; exit $c", 0, ""),
    # a reader gone before the first byte (Rich and Typer would each make that exit 1)
    *(("process", f"'{{mlpcli}}' {args} | true; exit ${{{{PIPESTATUS[0]}}}}", 0, "") for args in ("run", "run -f json", "shapes", "env", "config schema", "--version")),
]  # fmt: skip

SENTINEL = b'{"schema": "mlpcli.run/1", "precious": true}\n'


def run_and_check(
    directory: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    out = directory / "results.json"
    out.write_bytes(SENTINEL)
    before = sorted(p.name for p in directory.iterdir())
    arguments = [a.replace("{dir}", str(directory)).replace("{out}", str(out)) for a in args]
    exit_code, stdout, stderr = invoke(*arguments, env=env)
    assert exit_code == code, stderr
    assert stdout == ""
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("mlpcli: error: ")
    assert re.search(message, stderr.removeprefix("mlpcli: error: ").rstrip("\n")), stderr
    assert out.read_bytes() == SENTINEL
    assert sorted(p.name for p in directory.iterdir()) == before


@pytest.mark.parametrize("case", BAD_CONFIG_FILES, ids=lambda case: case.message[:40])
def test_bad_config_file(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "net.yaml"
    path.write_bytes(case.text if isinstance(case.text, bytes) else case.text.encode())
    message = "^" + re.escape(str(path)) + case.message
    run_and_check(tmp_path, ["run", str(path), "-o", "{out}"], {}, 2, message)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: " ".join(fault.args)[:50])
def test_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    if fault.setup is not None:
        fault.setup(tmp_path, monkeypatch)
    run_and_check(tmp_path, fault.args, fault.env, fault.code, fault.message)


@pytest.mark.parametrize(("category", "shell", "code", "stderr"), PROCESS_FAULTS)
def test_process_fault(
    mlpcli_script: str, category: str, shell: str, code: int, stderr: str
) -> None:
    done = subprocess.run(
        ["bash", "-c", shell.format(mlpcli=mlpcli_script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (code, stderr)


def test_the_documented_counts_are_true() -> None:
    counts = Counter(case.category for case in BAD_CONFIG_FILES)
    counts.update(fault.category for fault in FAULTS)
    counts.update(row[0] for row in PROCESS_FAULTS)
    if NO_CUDA:
        counts.subtract(fault.category for fault in NO_CUDA_FAULTS)
    documented = dict(
        (name, int(count))
        for name, count in re.findall(
            r"^\| (.+?) \| (\d+) \|", (ROOT / "docs" / "reliability.md").read_text(), re.M
        )
    )
    assert documented == dict(counts)
    assert sum(counts.values()) >= 40
