"""Progress bars for long commands (rich), quiet whenever stdout is not a terminal (CI, pipes, tests).

* `WorkBar`: units of known cost (the coord check's widths × seeds, weighted by cost), ETA from the
  measured rate;
* `ExpectedBar`: one opaque job with a measured runtime (a reproduction at full size): the bar fills
  with elapsed time against that expectation and says so; past it, it shows elapsed time only.
Sweeps have their own (`lazyrich.sweep.progress`).
"""
from __future__ import annotations

import re
import sys
import threading
import time
from types import TracebackType
from typing import Any, Optional


def _enabled(enabled: Optional[bool]) -> bool:
    return sys.stdout.isatty() if enabled is None else bool(enabled and sys.stdout.isatty())


class WorkBar:
    """Context manager; `advance(cost)` after each unit. `total` is the summed cost of all units."""

    def __init__(self, label: str, total: float, enabled: Optional[bool] = None):
        self.label, self.total, self.enabled = label, float(total), _enabled(enabled)
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "WorkBar":
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def advance(self, cost: float = 1.0) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=cost)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, exc, tb)


def seconds(runtime: str) -> Optional[float]:
    """The first duration in a runtime note: "116 s CPU" → 116, "4.5 min CPU" → 270, "est. hours" → None."""
    if runtime.lstrip().lower().startswith("not run"):
        return None  # e.g. "not run here: ... (paper: 90 min on 360 cores)": no measured time on this code
    m = re.search(r"(\d+(?:\.\d+)?)\s*(?:[-–]\s*(\d+(?:\.\d+)?)\s*)?(s|min|h)\b", runtime)
    if m is None:
        return None
    value = float(m.group(2) or m.group(1))  # the upper end of a range
    return value * {"s": 1, "min": 60, "h": 3600}[m.group(3)]


class ExpectedBar:
    """A bar that fills with elapsed time against a measured runtime (refreshed from a thread)."""

    def __init__(self, label: str, expected_s: Optional[float], enabled: Optional[bool] = None):
        self.label, self.expected, self.enabled = label, expected_s, _enabled(enabled)
        self._bar: Any = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "ExpectedBar":
        if not self.enabled:
            return self
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        what = f"expected ~{self.expected:.0f} s (measured runtime)" if self.expected else "no measured runtime"
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                             TimeRemainingColumn(), TextColumn(what))
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=self.expected)
        start = time.perf_counter()

        def tick() -> None:
            while not self._stop.wait(0.5):
                elapsed = time.perf_counter() - start
                if self.expected:
                    self._bar.update(task, completed=min(elapsed, 0.99 * self.expected))
        self._thread = threading.Thread(target=tick, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.__exit__(kind, exc, tb)
