"""A progress bar on stderr for long work: only on a terminal, and only once it has taken a
second, so that quick commands and pipes never see one."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console

AFTER_S = 1.0


class LateProgress:
    """`with LateProgress("running layers", total) as bar: ... bar.advance(done)`."""

    def __init__(self, description: str, total: int) -> None:
        self.description = description
        self.total = total
        self.done = 0
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

    def advance(self, done: int | None = None) -> None:
        """Record `done` steps (one more when None)."""
        with self._lock:
            self.done = self.done + 1 if done is None else done
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done)

    def _show(self) -> None:
        from rich.progress import Progress

        with self._lock:
            if self._closed:
                return
            self._bar = Progress(console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, completed=self.done)

    def __exit__(self, *_: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._closed = True
            if self._bar is not None:
                self._bar.stop()
