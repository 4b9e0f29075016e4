"""The state of a running pipeline, per stage: what ``pipeline status`` and the dashboard show.

A :class:`StatusCollector` takes a :class:`Sample` every ``monitoring.sample_interval_s``: one
scrape of every worker's /metrics plus, per stage, the committed and end offsets of its consumer
group from the broker. :func:`summarise` turns the newest sample and an older one into rates,
latency quantiles, lag and a verdict per stage, and one line for the whole pipeline.

Where the workers are: ``out/logs/run.json`` of a running ``pipeline run`` (every worker with its
metrics port), else ``--target URL`` options, else ``monitoring.ports`` on ``monitoring.host``
(one worker per stage, as in deploy/).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pipeline import registry
from pipeline.config import HealthThresholds, Settings
from pipeline.monitoring.lag import OffsetsProbe, PartitionLag
from pipeline.monitoring.scrape import HistogramSample, WorkerSample, scrape

NO_BROKER_KNOWN = "no broker known"
LAG_NOTE = ("lag = end offset - committed offset per partition, from the broker. The embedded broker "
            "reports end offsets up to one batch short, so the end is taken as the larger of the broker's "
            "figure and the offsets the pipeline's own workers fetched and produced")

# Verdict levels, worst last
OK, IDLE, STARTING, WARN, BEHIND, FAILING, DOWN = "ok", "idle", "starting", "warn", "behind", "failing", "down"
SEVERITY = {OK: 0, IDLE: 0, STARTING: 1, WARN: 2, BEHIND: 3, FAILING: 3, DOWN: 4}


@dataclass(frozen=True)
class Target:
    """A worker's metrics endpoint, and the stage it is expected to run (None: read from it)."""

    url: str
    stage: str | None = None
    name: str = ""


def targets_of(settings: Settings, urls: list[str] | None = None) -> list[Target]:
    """``urls`` (``[STAGE=]http://host:port``), else the running ``pipeline run``'s workers, else
    the configured port of every stage on ``monitoring.host``."""
    from pipeline.monitoring import runfile

    if urls:
        out = []
        for spec in urls:
            stage, _, url = spec.rpartition("=") if "=" in spec.split("//")[0] else ("", "", spec)
            url = url if "://" in url else f"http://{url}"
            out.append(Target(url.rstrip("/"), stage or None, url))
        return out
    info = runfile.running_info(settings)
    if info and info.get("workers"):
        return [Target(w["metrics_url"], w["stage"], w["name"]) for w in info["workers"] if w.get("metrics_url")]
    m = settings.monitoring
    host = "127.0.0.1" if m.host in ("", "0.0.0.0") else m.host
    return [Target(f"http://{host}:{m.ports[stage]}", stage, stage) for stage in registry.roles(settings)
            if m.ports.get(stage)]


@dataclass
class Sample:
    at: float
    workers: list[tuple[Target, WorkerSample]]
    lag: dict[str, list[PartitionLag]]  # stage -> partitions of its source topic
    lag_error: str = ""


