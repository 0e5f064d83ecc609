"""`mlpcli validate`: check config files, one line (or record, or CI annotation) each."""

from __future__ import annotations

import json
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mlpcli.commands.common import JunitOption, reported
from mlpcli.errors import ConfigError, ExitCode, UnavailableError, UsageError
from mlpcli.loading import loader
from mlpcli.model.results import ValidateResult
from mlpcli.report import problems
from mlpcli.report.output import Format, Output


class ValidateFormat(StrEnum):
    """What `validate` prints: `Format`'s, or problems as a CI reads them."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    GITHUB = "github"  # workflow commands: ::error file=...,line=...,col=...::message
    GITLAB = "gitlab"  # a code quality report: a JSON list of issues


def validate(
    paths: Annotated[list[Path], typer.Argument(metavar="CONFIG", help="Config files to check.")],
    output_format: Annotated[
        ValidateFormat,
        typer.Option(
            "--format",
            "-f",
            help="table (for people), json (one line per file), csv; github (an annotation "
            "per problem, for GitHub Actions) or gitlab (a code quality report).",
        ),
    ] = ValidateFormat.TABLE,
    junit_xml: JunitOption = None,
) -> None:
    """Check config files: one line per file, exit 1 if any is invalid (2 if one is unreadable,
    3 if this machine cannot check one: a package missing to read its data)."""
    suite = "mlpcli validate"
    with reported(junit_xml, suite, suite, " ".join(map(str, paths)), paths) as report:
        results = []
        for path in paths:
            clock = time.perf_counter()
            results.append(_check(path))
            result = results[-1]
            problem = None if result.ok else f"{result.location or path}: {result.error}"
            checked = result.readable and result.checkable
            failure, error = (problem, None) if checked else (None, problem)
            report.add(suite, str(path), time.perf_counter() - clock, failure, error)
        if output_format is ValidateFormat.GITHUB:
            typer.echo(problems.github(results), nl=False)
        elif output_format is ValidateFormat.GITLAB:
            typer.echo(json.dumps(problems.gitlab(results), indent=2))
        else:
            Output(Format(output_format.value)).emit(results)
        if not all(result.readable for result in results):
            raise typer.Exit(ExitCode.USAGE)
        if not all(result.checkable for result in results):
            raise typer.Exit(ExitCode.UNAVAILABLE)
        if not all(result.ok for result in results):
            raise typer.Exit(ExitCode.CHECK_FAILED)


def _check(path: Path) -> ValidateResult:
    try:
        return ValidateResult(str(path), loader.load(path, (), os.environ))
    except (ConfigError, UnavailableError) as error:
        message = f"{error.field}: {error.message}" if error.field else error.message
        checkable = not isinstance(error, UnavailableError)
        return ValidateResult(str(path), None, message, error.location, checkable=checkable)
    except UsageError as error:
        message = str(error).removeprefix(f"{path}: ")
        return ValidateResult(str(path), None, message, readable=False)
