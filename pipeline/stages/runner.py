"""Messages through one stage: bytes in, records or dead letters out.

Shared by the streaming worker and ``pipeline enrich`` so both treat bad input the same way:
malformed JSON, invalid events and exceptions inside stage code become dead letters with the
stage, a reason code, the error and the original payload; the caller goes on.
``TemporaryFailure`` is not caught: the caller retries the batch.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.records import STAGE_ERROR, BadInput, dead_letter, decode, encode, id_hint
from pipeline.stages.base import Context, Stage

log = logging.getLogger("pipeline.stage")


@dataclass
class Origin:
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass
class Message:
    """One message as a stage worker receives it."""

    value: bytes | None
    key: bytes | None
    received_at: datetime
    origin: Origin


@dataclass
class Outcome:
    record: dict[str, Any] | None = None
    dead_letter: dict[str, Any] | None = None


def _failure(stage: Stage, exc: Exception, record: dict[str, Any] | None, worker: str, payload: bytes | str | None,
             key: bytes | None, origin: Origin) -> Outcome:
    if isinstance(exc, BadInput):
        reason, error = exc.reason, exc.message
    else:  # a bug or a library failure on this record: never crash the worker
        reason = STAGE_ERROR
        error = "".join(traceback.format_exception(exc, limit=6)).strip()
        log.warning("stage %s failed on record %s: %s", stage.name, (record or {}).get("id"), exc)
    record_id = record.get("id") if record and isinstance(record.get("id"), str) else id_hint(None, key)
    return Outcome(dead_letter=dead_letter(stage=stage.name, reason=reason, error=error, worker=worker,
                                           payload=payload, record_id=record_id, topic=origin.topic,
                                           partition=origin.partition, offset=origin.offset))


def run_records(stage: Stage, records: list[dict[str, Any]], contexts: list[Context],
                payloads: list[bytes | None] | None = None, keys: list[bytes | None] | None = None,
                origins: list[Origin] | None = None) -> list[Outcome]:
    """Run ``stage`` on decoded records. A dead letter carries the record's original message
    (``payloads``) or, in-process, the record as it was before this stage."""
    n = len(records)
    payloads = payloads or [None] * n
    keys = keys or [None] * n
    origins = origins or [Origin() for _ in range(n)]
    before = [dict(r) if p is None else None for r, p in zip(records, payloads, strict=True)]
    results = stage.run_many(records, contexts)
    outcomes = []
    for i, result in enumerate(results):
        if isinstance(result, Exception):
            payload = payloads[i] if payloads[i] is not None else encode(before[i])
            outcomes.append(_failure(stage, result, records[i], contexts[i].worker, payload, keys[i], origins[i]))
        else:
            outcomes.append(Outcome(record=result))
    return outcomes


def handle_messages(stage: Stage, messages: list[Message], worker: str) -> list[Outcome]:
    """Decode each message value and run ``stage`` on the batch; one outcome per message, in order."""
    outcomes: list[Outcome | None] = [None] * len(messages)
    decoded, where = [], []
    for i, msg in enumerate(messages):
        try:
            decoded.append(decode(msg.value))
            where.append(i)
        except BadInput as exc:
            stage.stats.records_in += 1
            stage.stats.failed[exc.reason] += 1
            outcomes[i] = _failure(stage, exc, None, worker, msg.value, msg.key, msg.origin)
    if decoded:
        ran = run_records(stage, decoded, [Context(worker, messages[i].received_at) for i in where],
                          payloads=[messages[i].value for i in where], keys=[messages[i].key for i in where],
                          origins=[messages[i].origin for i in where])
        for i, outcome in zip(where, ran, strict=True):
            outcomes[i] = outcome
    return outcomes  # type: ignore[return-value]


def handle_message(stage: Stage, value: bytes | None, key: bytes | None, received_at: datetime,
                   worker: str, origin: Origin | None = None) -> Outcome:
    """One message through ``stage``."""
    return handle_messages(stage, [Message(value, key, received_at, origin or Origin())], worker)[0]
