"""JSON text as mlpcli reads it: an object that names a key twice is an error, never its last
value taken silently."""

from __future__ import annotations

import json


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys: dict[str, object] = {}
    for key, value in pairs:
        if key in keys:
            raise ValueError(f"the key {key!r} twice in one object")
        keys[key] = value
    return keys


def loads(text: str | bytes) -> object:
    """`json.loads`, with a key named twice in an object a ValueError."""
    return json.loads(text, object_pairs_hook=_unique)
