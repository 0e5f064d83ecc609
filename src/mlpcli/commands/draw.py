"""`mlpcli draw`: the network as an SVG picture in the notebook's style, or a Mermaid flowchart."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mlpcli.commands.common import ConfigArguments, Job, Report, sources
from mlpcli.commands.driver import Command, World, drive
from mlpcli.engine import host
from mlpcli.errors import UsageError
from mlpcli.model.config import Config
from mlpcli.model.units import byte_size
from mlpcli.report import files, pictures, terminal
from mlpcli.report.terminal import to_stdout


class DrawFormat(StrEnum):
    """What `draw` writes."""

    SVG = "svg"
    MERMAID = "mermaid"


SUFFIXES = {".svg": DrawFormat.SVG, ".mmd": DrawFormat.MERMAID}


def draw(
    arguments: ConfigArguments = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write it here (.svg, or .mmd for Mermaid); else to stdout.",
            show_default=False,
        ),
    ] = None,
    draw_format: Annotated[
        DrawFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="svg or mermaid. [default: by the --output suffix, else svg]",
            show_default=False,
        ),
    ] = None,
    max_units: Annotated[
        int,
        typer.Option(
            "--max-units",
            min=2,
            help="Units shown per layer; wider layers elide. An SVG draws at most "
            f"{pictures.MAX_EDGES:,} connections.",
        ),
    ] = 8,
    values: Annotated[
        bool,
        typer.Option(
            "--values",
            help="Run the network: colour each connection drawn by its weight and each unit by "
            "its value for the first row of features, each layer on its own scale, and print "
            f"the values of a column of at most {pictures.VALUES_SHOWN} units.",
        ),
    ] = False,
) -> None:
    """The network as a picture: a circle per unit, a line per connection, every layer labelled."""
    drive(_Draw(arguments, output, draw_format, max_units, values))


class _Draw(Command[str]):
    """`draw` for the driver: the picture's text, from the config (and, with `values`, a run
    of its first row), written to a file or printed."""

    name = "draw"

    def __init__(
        self,
        arguments: Sequence[str] | None,
        output: Path | None,
        kind: DrawFormat | None,
        max_units: int,
        values: bool,
    ) -> None:
        super().__init__(arguments)
        self.output, self.kind, self.max_units, self.values = output, kind, max_units, values

    def computes(self) -> bool:
        return self.values  # a run of the first row colours the picture

    def preflight(self, jobs: Sequence[Job], world: World, report: Report) -> None:
        ((config, _),) = jobs
        output, max_units, values = self.output, self.max_units, self.values
        by_suffix = None
        if output is not None:
            files.check_output(output, list(SUFFIXES), sources(self.paths[0], config))
            by_suffix = SUFFIXES[output.suffix.lower()]
        kind = self.kind = self.kind or by_suffix or DrawFormat.SVG
        if by_suffix is not None and by_suffix is not kind:
            raise UsageError(
                f"--output {output}: the suffix says {by_suffix}, --format says {kind}"
            )
        if output is None and kind is DrawFormat.SVG and sys.stdout.isatty():  # (Mermaid reads)
            raise UsageError(
                "draw makes an SVG picture, text for a file, not for the terminal: write it with "
                "-o network.svg, or pipe it on (-f mermaid prints a chart to paste)"
            )
        if values and kind is DrawFormat.MERMAID:
            raise UsageError("--values colours an SVG picture; draw it as svg")
        if kind is DrawFormat.SVG:
            _fits_a_picture(config, max_units, values)

    def fits(self, jobs: Sequence[Job], world: World) -> None:
        if self.values:  # the network is built to colour the picture: it must fit
            ((config, _),) = jobs
            host.check_host(config.first_row(), on_cpu=config.device.type == "cpu")

    def here(self, jobs: Sequence[Job]) -> list[str]:
        ((config, _),) = jobs
        if self.kind is DrawFormat.MERMAID:
            return [pictures.mermaid(config, self.max_units)]
        numbers = None
        if self.values:
            from mlpcli.engine import runners  # torch: only to colour the picture

            drawn = pictures.drawn_units(config, self.max_units)
            numbers = runners.diagram_values(config, drawn)
        return [pictures.svg(config, self.max_units, numbers)]

    def emit(self, results: Sequence[str]) -> None:
        (text,) = results
        if self.output is not None:
            files.write_atomic(self.output, text.encode())
            terminal.note(f"wrote {self.output} ({byte_size(len(text.encode()))})")
        else:
            with to_stdout():
                print(text, end="")


def _fits_a_picture(config: Config, max_units: int, values: bool) -> None:
    """UsageError where the SVG would be more than a picture opens readily or renderers draw,
    naming the --max-units that fits."""
    connections = pictures.edges(config, max_units)
    if connections > pictures.MAX_EDGES:
        raise UsageError(
            f"--max-units {max_units} draws {connections:,} connections, more than a picture "
            f"opens readily ({pictures.MAX_EDGES:,}); use at most "
            f"--max-units {pictures.widest_fitting(config)} for this network"
        )
    tall = pictures.picture_height(config, max_units, values=values)
    if tall > pictures.MAX_HEIGHT:
        raise UsageError(
            f"--max-units {max_units} draws a picture {tall:,} px tall, more than renderers "
            f"draw (32,767 px); use at most --max-units {pictures.tallest_fitting(values=values)}"
        )
