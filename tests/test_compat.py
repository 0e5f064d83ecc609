"""The Typer shim: usage errors are recognised on every supported Typer, and nothing else is."""

from __future__ import annotations

import pytest
import typer

from mlpcli import compat
from mlpcli.errors import UsageError


def test_a_usage_error_from_typer_is_recognised_with_its_command_path() -> None:
    app = typer.Typer()
    app.command()(lambda: None)
    context = typer.main.get_command(app).make_context("mlpcli", [])
    error = typer.BadParameter("no good", ctx=context)
    assert compat.usage_error(error) == ("Invalid value: no good", "mlpcli")


def test_other_exceptions_are_not_usage_errors() -> None:
    assert compat.usage_error(ValueError("x")) is None
    assert compat.usage_error(UsageError("mlpcli's own")) is None


def test_a_separate_clicks_errors_are_not_typers_on_typer_with_its_own_click() -> None:
    click = pytest.importorskip("click")  # a dev dependency, as another tool would bring it
    carries_its_own = not issubclass(typer.BadParameter, click.ClickException)
    assert (compat.usage_error(click.UsageError("x")) is None) == carries_its_own
