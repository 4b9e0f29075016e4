"""``pipeline replay``: raw events from sources (``pipeline.sources``) into the raw topic, with
kafka-python.

Each event gets its ``fetched_at`` (the replay time, unless the event has one) and its ``id``
before it is sent, and the id is the message key, so the record keeps its partition through every
stage. A second replay of the same file is a second fetch: new time, new ids.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.config import Settings
from pipeline.records import BadInput, accept_raw, derive_id, encode, host_of, iso, utc_now
from pipeline.sources import Source, SourceItem, open_source
from pipeline.sources.base import acknowledge
from pipeline.sources.reading import read_sources
from pipeline.streaming import preflight

log = logging.getLogger(__name__)


@dataclass
class Sent:
    id: str | None  # None when the event is invalid: the pipeline will dead-letter it
    partition: int
    offset: int


@dataclass
class ReplayResult:
    sent: list[Sent] = field(default_factory=list)
    count: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (origin, error) the broker refused
    seconds: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C / SIGTERM; what was sent until then is flushed
    unrecorded: int = 0  # checkpoints the source could not record (a full disk): sent again after a restart


def prepare(item: SourceItem, produces: str = "raw") -> tuple[bytes | None, bytes]:
    """``(key, value)`` for one source item: a raw event with its id and fetch time settled when it
    is valid; a URL event keyed by its host (one host's URLs meet one fetch worker)."""
    if item.event is None:
        return None, item.payload or b""
    if produces == "urls":
        event = dict(item.event)
        url = event.get("url")
        if isinstance(url, str) and not event.get("id"):  # the fetch stage tells a redelivery by it
            event["id"] = derive_id(url, iso(utc_now()), "url")
        return (host_of(url).encode() if isinstance(url, str) else None), encode(event)
    event = dict(item.event)
    try:
        raw = accept_raw(event, utc_now())
    except BadInput:
        return None, encode(event)  # sent as it is; the clean stage dead-letters it with the reason
    event["id"], event["fetched_at"] = raw.id, raw.fetched_at
    return raw.id.encode(), encode(event)


def make_producer(bootstrap: str, settings: Settings):
    from kafka import KafkaProducer

    profile = settings.profile
    return KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        client_id="pipeline-replay",
        acks="all",
        linger_ms=profile.producer_linger_ms,
        batch_size=profile.producer_max_batch_bytes,
        max_request_size=max(profile.producer_max_batch_bytes, profile.max_message_bytes + 65536),
        request_timeout_ms=int(profile.request_timeout_s * 1000),
        compression_type=None if profile.compression == "none" else profile.compression,
        **settings.broker.client_options(),
    )


def _paced(items: Iterable[tuple[Source, SourceItem]], rate: float | None,
           stop: threading.Event) -> Iterator[tuple[Source, SourceItem]]:
    start = time.monotonic()
    for n, item in enumerate(items):
        if rate:
            delay = start + n / rate - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
        if stop.is_set():
            return
        yield item


def check_targets(sources: list[Source], settings: Settings) -> None:
    """A source of URL events needs a chain that fetches them (``UnknownSource`` otherwise)."""
    from pipeline import registry
    from pipeline.sources import check_fetching

    check_fetching(sources, registry.fetches(settings))


COMPACT_AT = 2_000  # sends kept since the last checkpoint before the answered ones are let go


def _compact(sent: list, result: ReplayResult, report: bool) -> list:
    """The sends since the last checkpoint that still matter: those the broker has not answered
    yet, and one marker (None) if any failed, so the next checkpoint is not acknowledged (a failure
    goes to ``result.rejected``, printed when the replay ends, and to the log at once, when
    ``report``). The written ones are let go: a source without
    checkpoints (a file replayed in a loop for days) keeps no memory of its sends; a future with its
    latch and lock costs about 1.5 KB, and the 100,000 kept before grew `pipeline run --loop`'s
    process by ~3.5 MB a minute at 20 events/s for 80 minutes."""
    kept: list = []
    failed = False
    for entry in sent:
        if entry is None:
            failed = True
            continue
        origin, future = entry
        if not future.is_done:
            kept.append(entry)
        elif future.failed():
            failed = True
            if report:
                error = f"{type(future.exception).__name__}: {future.exception}"
                result.rejected.append((origin, error))
                log.warning("not sent: %s: %s", origin, error)
    return [None, *kept] if failed else kept


