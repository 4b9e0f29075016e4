"""A stage run in several processes of its worker, so one worker uses the cores it is given (issue 20).

A stage whose records are independent (``Stage.parallel_safe``: nothing carried from one record to
the next, e.g. entities) may run in ``stages.processes[name]`` processes: the worker's own and
child processes beside it. The worker keeps the transport (one consumer, one producer, the batch);
each batch is cut into contiguous chunks of about equal text length, a few per process
(``CHUNKS_PER_PROCESS``); every child is handed a chunk, the worker works on the next one itself,
and whoever is done takes the next, so they finish the batch at about the same time. A batch of one
record never leaves the worker (a hop to a child and back costs milliseconds on a busy machine),
so light traffic keeps in-process latency. Each process builds the stage (loads its models) once,
when the worker starts (the worker is ready when every child is).

Faults: a record that runs past ``stages.limits.time_limit_s`` is stopped like in-process
(``RecordClock``), in whichever process it runs; a child stuck in one C call past its chunk's
limit, or a child that dies (SIGKILL, out of memory), is replaced, and its chunk's records are
tried again one by one in the new children, so only the record that hangs or kills its child again
is dead-lettered (``timeout`` or ``stage_error``); the others go on. ``TemporaryFailure`` in any
process fails the batch, as in-process (the worker retries it).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pipeline.records import STAGE_ERROR, TIMEOUT, BadInput, TemporaryFailure
from pipeline.stages.base import Context, Result, Stage

log = logging.getLogger("pipeline.stage")

#: seconds a chunk may take beyond ``time_limit_s`` per record before its child is replaced (a child
#: stuck in one C call never sees the record clock's interruption)
CHUNK_GRACE_S = 10.0
#: seconds the children may take to build the stage (load its models) when the worker starts
START_TIMEOUT_S = 300.0
#: chunks per process in a batch: a process that is done takes the next chunk, so one slow record (a
#: long text, a slower language's tagger) does not leave the others idle until the batch ends
CHUNKS_PER_PROCESS = 4


def usable_cores(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The cores this process may use: its CPU affinity, lowered by a cgroup CPU quota (a
    container's CPU limit, rounded up), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = open(cpu_max, encoding="ascii").read().split()[:2]
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def chunks(weights: list[int], parts: int) -> list[range]:
    """At most ``parts`` contiguous, non-empty index ranges of ``weights`` with about equal sums
    (equal counts when every weight is 0)."""
    n = len(weights)
    parts = max(1, min(parts, n))
    if not any(weights):
        weights = [1] * n
    total = sum(weights)
    out: list[range] = []
    start = acc = 0
    for i, w in enumerate(weights):
        acc += w
        parts_left = parts - len(out) - 1
        # close the chunk at its share of the total, keeping at least one record for every part left
        if parts_left and (acc >= total * (len(out) + 1) / parts or n - (i + 1) == parts_left):
            out.append(range(start, i + 1))
            start = i + 1
    out.append(range(start, n))
    return [r for r in out if len(r)]


# --- in the child ---------------------------------------------------------------------------------

_child: dict[str, Any] = {}


def _child_start(name: str, settings: Any, ready: Any) -> None:
    """Build the stage once per child (its failure is kept and raised by every task, so the worker
    stops loudly instead of pebble starting child after child)."""
    try:
        from pipeline.stages import build_stage, freeze_loaded_objects

        _child["stage"] = build_stage(name, settings)
        freeze_loaded_objects()
    except BaseException as exc:  # noqa: BLE001 - given back to the worker by the first task
        _child["error"] = f"{type(exc).__name__}: {exc}"
    _child["ready"] = ready


def _child_ready(timeout_s: float) -> int:
    """Wait until every child has built its stage (one such task per child: the barrier keeps a
    child from taking two), then give this child's pid."""
    if "error" in _child:
        raise RuntimeError(_child["error"])
    _child["ready"].wait(timeout_s)
    return os.getpid()


def _as_result(out: Any) -> Any:
    """A result as it crosses to the worker: a record, or ``("bad", reason, message)`` (exceptions
    of stage code do not all pickle, and a traceback does not cross at all)."""
    if not isinstance(out, Exception):
        return out
    if isinstance(out, BadInput):
        return ("bad", out.reason, out.message)
    return ("bad", STAGE_ERROR, "".join(traceback.format_exception(out, limit=6)).strip())


