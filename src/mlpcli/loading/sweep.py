"""Multirun sweeps: `seed=1,2,3 activation=relu,tanh` as the cartesian product of overrides."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from mlpcli.errors import UsageError, shortened

_CLOSE = {"[": "]", "{": "}"}


def split_values(value: str) -> list[str]:
    """Split on commas outside brackets and quotes: `[3,4],[5,6]` is two values."""
    values: list[str] = []
    current: list[str] = []
    stack: list[str] = []
    quote = ""
    for character in value:
        if quote:
            quote = "" if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character in _CLOSE:
            stack.append(_CLOSE[character])
        elif stack and character == stack[-1]:
            stack.pop()
        elif character == "," and not stack:
            values.append("".join(current))
            current = []
            continue
        current.append(character)
    values.append("".join(current))
    return values


def once_each(overrides: Sequence[str], sweeps: bool = False) -> None:
    """A key given twice is an error, as it is in a config file: neither value silently wins
    (the error names -m where the command `sweeps`)."""
    first: dict[str, str] = {}
    for override in overrides:
        key = override.partition("=")[0]
        if key in first:
            sweep = f", or sweep its values with -m {key}=A,B" if sweeps else ""
            raise UsageError(
                f"override '{shortened(override)}': {key} is given twice (also "
                f"'{shortened(first[key])}'); give it once{sweep}"
            )
        first[key] = override


def expand(overrides: Sequence[str]) -> list[tuple[str, ...]]:
    """Every combination of the overrides' values, the last override varying fastest; more
    than MAX_COMBINATIONS is an error before any is read."""
    choices = []
    for override in overrides:
        key, _, value = override.partition("=")
        values = split_values(value)
        if any(not v.strip() for v in values):
            message = f"override '{shortened(override)}': an empty value in a comma-separated sweep"
            raise UsageError(message)
        choices.append([f"{key}={v}" for v in values])
    count = math.prod(len(values) for values in choices)
    if count > MAX_COMBINATIONS:
        sizes = " x ".join(str(len(values)) for values in choices if len(values) > 1)
        raise UsageError(
            f"-m: the sweep is {sizes} = {count:,} runs; at most {MAX_COMBINATIONS:,} in one "
            "command (split it, or sweep fewer values)"
        )
    return list(itertools.product(*choices))


MAX_COMBINATIONS = 10_000  # runs one sweep makes: each is read, checked and held before any runs
