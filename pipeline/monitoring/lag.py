"""Consumer lag: how many records wait in a stage's source topic, per partition.

Lag = end offset - committed offset, both asked from the broker (kafka-python admin:
``list_partition_offsets`` and ``list_group_offsets``).

The embedded broker (Tansu) answers ListOffsets with the base offset of the partition's last
record batch + 1, i.e. up to one batch short of the real end (measured: after a batch of 100
records at offsets 11..110 it reports 12). Its fetch responses carry the right high-water mark.
So the end of a partition is taken as the largest of what the broker reports and what the
pipeline itself has seen: the consumers' fetch high-water marks and positions and the producing
workers' delivered offsets (all exported on the workers' /metrics). :class:`PartitionLag` keeps
both numbers, so a view can say when (and by how much) the broker's own figure was short.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # next offset the group reads; None: the group never committed here
    broker_end: int | None  # end offset as the broker's ListOffsets reports it
    seen_end: int | None = None  # the pipeline's own knowledge: high-water marks, positions, produced offsets
    start: int = 0  # first offset still in the log (where a group without commits starts)
    # Offsets after the committed one that hold nothing a read_committed consumer reads: the
    # markers that end transactions, and records of aborted ones (counted only where lag is small)
    skipped: int = 0

    @property
    def end(self) -> int | None:
        known = [v for v in (self.broker_end, self.seen_end, self.committed) if v is not None]
        return max(known) if known else None

    @property
    def lag(self) -> int | None:
        end = self.end
        if end is None:
            return None
        return max(0, end - (self.committed if self.committed is not None else self.start) - self.skipped)

    @property
    def broker_short_by(self) -> int:
        """How far the broker's end offset is behind what the pipeline knows is there."""
        if self.broker_end is None or self.end is None:
            return 0
        return max(0, self.end - self.broker_end)

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "committed": self.committed,
                "broker_end": self.broker_end, "seen_end": self.seen_end, "end": self.end, "lag": self.lag,
                "broker_short_by": self.broker_short_by, "skipped": self.skipped}