def _checkpoint(producer, source: Source, item: SourceItem, sent: list, result: ReplayResult,
                report: bool) -> None:
    """The source wants to know when what it gave up to ``item`` is durably in the topic: flush,
    and acknowledge only if every send since the last checkpoint succeeded (else the source gives
    it again another time: a watched folder reads the file again after a restart). ``report``: a
    failed send goes to ``result.rejected`` here (else the end of the replay reports it)."""
    from kafka.errors import KafkaError

    producer.flush(timeout=60)
    for entry in sent:
        if entry is None:
            return
        origin, future = entry
        try:
            future.get(timeout=30)
        except KafkaError as exc:
            if report:
                result.rejected.append((origin, f"{type(exc).__name__}: {exc}"))
            return
    if item.position is not None and not acknowledge(source, item.position):
        result.unrecorded += 1


def replay(sources: list[Source | str], bootstrap: str, settings: Settings, rate: float | None = None,
           loop: bool = False, progress: bool = True, track: bool = True,
           stop: threading.Event | None = None) -> ReplayResult:
    """Send every event of ``sources`` (``Source`` objects, or their names: ``KIND:ARGUMENT`` or a
    path) to the raw topic, again and again with ``loop`` (bounded sources only).

    Setting ``stop`` (a signal handler does) ends the replay between two events: what was sent is
    flushed and the result says ``interrupted``. (An exception raised by a signal inside the Kafka
    client could leave it holding a lock, and its flush would then wait forever.)"""
    stop = stop or threading.Event()
    sources = [s if isinstance(s, Source) else open_source(s, settings) for s in sources]
    check_targets(sources, settings)
    preflight.require_sources(sources)  # a port an endpoint cannot listen on: one line, before any send
    track = track and all(s.bounded for s in sources)  # an endless source would keep every future
    from kafka.errors import KafkaError

    from pipeline.progress import progress_bar

    producer = make_producer(bootstrap, settings)
    result = ReplayResult()
    futures = []
    t0 = time.monotonic()
    sizes = [s.size() for s in sources]
    total = None if loop or None in sizes else sum(sizes)
    since_checkpoint: list = []  # (origin, future) since the last checkpoint; None: one was refused
    compact_at = COMPACT_AT
    with progress_bar("replay", "events", enabled=progress) as bar:
        task = bar.add_task("replay", total=total)
        try:
            for source, item in _paced(read_sources(sources, stop, loop), rate, stop):
                key, value = prepare(item, source.produces)
                try:
                    future = producer.send(getattr(settings.topics, source.produces), key=key, value=value)
                except KafkaError as exc:  # e.g. larger than the broker accepts
                    result.rejected.append((item.origin, f"{type(exc).__name__}: {exc}"))
                    since_checkpoint.append(None)
                    future = None
                if future is not None:
                    if track:
                        futures.append((item.origin, key, future))
                    since_checkpoint.append((item.origin, future))
                    result.count += 1
                    bar.advance(task)
                if item.checkpoint:
                    _checkpoint(producer, source, item, since_checkpoint, result, report=not track)
                    since_checkpoint = []
                elif len(since_checkpoint) >= compact_at:
                    since_checkpoint = _compact(since_checkpoint, result, report=not track)
                    compact_at = max(COMPACT_AT, 2 * len(since_checkpoint))  # many unanswered: not again at once
        except KeyboardInterrupt:
            stop.set()
        finally:
            result.interrupted = stop.is_set()
            producer.flush(timeout=60)
            for origin, key, future in futures:
                try:
                    meta = future.get(timeout=30)
                except KafkaError as exc:
                    result.rejected.append((origin, f"{type(exc).__name__}: {exc}"))
                    result.count -= 1
                    continue
                result.sent.append(Sent(key.decode() if key else None, meta.partition, meta.offset))
            producer.close(timeout=10)
            for source in sources:  # what they hold (an endpoint's lag probe) goes before the broker does
                source.close()
    result.seconds = time.monotonic() - t0
    return result
