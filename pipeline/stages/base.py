"""What every stage is: a small class that turns one record into one record.

A stage knows nothing of Kafka. The streaming worker (``pipeline.streaming.worker``) and the
offline runner (``pipeline.enrich``) both call :meth:`Stage.run`, which times the stage, appends a
trace entry and keeps the stage's counters.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.records import BadInput, check_record, trace_entry, utc_now


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
    """Base class: subclasses set ``name`` and implement :meth:`process`."""

    name: str = ""
    #: False: the input must be an enriched record of the current schema (checked before process).
    accepts_raw_events: bool = False

    def __init__(self) -> None:
        self.stats = StageStats()

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """Return the record with this stage's fields filled. Raise ``BadInput`` for bad records."""
        raise NotImplementedError

    def run(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """Process one record, keep counters, and append this stage's trace entry."""
        self.stats.records_in += 1
        started = utc_now()
        t0 = time.perf_counter()
        try:
            if not self.accepts_raw_events:
                check_record(record)
            out = self.process(record, ctx)
        except BadInput as exc:
            self.stats.failed[exc.reason] += 1
            raise
        except Exception:
            self.stats.failed["stage_error"] += 1
            raise
        finally:
            elapsed = (time.perf_counter() - t0) * 1000.0
            self.stats.busy_ms += elapsed
        out.setdefault("trace", []).append(trace_entry(self.name, ctx.worker, started, elapsed))
        self.stats.records_out += 1
        return out

    def close(self) -> None:
        """Release processes, connections and files the stage holds."""
