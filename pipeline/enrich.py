"""``pipeline enrich``: the stages in one process, no broker. The debugging tool for one page and
the harness of the quality benchmarks; it gives the records the streaming path gives.

A stage left out with ``--stages`` passes the record through unchanged. When ``clean`` is left
out, a raw event becomes a record whose ``text`` is the event's body as it is, so
``--stages language`` on ``{"text": ...}`` events gives the language of exactly that text. Input
that already is an enriched record is taken as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from pipeline import registry
from pipeline.charset import body_text
from pipeline.config import Settings
from pipeline.records import (
    RECORD_SCHEMA,
    BadInput,
    accept_raw,
    dead_letter,
    decode,
    encode,
    new_record,
    utc_now,
)
from pipeline.sources.base import SourceItem
from pipeline.stages import build_stage
from pipeline.stages.base import Context, Stage, worker_name
from pipeline.stages.runner import Outcome, handle_message, run_records


def parse_stage_list(spec: str | None, settings: Settings) -> list[str]:
    """The stages of ``spec`` (comma-separated; None: all), in the order of the chain."""
    chain = registry.chain(settings)
    if not spec:
        return chain
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in chain]
    if unknown:
        raise ValueError(f"unknown stage(s): {', '.join(unknown)}; stages are {', '.join(chain)}")
    return [n for n in chain if n in names]  # always in pipeline order


def passthrough_record(event: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    """A record for a stage that expects one when ``clean`` did not run: the body as the text."""
    if event.get("schema") == RECORD_SCHEMA:
        return event
    raw = accept_raw(event, received_at)
    record = new_record(raw)
    record["text"], _ = body_text(raw)
    given = event.get("lang")  # a language given in the event ("id", or {"code": "id"}) is its declared one
    given = given.get("code") if isinstance(given, dict) else given
    if isinstance(given, str) and given.strip():
        record["declared_lang"] = given.strip()
    return record


class OfflinePipeline:
    def __init__(self, settings: Settings, stages: list[str] | None = None, dedup_store: str = "memory"):
        self.names = stages or registry.chain(settings)
        self.stages: dict[str, Stage] = {name: build_stage(name, settings, dedup_store=dedup_store)
                                         for name in self.names}
        self.worker = worker_name("enrich")

    def enrich_payload(self, payload: bytes, received_at: datetime | None = None) -> Outcome:
        """Run one message value (JSON bytes: a raw event, or a URL event when the chain fetches)
        through the selected stages."""
        received_at = received_at or utc_now()
        stages = list(self.stages.values())
        record = None
        if stages and stages[0].accepts_raw_events:  # fetch, clean: they take the message as it is
            outcome = handle_message(stages[0], payload, None, received_at, self.worker)
            if outcome.record is None:
                return outcome
            record, stages = outcome.record, stages[1:]
        ctx = Context(worker=self.worker, received_at=received_at)
        for stage in stages:
            if not stage.accepts_raw_events and (record is None or record.get("schema") != RECORD_SCHEMA):
                try:  # no clean ran: the body becomes the text as it is
                    record = passthrough_record(decode(payload) if record is None else record, received_at)
                except BadInput as exc:
                    return Outcome(dead_letter=dead_letter(stage=stage.name, reason=exc.reason, error=exc.message,
                                                           worker=self.worker, payload=payload))
            (outcome,) = run_records(stage, [record], [ctx])
            if outcome.record is None:
                return outcome
            record = outcome.record
        if record is None:  # no stage selected
            try:
                record = passthrough_record(decode(payload), received_at)
            except BadInput as exc:
                return Outcome(dead_letter=dead_letter(stage="enrich", reason=exc.reason, error=exc.message,
                                                       worker=self.worker, payload=payload))
        return Outcome(record=record)

    def enrich_items(self, items: Iterable[SourceItem]) -> Iterator[tuple[SourceItem, Outcome]]:
        for item in items:
            payload = item.payload if item.event is None else encode(item.event)
            yield item, self.enrich_payload(payload)

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: stage.stats.as_dict() for name, stage in self.stages.items()}

    def close(self) -> None:
        for stage in self.stages.values():
            stage.close()
