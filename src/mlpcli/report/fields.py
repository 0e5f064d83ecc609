"""`--field PATH`: one value out of a JSON result, by dotted keys and list indices."""

from __future__ import annotations

import json
from collections.abc import Sequence

from mlpcli.errors import UsageError
from mlpcli.report import records


def select(data: object, path: str) -> object:
    """The value at `path` (`output.0.0`, `tensors.1.shape`); UsageError naming what exists."""
    current = data
    parts = path.split(".")
    for depth, part in enumerate(parts):
        here = ".".join(parts[:depth]) or "the result"
        if isinstance(current, dict):
            if part not in current:
                keys = ", ".join(current)
                raise UsageError(f"--field {path}: no key {part!r} in {here}; keys there: {keys}")
            current = current[part]
        elif isinstance(current, Sequence) and not isinstance(current, str):
            if not part.isdecimal() or int(part) >= len(current):
                span = f"0..{len(current) - 1}" if current else "none: it is empty"
                raise UsageError(f"--field {path}: {here} is a list; indices there: {span}")
            current = current[int(part)]
        else:
            raise UsageError(f"--field {path}: {here} is {json.dumps(current)}, with no fields")
    return current


def text(value: object) -> str:
    """A scalar as plain text (strings unquoted), anything else as one line of JSON."""
    if isinstance(value, str):
        return value
    return "".join(records.json_pieces(value))
