"""`mlpcli export`: the network as a file other tools load: a state dict, a program, ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlpcli.commands.common import (
    AtolOption,
    ConfigArguments,
    JunitOption,
    RtolOption,
    load,
    named_files,
    note_assumptions,
    reported,
    sources,
    split_one,
)
from mlpcli.engine import host
from mlpcli.errors import CheckFailedError, UnavailableError
from mlpcli.model.config import DType
from mlpcli.model.units import byte_size
from mlpcli.report import files, terminal

SUFFIXES = (".safetensors", ".pt", ".pth", ".pt2", ".onnx")
RUNTIMES = {
    ".safetensors": "nn.Sequential",
    ".pt": "nn.Sequential",
    ".pth": "nn.Sequential",
    ".pt2": "torch.export",
    ".onnx": "onnxruntime",
}


def export(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The file, in the format its suffix names: .safetensors, .pt or .pth (the state "
            "dict of the equivalent nn.Sequential), .pt2 (a torch.export program), .onnx (input "
            "features, output output; needs pip install onnx onnxscript onnxruntime).",
            show_default=False,
        ),
    ],
    arguments: ConfigArguments = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Run the file in its own runtime (torch, torch.export, onnxruntime) on the "
            "config's features and check it against run's output; exit 1, writing nothing, "
            "beyond the tolerance.",
        ),
    ] = False,
    atol: AtolOption = None,
    rtol: RtolOption = None,
    junit_xml: JunitOption = None,
) -> None:
    """Write the network, with its weights, as a file PyTorch or ONNX tools load."""
    path, overrides = split_one(arguments, "export")
    named = " ".join(arguments or []) or "the built-in config"
    inputs = named_files([path], overrides)
    with reported(junit_xml, "mlpcli export", f"mlpcli export {output}", named, inputs) as report:
        config = load(path, overrides)
        suffix = "." + files.check_output(output, SUFFIXES, sources(path, config))
        report.check([*sources(path, config), output])
        host.check_host(config, on_cpu=config.device.type == "cpu")
        from mlpcli.engine import exports  # torch: only once the input is valid
        from mlpcli.model.closeness import tolerance_for

        if suffix == ".onnx":
            exports.require_onnx(verify=verify)
            if verify and config.dtype is DType.BFLOAT16:  # refused before the export's work
                raise UnavailableError(
                    f"--verify {output}: onnxruntime's CPU kernels do not run bfloat16 (and NumPy "
                    "cannot hold it); export it without --verify, or verify a float32 export"
                )
        note_assumptions(config)
        tolerance = tolerance_for(config.dtype, atol, rtol) if verify else None
        data, difference = exports.export(config, suffix, tolerance)
        if difference is not None and not difference.within:
            raise CheckFailedError(
                [
                    f"{output}: {RUNTIMES[suffix]} differs from run by {difference.max_abs:.3g} at "
                    f"output{list(difference.worst)} ({difference.got:.9g} against "
                    f"{difference.expected:.9g}, allowed {difference.allowed:.3g}); not written"
                ]
            )
        files.write_atomic(output, data)
        terminal.note(f"wrote {output} ({byte_size(len(data))})")
        if difference is not None:
            assert tolerance is not None
            terminal.note(
                f"{output}: {RUNTIMES[suffix]} gives run's output within {config.dtype} tolerance "
                f"(max |diff| {difference.max_abs:.3g}; atol {tolerance.atol:g}, "
                f"rtol {tolerance.rtol:g} of the largest value)"
            )
