"""What every stage is: a small class that turns one record into one record.

A stage knows nothing of Kafka. The streaming worker (``pipeline.streaming.worker``) and the
offline runner (``pipeline.enrich``) both go through :meth:`Stage.run_many` (or :meth:`Stage.run`
for one record), which validates the input, times the stage, appends a trace entry and keeps the
stage's counters. A stage that gains from batches (one index round trip for many records)
overrides :meth:`Stage.process_many`; the others implement :meth:`Stage.process`.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.records import STAGE_ERROR, BadInput, check_record, trace_entry, utc_now

Result = dict[str, Any] | Exception  # the record out, or why this record failed


class TemporaryFailure(Exception):
    """A dependency (index, database) is unavailable: retry the record later, do not dead-letter it."""


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

    def as_dict(self) -> dict[str, Any]:
        return {"records_in": self.records_in, "records_out": self.records_out,
                "failed": dict(self.failed), "busy_ms": round(self.busy_ms, 1), **dict(self.extra)}


class Stage:
    """Base class: subclasses set ``name`` and implement :meth:`process` (or :meth:`process_many`)."""

    name: str = ""
    #: False: the input must be an enriched record of the current schema (checked before process).
    accepts_raw_events: bool = False

    def __init__(self) -> None:
        self.stats = StageStats()
        self._record_ms: list[float] = []  # per-record times of the batch in progress (one-by-one stages)

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """Return the record with this stage's fields filled. Raise ``BadInput`` for bad records."""
        raise NotImplementedError

    def process_many(self, records: list[dict[str, Any]], contexts: list[Context]) -> list[Result]:
        """One result per record, in order. ``TemporaryFailure`` fails the whole batch (it is retried)."""
        results: list[Result] = []
        timings = self._record_ms
        for record, ctx in zip(records, contexts, strict=True):
            t0 = time.perf_counter()
            try:
                results.append(self.process(record, ctx))
            except TemporaryFailure:
                raise
            except Exception as exc:  # noqa: BLE001 - reported per record by the caller
                results.append(exc)
            timings.append((time.perf_counter() - t0) * 1000.0)
        return results

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
            results[i] = out
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