class StatusCollector:
    """Scrapes the workers and asks the broker for lag; keeps the samples of the last ``keep_s``
    (their scraped worker metrics only for the last ``keep_workers_s``, when given: the lag trend
    looks further back than the rates)."""

    def __init__(self, settings: Settings, targets: list[Target], keep_s: float = 900.0,
                 keep_workers_s: float | None = None):
        self.settings = settings
        self.targets = targets
        self.keep_s = keep_s
        self.keep_workers_s = keep_workers_s
        self.samples: deque[Sample] = deque()
        self.probe = OffsetsProbe(settings.broker.bootstrap_servers, timeout_s=3.0,
                                  options=settings.broker.client_options(), transactional=settings.exactly_once) \
            if settings.broker.bootstrap_servers else None
        self._pool = ThreadPoolExecutor(max_workers=min(8, max(1, len(targets))), thread_name_prefix="scrape")
        self._lock = threading.Lock()

    def set_targets(self, targets: list[Target]) -> None:
        self.targets = targets

    def set_broker(self, settings: Settings) -> None:
        """Ask this broker for lag from now on (a broker found after the start, or one that moved)."""
        bootstrap = settings.broker.bootstrap_servers
        if bootstrap == self.settings.broker.bootstrap_servers:
            return
        old, self.settings = self.probe, settings
        self.probe = OffsetsProbe(bootstrap, timeout_s=3.0, options=settings.broker.client_options(),
                                  transactional=settings.exactly_once) if bootstrap else None
        if old is not None:
            old.close()

    def sample(self, broker_error: str = "") -> Sample:
        """Scrape the workers and ask the broker for lag; ``broker_error``: the broker did not
        answer a moment ago, so it is not asked again (its time-out is not waited for twice)."""
        targets = list(self.targets)
        scraped = list(self._pool.map(lambda t: scrape(t.url), targets))
        workers = list(zip(targets, scraped, strict=True))
        lag: dict[str, list[PartitionLag]] = {}
        error = "" if self.probe is not None else \
            f"{NO_BROKER_KNOWN} (KAFKA_BOOTSTRAP_SERVERS, --bootstrap, or a running `pipeline run`): lag unknown"
        if self.probe is not None and broker_error:
            error = broker_error
        elif self.probe is not None:
            try:
                lag = self._lag([w for _, w in workers if w.ok])
            except Exception as exc:  # noqa: BLE001 - the view shows that the broker did not answer
                error = f"{type(exc).__name__}: {exc}"
        sample = Sample(time.time(), workers, lag, error)
        with self._lock:
            self.samples.append(sample)
            while self.samples and self.samples[0].at < sample.at - self.keep_s:
                self.samples.popleft()
            if self.keep_workers_s is not None:
                for old in self.samples:
                    if old.at >= sample.at - self.keep_workers_s:
                        break
                    old.workers = []
        return sample

    def _lag(self, workers: list[WorkerSample]) -> dict[str, list[PartitionLag]]:
        """Per stage, the lag of its group on every partition of its source topic."""
        seen: dict[tuple[str, int], float] = {}
        for w in workers:  # what the pipeline itself saw: positions, fetch high-water marks, produced offsets
            for offsets in (w.position, w.highwater, w.produced):
                for key, value in offsets.items():
                    seen[key] = max(seen.get(key, 0), value)
        wanted, group_of = {}, {}
        for stage in registry.roles(self.settings):
            topic = registry.stage_topics(self.settings, stage).source
            parts = list(range(self.settings.topics.partitions_of(topic)))
            seen_end = {p: int(seen[(topic, p)]) for p in parts if (topic, p) in seen}
            group_of[stage] = group = registry.consumer_group(self.settings, stage)
            wanted[group] = (topic, parts, seen_end)
        lags = self.probe.groups_lag(wanted)  # every stage's group in one round of requests
        return {stage: lags[group] for stage, group in group_of.items()}

    def history(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.probe is not None:
            self.probe.close()


# --- from samples to a status ------------------------------------------------------------------

@dataclass
class WorkerStatus:
    name: str
    stage: str
    url: str
    up: bool
    ready: bool
    pid: int = 0
    error: str = ""
    cpu_percent: float | None = None
    memory_bytes: float = 0.0
    partitions: int = 0
    loop_delay_s: float = 0.0
    blocked_s: float = 0.0
    record_busy_s: float = 0.0
    record_limit_s: float = 0.0


@dataclass
class StageStatus:
    stage: str
    workers_expected: int = 0
    workers_up: int = 0
    workers_ready: int = 0
    records_in: float = 0.0
    records_out: float = 0.0
    skipped_written: float = 0.0  # the sink: records every sink had already (not written again)
    index_reset: float = 0.0  # dedup: verdicts "index_reset" (the index lost its memory)
    dead_letters: float = 0.0
    dead_by_reason: dict[str, float] = field(default_factory=dict)
    in_per_s: float | None = None
    out_per_s: float | None = None
    dead_per_s: float | None = None
    lag: int | None = None
    lag_change: int | None = None  # over the window
    lag_rising_s: float = 0.0  # over how many seconds the lag has grown (0: it does not)
    lag_growth_per_min: float = 0.0
    stalled_s: float = 0.0  # records waited and no offset was committed for this long
    broker_short_by: int = 0
    partitions: list[dict[str, Any]] = field(default_factory=list)
    p50_ms: float | None = None
    p99_ms: float | None = None
    latency_window: str = ""  # "last 60 s" or "since start"
    cpu_percent: float | None = None
    memory_bytes: float = 0.0
    level: str = OK
    verdict: str = ""
    #: the stage's own counters by key (``StageStats.keyed``), summed over its workers, and their rates
    counts: dict[str, dict[str, float]] = field(default_factory=dict)
    counts_per_s: dict[str, dict[str, float]] = field(default_factory=dict)
    #: the stage's own levels by key, now (``StageStats.gauges``), summed over its workers
    levels: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}


