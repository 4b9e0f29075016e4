"""The record schema: raw events, enriched records and dead letters, and their wire format.

Everything that crosses a topic is a JSON object encoded with orjson. This module is the only
place that knows field names and versions.

Raw event (topic ``pages.raw``), produced by ``pipeline replay`` or by any crawler::

    {"id"?: str, "url"?: str, "source"?: str, "fetched_at"?: ISO-8601,
     "html": str | "html_base64": str | "text": str, "charset"?: str}

``charset`` is the one the HTTP answer declared (``Content-Type``), for ``html_base64`` bytes;
``first_url`` the URL asked for when redirects led to ``url`` (the fetch stage sets both).

Enriched record (``pages.enriched`` and every sink), schema ``RECORD_SCHEMA``::

    {"schema", "id", "url", "source", "fetched_at", "ingested_at", "content_type", "title", "author",
     "authors", "published", "published_date", "published_precision", "site", "canonical_url",
     "declared_lang", "text",
     "lang": {"code", "confidence", ...},
     "entities": [{"text", "label", "start", "end", "canonical"}],
     "dedup": {"status", "duplicate_of", "similarity"},
     "version": {"number", "previous_id", "status", ...},
     "story": {"id", "status", "similarity", "summary": {"title", "first_seen", "last_seen", "articles",
               "outlets", "languages", "top_entities"}},
     "trace": [{"stage", "worker", "started_at", "ms"}]}

``fetched_at`` is when the crawler fetched the page; ``ingested_at`` is when the raw event entered
the pipeline (the timestamp of its message in the raw topic; ``pipeline enrich``: the time it read
the event). The sink's end-to-end latency is measured from ``ingested_at``.

``published`` is when the page says it was published, as an RFC 3339 date-time with the offset the
page gave (``2023-09-20T06:12:00+07:00``), so its first ten characters are the day the page shows;
``published_date`` is that day, and ``published_precision`` says how much the page gave (see
``published_fields``). The typed sinks store ``published`` as an instant (UTC) and keep the day in
``published_date``.

Delivery receipt (``pages.delivered``), schema ``RECEIPT_SCHEMA``: one per record the sink handled,
``outcome`` ``written`` or ``skipped_written`` (every sink had the id already)::

    {"schema", "id", "written_at", "fetched_at", "ingested_at", "latency_ms", "sinks", "worker",
     "outcome", "dedup_status", "lang", "title", "site", "url", "entities": [{"canonical", "label", "count"}],
     "version"?: {"number", "status", "previous_id", "title_changed"?, "paragraphs_added"?, ...}}

Dead letter (``pages.deadletter``), schema ``DEADLETTER_SCHEMA``::

    {"schema", "stage", "reason", "error", "failed_at", "worker", "id", "topic", "partition",
     "offset", "payload" | "payload_base64", "payload_bytes", "payload_truncated"}
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson

from pipeline.redaction import redact

RECORD_SCHEMA = "news-pipeline/record/1"
DEADLETTER_SCHEMA = "news-pipeline/deadletter/1"
RECEIPT_SCHEMA = "news-pipeline/receipt/1"
STORY_UPDATE_SCHEMA = "news-pipeline/story-update/1"

BODY_FIELDS = ("html", "html_base64", "text")
RAW_OPTIONAL_STR = ("id", "url", "source", "fetched_at", "charset", "first_url")
MAX_ID_LENGTH = 256
DEADLETTER_PAYLOAD_LIMIT = 256 * 1024  # bytes of the original payload kept in a dead letter

# Reasons a record is dead-lettered (short, stable codes; the error text gives the detail).
MALFORMED_JSON = "malformed_json"
INVALID_EVENT = "invalid_event"
EMPTY_BODY = "empty_body"
TOO_LARGE = "too_large"
UNDECODABLE = "undecodable"
TIMEOUT = "timeout"
NO_TEXT = "no_main_text"
STAGE_ERROR = "stage_error"
#: reasons whose payload fails the same way however often it is sent again (the bytes are not JSON,
#: not an event, hold no body, or cannot be decoded): ``pipeline deadletter replay`` skips them
#: unless ``--force``. The others (a time limit, a size limit, a stage's error, no main text, a
#: fetch trouble) may pass after a fix or a change of configuration.
CANNOT_SUCCEED_AGAIN = frozenset({"malformed_json", "invalid_event", "empty_body", "undecodable"})


class BadInput(Exception):
    """A record a stage cannot process. It is dead-lettered with ``reason`` and the worker goes on."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class TemporaryFailure(Exception):
    """A dependency (index, database, disk) is unavailable: retry the record later, do not
    dead-letter it. Stages and sinks raise it alike; the worker retries the batch with backoff."""


