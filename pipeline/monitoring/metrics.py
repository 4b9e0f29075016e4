"""Prometheus metrics of one worker (prometheus_client, a registry of its own).

Every worker, whatever its stage, exports (``stage`` label on each):

    news_pipeline_worker_info{stage,worker,host,pid,version}    1
    news_pipeline_worker_ready                                   1 once it has joined its group
    news_pipeline_event_loop_delay_seconds                       since the worker's event loop last ran
    news_pipeline_blocked_seconds                                since the batch in hand first failed (0: none)
    news_pipeline_record_busy_seconds / _record_time_limit_seconds   time on the record in hand, and its limit
    news_pipeline_records_in_total / _records_out_total          records taken / passed on
    news_pipeline_dead_letters_total{reason}                     records dead-lettered
    news_pipeline_retries_total                                  batches retried (index or database down)
    news_pipeline_stage_events_total{name}                       the stage's own counters (StageStats.extra)
    news_pipeline_stage_counts_total{name,key}                   the stage's own counters by key (StageStats.keyed)
    news_pipeline_stage_level{name,key}                          the stage's own levels by key, now (StageStats.gauges)
    news_pipeline_busy_seconds_total                             time spent inside the stage code
    news_pipeline_record_processing_seconds                      histogram: time per record
    news_pipeline_batch_records                                  histogram: records per batch taken
    news_pipeline_assigned_partitions                            source partitions this worker owns
    news_pipeline_consumer_lag{topic,partition}                  records waiting (broker, corrected; see lag.py)
    news_pipeline_consumer_committed_offset{topic,partition}     from the broker
    news_pipeline_broker_end_offset{topic,partition}             from the broker (Tansu: up to a batch short)
    news_pipeline_fetch_highwater_offset{topic,partition}        high-water mark of this consumer's fetches
    news_pipeline_consumer_position{topic,partition}             next offset this worker reads
    news_pipeline_produced_offset{topic,partition}               next offset after the last one it produced
    process_cpu_seconds_total, process_resident_memory_bytes, ... (prometheus_client's process collector)
    news_pipeline_children_cpu_seconds_total / _children_resident_memory_bytes   helper processes (trafilatura;
                                                                                    CPU of ended ones too)

and what each stage declares it counts in its records (``record_metrics`` on the stage class,
see ``pipeline/stage_metrics.py``); the built-in stages declare:

    language  news_pipeline_language_records_total{lang}
    entities  news_pipeline_entity_mentions_total{label}, news_pipeline_entities_per_record (histogram),
              news_pipeline_top_entity_mentions{label,name} (the 20 most mentioned of the last hour)
    dedup     news_pipeline_dedup_outcomes_total{status}

and the sink: news_pipeline_end_to_end_seconds (histogram: ingested_at to durably written).

Counters are read from the processor's ``StageStats`` when scraped (nothing per record on the
hot path but the histogram observations), lag is asked from the broker when scraped, at most
every ``lag_cache_s`` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline import __version__
from pipeline.monitoring.window import SlidingCounter
from pipeline.records import latency_s, utc_now
from pipeline.redaction import redact
from pipeline.stage_metrics import CountBy, RecordMetric, SizeOf, TopOf, values

log = logging.getLogger("pipeline.metrics")

PREFIX = "news_pipeline"
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
END_TO_END_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200)
#: keys a minute of a TopOf window keeps once it is over (its most counted): memory stays bounded
#: however many distinct keys (entity names) an hour brings
TOP_KEYS_PER_MINUTE = 1000


@dataclass
class ConsumerView:
    """What the worker's Kafka consumer knows, copied by its event loop (read by the HTTP thread)."""

    topic: str
    group: str
    assigned: frozenset[int] = frozenset()
    position: dict[int, int] = field(default_factory=dict)  # next offset to read
    highwater: dict[int, int] = field(default_factory=dict)  # from the fetch responses
    produced: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset after the last produced

    def note_produced(self, topic: str, partition: int, offset: int | None) -> None:
        """A record this worker produced is acknowledged at ``offset``."""
        if offset is not None and offset + 1 > self.produced.get((topic, partition), 0):
            self.produced[(topic, partition)] = offset + 1


def _by_key(family, stage: str, table: dict):
    """``family`` with one sample per name and key of ``table`` (name -> key -> value)."""
    for name, by_key in sorted(table.items()):
        for key, value in sorted(dict(by_key).items()):  # a copy: the stage's thread may add keys meanwhile
            family.add_metric([stage, str(name), str(key)], value)
    return family


