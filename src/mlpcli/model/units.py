"""Numbers for people: byte sizes and large counts."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([KMGTP])(i?)B?|B)\s*", re.IGNORECASE)


def byte_size(count: int) -> str:
    """`44 B`, `1.5 KiB`, `2.0 GiB`: binary units, one decimal."""
    if count < 1024:
        return f"{count} B"
    power = min(6, (count.bit_length() - 1) // 10)
    return f"{count / 1024**power:.1f} {('KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB')[power - 1]}"


def byte_column(counts: Sequence[int]) -> list[str]:
    """A table column of byte sizes in one unit, the largest's (`0.99 MiB` beside `1.5 MiB`,
    never `1013.2 KiB` beside it); a nonzero size never shows as 0."""
    largest = max(counts, default=0)
    if largest < 1024:
        return [f"{count} B" for count in counts]
    power = min(6, (largest.bit_length() - 1) // 10)
    unit = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")[power - 1]
    scaled = [count / 1024**power for count in counts]
    return [f"{_decimals(value, 1)} {unit}" for value in scaled]


def _decimals(value: float, places: int) -> str:
    """`value` to `places` decimals, or as many more as a nonzero value needs not to read 0."""
    while places < 6 and value and float(f"{value:.{places}f}") == 0:
        places += 1
    return f"{value:.{places}f}"


def ms_text(milliseconds: float) -> str:
    """A time in milliseconds to three significant digits, never e-notation (`0.00812`,
    `12.3`, `1234`)."""
    if milliseconds >= 100 or milliseconds <= 0:
        return f"{milliseconds:.0f}"
    digits = 2 - math.floor(math.log10(milliseconds))
    return f"{milliseconds:.{digits}f}"


def share_text(fraction: float) -> str:
    """A share as a percentage that never hides what it is: a nonzero share is never `0%`
    (`<0.01%` below that), nor one short of all `100%`."""
    if fraction <= 0 or fraction >= 1:
        return f"{fraction:.0%}"
    if fraction < 1e-4:
        return "<0.01%"
    if fraction > 1 - 1e-4:
        return ">99.99%"
    for places in (0, 1, 2):
        text = f"{fraction:.{places}%}"
        if 0 < float(text[:-1]) < 100:
            return text
    return f"{fraction:.2%}"


def value_text(value: float) -> str:
    """A statistic to three significant digits, with more where three would round a value to
    -1, 0 or 1 that it is not (a maximum of 0.9998 is not `1`: saturation reads there)."""
    text = f"{value:.3g}"
    for digits in range(4, 10):
        if float(text) not in (-1.0, 0.0, 1.0) or float(text) == value:
            break
        text = f"{value:.{digits}g}"
    return text


def parse_byte_size(text: str) -> int | None:
    """Bytes from `80GiB`, `80 GB`, `512M`, `4096B`; None without a unit or not a size.
    KiB, MiB, GiB… are powers of 1024; KB, MB, GB… (and K, M, G…) powers of 1000."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    number, prefix, binary = match.groups()
    power = 0 if prefix is None else "KMGTP".index(prefix.upper()) + 1
    return int(float(number) * (1024 if binary else 1000) ** power)


def duration_text(seconds: float) -> str:
    """`40 s`, `25 min`, `2.5 h`: a duration for people, rounded."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def counted(count: int, noun: str) -> str:
    """`1 name`, `2 names`: a count and its noun (a plural by -s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def count_text(count: int) -> str:
    """`22`, `67,117`, `67.12 M`, `549.82 G`: exact below a million, then an SI prefix."""
    return f"{count:,}" if count < 10**6 else _prefixed(count)


def count_column(counts: Sequence[int]) -> list[str]:
    """A table column of counts in one format: grouped digits while every count is under a
    million (`528,384`), else an SI prefix on each (`528.38 k`, `12.86 M`)."""
    if max(counts, default=0) < 10**6:
        return [f"{count:,}" for count in counts]
    return [_prefixed(count) for count in counts]


SI_PREFIXES = ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"))


def _prefix(magnitude: float) -> tuple[int, str]:
    """The power of ten and SI prefix for `magnitude`: (0, "") below a thousand."""
    return next(((p, u) for p, u in SI_PREFIXES if magnitude >= 10**p), (0, ""))


def _prefixed(count: int) -> str:
    power, unit = _prefix(count)
    return f"{count / 10**power:.2f} {unit}" if power else str(count)


def rate_text(per_second: float, unit: str) -> str:
    """`2.92 MFLOP/s`, `950 FLOP/s`, `1.23 TFLOP/s`: three significant digits and an SI prefix,
    never e-notation."""
    rounded = float(f"{per_second:.3g}")  # 999.6 is 1.00 k, not 1000
    power, prefix = _prefix(abs(rounded))
    scaled = rounded / 10**power
    decimals = 2 if abs(scaled) < 10 else 1 if abs(scaled) < 100 else 0
    return f"{scaled:.{decimals}f} {prefix}{unit}"


def arrows(sizes: Sequence[int]) -> str:
    """`3 → 2 → 1`; a long list as its ends around the count: `64 → 64 → … (1025 sizes) … → 10`."""
    if len(sizes) <= 8:
        return " → ".join(map(str, sizes))
    head, tail = " → ".join(map(str, sizes[:3])), " → ".join(map(str, sizes[-2:]))
    return f"{head} → … ({len(sizes)} sizes) … → {tail}"
