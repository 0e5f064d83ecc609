"""When two arrays count as equal: `|got - expected| <= atol + rtol * |expected|`, NaN equal to NaN.

`run --expect` checks each element against its own expected value, as `numpy.allclose` does.
`mlpcli compare` checks a device's tensor against the reference tensor's largest magnitude
(`per_tensor`): another device rounds each sum differently, and a sum that cancels keeps the
absolute error of its terms, so an element near zero is as close as its tensor's scale allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlpcli.model.config import DType

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Tolerance:
    """Absolute and relative tolerance."""

    atol: float
    rtol: float


# torch.testing.assert_close's defaults: the rounding of another device or kernel stays within
# them (float32 CPU against CUDA: a few 1e-6 where a sum cancels); TF32 or a wrong kernel does not.
DEFAULT_TOLERANCES = {
    DType.FLOAT64: Tolerance(atol=1e-7, rtol=1e-7),
    DType.FLOAT32: Tolerance(atol=1e-5, rtol=1.3e-6),
    DType.FLOAT16: Tolerance(atol=1e-5, rtol=1e-3),
    DType.BFLOAT16: Tolerance(atol=1e-5, rtol=1.6e-2),
}


def tolerance_for(dtype: DType, atol: float | None, rtol: float | None) -> Tolerance:
    """The tolerance given, each part not given being the default for `dtype`."""
    default = DEFAULT_TOLERANCES[dtype]
    return Tolerance(
        atol=default.atol if atol is None else atol, rtol=default.rtol if rtol is None else rtol
    )


@dataclass(frozen=True)
class Difference:
    """How far `got` is from `expected`, and the element that is worst against the tolerance."""

    max_abs: float
    max_rel: float  # element by element
    worst: tuple[int, ...]  # index of the element furthest beyond (or nearest to) its allowance
    got: float
    expected: float
    allowed: float  # the allowance at `worst`
    within: bool
    excess: float = 0.0  # the difference at `worst` over its allowance


def difference(
    got: Array, expected: Array, tolerance: Tolerance, *, per_tensor: bool = False
) -> Difference:
    """Compare two arrays of one shape; `per_tensor` scales rtol by expected's largest magnitude."""
    if got.size == 0:
        return Difference(0.0, 0.0, (), 0.0, 0.0, tolerance.atol, True)
    magnitude = np.abs(expected)
    if per_tensor:
        finite = magnitude[np.isfinite(magnitude)]
        magnitude = np.full_like(magnitude, finite.max() if finite.size else 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(got - expected)
        gap[got == expected] = 0.0  # equal infinities too
        gap[np.isnan(got) & np.isnan(expected)] = 0.0
        gap[np.isnan(gap)] = np.inf  # NaN against a number
        allowed = tolerance.atol + tolerance.rtol * np.nan_to_num(magnitude)
        relative = np.where(gap == 0, 0.0, gap / np.abs(expected))
        excess = np.where(gap == 0, 0.0, gap / allowed)
    relative[np.isnan(relative)] = np.inf  # inf against inf of the other sign
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), got.shape))
    return Difference(
        max_abs=float(gap.max()),
        max_rel=float(relative.max()),
        worst=worst,
        got=float(got[worst]),
        expected=float(expected[worst]),
        allowed=float(allowed[worst]),
        within=bool((gap <= allowed).all()),
        excess=float(excess[worst]),
    )