class _StatsCollector(Collector):
    """Counters straight from the processor's ``StageStats``, read at scrape time."""

    def __init__(self, metrics: WorkerMetrics):
        self.m = metrics

    def collect(self):
        m = self.m
        stats = m.stats()
        stage = [m.stage]
        c = CounterMetricFamily(f"{PREFIX}_records_in", "Records this worker took from its source topic.",
                                labels=["stage"])
        c.add_metric(stage, stats.records_in)
        yield c
        c = CounterMetricFamily(f"{PREFIX}_records_out", "Records this worker passed on (or wrote, for the sink).",
                                labels=["stage"])
        c.add_metric(stage, stats.records_out)
        yield c
        c = CounterMetricFamily(f"{PREFIX}_dead_letters", "Records this worker dead-lettered, by reason.",
                                labels=["stage", "reason"])
        for reason, n in sorted(stats.failed.items()):
            c.add_metric([m.stage, reason], n)
        yield c
        c = CounterMetricFamily(f"{PREFIX}_stage_events", "The stage's own counters (StageStats.extra).",
                                labels=["stage", "name"])
        for name, n in sorted(stats.extra.items()):
            c.add_metric([m.stage, str(name)], n)
        yield c
        yield _by_key(CounterMetricFamily(f"{PREFIX}_stage_counts", "The stage's own counters by key "
                                          "(StageStats.keyed).", labels=["stage", "name", "key"]), m.stage, stats.keyed)
        yield _by_key(GaugeMetricFamily(f"{PREFIX}_stage_level", "The stage's own levels by key, now "
                                        "(StageStats.gauges).", labels=["stage", "name", "key"]), m.stage, stats.gauges)
        c = CounterMetricFamily(f"{PREFIX}_busy_seconds", "Time spent in the stage's code.", labels=["stage"])
        c.add_metric(stage, stats.busy_ms / 1000.0)
        yield c
        g = GaugeMetricFamily(f"{PREFIX}_worker_ready", "1 once the worker has joined its consumer group.",
                              labels=["stage"])
        g.add_metric(stage, 1.0 if m.ready else 0.0)
        yield g
        g = GaugeMetricFamily(f"{PREFIX}_event_loop_delay_seconds",
                              "Seconds since the worker's event loop last ran (stuck when large).", labels=["stage"])
        g.add_metric(stage, m.loop_delay_s())
        yield g
        busy = m.record_busy()
        g = GaugeMetricFamily(f"{PREFIX}_record_busy_seconds", "Seconds the stage has worked on the record in "
                              "hand (0: between records).", labels=["stage"])
        g.add_metric(stage, busy[1] if busy else 0.0)
        yield g
        g = GaugeMetricFamily(f"{PREFIX}_record_time_limit_seconds", "The stage's time limit per record "
                              "(0: none).", labels=["stage"])
        g.add_metric(stage, m.record_clock.limit_s if m.record_clock is not None else 0.0)
        yield g
        g = GaugeMetricFamily(f"{PREFIX}_blocked_seconds", "Seconds the worker has been retrying the batch in "
                              "hand because a dependency fails (0: not retrying).", labels=["stage"])
        g.add_metric(stage, m.blocked_s())
        yield g
        for top, counter in m.tops:
            g = GaugeMetricFamily(f"{PREFIX}_{top.name}", top.help, labels=["stage", *top.labels])
            for key, n in counter.top(top.n):
                g.add_metric([m.stage, *(str(k) for k in key)], n)
            yield g


