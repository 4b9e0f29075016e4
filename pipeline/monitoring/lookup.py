"""Where is a record? ``pipeline record ID|URL`` and the dashboard's record page ask here.

A record is looked for, by id or by URL (a URL names every version of its page: one record each,
newest first), in three places:

- every configured sink (``pipeline.sinks.lookup``: JSONL and staged part files by a byte scan,
  Parquet with a pyarrow filter, PostgreSQL by an indexed query);
- the dead-letter topic (a letter of the id, or whose payload has the URL);
- still in flight: in each stage's source topic, the messages its consumer group has not committed
  yet (between the group's committed offset and the end of each partition), by key (the record
  id) or, for a URL, by the bytes of the message.

The topics are read within ``timeout_s`` with kafka-python; without a broker (none known, or it
does not answer) only the sinks are read, and :attr:`Lookup.notes` says why the topics were not.
"""

from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from pipeline import registry
from pipeline.config import Settings
from pipeline.records import CANNOT_SUCCEED_AGAIN, parse_iso
from pipeline.redaction import redact
from pipeline.sinks import lookup as sink_lookup

IN_FLIGHT_MAX = 200_000  # messages read per topic at most (a stage far behind: the newest are not looked at)


@dataclass
class InFlight:
    """A message of the record that a stage has not processed (committed) yet."""

    topic: str
    partition: int
    offset: int
    waiting_for: str  # the stage (or the sink) that reads the topic
    message: dict[str, Any] | None  # the message's value (None when it is not JSON)


@dataclass
class Version:
    """One record (one fetch of a page): its content and every copy of it in the sinks."""

    id: str
    record: dict[str, Any]
    copies: list[sink_lookup.Copy]


@dataclass
class Lookup:
    key: str
    versions: list[Version] = field(default_factory=list)  # newest first
    letters: list[dict[str, Any]] = field(default_factory=list)  # dead letters, newest first
    in_flight: list[InFlight] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sinks or topics that could not be read, and why
    topics_read: bool = False

    @property
    def found(self) -> bool:
        return bool(self.versions or self.letters or self.in_flight)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"found": self.found}


def _fetched(record: dict[str, Any]) -> tuple:
    version = record.get("version") if isinstance(record.get("version"), dict) else {}
    try:
        fetched = parse_iso(record.get("fetched_at") or "").timestamp()
    except ValueError:
        fetched = 0.0
    return fetched, int(version.get("number") or 0)


def versions_of(copies: list[sink_lookup.Copy]) -> list[Version]:
    """The copies grouped by record id, newest fetch first."""
    by_id: dict[str, Version] = {}
    for copy in copies:
        rid = str(copy.record.get("id"))
        if rid in by_id:
            by_id[rid].copies.append(copy)
        else:
            by_id[rid] = Version(rid, copy.record, [copy])
    return sorted(by_id.values(), key=lambda v: _fetched(v.record), reverse=True)


def find(settings: Settings, key: str, sink_targets: list[str] | None = None, topics: bool = True,
         timeout_s: float = 10.0) -> Lookup:
    """Everything known of the record ``key`` (an id or a URL); ``sink_targets`` default to the
    configured ones; ``topics`` False: the sinks only."""
    key = key.strip()
    result = Lookup(key)
    found = sink_lookup.find(sink_targets if sink_targets is not None else settings.sink.targets, settings.sink, key)
    result.versions = versions_of(found.copies)
    result.notes += found.notes
    if not topics:
        return result
    bootstrap = settings.broker.bootstrap_servers
    if not bootstrap:
        result.notes.append("topics not read: no broker known (no live `pipeline run` here, no "
                            "KAFKA_BOOTSTRAP_SERVERS or broker.bootstrap_servers)")
        return result
    unreachable = broker_unreachable(bootstrap)
    if unreachable:
        result.notes.append(f"topics not read: {unreachable}")
        return result
    from kafka.errors import KafkaError

    ids = {key} | {v.id for v in result.versions}
    deadline = time.monotonic() + timeout_s
    try:
        result.in_flight = _in_flight(settings, key, ids, deadline, result.notes)
        ids |= {str(m.message.get("id")) for m in result.in_flight if m.message and m.message.get("id")}
        _delivered_apart(result)
        result.letters = _letters(settings, key, ids, deadline, result.notes)
        result.topics_read = True
    except KafkaError as exc:
        result.notes.append(f"topics not read: Kafka: {type(exc).__name__}: {redact(str(exc))}")
    return result


