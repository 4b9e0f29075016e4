"""Follows the delivery-receipt and dead-letter topics: what reached the sink, what failed.

``pipeline run --exit-when-done`` uses it to know when every replayed event has reached the sink
or the dead-letter topic; the dashboard listens to it for the newest records and dead letters.
It reads without a consumer group (it commits nothing), from the offsets the topics had when it
started, or (``lookback_s``) from the first message of that many seconds ago.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from pipeline.config import Settings
from pipeline.streaming.replay import Sent


@dataclass
class Tally:
    delivered: dict[str, str | None] = field(default_factory=dict)  # id -> dedup status (when ids are kept)
    receipts: Counter = field(default_factory=Counter)  # id -> receipts seen (> 1 after a redelivery)
    receipt_count: int = 0  # every receipt, redeliveries included
    statuses: Counter = field(default_factory=Counter)  # dedup status -> receipts
    outcomes: Counter = field(default_factory=Counter)  # receipt outcome (written, skipped_written) -> receipts
    written: set[str] = field(default_factory=set)  # ids written new by some receipt (when ids are kept)
    dead_ids: set[str] = field(default_factory=set)
    dead_raw_positions: set[tuple[int, int]] = field(default_factory=set)  # (partition, offset) in raw
    dead_letters: Counter = field(default_factory=Counter)  # (stage, reason) -> count
    first_at: float | None = None
    last_at: float | None = None

    def add_receipt(self, receipt: dict, keep_ids: bool) -> None:
        """Count a receipt; ``keep_ids``: also note its id (a run waiting for particular records),
        else nothing in here grows with the stream (a continuous run)."""
        self.receipt_count += 1
        self.statuses[receipt.get("dedup_status")] += 1
        outcome = receipt.get("outcome") or "written"
        self.outcomes[outcome] += 1
        if keep_ids:
            self.delivered[receipt.get("id")] = receipt.get("dedup_status")
            self.receipts[receipt.get("id")] += 1
            if outcome == "written":
                self.written.add(receipt.get("id"))

    def add_dead_letter(self, letter: dict, keep_ids: bool, raw_topic: str) -> None:
        """Count a dead letter (by stage and reason); ``keep_ids``: also note its record id and,
        for a raw event, its position in ``raw_topic``."""
        self.dead_letters[(letter.get("stage"), letter.get("reason"))] += 1
        if not keep_ids:
            return
        if letter.get("id"):
            self.dead_ids.add(letter["id"])
        if letter.get("topic") == raw_topic and letter.get("partition") is not None:
            self.dead_raw_positions.add((letter["partition"], letter["offset"]))


#: how long one poll of the tracker's consumer waits for messages (and so how long ``close`` may
#: wait for it); a poll returns as soon as messages come
POLL_MS = 500
#: messages taken per poll: the consumer asks the broker again only for partitions whose messages
#: were all taken, so a poll takes more than a busy run brings in one fetch (~300 bytes a receipt)
MAX_RECORDS = 10000

Listener = Callable[[str, dict, float], None]  # kind ("receipt" | "dead_letter"), message, timestamp (s)


class DeliveryTracker:
    """``keep_ids=False`` (a continuous run) keeps counts only, so its memory does not grow with
    the stream; waiting for particular records needs the ids."""

    def __init__(self, bootstrap: str, settings: Settings, lookback_s: float | None = None, keep_ids: bool = True):
        from kafka import KafkaConsumer, TopicPartition

        self.settings = settings
        self.keep_ids = keep_ids
        self.raw_topic = settings.topics.raw
        self.tally = Tally()
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
            client_id="pipeline-tracker",
            fetch_max_wait_ms=settings.profile.fetch_idle_wait_ms or settings.profile.fetch_max_wait_ms,
            consumer_timeout_ms=200, **settings.consumer_options(),
        )
        parts = []
        for topic in (settings.topics.delivered, settings.topics.deadletter):
            for p in range(settings.topics.partitions_of(topic)):
                parts.append(TopicPartition(topic, p))
        self._consumer.assign(parts)
        ends = self._consumer.end_offsets(parts)
        starts = dict(ends)
        if lookback_s:
            since_ms = int((time.time() - lookback_s) * 1000)
            try:
                found = self._consumer.offsets_for_times({tp: since_ms for tp in parts})
                starts.update({tp: at.offset for tp, at in found.items() if at is not None})
            except Exception:  # noqa: BLE001 - a broker without timestamp lookups: from the end
                pass
        for tp in parts:
            self._consumer.seek(tp, starts.get(tp, 0))
        self._thread = threading.Thread(target=self._run, name="delivery-tracker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delivered_topic = self.settings.topics.delivered
        while not self._stop.is_set():
            batches = self._consumer.poll(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
            now = time.monotonic()
            with self._lock:
                for tp, messages in batches.items():
                    for message in messages:
                        try:
                            value = orjson.loads(message.value)
                        except orjson.JSONDecodeError:
                            continue
                        if self.tally.first_at is None:
                            self.tally.first_at = now
                        self.tally.last_at = now
                        if not isinstance(value, dict):
                            continue
                        kind = "receipt" if tp.topic == delivered_topic else "dead_letter"
                        if kind == "receipt":
                            self.tally.add_receipt(value, self.keep_ids)
                        else:
                            self.tally.add_dead_letter(value, self.keep_ids, self.raw_topic)
                        for listener in self.listeners:
                            listener(kind, value, (message.timestamp or 0) / 1000.0 or time.time())

    def outstanding(self, sent: list[Sent]) -> list[Sent]:
        with self._lock:
            t = self.tally
            return [s for s in sent
                    if not (s.id and (s.id in t.delivered or s.id in t.dead_ids))
                    and (s.partition, s.offset) not in t.dead_raw_positions]

    def wait_for(self, sent: list[Sent], timeout_s: float, on_progress=None) -> list[Sent]:
        """Block until every sent event is delivered or dead-lettered; return the ones still missing."""
        deadline = time.monotonic() + timeout_s
        missing = self.outstanding(sent)
        while missing and time.monotonic() < deadline:
            if on_progress:
                on_progress(len(sent) - len(missing), len(sent))
            time.sleep(0.05)
            missing = self.outstanding(sent)
        return missing

    def wait_quiet(self, quiet_s: float, timeout_s: float) -> None:
        """Wait until no message has come for ``quiet_s`` (at most ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                last = self.tally.last_at
            if last is None or time.monotonic() - last >= quiet_s:
                return
            time.sleep(0.05)

    def snapshot(self) -> Tally:
        with self._lock:
            t = self.tally
            return Tally(delivered=dict(t.delivered), receipts=Counter(t.receipts), receipt_count=t.receipt_count,
                         statuses=Counter(t.statuses), outcomes=Counter(t.outcomes), written=set(t.written),
                         dead_ids=set(t.dead_ids), dead_raw_positions=set(t.dead_raw_positions),
                         dead_letters=Counter(t.dead_letters), first_at=t.first_at, last_at=t.last_at)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()
