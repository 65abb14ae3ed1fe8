"""A progress bar for sweeps (rich): chunks done, members done, config-steps per second, ETA.
Silent with `enabled=False` (the CLI's --quiet) and whenever stdout is not a terminal."""
from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class SweepProgress:
    """Context manager; call `advance(members, member_steps)` once per finished chunk."""

    def __init__(self, chunks: int, members: int, done_chunks: int = 0, done_members: int = 0,
                 enabled: bool | None = None, label: str = "sweep"):
        self.enabled = sys.stdout.isatty() if enabled is None else (enabled and sys.stdout.isatty())
        self.chunks, self.members = chunks, members
        self.done_chunks, self.done_members = done_chunks, done_members
        self.member_steps, self.start = 0, time.perf_counter()
        self._bar: Progress | None = None
        self._task = None
        self.label = label

    def _fields(self) -> dict[str, str]:
        rate = self.member_steps / max(time.perf_counter() - self.start, 1e-9)
        return {"chunks": f"{self.done_chunks}/{self.chunks}", "members": f"{self.done_members}/{self.members}",
                "rate": f"{rate:,.0f}"}

    def __enter__(self) -> "SweepProgress":
        if self.enabled:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("chunks {task.fields[chunks]}  members {task.fields[members]}  {task.fields[rate]} steps/s"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.members, completed=self.done_members, **self._fields())
        return self

    def advance(self, members: int, member_steps: int) -> None:
        self.done_chunks += 1
        self.done_members += members
        self.member_steps += member_steps
        if self._bar is not None:
            self._bar.update(self._task, advance=members, **self._fields())  # type: ignore[arg-type]

    @property
    def rate(self) -> float:
        """Config-steps per second since the bar started."""
        return self.member_steps / max(time.perf_counter() - self.start, 1e-9)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, exc, tb)
