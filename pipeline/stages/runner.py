"""One message through one stage: bytes in, a record or a dead letter out.

Shared by the streaming worker and ``pipeline enrich`` so both treat bad input the same way:
malformed JSON, invalid events and exceptions inside stage code become dead letters with the
stage, a reason code, the error and the original payload; the caller goes on.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.records import STAGE_ERROR, BadInput, dead_letter, decode, encode, id_hint
from pipeline.stages.base import Context, Stage, TemporaryFailure

log = logging.getLogger("pipeline.stage")


@dataclass
class Origin:
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass
class Outcome:
    record: dict[str, Any] | None = None
    dead_letter: dict[str, Any] | None = None


def run_one(stage: Stage, record: dict[str, Any], ctx: Context, payload: bytes | str | None,
            key: bytes | None = None, origin: Origin | None = None) -> Outcome:
    """Run ``stage`` on a decoded record; turn failures into a dead letter.

    ``payload`` is the message the record came from; without it (in-process runs) the dead
    letter carries the record as it was before this stage.
    """
    origin = origin or Origin()
    if payload is None:
        snapshot = dict(record)
    try:
        return Outcome(record=stage.run(record, ctx))
    except TemporaryFailure:
        raise  # the caller retries; the record is not bad
    except BadInput as exc:
        reason, error = exc.reason, exc.message
    except Exception as exc:  # a bug or a library failure on this record: never crash the worker
        reason = STAGE_ERROR
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        log.warning("stage %s failed on record %s: %s", stage.name, record.get("id"), exc)
    if payload is None:
        payload = encode(snapshot)
    record_id = record.get("id") if isinstance(record.get("id"), str) else id_hint(None, key)
    return Outcome(dead_letter=dead_letter(stage=stage.name, reason=reason, error=error, worker=ctx.worker,
                                           payload=payload, record_id=record_id, topic=origin.topic,
                                           partition=origin.partition, offset=origin.offset))


def handle_message(stage: Stage, value: bytes | None, key: bytes | None, received_at: datetime,
                   worker: str, origin: Origin | None = None) -> Outcome:
    """Decode one message value and run ``stage`` on it."""
    origin = origin or Origin()
    try:
        record = decode(value)
    except BadInput as exc:
        stage.stats.records_in += 1
        stage.stats.failed[exc.reason] += 1
        return Outcome(dead_letter=dead_letter(stage=stage.name, reason=exc.reason, error=exc.message,
                                               worker=worker, payload=value, record_id=id_hint(value, key),
                                               topic=origin.topic, partition=origin.partition,
                                               offset=origin.offset))
    return run_one(stage, record, Context(worker=worker, received_at=received_at), value, key, origin)
