"""Per-tensor statistics of a run, with torch: gathered chunk by chunk on the device as each
layer's result is queued, so that no activation is kept for them. The running figures stay on
the device until `result`, which reads them once.

Mean and variance combine chunks exactly (Chan's pairwise formula over count, mean and the sum
of squared deviations), so that a spread far below the mean's magnitude is not lost. The
histogram's range is the activation's own where it is bounded (sigmoid and softmax [0, 1], tanh
[-1, 1]); elsewhere it starts at the first chunk's range and doubles, merging bins in pairs,
until it holds every value: the same counts, whatever the chunks, for a bounded range; an
unbounded one's bins follow the first chunk's range, so they change with the chunk size.

Over the ranks of a `data` run each rank gathers its rows' figures and rank 0 combines them
(`combined`): counts, extremes and fractions exactly, mean and spread by the same formula; the
histogram over rank 0's range, widened the same way, a bin of another rank's range counted at
its centre.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mlpcli.model.activations import BOUNDED, WHOLE_ROW
from mlpcli.model.config import Activation
from mlpcli.model.results import TensorStats

BINS = 8
NEAR = 1e-3  # a sigmoid or tanh value within this of a bound is saturated
SOFTMAX_PEAK = 0.99  # a softmax row with a value above this is saturated


class Accumulator:
    """Running figures of one tensor, over the chunks it comes in."""

    def __init__(self, name: str, activation: Activation | None, device: torch.device) -> None:
        self.name = name
        self.activation = activation
        zero = torch.zeros((), dtype=torch.float64, device=device)
        self.count = self.rows = 0  # known on the host: shapes
        self.finite, self.mean, self.squares = zero.clone(), zero.clone(), zero.clone()
        self.zeros, self.nan, self.inf, self.saturated = (zero.clone() for _ in range(4))
        self.low = torch.full((), math.inf, dtype=torch.float64, device=device)
        self.high = torch.full((), -math.inf, dtype=torch.float64, device=device)
        self.range = BOUNDED.get(activation) if activation is not None else None
        self.histogram = torch.zeros(BINS, dtype=torch.float64, device=device)

    def add(self, values: torch.Tensor) -> None:
        """One chunk of the tensor, (rows, units)."""
        x = values.detach()
        finite = torch.isfinite(x)
        n = finite.sum(dtype=torch.float64)
        kept = torch.where(finite, x, 0).to(torch.float64)
        chunk_mean = kept.sum() / n.clamp(min=1)
        deviations = torch.where(finite, kept - chunk_mean, 0)
        chunk_squares = (deviations * deviations).sum()
        total = self.finite + n  # Chan et al.: combine (count, mean, M2) of two parts
        delta = chunk_mean - self.mean
        weight = torch.where(total > 0, n / total.clamp(min=1), 0)
        self.squares = self.squares + chunk_squares + delta * delta * self.finite * weight
        self.mean = self.mean + delta * weight
        self.finite = total
        self.count += x.numel()
        self.rows += x.shape[0]
        self.zeros += (x == 0).sum()
        self.nan += torch.isnan(x).sum()
        self.inf += torch.isinf(x).sum()
        self.saturated += self._saturated(x)
        self.low = torch.minimum(self.low, torch.where(finite, x, math.inf).min().double())
        self.high = torch.maximum(self.high, torch.where(finite, x, -math.inf).max().double())
        self._count_bins(x[finite].double())

    def _saturated(self, x: torch.Tensor) -> torch.Tensor:
        """Rows past SOFTMAX_PEAK of an activation of whole rows, else values within NEAR of
        a bound; nothing for an unbounded activation."""
        if self.activation in WHOLE_ROW:
            return (x.max(dim=-1).values > SOFTMAX_PEAK).sum()
        if self.activation in BOUNDED:
            low, high = BOUNDED[self.activation]
            return ((x <= low + NEAR) | (x >= high - NEAR)).sum()
        return torch.zeros((), dtype=torch.int64, device=x.device)

    def _count_bins(self, kept: torch.Tensor) -> None:
        if not kept.numel():
            return
        if self.activation not in BOUNDED:
            low, high = float(kept.min()), float(kept.max())
            if self.range is None:
                self.range = (low, high) if high > low else (low - 0.5, low + 0.5)
            while self.range != (grown := _holding(self.range, low, high)):
                self._widen(grown)
        assert self.range is not None
        start, end = self.range
        self.histogram += torch.histc(kept.clamp(start, end), BINS, start, end).double()

    def _widen(self, grown: tuple[float, float]) -> None:
        """The range doubled to `grown` (upwards or downwards), the bins merged in pairs."""
        merged = self.histogram.view(BINS // 2, 2).sum(dim=1)
        empty = torch.zeros_like(merged)
        up = self.range is not None and grown[0] == self.range[0]
        self.histogram = torch.cat([merged, empty] if up else [empty, merged])
        self.range = grown

    def result(self) -> TensorStats:
        """The figures, read from the device once."""
        finite, mean, squares, zeros, nan, inf, saturated, low, high = (
            torch.stack([self.finite, self.mean, self.squares, self.zeros.double(),
                         self.nan.double(), self.inf.double(), self.saturated.double(),
                         self.low, self.high]).tolist()
        )  # fmt: skip
        saturable = self.activation in BOUNDED
        of = self.rows if self.activation in WHOLE_ROW else self.count
        return TensorStats(
            name=self.name,
            count=int(finite),
            mean=mean if finite else math.nan,
            std=math.sqrt(squares / finite) if finite else math.nan,
            min=low if finite else math.nan,
            max=high if finite else math.nan,
            zeros=zeros / self.count if self.count else 0.0,
            saturated=saturated / of if saturable and of else None,
            nan=int(nan),
            inf=int(inf),
            histogram=tuple(int(c) for c in self.histogram.tolist()),
            histogram_range=self.range if finite else None,
        )


def combined(parts: Sequence[TensorStats]) -> TensorStats:
    """One tensor's figures from those of parts of its rows (a rank's each, in row order)."""
    seen = [part for part in parts if part.count]  # with finite values
    values = [part.count + part.nan + part.inf for part in parts]
    every, finite = sum(values), sum(part.count for part in seen)
    mean = sum(part.count * part.mean for part in seen) / finite if finite else math.nan
    squares = sum(part.count * (part.std**2 + (part.mean - mean) ** 2) for part in seen)

    def share(fraction: list[float]) -> float:  # a fraction of all values (or rows), overall
        return sum(f * n for f, n in zip(fraction, values, strict=True)) / every if every else 0.0

    first = parts[0]
    saturated = None if first.saturated is None else share([p.saturated or 0.0 for p in parts])
    histogram, span = _histogram(seen)
    return TensorStats(
        name=first.name,
        count=finite,
        mean=mean,
        std=math.sqrt(squares / finite) if finite else math.nan,
        min=min((part.min for part in seen), default=math.nan),
        max=max((part.max for part in seen), default=math.nan),
        zeros=share([part.zeros for part in parts]),
        saturated=saturated,
        nan=sum(part.nan for part in parts),
        inf=sum(part.inf for part in parts),
        histogram=histogram,
        histogram_range=span,
    )


def _histogram(parts: Sequence[TensorStats]) -> tuple[tuple[int, ...], tuple[float, float] | None]:
    """The parts' histograms over the first one's range, doubled (as `Accumulator._widen`
    does) until it holds every part's values; each bin counted where its centre falls (the
    ends clamped, as values are)."""
    spans = [part.histogram_range for part in parts if part.histogram_range is not None]
    if not spans:
        return (0,) * BINS, None
    low, high = min(part.min for part in parts), max(part.max for part in parts)
    span = spans[0]
    while span != (grown := _holding(span, low, high)):
        span = grown
    start, end = span
    counts = [0] * BINS
    for part in parts:
        if part.histogram_range is None:
            continue
        a, b = part.histogram_range
        for j, count in enumerate(part.histogram):
            centre = a + (j + 0.5) * (b - a) / BINS
            counts[min(BINS - 1, max(0, int((centre - start) / (end - start) * BINS)))] += count
    return tuple(counts), (start, end)


def _holding(span: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    """`span` doubled once towards the values it does not hold yet (upwards first); itself
    where it holds `low` to `high`."""
    start, end = span
    if high > end:
        return start, end + (end - start)
    if low < start:
        return start - (end - start), end
    return span
