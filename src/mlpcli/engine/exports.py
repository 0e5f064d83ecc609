"""A network as PyTorch's own objects and files, with torch: the equivalent `nn.Sequential`, its
state dict as .safetensors or .pt, a `torch.export` program (.pt2) and ONNX; and `verify`, which
runs such a file in its own runtime. docs/contract.md section 5.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from mlpcli import __version__
from mlpcli.engine import devices
from mlpcli.engine.network import ACTIVATIONS, Network, build, forward
from mlpcli.engine.rows import feature_chunks
from mlpcli.errors import UnavailableError, UsageError, install_hint
from mlpcli.model.closeness import Difference, PerTensor, Tolerance
from mlpcli.model.config import Config


def export(
    config: Config, suffix: str, tolerance: Tolerance | None
) -> tuple[bytes, Difference | None]:
    """The bytes of `config`'s network as a file of `suffix`; with a `tolerance`, also how far
    that file's output, run by its own runtime, is from `run`'s (per tensor, as `compare`),
    a chunk of rows at a time (features from a file are read as `run` reads them; none are
    read without a `tolerance`)."""
    device = devices.prepare(config, streamed=True)
    with devices.memory_errors(device):
        network = build(config, device, features=tolerance is not None and config.inputs is None)
        data = encode(config, network, suffix)
        if tolerance is None:
            return data, None
        exported = runner(data, suffix, config)
        closeness = PerTensor()
        for features in feature_chunks(config, network.features, device, range(config.batch_size)):
            expected = forward(dataclasses.replace(network, features=features))
            closeness.add(_array(exported(features.cpu())), _array(expected))
    return data, closeness.result(tolerance)


def _array(tensor: torch.Tensor) -> Any:
    return tensor.detach().double().cpu().numpy()


def sequential(network: Network, widened: bool = False) -> nn.Sequential:
    """`nn.Sequential(Linear, activation, Linear, ...)` with the network's weights, on the CPU,
    in evaluation mode; Linear k is module 2k, so its weight is `2k.weight`, (out, in).
    `widened`: each activation computed in float32 between casts (for ONNX, whose operators
    take no bfloat16 for some activations)."""
    modules: list[nn.Module] = []
    biases = network.biases or (None,) * len(network.weights)
    for W, B, activation in zip(network.weights, biases, network.activations, strict=True):
        n_in, n_out = W.shape
        linear = nn.Linear(n_in, n_out, bias=B is not None, device="meta", dtype=W.dtype)
        linear.weight = nn.Parameter(W.t().contiguous().cpu(), requires_grad=False)
        if B is not None:
            linear.bias = nn.Parameter(B.reshape(-1).cpu(), requires_grad=False)
        module = ACTIVATIONS[activation].module()
        modules += [linear, _InFloat32(module) if widened else module]
    return nn.Sequential(*modules).eval()


class _InFloat32(nn.Module):
    """An activation computed in float32 and rounded back to its input's type, as PyTorch's CPU
    kernels compute a bfloat16 activation."""

    def __init__(self, activation: nn.Module) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.activation(h.float()).to(h.dtype)
        return output


def skeleton(config: Config) -> nn.Sequential:
    """The `nn.Sequential` of `config` with empty weights, to load a state dict into."""
    dtype = getattr(torch, config.dtype.value)
    modules: list[nn.Module] = []
    for (n_in, n_out), activation in zip(
        itertools.pairwise(config.layers), config.activations, strict=True
    ):
        modules += [
            nn.Linear(n_in, n_out, bias=config.bias, dtype=dtype),
            ACTIVATIONS[activation].module(),
        ]
    return nn.Sequential(*modules).eval()


def encode(config: Config, network: Network, suffix: str) -> bytes:
    """The file's bytes for `suffix`; the exporters' chatter never reaches stdout."""
    if suffix == ".onnx":
        return _onnx(config, network)
    model = sequential(network)
    if suffix in (".safetensors", ".pt", ".pth"):
        state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
        if suffix != ".safetensors":
            buffer = io.BytesIO()
            torch.save(state, buffer)
            return buffer.getvalue()
        from safetensors.torch import save

        metadata = {"mlpcli.config": json.dumps(config.to_dict()), "mlpcli.version": __version__}
        return bytes(save(state, metadata=metadata))
    example = torch.zeros(2, config.layers[0], dtype=network.features.dtype)  # 2: not special
    with _quietly():  # .pt2
        program = torch.export.export(
            model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _onnx(config: Config, network: Network) -> bytes:
    """The network as ONNX that `onnx.checker` passes in full: where an operator takes no
    input of the network's type (Elu, Softplus in bfloat16), the activations run in float32
    between casts; where that is not enough either, an error before anything is written."""
    require_onnx(verify=False)
    import onnx

    example = torch.zeros(2, config.layers[0], dtype=network.features.dtype)  # 2: not special
    problem = ""
    for widened in (False, True):
        with _quietly():
            onnx_program = torch.onnx.export(
                sequential(network, widened),
                (example,),
                dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                input_names=["features"],
                output_names=["output"],  # whatever the last activation: the notebook's names
                verbose=False,
            )
        assert onnx_program is not None
        proto = onnx_program.model_proto
        try:
            onnx.checker.check_model(proto, full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
            problem = problem or str(error).strip().splitlines()[0]
            continue
        return bytes(proto.SerializeToString())
    raise UsageError(f"this network in {config.dtype} is not valid ONNX: {problem[:200]}")


def require_onnx(*, verify: bool) -> None:
    """UnavailableError, naming the install command, without the onnx extra."""
    import importlib.util

    needed = ("onnx", "onnxscript", *(("onnxruntime",) if verify else ()))
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise UnavailableError(f".onnx needs {', '.join(missing)}: {install_hint('onnx')}")


def runner(data: bytes, suffix: str, config: Config) -> Callable[[torch.Tensor], torch.Tensor]:
    """The file `data` loaded once by its own runtime: its output for features on the CPU."""
    if suffix == ".pt2":
        with _quietly():
            module = torch.export.load(io.BytesIO(data)).module()

        def run_program(features: torch.Tensor) -> torch.Tensor:
            with _quietly(), torch.no_grad():
                return torch.as_tensor(module(features))

        return run_program
    if suffix == ".onnx":
        return _onnx_runner(data)
    if suffix == ".safetensors":
        from safetensors.torch import load

        state = load(data)
    else:
        state = torch.load(io.BytesIO(data), weights_only=True)
    model = skeleton(config)
    model.load_state_dict(state)

    def run_model(features: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.as_tensor(model(features))

    return run_model


def _onnx_runner(data: bytes) -> Callable[[torch.Tensor], torch.Tensor]:
    require_onnx(verify=True)
    import onnxruntime  # type: ignore[import-untyped]

    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime's own error types, one per failure
        raise UnavailableError(f"--verify: onnxruntime cannot run it: {error}") from None

    def run_session(features: torch.Tensor) -> torch.Tensor:
        (output,) = session.run(["output"], {"features": features.numpy()})
        return torch.from_numpy(output)

    return run_session


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """Hold the exporters' warnings, logging and prints, down to the file descriptors; shown
    only when the export fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as held, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(held.fileno(), 1)
        os.dup2(held.fileno(), 2)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield
        except Exception as error:
            if isinstance(error, (UsageError, UnavailableError)):
                raise
            sys.stderr.flush()
            held.seek(0)
            said = [line for line in held.read().decode(errors="replace").splitlines() if line]
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            detail = reason or (said[-1] if said else type(error).__name__)
            raise UnavailableError(f"the exporter failed: {detail[:300]}") from error
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
