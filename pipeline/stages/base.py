"""What every stage is: a small class that turns one record into one record.

A stage knows nothing of Kafka. The streaming worker (``pipeline.streaming.worker``) and the
offline runner (``pipeline.enrich``) both go through :meth:`Stage.run_many` (or :meth:`Stage.run`
for one record), which validates the input, times the stage, appends a trace entry and keeps the
stage's counters. A stage that gains from batches (one index round trip for many records)
overrides :meth:`Stage.process_many`; the others implement :meth:`Stage.process`.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.records import (
    STAGE_ERROR,
    TIMEOUT,
    TOO_LARGE,
    BadInput,
    TemporaryFailure,
    check_record,
    trace_entry,
    utc_now,
)
from pipeline.stage_metrics import RecordMetric

Result = dict[str, Any] | Exception  # the record out, or why this record failed


def worker_name(role: str = "") -> str:
    """``host:pid`` (plus a role), the name a worker writes into traces and dead letters."""
    base = f"{socket.gethostname()}:{os.getpid()}"
    return f"{role}@{base}" if role else base


@dataclass
class Context:
    """What a stage may know about where a record came from."""

    worker: str
    received_at: datetime = field(default_factory=utc_now)


@dataclass
class StageStats:
    """Counters every stage keeps (the worker reports them; benchmarks read them)."""

    records_in: int = 0
    records_out: int = 0
    failed: Counter = field(default_factory=Counter)  # reason -> count
    busy_ms: float = 0.0
    extra: Counter = field(default_factory=Counter)  # stage-specific counters
    #: stage-specific counters by key, e.g. ``keyed["http_answers"]["200"]`` (name -> key -> count)
    keyed: dict[str, Counter] = field(default_factory=dict)
    #: stage-specific levels by key, now, e.g. ``gauges["host_waiting"]["https://a.example:443"]``;
    #: a stage replaces an inner dict whole (it is read from another thread while scraped)
    gauges: dict[str, dict[str, float]] = field(default_factory=dict)

    def count(self, name: str, key: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` under ``key``."""
        self.keyed.setdefault(name, Counter())[key] += n

    def as_dict(self) -> dict[str, Any]:
        return {"records_in": self.records_in, "records_out": self.records_out,
                "failed": dict(self.failed), "busy_ms": round(self.busy_ms, 1), **dict(self.extra),
                **{name: dict(counts) for name, counts in self.keyed.items()}}


class RecordTimeout(BadInput):
    """Raised inside the stage's thread when it has worked on one record past its time limit."""

    def __init__(self) -> None:
        super().__init__(TIMEOUT, "the stage worked on this record longer than its time limit "
                                  "(stages.limits.time_limit_s)")


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.c_void_p)  # thread id, exception class (None: clear)


class RecordClock:
    """Which record the stage works on, since when; a watchdog thread interrupts the stage's
    thread (an exception raised in it at its next Python instruction) once the record has taken
    longer than ``limit_s``. Code that holds the thread in one long C call is interrupted when the
    call returns; until then :meth:`busy` tells health checks how long it has been."""

    def __init__(self, limit_s: float):
        self.limit_s = limit_s
        self._lock = threading.Lock()
        self._current: tuple[int, str, float] | None = None  # thread id, record id, start
        self._fired = False
        self._watchdog: threading.Thread | None = None

    def busy(self) -> tuple[str, float] | None:
        """The record in hand and the seconds spent on it (None: between records)."""
        current = self._current
        return None if current is None else (current[1], time.monotonic() - current[2])

    def start(self, record_id: str) -> None:
        with self._lock:
            self._current = (threading.get_ident(), record_id, time.monotonic())
            self._fired = False
        if self._watchdog is None and self.limit_s > 0:
            self._watchdog = threading.Thread(target=self._watch, name="record-clock", daemon=True)
            self._watchdog.start()

    def stop(self) -> None:
        with self._lock:
            self._current = None
            if self._fired:  # an interruption scheduled but not delivered yet must not hit the next record
                _set_async_exc(threading.get_ident(), None)
                self._fired = False

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, max(0.05, self.limit_s / 10)))
            with self._lock:
                current = self._current
                if current is None or self._fired or time.monotonic() - current[2] <= self.limit_s:
                    continue
                self._fired = True
                _set_async_exc(current[0], id(RecordTimeout))