def _delivered_apart(result: Lookup) -> None:
    """A message of a record the sinks already hold is not in flight: its stage processed it and
    has not committed past it yet (a worker commits acknowledged offsets every commit interval, so
    a record just delivered is often still before its first stage's committed offset). A note says
    so: a restart of that stage would process it again, and the sinks keep one copy."""
    delivered = {v.id for v in result.versions}
    moving = []
    for m in result.in_flight:
        if m.message and str(m.message.get("id")) in delivered:
            result.notes.append(f"{m.topic} partition {m.partition} offset {m.offset}: delivered already; "
                                f"{m.waiting_for} has not committed past it yet")
        else:
            moving.append(m)
    result.in_flight = moving


def broker_unreachable(bootstrap: str, timeout_s: float = 2.0) -> str | None:
    """Why no server of ``bootstrap`` takes a connection, or None when one does (a TCP connect:
    a Kafka client would back off for up to 30 s before it gives up)."""
    errors = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
            return None
        except (OSError, ValueError) as exc:
            errors.append(f"{server.strip()}: {getattr(exc, 'strerror', None) or exc}")
    return f"the broker does not answer ({'; '.join(errors)})"


def _of_record(message, key: str, ids: set[str], url_bytes: bytes | None) -> tuple[bool, Any]:
    """Whether a message is of the record (its key is one of ``ids``, or it is an event or record of
    the URL), and its value parsed when it is."""
    rid = message.key.decode("utf-8", "replace") if message.key is not None else None
    by_key = rid in ids
    if not by_key and (url_bytes is None or url_bytes not in (message.value or b"")):
        return False, None
    try:
        value = orjson.loads(message.value)
    except orjson.JSONDecodeError:
        value = None
    value = value if isinstance(value, dict) else None
    return by_key or (value is not None and sink_lookup.matches_key(value, key)), value


def _consumer(settings: Settings):
    from kafka import KafkaConsumer

    return KafkaConsumer(bootstrap_servers=settings.broker.bootstrap_servers.split(","), group_id=None,
                         enable_auto_commit=False, client_id="pipeline-record", bootstrap_timeout_ms=5000,
                         request_timeout_ms=5000, fetch_max_wait_ms=100, **settings.consumer_options())


def _in_flight(settings: Settings, key: str, ids: set[str], deadline: float, notes: list[str]) -> list[InFlight]:
    """Messages of the record between each reading group's committed offset and the partition's end."""
    from kafka import TopicPartition

    from pipeline.monitoring.lag import OffsetsProbe

    url_bytes = orjson.dumps(key) if sink_lookup.is_url(key) else None
    probe = OffsetsProbe(settings.broker.bootstrap_servers, timeout_s=5.0, options=settings.broker.client_options())
    consumer = _consumer(settings)
    found: list[InFlight] = []
    try:
        for role in registry.roles(settings):
            topic = registry.stage_topics(settings, role).source
            parts = [TopicPartition(topic, p) for p in range(settings.topics.partitions_of(topic))]
            group = probe.committed(registry.consumer_group(settings, role))
            committed = {tp: group[(tp.topic, tp.partition)] for tp in parts if (tp.topic, tp.partition) in group}
            ends = consumer.end_offsets(parts)
            starts = consumer.beginning_offsets(parts)
            ranges = {tp: (max(committed.get(tp, starts[tp]), starts[tp]), ends[tp]) for tp in parts}
            ranges = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
            waiting = sum(end - start for start, end in ranges.values())
            if not ranges:
                continue
            if waiting > IN_FLIGHT_MAX:
                notes.append(f"{topic}: {waiting:,} messages wait for {role}; looked at the first {IN_FLIGHT_MAX:,}")
            consumer.assign(list(ranges))
            for tp, (start, _) in ranges.items():
                consumer.seek(tp, start)
            read = 0
            while ranges and read < IN_FLIGHT_MAX:
                if time.monotonic() > deadline:
                    notes.append(f"{topic}: not read to its end within the time limit")
                    return found
                for tp, messages in consumer.poll(timeout_ms=200, max_records=2000).items():
                    for message in messages:
                        if tp not in ranges or message.offset >= ranges[tp][1]:
                            continue
                        read += 1
                        hit, value = _of_record(message, key, ids, url_bytes)
                        if hit:
                            found.append(InFlight(topic, message.partition, message.offset, role, value))
                done = [tp for tp in ranges if consumer.position(tp) >= ranges[tp][1]]
                for tp in done:
                    del ranges[tp]
                if done:
                    consumer.pause(*done)  # read to its end (assigning anew would lose the others' positions)
            consumer.assign([])
    finally:
        consumer.close()
        probe.close()
    return found