# --- wire format ---------------------------------------------------------------------------------

def encode(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def decode(payload: bytes | str | None) -> dict[str, Any]:
    """Parse one message value; anything but a JSON object is ``BadInput``."""
    if payload is None:
        raise BadInput(MALFORMED_JSON, "message has no value")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadInput(MALFORMED_JSON, f"not valid JSON (UTF-8): {exc}") from None
    if not isinstance(obj, dict):
        raise BadInput(INVALID_EVENT, f"expected a JSON object, got {type(obj).__name__}")
    return obj


# --- time ----------------------------------------------------------------------------------------

def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision, e.g. ``2026-11-21T06:24:00.123Z``."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_scalar(kind: Any, value: Any) -> Any:
    """A scalar of a ``RECORD_FIELDS`` type as a typed store gives it back (datetime, date), in the
    record's JSON form (RFC 3339, ISO-8601); other values as they are."""
    if value is None:
        return None
    if kind == "time":
        return iso(value)
    if kind == "date":
        return value.isoformat()
    return value


def parse_iso(value: str) -> datetime:
    """Parse ISO-8601; a time without zone is taken as UTC. Raises ``ValueError``."""
    dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


#: ``published_precision``: what the page gave of its publication time
PUBLISHED_DAY = "day"  # a date only: ``published`` is 00:00 UTC of that day
PUBLISHED_LOCAL_TIME = "local_time"  # date and time of day, no zone: taken as UTC (the clock the page shows)
PUBLISHED_INSTANT = "instant"  # date, time of day and zone (offset): the exact instant
PUBLISHED_PRECISIONS = (PUBLISHED_DAY, PUBLISHED_LOCAL_TIME, PUBLISHED_INSTANT)


def published_fields(value: str | None) -> dict[str, str | None]:
    """The record's ``published``, ``published_date`` and ``published_precision`` from an ISO-8601
    date or date-time as a page gives it (all None when there is none, or it does not parse).

    ``published`` is an RFC 3339 date-time that keeps the day and the clock time the page shows:

    * ``2023-09-20T06:12:00+07:00`` (zone given) stays as it is: precision ``instant``;
    * ``2023-09-20T06:12:00`` (no zone) becomes ``2023-09-20T06:12:00Z``: precision ``local_time``,
      the instant is off by the site's UTC offset, but its day and time are the page's;
    * ``2023-09-20`` (a date only) becomes ``2023-09-20T00:00:00Z``: precision ``day``.

    ``published_date`` is the day the page shows (``2023-09-20`` in each case), also in a sink that
    stores ``published`` in UTC (where 06:12 in Jakarta is the day before)."""
    none: dict[str, str | None] = {"published": None, "published_date": None, "published_precision": None}
    if not isinstance(value, str) or not value.strip():
        return none
    text = value.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return {"published": f"{day.isoformat()}T00:00:00Z", "published_date": day.isoformat(),
                "published_precision": PUBLISHED_DAY}
    try:
        moment = datetime.fromisoformat(text)
        precision = PUBLISHED_INSTANT if moment.tzinfo else PUBLISHED_LOCAL_TIME
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        offset = moment.utcoffset()
        if offset is None or offset.seconds % 60 or offset.microseconds:
            moment = moment.astimezone(UTC)  # RFC 3339 offsets are whole minutes
        moment.astimezone(UTC)  # an instant in range too (year 1 east of UTC is not)
    except (ValueError, OverflowError):
        return none
    shown = moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"published": shown, "published_date": moment.date().isoformat(), "published_precision": precision}


# --- raw events ----------------------------------------------------------------------------------

