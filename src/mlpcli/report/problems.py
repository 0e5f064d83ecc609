"""Problems as CI systems annotate code with them: GitHub Actions' workflow commands
(`::error file=...,line=...,col=...::message`, as ruff's `--output-format github` writes
them) for `validate` and for `run --expect` inside GitHub Actions, and a GitLab code quality
report. docs/ci.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mlpcli.model.results import ValidateResult

TITLE = "mlpcli validate"


def github(results: Sequence[ValidateResult]) -> str:
    """One `::error` line per invalid file, at the line and column the error names."""
    lines = []
    for result in results:
        if result.error is not None:
            path, line, column = _place(result)
            lines.append(workflow_error(result.error, TITLE, path, line, column) + "\n")
    return "".join(lines)


def workflow_error(
    message: str,
    title: str,
    path: str | None = None,
    line: int | None = None,
    column: int | None = None,
) -> str:
    """GitHub's `::error` workflow command: an annotation on `path`'s line where known."""
    where = {"file": path, "line": line, "col": column, "title": title}
    shown = ",".join(f"{key}={_property(str(value))}" for key, value in where.items() if value)
    return f"::error {shown}::{_data(message)}"


def in_github_actions() -> bool:
    """Whether this runs in a GitHub Actions job (which sets GITHUB_ACTIONS=true)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def gitlab(results: Sequence[ValidateResult]) -> list[dict[str, object]]:
    """GitLab's code quality report: one issue per invalid file."""
    import hashlib  # here, not at every command's start-up

    issues: list[dict[str, object]] = []
    for result in results:
        if result.error is None:
            continue
        path, line, _ = _place(result)
        fingerprint = hashlib.sha256(f"{path}:{line}:{result.error}".encode()).hexdigest()
        issues.append(
            {
                "description": result.error,
                "check_name": "mlpcli-validate",
                "fingerprint": fingerprint,
                "severity": "major",
                "location": {"path": path, "lines": {"begin": line or 1}},
            }
        )
    return issues


def _place(result: ValidateResult) -> tuple[str, int | None, int | None]:
    """The file, line and column of a problem: where the error is when that is a file (not an
    override or a variable), else the config file itself."""
    location = result.location
    if location is not None and location.line is not None and Path(location.source).is_file():
        return location.source, location.line, location.column
    return result.path, None, None


def _data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's toolkit escapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """A workflow command's property value, escaped as GitHub's toolkit escapes it."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")