class Stage:
    """Base class: subclasses set ``name`` and implement :meth:`process` (or :meth:`process_many`).

    Every stage has two limits per record (``stages.limits``): a text longer than
    ``max_text_chars`` (on the way in or out) is a dead letter ``too_large``; a record the stage
    works on longer than ``time_limit_s`` is a dead letter ``timeout``."""

    name: str = ""
    #: records its worker takes at most in one batch (None: the worker's default, 200); a stage
    #: whose records take long, however cheap they are (the fetch stage waits for hosts), takes
    #: fewer, so a batch never keeps the worker from Kafka for minutes
    batch_max: int | None = None
    #: True: its worker takes as many records as the stage is expected to work through in
    #: ``run.batch_ms`` (``pipeline.streaming.batching``: a batch's records are handed on when it
    #: is done, or in pieces for a stage that is ``one_by_one``), at least ``batch_least``, at most
    #: ``batch_max``; False: batches of up to ``batch_max`` whatever they take (a stage whose
    #: records wait on something else concurrently: a batch takes about as long whatever its size)
    batches_by_time: bool = True
    batch_least: int = 1
    #: what its worker counts in the records it passes on (``pipeline/stage_metrics.py``)
    record_metrics: tuple[RecordMetric, ...] = ()
    #: False: the input must be an enriched record of the current schema (checked before process).
    accepts_raw_events: bool = False
    #: True: nothing is carried from one record to the next (no state, no order), so its worker may
    #: run it in several child processes (``stages.processes``, ``pipeline/stages/pool.py``)
    parallel_safe: bool = False
    max_text_chars: int = 0  # 0: no limit (set from the configuration by ``build_stage``)

    def __init__(self) -> None:
        self.stats = StageStats()
        self._record_ms: list[float] = []  # per-record times of the batch in progress (one-by-one stages)
        self.clock = RecordClock(0.0)

    def set_limits(self, max_text_chars: int, time_limit_s: float) -> None:
        self.max_text_chars = max_text_chars
        self.clock = RecordClock(time_limit_s)

    def _too_large(self, record: dict[str, Any]) -> BadInput | None:
        text = record.get("text") if isinstance(record, dict) else None
        if self.max_text_chars and isinstance(text, str) and len(text) > self.max_text_chars:
            return BadInput(TOO_LARGE, f"text of {len(text):,} characters; the limit is {self.max_text_chars:,} "
                                       "(stages.limits.max_text_chars)")
        return None

    @property
    def one_by_one(self) -> bool:
        """True when its records are handled one at a time (it keeps the base ``process_many``):
        its worker may then hand a batch's records on in pieces as they are done (``run.piece_ms``,
        ``pipeline.streaming.batching.BatchSizer.pieces``); a stage with its own ``process_many``
        gains from whole batches (one index round trip, pages in flight in a pool) and gets them."""
        return type(self).process_many is Stage.process_many

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """Return the record with this stage's fields filled. Raise ``BadInput`` for bad records."""
        raise NotImplementedError

    def process_many(self, records: list[dict[str, Any]], contexts: list[Context]) -> list[Result]:
        """One result per record, in order. ``TemporaryFailure`` fails the whole batch (it is retried)."""
        results: list[Result] = []
        timings = self._record_ms
        for record, ctx in zip(records, contexts, strict=True):
            t0 = time.perf_counter()
            results.append(self.timed_step(record, self.process, record, ctx))
            timings.append((time.perf_counter() - t0) * 1000.0)
        return results

    def timed_step(self, record: dict[str, Any], step: Callable[..., Any], *args: Any) -> Any:
        """``step(*args)`` for ``record`` under the per-record time limit (``clock``); what it
        raised, as the value, but ``TemporaryFailure``, which fails the batch."""
        try:
            try:
                self.clock.start(str(record.get("id") or "?"))
                return step(*args)
            finally:
                self.clock.stop()
        except TemporaryFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - reported per record by the caller (RecordTimeout too)
            return exc

    def run_many(self, records: list[dict[str, Any]], contexts: list[Context]) -> list[Result]:
        """Validate, process, trace and count a batch. A record's trace ``ms`` is its own time when
        the stage processes records one by one, its share of the batch's time when the stage
        overrides :meth:`process_many`."""
        results: list[Result | None] = [None] * len(records)
        todo: list[int] = []
        for i, record in enumerate(records):
            if not self.accepts_raw_events:
                try:
                    check_record(record)
                except BadInput as exc:
                    results[i] = exc
                    continue
            too_large = self._too_large(record)
            if too_large is not None:
                results[i] = too_large
                continue
            todo.append(i)
        started = utc_now()
        self._record_ms = []
        t0 = time.perf_counter()
        try:
            outs = self.process_many([records[i] for i in todo], [contexts[i] for i in todo]) if todo else []
        finally:
            elapsed = (time.perf_counter() - t0) * 1000.0
            self.stats.busy_ms += elapsed
        share = elapsed / max(1, len(todo))
        own_ms = self._record_ms if len(self._record_ms) == len(todo) else [share] * len(todo)
        ms_of: dict[int, float] = {}
        for i, out, ms in zip(todo, outs, own_ms, strict=True):
            results[i] = out if isinstance(out, Exception) else (self._too_large(out) or out)
            ms_of[i] = ms
        self.stats.records_in += len(records)
        for i, out in enumerate(results):
            if isinstance(out, BadInput):
                self.stats.failed[out.reason] += 1
            elif isinstance(out, Exception):
                self.stats.failed[STAGE_ERROR] += 1
            else:
                out.setdefault("trace", []).append(trace_entry(self.name, contexts[i].worker, started, ms_of[i]))
                self.stats.records_out += 1
        return results  # type: ignore[return-value]

    def run(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """Process one record; raise what it failed with."""
        result = self.run_many([record], [ctx])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        """Release processes, connections and files the stage holds."""