def host_of(url: str) -> str:
    """A URL's host as politeness counts it: scheme, host name and port (``https://example.com:443``).
    URL events (``pages.urls``) are keyed by it, so one host's URLs meet one fetch worker."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def derive_id(locator: str, fetched_at: str, body: str) -> str:
    """Stable id of one fetch: same url/source, fetch time and content give the same id."""
    h = hashlib.blake2b(digest_size=16)
    for part in (locator, fetched_at, body):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


_HEX_ID = re.compile(r"[0-9a-f]{32}")


def id_key(record_id: str) -> tuple[bytes, bool]:
    """16 bytes naming a record id (the id itself when it is 32 hex characters, as derived ids are,
    else its BLAKE2b-128); ``True`` when the id is not hex, so whoever needs it back must keep it."""
    if _HEX_ID.fullmatch(record_id):
        return bytes.fromhex(record_id), False
    return hashlib.blake2b(record_id.encode("utf-8", "surrogatepass"), digest_size=16).digest(), True


def body_of(event: dict[str, Any]) -> tuple[str, str]:
    """``(field, value)`` of the event's single body field."""
    present = [f for f in BODY_FIELDS if event.get(f) is not None]
    if not present:
        raise BadInput(INVALID_EVENT, "event has no body: expected one of 'html', 'html_base64', 'text'")
    if len(present) > 1:
        raise BadInput(INVALID_EVENT, f"event has several bodies: {', '.join(present)}")
    name = present[0]
    value = event[name]
    if not isinstance(value, str):
        raise BadInput(INVALID_EVENT, f"'{name}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadInput(EMPTY_BODY, f"'{name}' is empty")
    return name, value


@dataclass(frozen=True)
class RawEvent:
    """A validated raw event with its id and fetch time settled."""

    id: str
    fetched_at: str
    body_field: str  # "html", "html_base64" or "text"
    body: str
    url: str | None = None
    source: str | None = None
    trace: tuple[dict[str, Any], ...] = ()
    ingested_at: str | None = None  # when the event entered the pipeline (ISO-8601)
    charset: str | None = None  # declared by the HTTP answer the bytes came in
    first_url: str | None = None  # the URL asked for, when redirects led to ``url``

    @property
    def content_type(self) -> str:
        return "text" if self.body_field == "text" else "html"


def accept_raw(event: dict[str, Any], received_at: datetime) -> RawEvent:
    """Validate a raw event and settle its ``fetched_at`` and ``id``.

    ``received_at`` (the message timestamp on the streaming path) stands in for a missing fetch
    time, so a redelivered event keeps its id.
    """
    for name in RAW_OPTIONAL_STR:
        value = event.get(name)
        if value is not None and not isinstance(value, str):
            raise BadInput(INVALID_EVENT, f"'{name}' must be a string, got {type(value).__name__}")
    body_field, body = body_of(event)
    if event.get("fetched_at"):
        try:
            fetched_at = iso(parse_iso(event["fetched_at"]))
        except ValueError:
            raise BadInput(INVALID_EVENT,
                           f"'fetched_at' is not ISO-8601: {event['fetched_at'][:80]!r}") from None
    else:
        fetched_at = iso(received_at)
    record_id = event.get("id")
    if record_id:
        if len(record_id) > MAX_ID_LENGTH:
            raise BadInput(INVALID_EVENT, f"'id' is longer than {MAX_ID_LENGTH} characters")
    else:
        record_id = derive_id(event.get("url") or event.get("source") or "", fetched_at, body)
    trace = event.get("trace") or ()
    if not isinstance(trace, list | tuple):
        raise BadInput(INVALID_EVENT, "'trace' must be a list")
    return RawEvent(id=record_id, fetched_at=fetched_at, body_field=body_field, body=body,
                    url=event.get("url"), source=event.get("source"), trace=tuple(trace),
                    ingested_at=iso(received_at), charset=event.get("charset"), first_url=event.get("first_url"))


def new_record(event: RawEvent) -> dict[str, Any]:
    """The skeleton of an enriched record for an accepted raw event (fields filled by stages)."""
    return {
        "schema": RECORD_SCHEMA,
        "id": event.id,
        "url": event.url,
        "first_url": event.first_url,
        "source": event.source,
        "fetched_at": event.fetched_at,
        "ingested_at": event.ingested_at,
        "content_type": event.content_type,
        "title": None,
        "author": None,
        "authors": [],
        "published": None,
        "published_date": None,
        "published_precision": None,
        "site": None,
        "canonical_url": None,
        "declared_lang": None,
        "text": "",
        "lang": None,
        "entities": [],
        "dedup": None,
        "version": None,
        "story": None,
        "trace": list(event.trace),
    }


def check_record(record: dict[str, Any]) -> None:
    """Refuse a message that is not an enriched record of this schema version."""
    schema = record.get("schema")
    if schema != RECORD_SCHEMA:
        raise BadInput(INVALID_EVENT, f"expected a record of schema {RECORD_SCHEMA!r}, got {schema!r}")
    if not isinstance(record.get("id"), str) or not record["id"]:
        raise BadInput(INVALID_EVENT, "record has no 'id'")
    if not isinstance(record.get("text"), str):
        raise BadInput(INVALID_EVENT, "record has no 'text' string")
    if not isinstance(record.get("trace", []), list):
        raise BadInput(INVALID_EVENT, "'trace' must be a list")


# --- the enriched record's fields and types --------------------------------------------------------
# Every sink's columns and the published JSON Schema (`pipeline schema`) derive from these. A type
# is "str", "int", "float", "bool", "time" (RFC 3339 text, a timestamp in typed sinks), "date" (ISO-8601
# ``YYYY-MM-DD``, a date in typed sinks), ["list", T],
# ["map", T] (string keys) or a dict of named fields. Any field may be null unless it is required;
# a stage may add fields of its own (typed sinks keep them in ``extra``).

ENTITY_FIELDS: dict[str, Any] = {"text": "str", "label": "str", "start": "int", "end": "int", "canonical": "str",
                                 "ids": ["map", "str"], "source": "str"}
LANG_FIELDS: dict[str, Any] = {
    "code": "str", "confidence": "float", "reliable": "bool",
    "alternatives": ["list", {"code": "str", "score": "float"}],
    "spans": ["list", {"start": "int", "end": "int", "code": "str", "confidence": "float"}],
}
DEDUP_FIELDS: dict[str, Any] = {"status": "str", "duplicate_of": "str", "similarity": "float"}
VERSION_FIELDS: dict[str, Any] = {"number": "int", "previous_id": "str", "status": "str", "title_changed": "bool",
                                  "paragraphs_added": "int", "paragraphs_removed": "int", "paragraphs_edited": "int"}
STORY_SUMMARY_FIELDS: dict[str, Any] = {"title": "str", "first_seen": "time", "last_seen": "time", "articles": "int",
                                        "outlets": ["list", "str"], "languages": ["list", "str"],
                                        "top_entities": ["list", "str"]}
STORY_FIELDS: dict[str, Any] = {"id": "str", "status": "str", "similarity": "float", "summary": STORY_SUMMARY_FIELDS}
TRACE_FIELDS: dict[str, Any] = {"stage": "str", "worker": "str", "started_at": "time", "ms": "float"}
#: a story update (``story_update``): the message on ``topics.stories`` and a line of the file sinks' stories files
STORY_UPDATE_FIELDS: dict[str, Any] = {
    "schema": "str", "story_id": "str", "written_at": "time", "summary": STORY_SUMMARY_FIELDS,
    "article": {"id": "str", "status": "str", "similarity": "float", "title": "str", "url": "str", "site": "str",
                "lang": "str", "published": "time"}}
RECORD_FIELDS: dict[str, Any] = {
    "id": "str", "schema": "str", "url": "str", "first_url": "str", "source": "str", "fetched_at": "time", "ingested_at": "time",
    "content_type": "str", "encoding": "str", "title": "str", "author": "str", "authors": ["list", "str"],
    "published": "time", "published_date": "date", "published_precision": "str",  # see published_fields
    "site": "str", "canonical_url": "str", "declared_lang": "str", "text": "str", "lang": LANG_FIELDS,
    "entities": ["list", ENTITY_FIELDS],
    "entity_summary": ["list", {"canonical": "str", "label": "str", "count": "int"}],
    "entities_tagger": "str", "entities_lang": "str", "entities_lang_source": "str", "dedup": DEDUP_FIELDS, "version": VERSION_FIELDS, "story": STORY_FIELDS,
    "trace": ["list", TRACE_FIELDS],
}
REQUIRED_FIELDS = ("schema", "id", "fetched_at", "content_type", "text", "trace")
_JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "time": "string",
               "date": "string"}