class _ConsumerCollector(Collector):
    """Partitions, offsets and lag. The broker is asked in a thread of its own, at most every
    ``lag_cache_s`` seconds; a scrape waits up to ``WAIT_S`` for a fresh answer, else it gets the
    last one, so a slow or absent broker never makes a worker look down to Prometheus."""

    WAIT_S = 1.0

    def __init__(self, metrics: WorkerMetrics):
        self.m = metrics
        self._asked_at = -1e9
        self._cached: list = []
        self._lock = threading.Lock()
        self._asking: threading.Thread | None = None

    def _ask(self) -> None:
        m, view = self.m, self.m.view
        seen = {p: max(view.position.get(p, 0), view.highwater.get(p, 0)) for p in view.assigned}
        try:
            answer = m.probe.group_lag(view.group, view.topic, sorted(view.assigned), seen)
        except Exception as exc:  # noqa: BLE001 - the metrics go on without lag until the broker answers
            m.lag_errors.inc()
            log.warning("lag: the broker did not answer: %s", exc, extra={"stage": m.stage})
            answer = []
        with self._lock:
            self._cached = [p for p in answer if p.partition in view.assigned]

    def _lag(self) -> list:
        m = self.m
        view = m.view
        if m.probe is None or view is None or not view.assigned:
            return []
        started = None
        with self._lock:
            idle = self._asking is None or not self._asking.is_alive()
            if idle and time.monotonic() - self._asked_at >= m.lag_cache_s:
                self._asked_at = time.monotonic()
                started = self._asking = threading.Thread(target=self._ask, name=f"{m.stage}-lag", daemon=True)
                started.start()
        if started is not None:
            started.join(self.WAIT_S)
        with self._lock:
            return [p for p in self._cached if p.partition in view.assigned]

    def collect(self):
        m = self.m
        view = m.view
        labels = ["stage", "topic", "partition"]
        g = GaugeMetricFamily(f"{PREFIX}_assigned_partitions", "Source partitions this worker owns.",
                              labels=["stage"])
        g.add_metric([m.stage], len(view.assigned) if view else 0)
        yield g
        if view is None:
            return
        families = {name: GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=labels) for name, text in (
            ("consumer_lag", "Records waiting in the partition: end offset - committed offset."),
            ("consumer_committed_offset", "Committed offset of the worker's group (from the broker)."),
            ("broker_end_offset", "End offset as the broker reports it (the embedded broker: up to a batch short)."),
            ("fetch_highwater_offset", "High-water mark of the partition in this consumer's fetch responses."),
            ("consumer_position", "Next offset this worker reads."),
            ("produced_offset", "Next offset after the last record this worker produced to the partition."),
        )}
        for part in self._lag():
            key = [m.stage, part.topic, str(part.partition)]
            if part.lag is not None:
                families["consumer_lag"].add_metric(key, part.lag)
            if part.committed is not None:
                families["consumer_committed_offset"].add_metric(key, part.committed)
            if part.broker_end is not None:
                families["broker_end_offset"].add_metric(key, part.broker_end)
        for p in sorted(view.assigned):
            key = [m.stage, view.topic, str(p)]
            if p in view.highwater:
                families["fetch_highwater_offset"].add_metric(key, view.highwater[p])
            if p in view.position:
                families["consumer_position"].add_metric(key, view.position[p])
        for (topic, p), offset in sorted(view.produced.items()):
            families["produced_offset"].add_metric([m.stage, topic, str(p)], offset)
        yield from families.values()


class _ChildrenCollector(Collector):
    """CPU and memory of the worker's helper processes (the clean stage's trafilatura pool).

    The CPU counts every helper the worker ever had, not only the live ones: a helper that ended
    and was waited for is counted in its parent's children times (the worker's, or a live helper's:
    the pool's processes are started and reaped by a forkserver), so a recycled parser's CPU stays
    in the counter, which never goes down.

    Finding the helpers reads every process of the machine (``Process.children`` walks /proc: ~2
    CPU-ms a scrape with 100 processes, and the dashboard scrapes every worker every second while
    records move), so the list is looked up again at most every ``rescan_s`` seconds, or when a
    helper in it has ended; in between, only the helpers in it are read (a new helper's CPU shows
    up to ``rescan_s`` late, all of it: the counter catches up)."""

    def __init__(self, rescan_s: float = 5.0) -> None:
        self.rescan_s = rescan_s
        self._reported = 0.0
        self._children: list = []
        self._found_at = -1e9

    def _helpers(self, me) -> list:
        now = time.monotonic()
        if now - self._found_at >= self.rescan_s or not all(child.is_running() for child in self._children):
            self._children = me.children(recursive=True)
            self._found_at = now
        return self._children

    def collect(self):
        import psutil

        rss = 0.0
        try:
            me = psutil.Process()
            mine = me.cpu_times()
            cpu = mine.children_user + mine.children_system  # helpers that ended, with theirs
            for child in self._helpers(me):
                try:
                    times = child.cpu_times()
                    cpu += times.user + times.system + times.children_user + times.children_system
                    rss += child.memory_info().rss
                except psutil.Error:
                    continue
        except psutil.Error:
            return
        # a helper ending between the two readings is in neither for a moment: never report less
        self._reported = max(self._reported, cpu)
        c = CounterMetricFamily(f"{PREFIX}_children_cpu_seconds",
                                "CPU time of the worker's helper processes, ended ones included.")
        c.add_metric([], self._reported)
        yield c
        g = GaugeMetricFamily(f"{PREFIX}_children_resident_memory_bytes",
                              "Resident memory of the worker's live helper processes.")
        g.add_metric([], rss)
        yield g


