"""A bench sweep as a picture, with matplotlib (optional: `pip install matplotlib`): the forward
time (median, min to max) beside the throughput, against the first key swept, a line (points,
for categories) for each combination of the other keys."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpcli.errors import UnavailableError, UsageError, install_hint
from mlpcli.model.results import BenchResult, override_values, swept_keys

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SUFFIXES = (".svg", ".png")
LOG_FROM = 10  # an axis whose numbers span this factor or more is drawn on a log scale
PNG_DPI = 200
Rate = Callable[[BenchResult], float | None]
THROUGHPUT: dict[bool, tuple[str, Rate]] = {  # by whether the FLOPs of a row differ
    False: ("samples/s", lambda result: result.samples_per_s),
    True: ("FLOP/s (from the shapes' FLOPs)", lambda result: result.flops_per_s),
}


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
    """The picture, in the format `plot`'s suffix names: the forward time (the median, a bar
    from the fastest pass to the slowest) beside the throughput (samples/s, or FLOP/s where the
    sweep changes the work a row takes), against the first swept key (a log axis where its
    numbers span LOG_FROM or more), a line per combination of the other swept keys (points
    alone where the key's values are categories); units in the axis labels."""
    swept = swept_keys(result.overrides for result in results)
    lines = _lines(results, swept)
    numbers = _numbers(lines)
    per_row = {result.flops / result.config.batch_size for result in results}
    throughput_label, throughput = THROUGHPUT[len(per_row) > 1]
    unit, scale = _time_unit(max(result.max_ms for result in results))
    figure = _figure_class(plot)(figsize=(10, 4.2), layout="constrained")
    timing, rates = figure.subplots(1, 2)
    for name, points in lines.items():
        at: list[float] | list[str] = [x for x, _ in points]
        if numbers is not None:
            at = [numbers[x] for x, _ in points]
        marks = {"marker": "o", "linestyle": "none" if numbers is None else "-", "label": name}
        _draw(timing, rates, at, [result for _, result in points], scale, throughput, marks)
    _scale_y(timing, [t * scale for r in results for t in (r.min_ms, r.max_ms) if t], plain=True)
    _scale_y(rates, [y for result in results if (y := throughput(result)) is not None])
    timing.set_ylabel(f"forward pass ({unit}): median, min … max")
    rates.set_ylabel(throughput_label)
    for panel in (timing, rates):
        _finish(panel, swept, numbers, legend=len(lines) > 1)
    devices = ", ".join(dict.fromkeys(result.device for result in results))
    passes = len(results[0].forward_ms)
    figure.suptitle(f"{results[0].config.name} on {devices}: {passes} forward passes each")
    return _saved(figure, plot.suffix.lower().removeprefix("."))


def _draw(
    timing: Axes,
    rates: Axes,
    at: Sequence[float] | Sequence[str],
    runs: Sequence[BenchResult],
    scale: float,
    throughput: Callable[[BenchResult], float | None],
    marks: dict[str, Any],
) -> None:
    """One line of each panel: the median times `scale` with bars to the fastest and slowest
    pass, and the throughput (a gap where there is none)."""
    medians = [result.median_ms * scale for result in runs]
    spread = [
        [m - r.min_ms * scale for m, r in zip(medians, runs, strict=True)],
        [r.max_ms * scale - m for m, r in zip(medians, runs, strict=True)],
    ]
    timing.errorbar(at, medians, yerr=spread, capsize=3, **marks)
    ys = [throughput(result) for result in runs]
    rates.plot(at, [float("nan") if y is None else y for y in ys], **marks)


def _numbers(lines: dict[str, list[tuple[str, BenchResult]]]) -> dict[str, float] | None:
    """Each value of the first swept key as a number, in the order swept; None where any is
    not one: the values are categories."""
    xs = list(dict.fromkeys(x for points in lines.values() for x, _ in points))
    numbers = {x: number for x in xs if (number := _number(x)) is not None}
    return numbers if len(numbers) == len(xs) else None


def _finish(
    panel: Axes, swept: Sequence[str], numbers: dict[str, float] | None, *, legend: bool
) -> None:
    """A panel's x axis (numeric where `numbers` gives the swept values'), grid and legend."""
    if numbers is not None:
        _numeric_x(panel, list(numbers), list(numbers.values()))
    panel.set_xlabel(swept[0])
    panel.grid(True, alpha=0.3)
    if legend:
        panel.legend(title=", ".join(swept[1:]), fontsize="small")


def _lines(
    results: Sequence[BenchResult], swept: Sequence[str]
) -> dict[str, list[tuple[str, BenchResult]]]:
    """The plot's lines: the results of each combination of the swept keys after the first
    (or the network's name), each as (the first key's value, the result), in sweep order."""
    lines: dict[str, list[tuple[str, BenchResult]]] = {}
    for result in results:
        values = override_values(result.overrides)
        label = ", ".join(values[key] for key in swept[1:]) or result.config.name
        lines.setdefault(label, []).append((values[swept[0]], result))
    return lines


def _saved(figure: Figure, kind: str) -> bytes:
    """The figure as a file of `kind`: an SVG without its date (the same bytes for the same
    figure), anything else at PNG_DPI."""
    buffer = io.BytesIO()
    if kind == "svg":
        figure.savefig(buffer, format=kind, metadata={"Date": None})
    else:
        figure.savefig(buffer, format=kind, dpi=PNG_DPI)
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
        raise UnavailableError(
            f"--plot {plot}: drawing it needs matplotlib: {install_hint('plot')}"
        ) from None
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


def _time_unit(longest_ms: float) -> tuple[str, float]:
    """The unit a time axis reads best in (µs, ms or s) and its factor from milliseconds."""
    if longest_ms < 1:
        return "µs", 1e3
    return ("ms", 1.0) if longest_ms < 1e3 else ("s", 1e-3)


def _scale_y(panel: Axes, figures: Sequence[float], *, plain: bool = False) -> None:
    """Log where the figures span LOG_FROM or more, ticked at 1, 2 and 5 of each power of ten;
    ticks with SI prefixes (`12 k`), or `plain` numbers (`0.5`: a time, whose unit its label
    names), the unit in the axis label."""
    from matplotlib.ticker import EngFormatter, LogLocator, StrMethodFormatter

    if log_scale(figures):
        panel.set_yscale("log")
        panel.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        panel.minorticks_off()
    formatter = StrMethodFormatter("{x:g}") if plain else EngFormatter()
    panel.yaxis.set_major_formatter(formatter)
