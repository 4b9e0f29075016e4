"""Where enriched records end: each sink writes idempotently by record id.

A target is ``kind:location``; ``open_sinks`` builds one sink per target.
"""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    name: str

    def write(self, records: list[dict[str, Any]]) -> int:
        """Durably write the records not written before (by id); return how many were new.
        Raise ``TemporaryFailure`` when the destination is unavailable."""

    def close(self) -> None: ...


def open_sink(target: str) -> Sink:
    kind, _, location = target.partition(":")
    if kind == "jsonl":
        from pipeline.sinks.jsonl import JsonlSink

        if not location:
            raise ValueError("jsonl sink needs a path: jsonl:PATH")
        return JsonlSink(location)
    raise ValueError(f"unknown sink kind {kind!r} in {target!r}; known: jsonl")


def open_sinks(targets: list[str]) -> list[Sink]:
    return [open_sink(t) for t in targets]
