"""The one place where supported Typer versions differ.

Before 0.26 Typer builds on the separate `click` package; from 0.26 on it carries its own copy,
and a separate `click` (installed for another tool) has exception classes that Typer never
raises. Typer exports `BadParameter` in every version, so Click's base class is found from it.
"""

from __future__ import annotations

import typer

_CLICK_EXCEPTION: type[Exception] = next(
    kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "ClickException"
)


def usage_error(error: BaseException) -> tuple[str, str] | None:
    """(message, command path) for a usage error Typer raised; None for any other exception."""
    if not isinstance(error, _CLICK_EXCEPTION):
        return None
    context = getattr(error, "ctx", None)
    message = error.format_message().replace("Value error, ", "")  # type: ignore[attr-defined]
    return message, getattr(context, "command_path", None) or "mlpcli"
