"""Reading a worker's /metrics: what ``pipeline status`` and the dashboard know of each worker."""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from pipeline.monitoring.metrics import PREFIX


@dataclass
class HistogramSample:
    """Cumulative bucket counts of one histogram (upper bound -> count), its count and sum."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def __add__(self, other: HistogramSample) -> HistogramSample:
        buckets = {le: self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0)
                   for le in set(self.buckets) | set(other.buckets)}
        return HistogramSample(buckets, self.count + other.count, self.total + other.total)

    def __sub__(self, earlier: HistogramSample) -> HistogramSample:
        """The observations made between ``earlier`` and this sample (a reset counts from zero)."""
        if self.count < earlier.count:
            return self
        buckets = {le: max(0.0, n - earlier.buckets.get(le, 0.0)) for le, n in self.buckets.items()}
        return HistogramSample(buckets, self.count - earlier.count, self.total - earlier.total)

    def quantile(self, q: float) -> float | None:
        """Estimated ``q`` quantile, interpolated inside its bucket as Prometheus' histogram_quantile."""
        if self.count <= 0 or not self.buckets:
            return None
        bounds = sorted(self.buckets)
        rank = q * self.buckets.get(math.inf, self.count)
        lower, below = 0.0, 0.0
        for le in bounds:
            n = self.buckets[le]
            if n >= rank:
                if math.isinf(le):
                    return lower  # beyond the largest finite bucket: its bound is all that is known
                width = n - below
                return lower + (le - lower) * ((rank - below) / width if width > 0 else 1.0)
            lower, below = le, n
        return lower


@dataclass
class WorkerSample:
    """One scrape of one worker."""

    url: str
    at: float  # time.time() of the scrape
    ok: bool = False
    error: str = ""
    stage: str = ""
    worker: str = ""
    pid: int = 0
    ready: bool = False
    loop_delay_s: float = 0.0
    blocked_s: float = 0.0
    record_busy_s: float = 0.0
    record_limit_s: float = 0.0
    events: Counter = field(default_factory=Counter)  # the stage's own counters (stage_events_total{name})
    keyed: dict[str, Counter] = field(default_factory=dict)  # stage_counts_total{name,key}: name -> key -> count
    levels: dict[str, dict[str, float]] = field(default_factory=dict)  # stage_level{name,key}: name -> key -> value
    records_in: float = 0.0
    records_out: float = 0.0
    dead_letters: Counter = field(default_factory=Counter)  # reason -> count
    retries: float = 0.0
    processing: HistogramSample = field(default_factory=HistogramSample)
    end_to_end: HistogramSample = field(default_factory=HistogramSample)
    assigned: int = 0
    lag: dict[tuple[str, int], float] = field(default_factory=dict)
    position: dict[tuple[str, int], float] = field(default_factory=dict)
    highwater: dict[tuple[str, int], float] = field(default_factory=dict)
    produced: dict[tuple[str, int], float] = field(default_factory=dict)
    cpu_s: float = 0.0  # the process and its helper processes
    memory_bytes: float = 0.0
    start_time: float = 0.0
    languages: Counter = field(default_factory=Counter)
    dedup: Counter = field(default_factory=Counter)
    entity_labels: Counter = field(default_factory=Counter)
    top_entities: list[tuple[str, str, float]] = field(default_factory=list)  # label, name, mentions

    @property
    def dead_total(self) -> float:
        return float(sum(self.dead_letters.values()))


def _key(labels: dict[str, str]) -> tuple[str, int]:
    return labels.get("topic", ""), int(labels.get("partition", "0"))


def parse(url: str, text: str, at: float) -> WorkerSample:
    s = WorkerSample(url=url, at=at, ok=True)
    p = PREFIX + "_"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if not name.startswith(p):
                if name == "process_cpu_seconds_total":
                    s.cpu_s += value
                elif name == "process_resident_memory_bytes":
                    s.memory_bytes += value
                elif name == "process_start_time_seconds":
                    s.start_time = value
                continue
            short = name[len(p):]
            if short == "worker_info":
                s.stage, s.worker = labels.get("stage", ""), labels.get("worker", "")
                s.pid = int(labels.get("pid") or 0)
            elif short == "worker_ready":
                s.ready = value >= 1
            elif short == "event_loop_delay_seconds":
                s.loop_delay_s = value
            elif short == "blocked_seconds":
                s.blocked_s = value
            elif short == "record_busy_seconds":
                s.record_busy_s = value
            elif short == "record_time_limit_seconds":
                s.record_limit_s = value
            elif short == "records_in_total":
                s.records_in = value
            elif short == "records_out_total":
                s.records_out = value
            elif short == "stage_events_total":
                s.events[labels.get("name", "")] += value
            elif short == "stage_counts_total":
                s.keyed.setdefault(labels.get("name", ""), Counter())[labels.get("key", "")] += value
            elif short == "stage_level":
                s.levels.setdefault(labels.get("name", ""), {})[labels.get("key", "")] = value
            elif short == "dead_letters_total":
                s.dead_letters[labels.get("reason", "")] += value
            elif short == "retries_total":
                s.retries = value
            elif short.startswith("record_processing_seconds_"):
                _histogram(s.processing, short[len("record_processing_seconds_"):], labels, value)
            elif short.startswith("end_to_end_seconds_"):
                _histogram(s.end_to_end, short[len("end_to_end_seconds_"):], labels, value)
            elif short == "assigned_partitions":
                s.assigned = int(value)
            elif short == "consumer_lag":
                s.lag[_key(labels)] = value
            elif short == "consumer_position":
                s.position[_key(labels)] = value
            elif short == "fetch_highwater_offset":
                s.highwater[_key(labels)] = value
            elif short == "produced_offset":
                s.produced[_key(labels)] = value
            elif short == "children_cpu_seconds_total":
                s.cpu_s += value
            elif short == "children_resident_memory_bytes":
                s.memory_bytes += value
            elif short == "language_records_total":
                s.languages[labels.get("lang", "")] += value
            elif short == "dedup_outcomes_total":
                s.dedup[labels.get("status", "")] += value
            elif short == "entity_mentions_total":
                s.entity_labels[labels.get("label", "")] += value
            elif short == "top_entity_mentions":
                s.top_entities.append((labels.get("label", ""), labels.get("name", ""), value))
    return s


def _histogram(h: HistogramSample, part: str, labels: dict[str, str], value: float) -> None:
    if part == "bucket":
        h.buckets[float(labels["le"])] = value
    elif part == "count":
        h.count = value
    elif part == "sum":
        h.total = value


def scrape(url: str, timeout_s: float = 2.0) -> WorkerSample:
    """``url`` is the worker's base URL (``http://host:port``)."""
    at = time.time()
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=timeout_s) as response:
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return WorkerSample(url=url, at=at, ok=False, error=str(reason))
    return parse(url, text, at)