_JSON_FORMATS = {"time": "date-time", "date": "date"}


def _json_type(kind: Any, nullable: bool = True) -> dict[str, Any]:
    if isinstance(kind, dict):
        out: dict[str, Any] = {"type": "object", "properties": {k: _json_type(v) for k, v in kind.items()}}
    elif isinstance(kind, list):
        container, item = kind
        out = ({"type": "array", "items": _json_type(item, nullable=False)} if container == "list"
               else {"type": "object", "additionalProperties": _json_type(item)})
    else:
        out = {"type": _JSON_TYPES[kind]}
        if kind in _JSON_FORMATS:
            out["format"] = _JSON_FORMATS[kind]
    if nullable:
        out["type"] = [out["type"], "null"]
    return out


def record_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an enriched record of this version."""
    properties = {name: _json_type(kind, nullable=name not in REQUIRED_FIELDS) for name, kind in RECORD_FIELDS.items()}
    properties["schema"] = {"const": RECORD_SCHEMA}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": RECORD_SCHEMA,
            "title": "enriched news record", "type": "object", "required": list(REQUIRED_FIELDS),
            "properties": properties}


# --- trace ---------------------------------------------------------------------------------------

def trace_entry(stage: str, worker: str, started_at: datetime, ms: float) -> dict[str, Any]:
    return {"stage": stage, "worker": worker, "started_at": iso(started_at), "ms": round(ms, 3)}


# --- dead letters and receipts -------------------------------------------------------------------

def dead_letter(*, stage: str, reason: str, error: str, worker: str, payload: bytes | str | None,
                record_id: str | None = None, topic: str | None = None, partition: int | None = None,
                offset: int | None = None) -> dict[str, Any]:
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else (payload or b"")
    kept = raw[:DEADLETTER_PAYLOAD_LIMIT]
    letter: dict[str, Any] = {
        "schema": DEADLETTER_SCHEMA,
        "stage": stage,
        "reason": reason,
        "error": redact(error)[:2000],
        "failed_at": iso(utc_now()),
        "worker": worker,
        "id": record_id,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "payload_bytes": len(raw),
        "payload_truncated": len(kept) < len(raw),
    }
    try:
        letter["payload"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        letter["payload_base64"] = base64.b64encode(kept).decode("ascii")
    return letter


def id_hint(payload: bytes | None, key: bytes | None) -> str | None:
    """Best-effort record id of a payload that could not be parsed: the message key."""
    if key:
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


RECEIPT_TITLE_CHARS = 200
RECEIPT_ENTITIES = 10


def latency_s(record: dict[str, Any], now: datetime) -> float | None:
    """Seconds from the record's ``ingested_at`` to ``now``; None when it has no valid one."""
    value = record.get("ingested_at")
    if not isinstance(value, str):
        return None
    try:
        return max(0.0, (now - parse_iso(value)).total_seconds())
    except ValueError:
        return None