@dataclass
class PipelineStatus:
    at: float
    level: str
    verdict: str
    stages: list[StageStatus]
    workers: list[WorkerStatus]
    end_to_end_p50_s: float | None = None
    end_to_end_p99_s: float | None = None
    end_to_end_window: str = ""
    delivered_per_s: float | None = None
    window_s: float = 0.0
    lag_note: str = LAG_NOTE
    broker_error: str = ""
    languages: dict[str, float] = field(default_factory=dict)
    dedup: dict[str, float] = field(default_factory=dict)
    entity_labels: dict[str, float] = field(default_factory=dict)
    top_entities: list[dict[str, Any]] = field(default_factory=list)
    fetcher: dict[str, Any] = field(default_factory=dict)  # see fetcher_summary (empty: no fetch stage)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k not in ("stages", "workers")}
        out["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))
        out["stages"] = [s.as_dict() for s in self.stages]
        out["workers"] = [vars(w) for w in self.workers]
        return out


def _baselines(history: list[Sample], now: Sample, window_s: float) -> dict[str, WorkerSample]:
    """Per worker URL, the sample to compute rates from: its oldest good sample within
    ``window_s`` before ``now``, else its newest good one before that."""
    out: dict[str, WorkerSample] = {}
    older: dict[str, WorkerSample] = {}
    for s in history:
        if s is now or s.at >= now.at:
            break
        inside = s.at >= now.at - window_s - 0.5
        for target, w in s.workers:
            if not w.ok:
                continue
            if inside:
                out.setdefault(target.url, w)
            else:
                older[target.url] = w
    for url, w in older.items():
        out.setdefault(url, w)
    return out


def _quantiles(window: HistogramSample | None, total: HistogramSample) -> tuple[float | None, float | None, bool]:
    """p50 and p99 of the window's observations, else of everything since the workers started
    (the flag says which)."""
    if window is not None and window.count > 0:
        return window.quantile(0.5), window.quantile(0.99), True
    return total.quantile(0.5), total.quantile(0.99), False


@dataclass
class _Sum:
    """Rates and histograms of the workers of one stage (None: not known for any of them)."""

    in_per_s: float | None = None
    out_per_s: float | None = None
    dead_per_s: float | None = None
    cpu_percent: float | None = None
    window: HistogramSample | None = None
    total: HistogramSample = field(default_factory=HistogramSample)
    e2e_window: HistogramSample | None = None
    e2e_total: HistogramSample = field(default_factory=HistogramSample)

    @staticmethod
    def _add(a, b):
        return b if a is None else a + b

    def add(self, w: WorkerSample, old: WorkerSample | None, at: float) -> float:
        """Add worker ``w`` measured against ``old``; returns the seconds between them (0: none)."""
        self.total = self.total + w.processing
        self.e2e_total = self.e2e_total + w.end_to_end
        if old is None or at <= old.at:
            return 0.0
        dt = at - old.at
        if old.pid == w.pid:
            d_in, d_out, d_dead = (_delta(w.records_in, old.records_in), _delta(w.records_out, old.records_out),
                                   _delta(w.dead_total, old.dead_total))
            self.cpu_percent = self._add(self.cpu_percent, max(0.0, (w.cpu_s - old.cpu_s) / dt * 100.0))
            self.window = self._add(self.window, w.processing - old.processing)
            self.e2e_window = self._add(self.e2e_window, w.end_to_end - old.end_to_end)
        else:  # restarted in between: everything it counted is new
            d_in, d_out, d_dead = w.records_in, w.records_out, w.dead_total
            self.window = self._add(self.window, w.processing)
            self.e2e_window = self._add(self.e2e_window, w.end_to_end)
        self.in_per_s = self._add(self.in_per_s, d_in / dt)
        self.out_per_s = self._add(self.out_per_s, d_out / dt)
        self.dead_per_s = self._add(self.dead_per_s, d_dead / dt)
        return dt


def _delta(now: float, before: float | None) -> float:
    """Counter increase; a counter that went down (a restart) counts from zero."""
    if before is None or now < before:
        return now
    return now - before


def summarise(history: list[Sample], thresholds: HealthThresholds, expected: dict[str, int] | None = None,
              window_s: float = 60.0, stall_after_s: float = 30.0, roles: list[str] | None = None) -> PipelineStatus:
    """The status at the newest sample of ``history``, rates over the last ``window_s``. ``roles``:
    the stages in chain order, then the sink (``registry.roles``; None: as the workers say)."""
    now = history[-1]
    if roles is None:
        seen = [t.stage or w.stage for t, w in now.workers if t.stage or w.stage]
        roles = [s for s in dict.fromkeys(seen) if s != registry.SINK] + [registry.SINK]
    baselines = _baselines(history, now, window_s)
    workers: list[WorkerStatus] = []
    stages: list[StageStatus] = []
    e2e = _Sum()
    spans: list[float] = []
    languages: dict[str, float] = {}
    dedup: dict[str, float] = {}
    labels: dict[str, float] = {}
    top: dict[tuple[str, str], float] = {}
    for stage in roles:
        st = StageStatus(stage)
        mine = [(t, w) for t, w in now.workers if (w.stage or t.stage) == stage or (not w.ok and t.stage == stage)]
        st.workers_expected = max(len(mine), (expected or {}).get(stage, 0))
        total = _Sum()
        for target, w in mine:
            one = _Sum()
            span = one.add(w, baselines.get(target.url), now.at) if w.ok else 0.0
            workers.append(WorkerStatus(target.name or target.url, stage, target.url, w.ok, w.ok and w.ready, w.pid,
                                        w.error, one.cpu_percent, w.memory_bytes, w.assigned, w.loop_delay_s,
                                        w.blocked_s, w.record_busy_s, w.record_limit_s))
            if not w.ok:
                continue
            spans.append(span)
            total.add(w, baselines.get(target.url), now.at)
            st.workers_up += 1
            st.workers_ready += 1 if w.ready else 0
            st.records_in += w.records_in
            st.records_out += w.records_out
            st.skipped_written += w.events.get("skipped_written", 0.0)
            st.index_reset += w.events.get("dedup_index_reset", 0.0)
            st.dead_letters += w.dead_total
            for reason, n in w.dead_letters.items():
                st.dead_by_reason[reason] = st.dead_by_reason.get(reason, 0.0) + n
            st.memory_bytes += w.memory_bytes
            _add_keyed(st, w, baselines.get(target.url), now.at)
            for k, v in w.languages.items():
                languages[k] = languages.get(k, 0.0) + v
            for k, v in w.dedup.items():
                dedup[k] = dedup.get(k, 0.0) + v
            for k, v in w.entity_labels.items():
                labels[k] = labels.get(k, 0.0) + v
            for label, name, n in w.top_entities:
                top[(label, name)] = top.get((label, name), 0.0) + n
        st.in_per_s, st.out_per_s, st.dead_per_s = total.in_per_s, total.out_per_s, total.dead_per_s
        st.cpu_percent = total.cpu_percent
        p50, p99, windowed = _quantiles(total.window, total.total)
        st.p50_ms = p50 * 1000 if p50 is not None else None
        st.p99_ms = p99 * 1000 if p99 is not None else None
        if p50 is not None:
            st.latency_window = "window" if windowed else "since start"
        if stage == "sink":
            e2e = total
        _lag(st, stage, now, history, thresholds.lag_growing_s, window_s)
        _verdict(st, thresholds, stall_after_s, [w for _, w in mine if w.ok])
        stages.append(st)

    dt = max(spans, default=0.0)
    label = f"last {dt:.0f} s" if dt else ""
    for st in stages:
        if st.latency_window == "window":
            st.latency_window = label
    p50, p99, windowed = _quantiles(e2e.e2e_window, e2e.e2e_total)
    status = PipelineStatus(now.at, OK, "", stages, workers, p50, p99,
                            (label if windowed else "since start") if p50 is not None else "", window_s=dt,
                            broker_error=now.lag_error, languages=languages, dedup=dedup, entity_labels=labels,
                            top_entities=[{"label": k[0], "name": k[1], "mentions": v}
                                          for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:20]])
    status.delivered_per_s = stages[-1].out_per_s
    fetch = next((st for st in stages if "http_answers" in st.counts), None)
    if fetch is not None:
        status.fetcher = fetcher_summary(fetch)
    _overall(status, thresholds)
    return status


