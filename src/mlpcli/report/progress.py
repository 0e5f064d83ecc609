"""A progress bar on stderr for long work: only on a terminal, and only once it has taken a
second, so that quick commands and pipes never see one. It moves by the work each step does
(a layer of a chunk moves it by its FLOPs), shows the time elapsed, and the time left: from the
measured pre-run estimate until a step has finished, then from the pace so far."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Task

AFTER_S = 1.0
MIN_BAR, MAX_BAR = 10, 40  # the bar's width, as the terminal allows
TEXT_WIDTH = 32  # `100%`, `0:00:12, 0:01:23 left` and the spaces between the columns


class LateProgress:
    """`with LateProgress("running", [w1, w2, ...]) as bar: ... bar.advance()`, once a step;
    each step moves the bar by its weight (its share of the work). Steps None: work of no
    known end (rows counted as they are read), shown as a pulse and the time it has taken."""

    def __init__(self, description: str, steps: Sequence[float] | None) -> None:
        self.description = description
        self.steps = None if steps is None else list(steps)
        self.done = 0  # steps finished
        self.completed = 0.0  # their weights
        self.estimate_s: float | None = None
        self.started = time.monotonic()
        self._first: tuple[float, float] | None = None  # (when, work done) at the first step
        self._last: tuple[float, float] | None = None  # and at the latest
        self._lock = threading.Lock()
        self._closed = False
        self._bar: Any = None  # a rich.progress.Progress, imported only when one is shown
        self._task: Any = None
        self._timer: threading.Timer | None = None

    def __enter__(self) -> LateProgress:
        if Console(stderr=True).is_terminal:
            self._timer = threading.Timer(AFTER_S, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def expect(self, seconds: float) -> None:
        """The measured estimate of the whole work, for the time left before steps finish."""
        self.estimate_s = seconds

    def time_left(self) -> float | None:
        """Seconds left, counting down between steps: the work still to do at the pace of the
        steps since the first one finished, once two have; before that, at the pace of the
        estimate; None without either, or for work of no known end."""
        if self.steps is None:
            return None
        total = sum(self.steps)
        since, done = self._last or (self.started, 0.0)
        if self._first is not None and done > self._first[1]:
            seconds_per_work = (since - self._first[0]) / (done - self._first[1])
        elif self.estimate_s is not None and total:
            seconds_per_work = self.estimate_s / total
        else:
            return None
        return max(0.0, seconds_per_work * (total - done) - (time.monotonic() - since))

    def advance(self) -> None:
        """One more step finished."""
        with self._lock:
            steps = self.steps
            self.completed += steps[self.done] if steps and self.done < len(steps) else 0.0
            self.done += 1
            self._last = (time.monotonic(), self.completed)
            self._first = self._first or self._last
            if self._bar is not None:
                self._bar.update(self._task, completed=self.completed)

    def _show(self) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
        )
        from rich.text import Text

        class Times(ProgressColumn):
            """`0:00:12, 0:01:23 left`: since the work began, and by `time_left`."""

            def render(self, task: Task) -> Text:
                elapsed = _clock(time.monotonic() - bar.started)
                return Text(f"{elapsed}, {_clock(bar.time_left())} left")

        bar = self
        console = Console(stderr=True)
        # the description, the percentage and the times take about TEXT_WIDTH besides the bar
        room = console.width - len(self.description) - TEXT_WIDTH
        with self._lock:
            if self._closed:
                return
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=max(MIN_BAR, min(MAX_BAR, room))),
                TaskProgressColumn(),
                Times(),
                console=console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                self.description,
                total=None if self.steps is None else sum(self.steps),
                completed=self.completed,
            )

    def __exit__(self, *_: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._closed = True
            if self._bar is not None:
                self._bar.stop()


def _clock(seconds: float | None) -> str:
    """`0:01:23`, or `-:--:--` when unknown."""
    if seconds is None:
        return "-:--:--"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}"
