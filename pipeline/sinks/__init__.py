"""Where enriched records end: one module per kind of sink behind ``base.Sink`` or
``base.FileSink``; partitions, rolls and offsets are the sink runner's (``runner.py``).

A target is ``kind:location``:

- ``jsonl:FOLDER``     rolled JSON-lines files (``pipeline/sinks/jsonl.py``)
- ``parquet:FOLDER``   Parquet partitioned by fetch date and language (``parquet.py``)
- ``postgres:DSN``     one row per id, upserted (``postgres.py``); ``postgres:`` alone uses
                       ``DATABASE_URL`` or ``sink.postgres_url``
- ``KIND:LOCATION``    a sink of your own: ``sink.plugins = {KIND = "module:Class"}``
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pipeline.redaction import redact
from pipeline.sinks.base import FileSink, Sink

#: kind -> "module:Class"; the class's ``open(location, settings)`` makes the sink
BUILT_IN = {
    "jsonl": "pipeline.sinks.jsonl:JsonlSink",
    "parquet": "pipeline.sinks.parquet:ParquetSink",
    "postgres": "pipeline.sinks.postgres:PostgresSink",
    "postgresql": "pipeline.sinks.postgres:PostgresSink",
}


class UnknownSink(ValueError):
    """A sink target that cannot be opened (an unknown kind, a plugin that does not load)."""


def kinds(settings: Any) -> dict[str, str]:
    """Every kind of sink, built in or configured (``settings``: the ``[sink]`` settings)."""
    shadowing = sorted(set(settings.plugins) & set(BUILT_IN))
    if shadowing:
        raise UnknownSink(f"sink.plugins: {', '.join(shadowing)} is built in; give your sink another kind")
    return {**BUILT_IN, **settings.plugins}


def sink_class(target: str, settings: Any) -> type[Sink] | type[FileSink]:
    kind = target.partition(":")[0]
    known = kinds(settings)
    if kind not in known:
        raise UnknownSink(f"unknown sink kind {kind!r} in {redact(target)!r}; known: {', '.join(sorted(known))}")
    module, _, attr = known[kind].partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownSink(f"sink kind {kind!r}: cannot load {known[kind]} ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, (Sink, FileSink))):
        raise UnknownSink(f"sink kind {kind!r}: {known[kind]} is not a Sink or a FileSink")
    return cls


def check_targets(targets: list[str], settings: Any) -> list[str]:
    """What would stop these sinks from working, one line each (an unknown kind, a missing folder
    or connection string, a server that does not answer), found before anything starts."""
    problems = []
    for target in targets:
        try:
            cls = sink_class(target, settings)
        except UnknownSink as exc:
            problems.append(str(exc))
            continue
        problems += cls.check(target.partition(":")[2], settings)
    return problems


def open_sink(target: str, settings: Any) -> Sink | FileSink:
    return sink_class(target, settings).open(target.partition(":")[2], settings)


def open_sinks(targets: list[str], settings: Any) -> list[Sink | FileSink]:
    opened: list[Sink | FileSink] = []
    try:
        for target in targets:
            opened.append(open_sink(target, settings))
    except BaseException:
        for sink in opened:
            sink.close()
        raise
    return opened


def local_folder(target: str, settings: Any) -> Path | None:
    """The folder a file sink writes (one run at a time may own it); None for other sinks."""
    location = target.partition(":")[2]
    return Path(location) if location and issubclass(sink_class(target, settings), FileSink) else None


__all__ = ["BUILT_IN", "FileSink", "Sink", "UnknownSink", "check_targets", "kinds", "local_folder", "open_sink", "open_sinks", "sink_class"]