def _add_keyed(st: StageStatus, w: WorkerSample, old: WorkerSample | None, at: float) -> None:
    """Add a worker's keyed counters (totals and rates over the window) and levels to its stage's."""
    dt = at - old.at if old is not None and at > old.at else 0.0
    for name, counts in w.keyed.items():
        totals = st.counts.setdefault(name, {})
        rates = st.counts_per_s.setdefault(name, {})
        before = old.keyed.get(name, {}) if old is not None and old.pid == w.pid else {}
        for key, n in counts.items():
            totals[key] = totals.get(key, 0.0) + n
            if dt:
                rates[key] = rates.get(key, 0.0) + _delta(n, before.get(key, 0.0)) / dt
    for name, levels in w.levels.items():
        mine = st.levels.setdefault(name, {})
        for key, value in levels.items():
            mine[key] = mine.get(key, 0.0) + value


def fetcher_summary(st: StageStatus, hosts: int = 10) -> dict[str, Any]:
    """What an operator asks of the fetch stage: pages/s and HTTP requests/s, the mix of HTTP
    answers (every request: retries and redirect hops too), robots.txt blocks, URLs skipped as
    fetched already, and the hosts with the most URLs waiting in the workers' batches."""
    answers = st.counts.get("http_answers", {})
    rates = st.counts_per_s.get("http_answers", {})
    waiting = st.levels.get("host_waiting", {})
    return {
        "stage": st.stage,
        "urls_per_s": st.in_per_s,
        "pages_per_s": st.out_per_s,
        "requests_per_s": sum(rates.values()) if rates else None,
        "answers": dict(sorted(answers.items(), key=lambda kv: -kv[1])),
        "robots_blocked": st.dead_by_reason.get("robots_disallowed", 0.0),
        "robots_answers": dict(st.counts.get("robots_answers", {})),
        "already_fetched": st.dead_by_reason.get("already_fetched", 0.0),
        "urls_waiting": st.lag,
        "hosts_waiting": [{"host": h, "waiting": n} for h, n in sorted(waiting.items(), key=lambda kv: -kv[1])[:hosts]],
        "hosts_waiting_total": len(waiting),
    }


