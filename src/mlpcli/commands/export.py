"""`mlpcli export`: the network as a file other tools load: a state dict, a program, ONNX."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from mlpcli.commands.common import (
    AtolOption,
    ConfigArguments,
    Job,
    JunitOption,
    Report,
    RtolOption,
    sources,
)
from mlpcli.commands.driver import Command, World, drive
from mlpcli.errors import CheckFailedError, UnavailableError
from mlpcli.model.config import Config, DType
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
    drive(_Export(arguments, junit_xml, output, verify, (atol, rtol)))


class _Export(Command[bytes]):
    """`export` for the driver: the file's bytes, checked in their runtime with `verify`
    (exit 1, nothing written, beyond the tolerance), then written."""

    name = "export"

    def __init__(
        self,
        arguments: Sequence[str] | None,
        junit: Path | None,
        output: Path,
        verify: bool,
        tolerance: tuple[float | None, float | None],
    ) -> None:
        super().__init__(arguments, junit=junit)
        self.output, self.verify, (self.atol, self.rtol) = output, verify, tolerance
        self.verified: str | None = None  # what --verify found, said once the file is written

    def case(self) -> str:
        return f"mlpcli export {self.output}"

    def preflight(self, jobs: Sequence[Job], world: World, report: Report) -> None:
        ((config, _),) = jobs
        read = sources(self.paths[0], config)
        self.suffix = "." + files.check_output(self.output, SUFFIXES, read)
        report.check([*read, self.output])

    def fits(self, jobs: Sequence[Job], world: World) -> None:
        """The host's memory, then what an ONNX file needs that this machine may lack."""
        super().fits(jobs, world)
        ((config, _),) = jobs
        if self.suffix == ".onnx":
            from mlpcli.engine import exports  # torch: only once the input is valid

            exports.require_onnx(verify=self.verify)
            if self.verify and config.dtype is DType.BFLOAT16:  # before the export's work
                raise UnavailableError(
                    f"--verify {self.output}: onnxruntime's CPU kernels do not run bfloat16 (and "
                    "NumPy cannot hold it); export it without --verify, or verify a float32 export"
                )

    def streams(self, config: Config) -> bool:
        return True  # --verify reads a file's features a chunk at a time; without it, none

    def here(self, jobs: Sequence[Job]) -> list[bytes]:
        from mlpcli.engine import exports  # torch: only once the input is valid
        from mlpcli.model.closeness import tolerance_for

        ((config, _),) = jobs
        tolerance = tolerance_for(config.dtype, self.atol, self.rtol) if self.verify else None
        data, difference = exports.export(config, self.suffix, tolerance)
        output, runtime = self.output, RUNTIMES[self.suffix]
        if difference is not None and not difference.within:
            raise CheckFailedError(
                [
                    f"{output}: {runtime} differs from run by {difference.max_abs:.3g} at "
                    f"output{list(difference.worst)} ({difference.got:.9g} against "
                    f"{difference.expected:.9g}, allowed {difference.allowed:.3g}); not written"
                ]
            )
        if difference is not None:
            assert tolerance is not None
            self.verified = (
                f"{output}: {runtime} gives run's output within {config.dtype} tolerance "
                f"(max |diff| {difference.max_abs:.3g}; atol {tolerance.atol:g}, "
                f"rtol {tolerance.rtol:g} of the largest value)"
            )
        return [data]

    def emit(self, results: Sequence[bytes]) -> None:
        (data,) = results
        files.write_atomic(self.output, data)
        terminal.note(f"wrote {self.output} ({byte_size(len(data))})")
        if self.verified is not None:
            terminal.note(self.verified)
