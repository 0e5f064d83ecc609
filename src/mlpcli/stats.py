"""Per-tensor statistics of a run, with torch: gathered chunk by chunk on the device as each
layer's result is queued, so that no activation is kept for them."""

from __future__ import annotations

import math

import torch

from mlpcli.config import Activation
from mlpcli.results import TensorStats

BINS = 8
NEAR = 1e-3  # a sigmoid or tanh value this close to a bound is saturated
SOFTMAX_PEAK = 0.99  # a softmax row with a value above this is saturated


class Accumulator:
    """Running figures of one tensor, over the chunks it comes in."""

    def __init__(self, name: str, activation: Activation | None) -> None:
        self.name = name
        self.activation = activation
        self.count = self.finite = self.zeros = self.nan = self.inf = self.saturated = 0
        self.rows = 0
        self.total = self.squares = 0.0
        self.low, self.high = math.inf, -math.inf
        self.range: tuple[float, float] | None = None  # the histogram's, from the first chunk
        self.histogram: torch.Tensor | None = None

    def add(self, values: torch.Tensor) -> None:
        """One chunk of the tensor, (rows, units)."""
        x = values.detach().to(torch.float64)
        finite = torch.isfinite(x)
        kept = x[finite]
        self.count += x.numel()
        self.rows += x.shape[0]
        self.finite += kept.numel()
        self.nan += int(torch.isnan(x).sum())
        self.inf += int(torch.isinf(x).sum())
        self.zeros += int((x == 0).sum())
        self.saturated += self._saturated(x)
        if kept.numel():
            self.total += float(kept.sum())
            self.squares += float((kept * kept).sum())
            self.low = min(self.low, float(kept.min()))
            self.high = max(self.high, float(kept.max()))
            if self.range is None:
                low, high = self.low, self.high
                self.range = (low, high) if high > low else (low - 0.5, high + 0.5)
            low, high = self.range
            counts = torch.histc(kept.clamp(low, high), BINS, low, high)
            self.histogram = counts if self.histogram is None else self.histogram + counts

    def _saturated(self, x: torch.Tensor) -> int:
        if self.activation is Activation.SIGMOID:
            return int(((x < NEAR) | (x > 1 - NEAR)).sum())
        if self.activation is Activation.TANH:
            return int((x.abs() > 1 - NEAR).sum())
        if self.activation is Activation.SOFTMAX:
            return int((x.max(dim=-1).values > SOFTMAX_PEAK).sum())
        return 0

    def result(self) -> TensorStats:
        mean = self.total / self.finite if self.finite else math.nan
        variance = self.squares / self.finite - mean * mean if self.finite else math.nan
        saturable = self.activation in (Activation.SIGMOID, Activation.TANH, Activation.SOFTMAX)
        of = self.rows if self.activation is Activation.SOFTMAX else self.count
        return TensorStats(
            name=self.name,
            mean=mean,
            std=math.sqrt(max(variance, 0.0)) if self.finite else math.nan,
            min=self.low if self.finite else math.nan,
            max=self.high if self.finite else math.nan,
            zeros=self.zeros / self.count,
            saturated=self.saturated / of if saturable else None,
            nan=self.nan,
            inf=self.inf,
            histogram=tuple(int(c) for c in self.histogram.tolist())
            if self.histogram is not None
            else (),
            histogram_range=self.range,
        )