MIN_TREND_S = 30.0  # a lag trend needs at least this much history
MIN_TREND_RECORDS = 10  # ... and this much growth


def _lag_total(sample: Sample, stage: str) -> tuple[int, int] | None:
    """(records waiting, sum of committed offsets) of ``stage`` in ``sample``."""
    parts = sample.lag.get(stage)
    if not parts:
        return None
    return (int(sum(p.lag for p in parts if p.lag is not None)),
            int(sum(p.committed for p in parts if p.committed is not None)))


def lag_trend(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(growth per second, spread of the points around the line): a least-squares line."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in points)
    if var_t <= 0:
        return 0.0, 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / var_t
    residual = (sum((v - mean_v - slope * (t - mean_t)) ** 2 for t, v in points) / n) ** 0.5
    return slope, residual


def _lag(st: StageStatus, stage: str, now: Sample, history: list[Sample], growing_s: float,
         window_s: float) -> None:
    """Lag now, its change over the window, and whether it grows (a trend that beats the noise of
    records in flight between commits) or stalls (records wait, offsets do not move)."""
    parts = now.lag.get(stage)
    if not parts:
        return
    known = [p.lag for p in parts if p.lag is not None]
    st.lag = int(sum(known)) if known else None
    st.broker_short_by = int(sum(p.broker_short_by for p in parts))
    st.partitions = [p.as_dict() for p in parts]
    if st.lag is not None:
        earlier = [x for x in history if now.at - window_s - 0.5 <= x.at < now.at and _lag_total(x, stage)]
        if earlier:
            st.lag_change = st.lag - _lag_total(earlier[0], stage)[0]
    series = [(s.at, _lag_total(s, stage)) for s in history if s.at >= now.at - growing_s]
    series = [(t, v) for t, v in series if v is not None]
    if len(series) < 3 or series[-1][0] - series[0][0] < MIN_TREND_S:
        return
    span = series[-1][0] - series[0][0]
    slope, spread = lag_trend([(t, waiting) for t, (waiting, _) in series])
    growth = slope * span
    if slope > 0 and growth >= MIN_TREND_RECORDS and growth > 3 * spread:
        st.lag_rising_s = span
        st.lag_growth_per_min = slope * 60
    waiting_all_along = all(waiting > 0 for _, (waiting, _) in series)
    if waiting_all_along and series[0][1][1] == series[-1][1][1]:
        st.stalled_s = span


def _verdict(st: StageStatus, th: HealthThresholds, stall_after_s: float, alive: list[WorkerSample]) -> None:
    def say(level: str, text: str) -> None:  # the worst finding wins
        if SEVERITY[level] > SEVERITY[st.level]:
            st.level, st.verdict = level, text

    st.level, st.verdict = OK, "keeping up"
    if st.workers_expected and not st.workers_up:
        say(DOWN, "no worker answers")
        return
    if st.workers_up < st.workers_expected:
        say(WARN, f"{st.workers_expected - st.workers_up} of {st.workers_expected} workers not answering")
    stalled = [w for w in alive if w.loop_delay_s > stall_after_s]
    if stalled:
        say(FAILING, f"{len(stalled)} worker(s) stalled for {max(w.loop_delay_s for w in stalled):.0f} s")
    if st.index_reset:
        say(WARN, f"the dedup index lost its memory (restarted empty): {st.index_reset:,.0f} records could not be "
                  "checked against what came before (verdict index_reset)")
    overdue = [w for w in alive if w.record_limit_s and w.record_busy_s > w.record_limit_s]
    if overdue:
        say(FAILING, f"{len(overdue)} worker(s) busy on one record for {max(w.record_busy_s for w in overdue):.0f} s, "
                     f"past the limit of {overdue[0].record_limit_s:g} s")
    blocked = [w for w in alive if w.blocked_s > stall_after_s]
    if blocked:
        say(FAILING, f"{len(blocked)} worker(s) retrying the same batch for {max(w.blocked_s for w in blocked):.0f} s "
                     "(a dependency fails: see the worker's /healthz or log)")
    if st.workers_ready < st.workers_up:
        say(STARTING, "joining its consumer group")
    if st.in_per_s and st.dead_per_s is not None and st.in_per_s > 0:
        ratio = st.dead_per_s / st.in_per_s
        if ratio > th.dead_letter_ratio:
            say(FAILING, f"{ratio:.0%} of records dead-lettered")
    if st.stalled_s and st.workers_ready:
        say(FAILING, f"stalled: {st.lag:,} records waiting, nothing committed for {st.stalled_s:.0f} s")
    if st.lag is not None:
        if st.lag > th.lag_records:
            say(BEHIND, f"{st.lag:,} records waiting (limit {th.lag_records:,})")
        if st.lag_rising_s >= th.lag_growing_s:
            say(BEHIND, f"not keeping up: lag grew {st.lag_growth_per_min:,.0f}/min for {st.lag_rising_s / 60:.0f} min")
        elif st.lag_rising_s:
            say(WARN, f"lag growing {st.lag_growth_per_min:,.0f}/min ({st.lag:,} waiting)")
    if st.level == OK and not st.in_per_s and not st.lag:
        st.level, st.verdict = IDLE, "idle"


def _overall(status: PipelineStatus, th: HealthThresholds) -> None:
    worst = max(status.stages, key=lambda s: SEVERITY[s.level])
    e2e = status.end_to_end_p99_s
    if status.broker_error and not status.broker_error.startswith(NO_BROKER_KNOWN):
        # workers can look fine for a while on what they fetched: a broker that does not answer is down
        status.level = DOWN
        status.verdict = f"DOWN: the broker does not answer ({status.broker_error})"
    elif SEVERITY[worst.level] >= SEVERITY[WARN] or worst.level == STARTING:
        by_verdict: dict[str, list[str]] = {}
        for s in status.stages:
            if s.level == worst.level:
                by_verdict.setdefault(s.verdict, []).append(s.stage)
        status.level = worst.level
        status.verdict = f"{worst.level.upper()}: " + "; ".join(
            f"{', '.join(stages)}: {verdict}" for verdict, stages in by_verdict.items())
    elif e2e is not None and e2e > th.end_to_end_p99_s:
        status.level = WARN
        status.verdict = f"SLOW: end-to-end p99 {e2e:.1f} s (limit {th.end_to_end_p99_s:g} s)"
    elif all(s.level == IDLE for s in status.stages):
        status.level = IDLE
        status.verdict = "IDLE: every worker up, nothing waiting, no records in the " \
                         + (f"last {status.window_s:.0f} s" if status.window_s else "sample")
    else:
        status.level = OK
        lag = sum(s.lag or 0 for s in status.stages)
        rate = status.stages[0].in_per_s
        parts = ["OK: keeping up"]
        if rate is not None:
            parts.append(f"{rate:.1f} records/s in")
        parts.append(f"{lag:,} waiting")
        if e2e is not None:
            parts.append(f"end-to-end p99 {e2e:.2f} s")
        status.verdict = parts[0] + ": " + ", ".join(parts[1:])


def expected_workers(settings: Settings, targets: list[Target]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in targets:
        if t.stage:
            counts[t.stage] = counts.get(t.stage, 0) + 1
    return counts


__all__ = ["PipelineStatus", "StageStatus", "StatusCollector", "Target", "summarise", "targets_of"]
