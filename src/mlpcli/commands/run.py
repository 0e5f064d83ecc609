"""`mlpcli run`: build and run networks; check them against expected outputs."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlpcli import files, memory, records, render, sweep
from mlpcli.commands.common import (
    Arguments,
    AtolOption,
    FieldOption,
    Format,
    OutputOption,
    RtolOption,
    check_output,
    field_lines,
    load,
    split,
)
from mlpcli.errors import CheckFailedError, UsageError

if TYPE_CHECKING:
    from mlpcli.results import RunResult


def run(
    arguments: Arguments = None,
    output_format: Annotated[
        Format,
        typer.Option("--format", "-f", help="table (Rich), json (one line per network), csv."),
    ] = Format.TABLE,
    full: Annotated[bool, typer.Option("--full", help="Show every output value.")] = False,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="VALUES|FILE",
            help="Expected output: YAML values (0.3171, [[0.1, 0.2]]) or a .json/.csv file "
            "written by run; exit 1 when an output differs.",
            show_default=False,
        ),
    ] = None,
    atol: AtolOption = None,
    rtol: RtolOption = None,
    output: OutputOption = None,
    field: FieldOption = None,
    multirun: Annotated[
        bool,
        typer.Option(
            "--multirun",
            "-m",
            help="Comma-separated override values sweep their cartesian product.",
        ),
    ] = False,
) -> None:
    """Build each network from its seed and run the forward pass; show tensors and outputs."""
    paths, overrides = split(arguments)
    combinations = sweep.expand(overrides) if multirun else [tuple(overrides)]
    jobs = [(load(path, combo), combo) for path in paths for combo in combinations]
    for job_config, _ in jobs:  # before torch is imported: what cannot fit fails at once
        memory.check_host(job_config, on_cpu=job_config.device == "cpu")
    inputs = [*paths, Path(expect) if expect is not None else None]
    output_kind = check_output(output, (".json", ".csv", ".npy"), inputs)
    if output_kind == "npy" and len(jobs) > 1:
        raise UsageError(f"--output {output}: a .npy file holds one output; use .json or .csv")
    from mlpcli import expect as expectations  # NumPy and torch: only once the input is valid
    from mlpcli import network
    from mlpcli.closeness import tolerance_for

    expected = expectations.parse(expect) if expect is not None else None
    if expected is not None:
        for job_config, _ in jobs:
            expected.for_network(job_config.name)
    results = [dataclasses.replace(network.run(c), overrides=combo) for c, combo in jobs]

    needs_json = field or output_format is Format.JSON or output_kind == "json"
    run_records = [records.run_record(r) for r in results] if needs_json else []
    json_lines = "".join(map(records.json_line, run_records))
    chosen = field_lines(run_records, field) if field else None  # a bad path: nothing written
    if output is not None:
        files.write_atomic(output, _file_bytes(results, output_kind, json_lines))
    if chosen is not None:
        sys.stdout.write(chosen)
    elif output_format is Format.JSON:
        sys.stdout.write(json_lines)
    elif output_format is Format.CSV:
        sys.stdout.write(records.run_csv(results))
    elif multirun:
        render.stdout_console().print(render.sweep_table(results))
    else:
        _print_tables(results, full=full)
    for result in results:
        if result.nonfinite:
            render.note(
                f"{result.config.name}: output has {result.nonfinite} NaN or infinite values"
            )
    if expected is not None:
        failures = []
        for result in results:
            tolerance = tolerance_for(result.config.dtype, atol, rtol)
            if failure := expectations.check(result, expected, tolerance):
                failures.append(failure)
        if failures:
            raise CheckFailedError(failures)
        render.note(f"every output matches {expected.source}")


def _print_tables(results: list[RunResult], *, full: bool) -> None:
    console = render.stdout_console()
    for index, result in enumerate(results):
        table, cut = render.run_table(result, full=full, width=console.width)
        if index:
            console.print()
        console.print(table)
        if cut:
            render.note(cut)


def _file_bytes(results: list[RunResult], kind: str | None, json_lines: str) -> bytes:
    if kind == "npy":
        return records.run_npy(results[0])
    if kind == "csv":
        return records.run_csv(results).encode()
    return json_lines.encode()