def _run_chunk(stage: Stage, records: list[dict[str, Any]], contexts: list[Context]) -> tuple:
    """``stage`` over one chunk: results, each record's own ms, and the counters it added."""
    stage.stats.extra = Counter()
    stage.stats.keyed = {}
    stage._record_ms = []
    outs = stage.process_many(records, contexts)
    record_ms = stage._record_ms if len(stage._record_ms) == len(records) else None
    return [_as_result(o) for o in outs], record_ms, stage.stats.extra, stage.stats.keyed, stage.stats.gauges


def _child_run(records: list[dict[str, Any]], contexts: list[Context]) -> tuple:
    if "error" in _child:
        raise RuntimeError(_child["error"])
    return _run_chunk(_child["stage"], records, contexts)


# --- in the worker --------------------------------------------------------------------------------

class ProcessPoolStage(Stage):
    """Stage ``name`` (of class ``factory``) in the worker's process and ``processes - 1`` child
    processes: see the module. ``inner`` is the worker's own copy of the stage."""

    def __init__(self, name: str, factory: type[Stage], settings: Any, processes: int, inner: Stage):
        super().__init__()
        self.name = name
        self.inner = inner
        self.processes = processes
        self.children = processes - 1
        for attr in ("batch_max", "batches_by_time", "record_metrics", "accepts_raw_events"):
            setattr(self, attr, getattr(factory, attr))
        self.batch_least = max(factory.batch_least, processes)  # a batch sized by time: a record per process
        self.time_limit_s = settings.stages.limits.time_limit_s
        self._lock = threading.RLock()  # a chunk's callback may hand out the next chunk at once
        from pebble import ProcessPool

        context = multiprocessing.get_context("forkserver")  # children start without the worker's threads
        ready = context.Barrier(self.children)
        self._pool = ProcessPool(max_workers=self.children, context=context, initializer=_child_start,
                                 initargs=(name, settings, ready))
        started = time.monotonic()
        try:
            pids = [f.result() for f in [self._pool.schedule(_child_ready, args=(START_TIMEOUT_S,),
                                                             timeout=START_TIMEOUT_S) for _ in range(self.children)]]
        except Exception as exc:
            self.close()
            raise RuntimeError(f"stage {name}: its {self.children} child processes did not start: {exc}") from None
        log.info("stage %s runs in this worker and %d child processes (%s), ready in %.1f s", name, self.children,
                 ", ".join(map(str, sorted(set(pids)))), time.monotonic() - started, extra={"stage": name})
        self.stats.extra["stage_processes"] = processes

    def set_limits(self, max_text_chars: int, time_limit_s: float) -> None:
        """Every process applies both limits per record (the worker's own through ``inner``); here
        the text limit on the way in and out, and no record clock of its own (it would interrupt the
        wait for the children)."""
        self.max_text_chars = max_text_chars
        self.time_limit_s = time_limit_s
        self.inner.set_limits(max_text_chars, time_limit_s)

    def _chunk_timeout(self, n: int) -> float | None:
        return None if self.time_limit_s <= 0 else self.time_limit_s * n + CHUNK_GRACE_S

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        out = self.process_many([record], [ctx])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def process_many(self, records: list[dict[str, Any]], contexts: list[Context]) -> list[Result]:
        if not records:
            return []
        weights = [len(r.get("text") or "") if isinstance(r, dict) else 0 for r in records]
        parts = chunks(weights, self.processes * CHUNKS_PER_PROCESS)
        taken = [0]  # chunks handed out so far (to a child or to this process), in order
        futures: dict[int, Any] = {}
        here: dict[int, tuple] = {}

        def take() -> int | None:
            with self._lock:
                if taken[0] >= len(parts):
                    return None
                taken[0] += 1
                return taken[0] - 1

        def feed_child(_done=None) -> None:  # also each child's next chunk, when its last one is done
            with self._lock:  # a chunk handed out is in ``futures`` before anyone sees it is taken
                k = take()
                if k is None:
                    return
                part = parts[k]
                futures[k] = self._pool.schedule(
                    _child_run, args=([records[i] for i in part], [contexts[i] for i in part]),
                    timeout=self._chunk_timeout(len(part)))
            futures[k].add_done_callback(feed_child)

        self.clock.start(str(records[0].get("id") or "?"))  # health checks see the batch in hand
        try:
            if len(parts) > 1:
                # the first chunk stays here: the children start on the next ones meanwhile
                first = take()
                for _ in range(self.children):
                    feed_child()
                here[first] = self._here(parts[first], records, contexts)
            while (k := take()) is not None:
                here[k] = self._here(parts[k], records, contexts)
            results: list[Result] = []
            record_ms: list[float] = []
            for k, part in enumerate(parts):
                if k in here:
                    outs, ms = here[k]
                else:
                    outs, ms = self._collect(futures[k], [records[i] for i in part], [contexts[i] for i in part])
                results += outs
                record_ms += ms
        finally:
            with self._lock:  # a batch that failed (TemporaryFailure) hands out no more chunks
                taken[0] = len(parts)
            self.clock.stop()
        self._record_ms = record_ms
        return results

    def _here(self, part: range, records: list[dict[str, Any]], contexts: list[Context]) -> tuple[list[Result], list[float]]:
        """A chunk in this process (``TemporaryFailure`` fails the batch, as from a child)."""
        t0 = time.perf_counter()
        outs, ms, extra, keyed, gauges = _run_chunk(self.inner, [records[i] for i in part], [contexts[i] for i in part])
        return self._results(outs, ms, extra, keyed, gauges, len(part), t0)

    def _collect(self, future, records: list[dict[str, Any]], contexts: list[Context]) -> tuple[list[Result], list[float]]:
        """A chunk's results; a chunk whose child hung or died, again record by record."""
        t0 = time.perf_counter()
        try:
            outs, ms, extra, keyed, gauges = future.result()
        except TemporaryFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - the child hung (pebble killed it) or died
            if len(records) == 1:
                return [self._lost(exc)], [(time.perf_counter() - t0) * 1000.0]
            log.warning("stage %s: a child process %s with %d records in hand; trying them one by one",
                        self.name, self._what(exc), len(records), extra={"stage": self.name})
            self.stats.extra["chunks_retried"] += 1
            singles = [self._pool.schedule(_child_run, args=([r], [c]), timeout=self._chunk_timeout(1))
                       for r, c in zip(records, contexts, strict=True)]
            results, all_ms = [], []
            for r, c, f in zip(records, contexts, singles, strict=True):
                outs, ms = self._collect(f, [r], [c])
                results += outs
                all_ms += ms
            return results, all_ms
        return self._results(outs, ms, extra, keyed, gauges, len(records), t0)

    def _results(self, outs: list, ms: list[float] | None, extra: Counter, keyed: dict, gauges: dict, n: int,
                 t0: float) -> tuple[list[Result], list[float]]:
        """A chunk's results as the stage gives them, its counters added to the stage's."""
        self.stats.extra.update(extra)
        for key, counts in keyed.items():
            self.stats.keyed.setdefault(key, Counter()).update(counts)
        self.stats.gauges.update(gauges)
        results: list[Result] = []
        for out in outs:
            if isinstance(out, tuple):
                _, reason, message = out
                if reason == STAGE_ERROR:
                    log.warning("stage %s failed on a record: %s", self.name, message.splitlines()[-1][:300],
                                extra={"stage": self.name})
                results.append(BadInput(reason, message))
            else:
                results.append(out)
        if ms is None:
            ms = [(time.perf_counter() - t0) * 1000.0 / n] * n
        return results, ms

    def _what(self, exc: Exception) -> str:
        return "ran out of time" if isinstance(exc, FutureTimeout) else f"ended ({type(exc).__name__}: {exc})"

    def _lost(self, exc: Exception) -> BadInput:
        """The dead letter of a record whose child hung or died on it alone."""
        self.stats.extra["child_processes_replaced"] += 1
        if isinstance(exc, FutureTimeout):
            return BadInput(TIMEOUT, f"the stage's child process worked on this record longer than "
                                     f"{self.time_limit_s:g} s + {CHUNK_GRACE_S:g} s (stages.limits.time_limit_s) "
                                     "and was replaced")
        return BadInput(STAGE_ERROR, f"the stage's child process ended while working on this record "
                                     f"({type(exc).__name__}: {exc}); it was replaced")

    def close(self) -> None:
        self.inner.close()
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.stop()
            pool.join(timeout=5)
            self._pool = None