class WorkerMetrics:
    """The metrics of one worker process. ``stats`` returns its processor's ``StageStats``."""

    def __init__(self, stage: str, worker: str, stats: Callable[[], Any], lag_cache_s: float = 2.0,
                 stall_after_s: float = 30.0, record_metrics: tuple[RecordMetric, ...] = ()):
        self.stage = stage
        self.worker = worker
        self.stats = stats
        self.lag_cache_s = lag_cache_s
        self.stall_after_s = stall_after_s
        self.ready = False
        self.stopping = False
        self.view: ConsumerView | None = None
        self.probe = None  # OffsetsProbe, set by the worker once it knows the broker
        self._last_tick = time.monotonic()
        self.record_clock = None  # the stage's RecordClock: which record it works on, for how long
        self._blocked_since: float | None = None  # the batch in hand failed first then (retried since)
        self.blocked_reason = ""

        disable_created_metrics()  # no *_created series: they double the exposition and nothing reads them
        r = self.registry = CollectorRegistry()
        info = Gauge(f"{PREFIX}_worker_info", "The worker: stage, name, host, pid, version.",
                     ["stage", "worker", "host", "pid", "version"], registry=r)
        info.labels(stage, worker, socket.gethostname(), str(os.getpid()), __version__).set(1)
        self.retries = Counter(f"{PREFIX}_retries", "Batches retried because a dependency was unavailable.",
                               ["stage"], registry=r).labels(stage)
        self.lag_errors = Counter(f"{PREFIX}_lag_probe_errors", "Times the broker did not answer the lag query.",
                                  ["stage"], registry=r).labels(stage)
        self.processing = Histogram(f"{PREFIX}_record_processing_seconds", "Time the stage spent on one record.",
                                    ["stage"], buckets=PROCESSING_BUCKETS, registry=r).labels(stage)
        self.batch = Histogram(f"{PREFIX}_batch_records", "Records per batch the worker took.", ["stage"],
                               buckets=BATCH_BUCKETS, registry=r).labels(stage)
        # what the stage declares it counts in its records
        self.counts: list[tuple[CountBy, Any]] = []
        self.sizes: list[tuple[SizeOf, Any]] = []
        self.tops: list[tuple[TopOf, SlidingCounter]] = []
        for declared in record_metrics:
            if isinstance(declared, CountBy):
                self.counts.append((declared, Counter(f"{PREFIX}_{declared.name}", declared.help,
                                                      ["stage", declared.label], registry=r)))
            elif isinstance(declared, SizeOf):
                self.sizes.append((declared, Histogram(f"{PREFIX}_{declared.name}", declared.help, ["stage"],
                                                       buckets=declared.buckets, registry=r).labels(stage)))
            elif isinstance(declared, TopOf):
                self.tops.append((declared, SlidingCounter(declared.window_s, 60.0,
                                                           max_keys=max(TOP_KEYS_PER_MINUTE, 10 * declared.n))))
            else:
                raise TypeError(f"record_metrics of {stage}: {declared!r} is not a CountBy, SizeOf or TopOf")
        if stage == "sink":
            self.end_to_end = Histogram(f"{PREFIX}_end_to_end_seconds",
                                        "From ingestion (the raw event's arrival) to durably written by the sink.",
                                        ["stage"], buckets=END_TO_END_BUCKETS, registry=r).labels(stage)
        r.register(_StatsCollector(self))
        r.register(_ConsumerCollector(self))
        ProcessCollector(registry=r)
        r.register(_ChildrenCollector())

    # --- observations (called by the worker) -----------------------------------------------------

    def observe_batch(self, size: int) -> None:
        self.batch.observe(size)

    def observe_records(self, records: list[dict[str, Any]]) -> None:
        """Records the stage passed on: time per record (its trace entry) and what the stage found."""
        for record in records:
            trace = record.get("trace")
            if trace and isinstance(trace[-1], dict) and trace[-1].get("stage") == self.stage:
                self.processing.observe(float(trace[-1].get("ms") or 0.0) / 1000.0)
            self._observe_declared(record)

    def _observe_declared(self, record: dict[str, Any]) -> None:
        for declared, counter in self.counts:
            found: dict[str, int] = {}
            for value in values(record, declared.path):
                label = declared.missing if value is None or value == "" else str(value)
                found[label] = found.get(label, 0) + 1
            for label, n in found.items():
                counter.labels(self.stage, label).inc(n)
        for declared, histogram in self.sizes:
            for value in values(record, declared.path):
                if isinstance(value, list | dict):
                    histogram.observe(len(value))
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    histogram.observe(value)
        for declared, window in self.tops:
            weights: dict[tuple, int] = {}
            for item in values(record, declared.path):
                if not isinstance(item, dict):
                    continue
                key = tuple(item.get(k) for k in declared.keys)
                if any(k is None or k == "" for k in key):
                    continue
                weight = item.get(declared.weight) if declared.weight else 1
                weights[key] = weights.get(key, 0) + (int(weight) if isinstance(weight, int | float) and weight else 1)
            if weights:
                window.add(weights)

    def observe_written(self, records: list[dict[str, Any]], seconds: float, now: datetime | None = None) -> None:
        """The sink wrote ``records`` in ``seconds``: time per record and end-to-end latency."""
        if not records:
            return
        now = now or utc_now()
        share = seconds / len(records)
        for record in records:
            self.processing.observe(share)
            latency = latency_s(record, now)
            if latency is not None:
                self.end_to_end.observe(latency)

    # --- health ----------------------------------------------------------------------------------

    def tick(self) -> None:
        """The worker's event loop is alive (called every second by a timer on it)."""
        self._last_tick = time.monotonic()

    def loop_delay_s(self) -> float:
        return max(0.0, time.monotonic() - self._last_tick)

    def retrying(self, reason: str) -> None:
        """The batch in hand failed for a reason outside the records (a dependency); it is retried."""
        if self._blocked_since is None:
            self._blocked_since = time.monotonic()
        self.blocked_reason = redact(reason)
        self.retries.inc()

    def unblocked(self) -> None:
        self._blocked_since = None
        self.blocked_reason = ""

    def blocked_s(self) -> float:
        since = self._blocked_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def record_busy(self) -> tuple[str, float, float] | None:
        """The record the stage works on, the seconds so far and its limit (None: between records)."""
        clock = self.record_clock
        busy = clock.busy() if clock is not None else None
        return None if busy is None else (busy[0], busy[1], clock.limit_s)

    def health(self) -> tuple[bool, str]:
        delay = self.loop_delay_s()
        if delay > self.stall_after_s:
            return False, f"event loop stalled for {delay:.0f} s"
        busy = self.record_busy()
        if busy is not None and busy[2] and busy[1] > busy[2]:
            return False, (f"busy on record {busy[0]} for {busy[1]:.0f} s, past its limit of {busy[2]:g} s "
                           "(stages.limits.time_limit_s): it is interrupted at its next Python instruction")
        blocked = self.blocked_s()
        if blocked > self.stall_after_s:
            return False, f"retrying the same batch for {blocked:.0f} s: {self.blocked_reason}"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        ok, text = self.health()
        if not ok:
            return ok, text
        if self.stopping:
            return False, "stopping"
        if not self.ready:
            return False, "not in its consumer group yet (starting or rebalancing)"
        return True, "ok"

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def serve(metrics: WorkerMetrics, host: str, port: int, fallback: bool = False, read_timeout_s: float = 10.0,
          max_connections: int = 32):
    """``/metrics``, ``/healthz`` and ``/readyz`` of ``metrics`` on ``host:port``, from a thread."""
    from pipeline.monitoring.http import PROMETHEUS, TEXT, HttpServer

    def probe(check):
        def answer(query: str):
            ok, text = check()
            return (200 if ok else 503), TEXT, f"{text}\n".encode()
        return answer

    routes = {
        "/metrics": lambda query: (200, PROMETHEUS, metrics.exposition()),
        "/healthz": probe(metrics.health),
        "/readyz": probe(metrics.readiness),
    }
    return HttpServer(host, port, routes, name=f"{metrics.stage}-metrics", fallback=fallback,
                      read_timeout_s=read_timeout_s, max_connections=max_connections)