WRITTEN, SKIPPED_WRITTEN = "written", "skipped_written"  # a receipt's ``outcome``


def receipt(record: dict[str, Any], sink_names: list[str], worker: str,
            written_at: datetime | None = None, outcome: str = WRITTEN) -> dict[str, Any]:
    """What the sink worker publishes after a record is durably written: enough for a dashboard to
    show the record (title, site, language, dedup verdict, main entities) without reading the sink.
    ``outcome``: ``written`` (new in at least one sink) or ``skipped_written`` (every sink had its
    id already: a record sent again, not written again)."""
    written_at = written_at or utc_now()
    dedup = record.get("dedup") or {}
    lang = record.get("lang") or {}
    latency = latency_s(record, written_at)
    title = record.get("title")
    summary = record.get("entity_summary")
    entities = [{"canonical": e.get("canonical"), "label": e.get("label"), "count": e.get("count")}
                for e in summary[:RECEIPT_ENTITIES] if isinstance(e, dict)] if isinstance(summary, list) else []
    return {
        "schema": RECEIPT_SCHEMA,
        "id": record["id"],
        "written_at": iso(written_at),
        "fetched_at": record.get("fetched_at"),
        "ingested_at": record.get("ingested_at"),
        "latency_ms": round(latency * 1000, 1) if latency is not None else None,
        "sinks": sink_names,
        "worker": worker,
        "outcome": outcome,
        "dedup_status": dedup.get("status"),
        "lang": lang.get("code"),
        "title": title[:RECEIPT_TITLE_CHARS] if isinstance(title, str) else None,
        "site": record.get("site"),
        "url": record.get("url"),
        "entities": entities,
        # the article's version (a refetched URL): the dashboard lists the changed ones
        "version": record.get("version") if isinstance(record.get("version"), dict) else None,
        "story": _story_brief(record.get("story")),
    }


def _story_brief(story: Any) -> dict[str, Any] | None:
    """What a receipt says of a record's story: enough for the dashboard's top stories."""
    if not isinstance(story, dict) or not story.get("id"):
        return None
    summary = story.get("summary") or {}
    return {"id": story["id"], "status": story.get("status"), "title": summary.get("title"),
            "articles": summary.get("articles"), "outlets": (summary.get("outlets") or [])[:10],
            "languages": summary.get("languages") or [], "first_seen": summary.get("first_seen"),
            "last_seen": summary.get("last_seen")}


def story_update(record: dict[str, Any], written_at: datetime) -> dict[str, Any] | None:
    """The message the sink publishes to ``topics.stories`` when it has written a record that
    started or joined a story (keyed by the story id): the story as it is now, and the article."""
    story = record.get("story")
    if not isinstance(story, dict) or not story.get("id"):
        return None
    return {"schema": STORY_UPDATE_SCHEMA, "story_id": story["id"], "written_at": iso(written_at),
            "summary": story.get("summary"),
            "article": {"id": record["id"], "status": story.get("status"), "similarity": story.get("similarity"),
                        "title": record.get("title"), "url": record.get("url"), "site": record.get("site"),
                        "lang": (record.get("lang") or {}).get("code"), "published": record.get("published")}}