def _letters(settings: Settings, key: str, ids: set[str], deadline: float, notes: list[str]) -> list[dict]:
    from pipeline.streaming import deadletters

    url = key if sink_lookup.is_url(key) else None
    found = []
    copies = deadletters.Copies()  # a failure's letter written twice (at least once) is shown once
    for _, letter in deadletters.read(settings, timeout_s=max(1.0, deadline - time.monotonic())):
        if (letter.get("id") in ids or (url is not None and deadletters.origin_of(letter) == url)) \
                and copies.first(letter):
            found.append(letter)
    return sorted(found, key=lambda letter: letter.get("failed_at") or "", reverse=True)


# --- the text view of `pipeline record` ---------------------------------------------------------------

def _line(label: str, value: Any) -> str:
    return f"  {label:<10} {value}\n"


def _record_text(record: dict[str, Any]) -> str:
    out = []
    lang = record.get("lang") if isinstance(record.get("lang"), dict) else {}
    for label, value in (("title", record.get("title")), ("url", record.get("url")),
                         ("canonical", record.get("canonical_url") if record.get("canonical_url") != record.get("url")
                          else None),
                         ("site", record.get("site")), ("published", record.get("published")),
                         ("fetched", record.get("fetched_at")), ("ingested", record.get("ingested_at")),
                         ("language", f"{lang.get('code')} ({lang.get('confidence')})" if lang.get("code") else None)):
        if value:
            out.append(_line(label, value))
    dedup = record.get("dedup") if isinstance(record.get("dedup"), dict) else {}
    if dedup.get("status"):
        of = f" of {dedup['duplicate_of']}" if dedup.get("duplicate_of") else ""
        out.append(_line("dedup", f"{dedup['status']}{of}"))
    version = record.get("version") if isinstance(record.get("version"), dict) else {}
    if version.get("number"):
        previous = f", previous {version['previous_id']}" if version.get("previous_id") else ""
        out.append(_line("version", f"{version['number']} ({version.get('status')}{previous})"))
    story = record.get("story") if isinstance(record.get("story"), dict) else {}
    if story.get("id"):
        summary = story.get("summary") or {}
        out.append(_line("story", f"{story['id']} {summary.get('title') or ''} ({story.get('status')}, "
                                  f"{summary.get('articles') or '?'} articles)"))
    summary = record.get("entity_summary") or []
    if summary:
        out.append(_line("entities", ", ".join(f"{e.get('canonical')} ({e.get('label')}) ×{e.get('count')}"
                                                for e in summary[:12] if isinstance(e, dict))
                         + (f", +{len(summary) - 12} more" if len(summary) > 12 else "")))
    trace = [t for t in record.get("trace") or [] if isinstance(t, dict)]
    if trace:
        out.append(_line("trace", " · ".join(f"{t.get('stage')} {t.get('ms')} ms" for t in trace)))
    text = record.get("text") or ""
    if text:
        out.append(f"  text ({len(text):,} characters):\n")
        out += [f"    {line}\n" for line in text.splitlines() if line.strip()]
    return "".join(out)


def text(result: Lookup) -> str:
    """What ``pipeline record`` prints: where each version is and its content, the dead letters,
    the messages still in flight, and what could not be read."""
    out = []
    if len(result.versions) > 1:
        out.append(f"{len(result.versions)} versions of {result.key}, newest first\n")
    for version in result.versions:
        out.append(f"record {version.id}\n")
        for copy in version.copies:
            out.append(_line("in", f"{redact(copy.sink)}: {copy.where}"))
        out.append(_record_text(version.record))
        out.append("\n")
    for letter in result.letters:
        error = (letter.get("error") or "").strip().splitlines()
        replay = ("cannot succeed again" if letter.get("reason") in CANNOT_SUCCEED_AGAIN
                  else "payload cut, cannot be replayed" if letter.get("payload_truncated")
                  else "`pipeline deadletter replay` can send it again")
        out.append(f"dead letter {letter.get('id') or '(no id)'}: {letter.get('stage')} failed {letter.get('failed_at')}, "
                   f"reason {letter.get('reason')} ({replay})\n")
        out.append(_line("error", error[-1] if error else ""))
        out.append(_line("payload", f"{letter.get('payload_bytes')} bytes from {letter.get('topic')} "
                                    f"partition {letter.get('partition')} offset {letter.get('offset')}"))
    for m in result.in_flight:
        out.append(f"in flight: {m.topic} partition {m.partition} offset {m.offset}, waiting for {m.waiting_for}"
                   + (f" (id {m.message.get('id')})" if m.message and m.message.get("id") else "") + "\n")
    for note in result.notes:
        out.append(f"note: {note}\n")
    return "".join(out)
