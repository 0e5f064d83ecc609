"""`mlpcli env`: the versions, threads and GPUs that a bug report needs."""

from __future__ import annotations

from typing import Annotated

from mlpcli.commands.common import FormatOption, OutputOption, QuietOption, field_option
from mlpcli.model.results import EnvResult
from mlpcli.report.output import Format, Output


def env(
    output_format: FormatOption = Format.TABLE,
    output: OutputOption = None,
    field: Annotated[list[str] | None, field_option("torch, torch_threads, gpus")] = None,
    quiet: QuietOption = False,
) -> None:
    """mlpcli, Python, torch and CUDA versions, CPU threads, and each GPU's name and memory."""
    out = Output(output_format, output, field, quiet)
    out.check(EnvResult)
    from mlpcli.engine import environment  # torch

    out.emit([environment.environment()])
