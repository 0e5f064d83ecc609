"""Tensors cast to a run's dtype, with torch: a value finite in a file that the dtype cannot
hold (1e39 in float32) is found, so that it is said rather than run as an infinity."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def nonfinite(tensor: torch.Tensor) -> bool:
    """Whether a block holds NaN or an infinity: its sum is finite when every value is (a sum
    that overflows is checked value by value), and costs no mask of the block."""
    import torch

    if not tensor.is_floating_point():
        return False
    half = tensor.element_size() < 4  # summed in float32: 16 bits overflow at 65504
    if math.isfinite(float(tensor.sum(dtype=torch.float32) if half else tensor.sum())):
        return False
    return not bool(torch.isfinite(tensor).all())


def first_past(original: torch.Tensor, cast: torch.Tensor) -> tuple[int, ...] | None:
    """Where the first value of `original` is that is finite there and infinite in `cast` (it
    in a narrower dtype, on any device); None where every one fits."""
    import torch

    if cast.dtype == original.dtype or not nonfinite(cast):
        return None
    found = (torch.isinf(cast) & torch.isfinite(original.to(cast.device))).nonzero()
    return tuple(int(i) for i in found[0]) if len(found) else None


def past_range(value: float, dtype: torch.dtype) -> str:
    """What is said of `value`, which `dtype` cannot hold."""
    import torch

    name = str(dtype).removeprefix("torch.")
    return f"{value:.9g} is past the range of {name} (±{torch.finfo(dtype).max:.9g})"
