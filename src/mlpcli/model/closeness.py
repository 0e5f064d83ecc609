"""When two arrays count as equal: `|got - expected| <= atol + rtol * |expected|`, NaN equal to NaN.

`run --expect` checks each element against its own expected value, as `numpy.allclose` does.
`mlpcli compare` checks a device's tensor against the reference tensor's largest magnitude
(`PerTensor`): another device rounds each sum differently, and a sum that cancels keeps the
absolute error of its terms, so an element near zero is as close as its tensor's scale allows.
"""

from __future__ import annotations

import math
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


def difference(got: Array, expected: Array, tolerance: Tolerance) -> Difference:
    """Compare two arrays of one shape, element by element (`PerTensor` scales rtol by the
    reference's largest magnitude instead)."""
    if got.size == 0:
        return Difference(0.0, 0.0, (), 0.0, 0.0, tolerance.atol, True)
    gap, relative = _gaps(got, expected)
    magnitude = np.abs(expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        allowed = tolerance.atol + tolerance.rtol * np.nan_to_num(magnitude)
        excess = np.where(gap == 0, 0.0, gap / allowed)
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


def _gaps(got: Array, expected: Array) -> tuple[Array, Array]:
    """Each element's absolute and relative difference: 0 where equal (NaN and NaN, equal
    infinities), infinite for NaN against a number or infinities of other signs."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(got - expected)
        gap[got == expected] = 0.0  # equal infinities too
        gap[np.isnan(got) & np.isnan(expected)] = 0.0
        gap[np.isnan(gap)] = np.inf  # NaN against a number
        relative = np.where(gap == 0, 0.0, gap / np.abs(expected))
    relative[np.isnan(relative)] = np.inf  # inf against inf of the other sign
    return gap, relative


class PerTensor:
    """One tensor against its reference at the reference's scale (its largest finite
    magnitude), taken a block of rows at a time: the Difference the whole tensors give.

    With a single scale the worst element is the largest gap (the first of equal ones), so a
    block's own worst is all that is kept.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.columns = 0
        self.scale = 0.0  # the reference's largest finite magnitude so far
        self.max_rel = 0.0
        self.worst: tuple[float, tuple[int, ...], float, float] | None = None  # gap, at, values
        self.first: tuple[tuple[int, ...], float, float] | None = (
            None  # the first gap that is not 0
        )

    def add(self, got: Array, expected: Array) -> None:
        """The next rows of the tensor (a weight or a bias: the whole of it, once)."""
        first_row, self.rows = self.rows, self.rows + (got.shape[0] if got.ndim else 1)
        self.columns = got.shape[1] if got.ndim > 1 else self.columns
        if got.size == 0:
            return
        gap, relative = _gaps(got, expected)
        finite = np.abs(expected[np.isfinite(expected)])
        self.scale = max(self.scale, float(finite.max()) if finite.size else 0.0)
        self.max_rel = max(self.max_rel, float(relative.max()))

        def at(flat: int) -> tuple[tuple[int, ...], float, float]:
            index = tuple(int(i) for i in np.unravel_index(flat, got.shape))
            return (first_row + index[0], *index[1:]), float(got[index]), float(expected[index])

        largest = int(np.argmax(gap))
        if self.worst is None or gap.flat[largest] > self.worst[0]:
            self.worst = (float(gap.flat[largest]), *at(largest))
        if self.first is None and gap.flat[largest] > 0:
            self.first = at(int(np.argmax(gap.ravel() > 0)))

    def result(self, tolerance: Tolerance) -> Difference:
        """How far the tensor is from its reference, at its scale."""
        allowed = tolerance.atol + tolerance.rtol * self.scale
        if self.worst is None:
            return Difference(0.0, 0.0, (), 0.0, 0.0, allowed, True)
        gap, index, got, expected = self.worst
        if allowed == 0 and gap > 0 and self.first is not None:  # every gap is infinitely over
            index, got, expected = self.first
        return Difference(
            max_abs=gap,
            max_rel=self.max_rel,
            worst=index,
            got=got,
            expected=expected,
            allowed=allowed,
            within=gap <= allowed,
            excess=0.0 if not gap else gap / allowed if allowed else math.inf,
        )