class OffsetsProbe:
    """Committed offsets of consumer groups and end offsets of partitions, from the broker.

    One admin connection, opened on first use and re-opened after an error. Thread-safe.

    ``transactional``: the topics are written in Kafka transactions (exactly-once processing).
    Each committed transaction leaves a marker at the end of its records, which takes an offset
    but is no record: a stage that has read everything still commits the offset of the marker, so
    the plain difference of offsets says 1 record waits in every partition. Where that difference
    is at most ``EXACT_BELOW``, the probe reads the partition from the committed offset
    (``read_committed``) and counts what is really there."""

    EXACT_BELOW = 1000

    def __init__(self, bootstrap: str, timeout_s: float = 5.0, options: dict | None = None,
                 transactional: bool = False):
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.options = options or {}  # kafka-python client settings (BrokerSettings.client_options)
        self.transactional = transactional
        self._admin = None
        self._reader = None
        self._lock = threading.Lock()
        self._one_group_per_request = False  # the broker takes one group per OffsetFetch (Tansu)

    def _client(self):
        if self._admin is None:
            from kafka import KafkaAdminClient

            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap.split(","), client_id="pipeline-lag",
                                           request_timeout_ms=int(self.timeout_s * 1000),
                                           bootstrap_timeout_ms=int(self.timeout_s * 1000), **self.options)
        return self._admin

    def _call(self, fn):
        with self._lock:
            try:
                return fn(self._client())
            except Exception:
                self.close_locked()
                raise

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        """``{(topic, partition): next offset to read}`` of ``group`` (only partitions it committed)."""
        return self.committed_of([group])[group]

    def committed_of(self, groups: list[str]) -> dict[str, dict[tuple[str, int], int]]:
        """``committed`` of each of ``groups``, in one request where the broker takes several groups
        in one OffsetFetch (Apache Kafka 3.0+), else one request per group (Tansu)."""
        from kafka.errors import UnsupportedVersionError

        def offsets_of(answer) -> dict[tuple[str, int], int]:
            return {(tp.topic, tp.partition): meta.offset for tp, meta in answer.items()
                    if meta is not None and meta.offset is not None and meta.offset >= 0}

        def ask(admin):
            if len(groups) > 1 and not self._one_group_per_request:
                try:
                    answer = admin.list_group_offsets({group: None for group in groups})
                    return {group: offsets_of(answer.get(group, {})) for group in groups}
                except UnsupportedVersionError:
                    self._one_group_per_request = True
            return {group: offsets_of(admin.list_group_offsets({group: None}).get(group, {})) for group in groups}
        return self._call(ask)

    def ends(self, partitions: list[tuple[str, int]], earliest: bool = False) -> dict[tuple[str, int], int]:
        """``{(topic, partition): end offset}`` as the broker reports it (``earliest``: log start)."""
        if not partitions:
            return {}
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec

        spec = OffsetSpec.EARLIEST if earliest else OffsetSpec.LATEST

        def ask(admin):
            answer = admin.list_partition_offsets({TopicPartition(t, p): spec for t, p in partitions})
            return {(tp.topic, tp.partition): found.offset for tp, found in answer.items()}
        return self._call(ask)

    def group_lag(self, group: str, topic: str, partitions: list[int],
                  seen_end: dict[int, int] | None = None) -> list[PartitionLag]:
        """Lag of ``group`` on ``topic``'s ``partitions``, the end corrected by ``seen_end``."""
        return self.groups_lag({group: (topic, partitions, seen_end)})[group]

    def groups_lag(self, wanted: dict[str, tuple[str, list[int], dict[int, int] | None]]) -> dict[str, list[PartitionLag]]:
        """``group_lag`` of several groups (group -> its topic, partitions and ``seen_end``), with one
        request for their committed offsets and one for the end offsets of all their partitions
        (a dashboard sample of a 5-stage pipeline: 2-3 requests instead of 15)."""
        committed = self.committed_of(list(wanted))
        tps = list(dict.fromkeys((topic, p) for topic, partitions, _ in wanted.values() for p in partitions))
        ends = self.ends(tps)
        never = list(dict.fromkeys((topic, p) for group, (topic, partitions, _) in wanted.items() for p in partitions
                                   if (topic, p) not in committed[group]))
        starts = self.ends(never, earliest=True) if never else {}
        out = {}
        for group, (topic, partitions, seen_end) in wanted.items():
            seen_end = seen_end or {}
            lags = [PartitionLag(topic, p, committed[group].get((topic, p)), ends.get((topic, p)), seen_end.get(p),
                                 starts.get((topic, p), 0)) for p in partitions]
            if self.transactional:
                for lag in lags:
                    if lag.committed is not None and lag.broker_end is not None and 0 < (lag.lag or 0) <= self.EXACT_BELOW:
                        lag.skipped = self.skipped_offsets(topic, lag.partition, lag.committed, lag.broker_end)
            out[group] = lags
        return out

    def skipped_offsets(self, topic: str, partition: int, start: int, end: int) -> int:
        """Offsets in ``[start, end)`` of the partition that hold no committed record (markers,
        aborted records). Offsets past the last stable offset (an open transaction) count as
        records: they may still commit."""
        from kafka import TopicPartition

        def count(reader):
            tp = TopicPartition(topic, partition)
            reader.assign([tp])
            stable = min(end, reader.end_offsets([tp])[tp])  # read_committed: the last stable offset
            reader.seek(tp, start)
            records = 0
            deadline = time.monotonic() + self.timeout_s
            while reader.position(tp) < stable:
                if time.monotonic() > deadline:
                    return 0  # unknown: count every offset as a record
                for messages in reader.poll(timeout_ms=100).values():
                    records += sum(1 for m in messages if m.offset < stable)
            return max(0, stable - start - records)

        with self._lock:
            try:
                if self._reader is None:
                    from kafka import KafkaConsumer

                    self._reader = KafkaConsumer(
                        bootstrap_servers=self.bootstrap.split(","), group_id=None, enable_auto_commit=False,
                        isolation_level="read_committed", client_id="pipeline-lag", fetch_max_wait_ms=50,
                        request_timeout_ms=max(int(self.timeout_s * 1000), 10000), **self.options)
                return count(self._reader)
            except Exception:  # noqa: BLE001 - the broker is gone: count every offset as a record
                self._close_reader()
                return 0

    def _close_reader(self) -> None:
        _close_quietly(self._reader)
        self._reader = None

    def close_locked(self) -> None:
        _close_quietly(self._admin)
        self._admin = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()
            self._close_reader()


def _close_quietly(client) -> None:
    """Close a kafka-python client that may hold a broken connection."""
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass
