"""Progress bars of the long commands (replay, enrich, deadletter replay, `pipeline run`, benchmarks):
count, rate and time left, on stderr, only when stderr is a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")


class RateColumn(ProgressColumn):
    """Items per second, e.g. ``42.0 records/s``."""

    def __init__(self, unit: str = "records"):
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"– {self.unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.1f} {self.unit}/s" if speed < 100 else f"{speed:,.0f} {self.unit}/s",
                    style="progress.data.speed")


def progress_bar(label: str, unit: str = "records", console: Console | None = None,
                 enabled: bool | None = None, transient: bool = True) -> Progress:
    """A rich Progress with: label, bar, done/total, rate, elapsed, time left."""
    console = console or Console(stderr=True)
    if enabled is None:
        enabled = console.is_terminal
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), RateColumn(unit), TimeElapsedColumn(),
                    TextColumn("left"), TimeRemainingColumn(), console=console, disable=not enabled,
                    transient=transient)


def track(items: Iterable[T], label: str, total: int | None = None, unit: str = "records",
          enabled: bool | None = None) -> Iterator[T]:
    """``items`` with a progress bar on stderr (when it is a terminal)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if enabled is None:
        enabled = sys.stderr.isatty()
    with progress_bar(label, unit, enabled=enabled) as bar:
        task = bar.add_task(label, total=total)
        for item in items:
            yield item
            bar.advance(task)
