"""Where enriched records end. Each sink writes idempotently by record id, per Kafka partition.

A target is ``kind:location``:

- ``jsonl:FOLDER``     rolled JSON-lines files (``pipeline/sinks/jsonl.py``)
- ``parquet:FOLDER``   Parquet partitioned by fetch date and language (``parquet.py``)
- ``postgres:DSN``     one row per id, upserted (``postgres.py``); ``postgres:`` alone uses
                       ``DATABASE_URL`` or ``sink.postgres_url``

Every sink has ``name`` (safe to print), ``write(records, partition) -> new records``,
``rolls_due() -> partitions``, ``roll(partitions)``, ``release(partitions)`` and ``close()``.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from pipeline.config import SinkSettings


class Sink(Protocol):
    name: str

    def write(self, records: list[dict[str, Any]], partition: int) -> set[str]:
        """Durably write the records; return the ids of those not written before (the others were
        skipped, or written again in place). Raise ``TemporaryFailure`` when the destination is
        unavailable; nothing of a failed call may stay half-written."""

    def rolls_due(self) -> set[int]: ...

    def roll(self, partitions: set[int]) -> list: ...

    def release(self, partitions: set[int]) -> None: ...

    def close(self) -> None: ...


def open_sink(target: str, settings: SinkSettings) -> Sink:
    kind, _, location = target.partition(":")
    if kind in ("jsonl", "parquet"):
        if not location:
            raise ValueError(f"{kind} sink needs a folder: {kind}:FOLDER")
        if kind == "jsonl":
            from pipeline.sinks.jsonl import JsonlSink

            return JsonlSink(location, settings.roll_bytes, settings.roll_seconds, settings.id_window)
        from pipeline.sinks.parquet import ParquetSink

        return ParquetSink(location, settings.roll_bytes, settings.roll_seconds, settings.id_window)
    if kind in ("postgres", "postgresql"):
        from pipeline.sinks.postgres import PostgresSink

        dsn = location or os.environ.get("DATABASE_URL") or settings.postgres_url
        if not dsn:
            raise ValueError("postgres sink needs a connection string: postgres:postgresql://..., "
                             "DATABASE_URL, or sink.postgres_url")
        return PostgresSink(dsn, settings.postgres_table)
    raise ValueError(f"unknown sink kind {kind!r} in {target!r}; known: jsonl, parquet, postgres")


def open_sinks(targets: list[str], settings: SinkSettings) -> list[Sink]:
    return [open_sink(t, settings) for t in targets]
