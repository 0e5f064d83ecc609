"""A bench sweep as a picture, with matplotlib (optional: `pip install matplotlib`): samples/s
and FLOP/s against the first key swept, a line for each combination of the other keys."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlpcli.errors import UnavailableError, UsageError
from mlpcli.model.results import BenchResult, given, swept_keys

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL = "pip install matplotlib (or, from this checkout, pip install -e '.[plot]')"
SUFFIXES = (".svg", ".png")
LOG_FROM = 10  # an axis whose numbers span this factor or more is drawn on a log scale
Rate = Callable[[BenchResult], float | None]
RATES: tuple[tuple[str, str, Rate], ...] = (  # (axis label, tick unit, figure)
    ("samples/s", "", lambda result: result.samples_per_s),
    ("FLOP/s (from the shapes' FLOPs)", "FLOP/s", lambda result: result.flops_per_s),
)


def check(plot: Path, combinations: Sequence[Sequence[str]]) -> None:
    """UsageError or UnavailableError, before anything is timed, for a plot it cannot draw:
    `combinations` (each its overrides) must sweep a key over two values or more."""
    if not swept_keys(combinations):
        raise UsageError(
            f"--plot {plot}: a plot draws a sweep: -m with a key of two values or more "
            "(-m batch=1,16,256)"
        )
    _figure_class(plot)


def bench_plot(results: Sequence[BenchResult], plot: Path) -> bytes:
    """The picture, in the format `plot`'s suffix names: two panels, samples/s and FLOP/s,
    against the first swept key (a log axis where its numbers span LOG_FROM or more), a line
    per combination of the other swept keys; the network, the device and the passes timed in
    the title."""
    swept = swept_keys(result.overrides for result in results)
    x_key = swept[0]
    lines: dict[str, list[tuple[str, BenchResult]]] = {}
    for result in results:
        values = given(result.overrides)
        label = ", ".join(values[key] for key in swept[1:]) or result.config.name
        lines.setdefault(label, []).append((values[x_key], result))
    xs = list(dict.fromkeys(x for points in lines.values() for x, _ in points))
    numbers = {x: number for x in xs if (number := _number(x)) is not None}
    numeric = len(numbers) == len(xs)  # else the values are categories, in the order swept
    figure = _figure_class(plot)(figsize=(10, 4.2), layout="constrained")
    for panel, (label, unit, rate) in zip(figure.subplots(1, 2), RATES, strict=True):
        for name, points in lines.items():
            at = [numbers[x] if numeric else x for x, _ in points]
            ys = [rate(result) for _, result in points]
            panel.plot(at, [float("nan") if y is None else y for y in ys], marker="o", label=name)
        _scale_y(panel, [y for result in results if (y := rate(result)) is not None], unit)
        if numeric:
            _numeric_x(panel, xs, [numbers[x] for x in xs])
        panel.set_xlabel(x_key)
        panel.set_ylabel(label)
        panel.grid(True, alpha=0.3)
        if len(lines) > 1:
            panel.legend(title=", ".join(swept[1:]), fontsize="small")
    devices = ", ".join(dict.fromkeys(result.device for result in results))
    passes = len(results[0].forward_ms)
    figure.suptitle(f"{results[0].config.name} on {devices}: median of {passes} forward passes")
    buffer = io.BytesIO()
    kind = plot.suffix.lower().removeprefix(".")
    figure.savefig(buffer, format=kind, metadata={"Date": None} if kind == "svg" else None)
    return buffer.getvalue()


def log_scale(numbers: Sequence[float]) -> bool:
    """Whether an axis of `numbers` reads best on a log scale: all positive, spanning a factor
    of LOG_FROM or more."""
    return bool(numbers) and min(numbers) > 0 and max(numbers) >= LOG_FROM * min(numbers)


def _figure_class(plot: Path) -> type[Figure]:
    """matplotlib's Figure (no pyplot: no GUI backend, no global state)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UnavailableError(f"--plot {plot}: drawing it needs matplotlib: {INSTALL}") from None
    return Figure


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric_x(panel: Axes, texts: Sequence[str], numbers: Sequence[float]) -> None:
    """A numeric x axis with a tick at each value swept, as it was typed."""
    if log_scale(numbers):
        panel.set_xscale("log")
        panel.minorticks_off()
    panel.set_xticks(list(numbers), labels=list(texts))


def _scale_y(panel: Axes, figures: Sequence[float], unit: str) -> None:
    """Log where the figures span LOG_FROM or more, ticked at 1, 2 and 5 of each power of ten;
    ticks with SI prefixes (`12 kFLOP/s`)."""
    from matplotlib.ticker import EngFormatter, LogLocator

    if log_scale(figures):
        panel.set_yscale("log")
        panel.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        panel.minorticks_off()
    panel.yaxis.set_major_formatter(EngFormatter(unit=unit))
