"""Helpers the benchmarks share: where the evaluation data is, and timing."""

from __future__ import annotations

import gzip
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "bench" / ".cache"


def eval_dir(given: str | None = None) -> Path:
    """The shared evaluation data: --eval-dir, else $PIPELINE_EVAL_DIR, else ../shared/eval."""
    path = Path(given or os.environ.get("PIPELINE_EVAL_DIR") or REPO.parent / "shared" / "eval")
    if not path.is_dir():
        raise SystemExit(f"evaluation data not found at {path} (give --eval-dir or PIPELINE_EVAL_DIR)")
    return path


def read_jsonl_gz(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def median_of_runs(fn: Callable[[], float], runs: int) -> tuple[float, list[float]]:
    """Run ``fn`` (which returns a rate) ``runs`` times; the median and every value."""
    values = [fn() for _ in range(runs)]
    return statistics.median(values), values


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


class Progress:
    """A progress bar with rate and time left on stderr (only on a terminal) for a benchmark loop:
    ``with Progress("dedup memory", total=n) as bar: ... bar.advance(k)``."""

    def __init__(self, label: str, total: int | None, unit: str = "records"):
        from pipeline.progress import progress_bar

        self._bar = progress_bar(label, unit)
        self._task = self._bar.add_task(label, total=total)

    def __enter__(self) -> Progress:
        self._bar.start()
        return self

    def advance(self, n: int = 1) -> None:
        self._bar.advance(self._task, n)

    def __exit__(self, *exc) -> None:
        self._bar.stop()
