"""A worker's metrics: what it exports, its HTTP endpoints, and reading them back."""

import math
import urllib.error
import urllib.request
from datetime import timedelta

import pytest

from pipeline.monitoring.metrics import ConsumerView, WorkerMetrics, serve
from pipeline.monitoring.scrape import HistogramSample, parse
from pipeline.records import iso, utc_now
from pipeline.stages.base import StageStats


def declared(stage):
    """What the stage declares it counts (``record_metrics`` of its class)."""
    from pipeline import config
    from pipeline.stages import stage_factory
    from tests.conftest import CONFIG

    return stage_factory(stage, config.load(CONFIG, env={})).record_metrics


def _stats():
    stats = StageStats(records_in=12, records_out=9, busy_ms=1500.0)
    stats.failed["timeout"] = 2
    stats.failed["malformed_json"] = 1
    stats.extra["html_pages"] = 7
    return stats


def _record(stage, ms, **fields):
    return {"id": "r", "trace": [{"stage": stage, "worker": "w", "started_at": iso(utc_now()), "ms": ms}], **fields}


def test_counters_histograms_and_stage_findings_read_back(tmp_path):
    stats = _stats()
    m = WorkerMetrics("entities", "entities@h:1", lambda: stats, record_metrics=declared("entities"))
    m.observe_batch(3)
    m.observe_records([
        _record("entities", 2.0, entities=[{"label": "PER"}, {"label": "LOC"}, {"label": "LOC"}],
                entity_summary=[{"canonical": "Jakarta", "label": "LOC", "count": 2},
                                {"canonical": "Joko Widodo", "label": "PER", "count": 1}]),
        _record("entities", 40.0, entities=[], entity_summary=[]),
    ])
    m.ready = True
    s = parse("http://x", m.exposition().decode(), 0.0)
    assert (s.stage, s.ready, s.records_in, s.records_out) == ("entities", True, 12, 9)
    assert s.dead_letters == {"timeout": 2, "malformed_json": 1}
    assert s.processing.count == 2 and s.processing.total == pytest.approx(0.042)
    assert s.entity_labels == {"PER": 1, "LOC": 2}
    assert sorted(s.top_entities) == [("LOC", "Jakarta", 2.0), ("PER", "Joko Widodo", 1.0)]
    assert s.memory_bytes > 0 and s.cpu_s > 0  # process metrics are there


def test_keyed_counters_and_levels_read_back_and_summarise_as_the_fetcher():
    from pipeline.monitoring.status import Sample, Target, fetcher_summary, summarise
    from tests.conftest import CONFIG

    stats = _stats()
    stats.count("http_answers", "200", 40)
    stats.count("http_answers", "503", 2)
    stats.gauges["host_waiting"] = {"https://a.example:443": 3.0, "https://b.example:443": 1.0}
    m = WorkerMetrics("fetch", "fetch@h:1", lambda: stats)
    before = parse("http://x", m.exposition().decode(), 100.0)
    stats.count("http_answers", "200", 20)
    stats.failed["robots_disallowed"] = 4
    after = parse("http://x", m.exposition().decode(), 110.0)
    assert after.keyed == {"http_answers": {"200": 60, "503": 2}}
    assert after.levels == {"host_waiting": {"https://a.example:443": 3.0, "https://b.example:443": 1.0}}
    from pipeline import config

    target = Target("http://x", "fetch", "fetch-0")
    status = summarise([Sample(100.0, [(target, before)], {}), Sample(110.0, [(target, after)], {})],
                       config.load(CONFIG, env={}).monitoring.health, window_s=10)
    f = status.fetcher
    assert f == fetcher_summary(status.stages[0])
    assert f["answers"] == {"200": 60, "503": 2} and f["requests_per_s"] == pytest.approx(2.0)
    assert f["robots_blocked"] == 4 and f["hosts_waiting"][0] == {"host": "https://a.example:443", "waiting": 3.0}


def test_language_dedup_and_end_to_end_metrics():
    lang = WorkerMetrics("language", "w", StageStats, record_metrics=declared("language"))
    lang.observe_records([_record("language", 1.0, lang={"code": "id"}), _record("language", 1.0, lang={"code": "jv"}),
                          _record("language", 1.0, lang={"code": "id"})])
    assert parse("u", lang.exposition().decode(), 0).languages == {"id": 2, "jv": 1}
    dedup = WorkerMetrics("dedup", "w", StageStats, record_metrics=declared("dedup"))
    dedup.observe_records([_record("dedup", 1.0, dedup={"status": "unique"}),
                           _record("dedup", 1.0, dedup={"status": "near_duplicate"})])
    assert parse("u", dedup.exposition().decode(), 0).dedup == {"unique": 1, "near_duplicate": 1}
    sink = WorkerMetrics("sink", "w", StageStats)
    now = utc_now()
    sink.observe_written([{"id": "a", "ingested_at": iso(now - timedelta(seconds=3))},
                          {"id": "b", "ingested_at": iso(now - timedelta(seconds=0.2))},
                          {"id": "c", "ingested_at": "not a time"}], 0.03, now)
    s = parse("u", sink.exposition().decode(), 0)
    assert s.end_to_end.count == 2 and s.end_to_end.total == pytest.approx(3.2, abs=0.01)
    assert s.processing.count == 3


class FakeProbe:
    def __init__(self):
        self.calls = 0

    def group_lag(self, group, topic, partitions, seen_end):
        from pipeline.monitoring.lag import PartitionLag

        self.calls += 1
        # the broker says 5 on partition 0, but this consumer fetched up to 9
        return [PartitionLag(topic, p, committed=3, broker_end=5, seen_end=seen_end.get(p)) for p in partitions]


def test_lag_is_asked_from_the_broker_when_scraped_and_corrected_by_what_the_consumer_saw():
    m = WorkerMetrics("clean", "w", StageStats, lag_cache_s=60)
    m.view = ConsumerView("pages.raw", "g", frozenset({0, 1}), position={0: 9}, highwater={0: 9, 1: 4},
                          produced={("pages.cleaned", 2): 17})
    m.probe = FakeProbe()
    s = parse("u", m.exposition().decode(), 0)
    assert s.lag == {("pages.raw", 0): 6, ("pages.raw", 1): 2}  # 9 - 3, and 5 - 3 (the broker's 5 > 4 seen)
    assert s.highwater[("pages.raw", 0)] == 9 and s.produced == {("pages.cleaned", 2): 17}
    assert s.assigned == 2
    m.exposition()
    assert m.probe.calls == 1  # cached for lag_cache_s


def test_http_endpoints_answer_health_and_readiness():
    m = WorkerMetrics("dedup", "w", StageStats, stall_after_s=5)
    server = serve(m, "127.0.0.1", 0)
    try:
        def get(path):
            try:
                with urllib.request.urlopen(f"{server.url}{path}", timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        assert get("/healthz") == (200, "ok\n")
        status, text = get("/readyz")
        assert status == 503 and "consumer group" in text
        m.ready = True
        assert get("/readyz")[0] == 200
        status, body = get("/metrics")
        assert status == 200 and 'news_pipeline_worker_ready{stage="dedup"} 1.0' in body
        m._last_tick -= 10  # the event loop has not run for 10 s
        status, text = get("/healthz")
        assert status == 503 and "stalled" in text
        assert get("/readyz")[0] == 503
        assert get("/nope")[0] == 404
    finally:
        server.close()


def test_histogram_quantiles_interpolate_like_prometheus():
    h = HistogramSample({0.1: 50.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}, 100.0, 20.0)
    assert h.quantile(0.5) == pytest.approx(0.1)
    assert h.quantile(0.7) == pytest.approx(0.3)
    assert h.quantile(0.99) == pytest.approx(0.95)
    assert HistogramSample().quantile(0.5) is None
    later = HistogramSample({0.1: 60.0, 0.5: 90.0, 1.0: 110.0, math.inf: 110.0}, 110.0, 21.0)
    window = later - h
    assert window.count == 10 and window.buckets[0.1] == 10 and window.quantile(0.5) == pytest.approx(0.05)
    restarted = HistogramSample({0.1: 1.0, math.inf: 1.0}, 1.0, 0.05)
    assert (restarted - h).count == 1  # a reset counts from zero


def test_helper_cpu_keeps_the_helpers_that_ended():
    """The helper processes' CPU counter holds what a helper used after it ended (a recycled
    trafilatura child is reaped by the pool's forkserver, a helper of the worker too), and never
    goes down."""
    import multiprocessing
    import time

    from pipeline.monitoring.metrics import _ChildrenCollector

    def helper_cpu(collector) -> float:
        family = next(f for f in collector.collect() if f.name.endswith("children_cpu_seconds"))
        return family.samples[0].value

    collector = _ChildrenCollector(rescan_s=0.0)  # the helpers looked up at every scrape (see below)
    before = helper_cpu(collector)
    # a forkserver (a helper) starts a helper that burns CPU and ends, as pebble's pool does
    context = multiprocessing.get_context("forkserver")
    worker = context.Process(target=_burn, args=(0.3,))
    worker.start()
    worker.join()
    readings = [helper_cpu(collector) for _ in range(3)]
    assert readings[0] - before >= 0.2  # the ended helper's CPU is there
    assert readings == sorted(readings)
    time.sleep(0.05)
    assert helper_cpu(collector) >= readings[-1]


def test_helpers_are_looked_up_again_once_one_has_ended():
    """Between two look-ups of the helper processes (every rescan_s) the collector reads only the
    ones it knows; one of them ending makes it look again, so its replacement is counted."""
    import multiprocessing

    from pipeline.monitoring.metrics import _ChildrenCollector

    collector = _ChildrenCollector(rescan_s=3600.0)
    first = multiprocessing.get_context("spawn").Process(target=_burn, args=(0.0,))
    first.start()
    try:
        list(collector.collect())
        assert first.pid in [c.pid for c in collector._children]
    finally:
        first.join()
    second = multiprocessing.get_context("spawn").Process(target=_burn, args=(0.0,))
    second.start()
    try:
        list(collector.collect())  # the first ended: looked up again
        pids = [c.pid for c in collector._children]
        assert second.pid in pids and first.pid not in pids
    finally:
        second.join()


def _burn(seconds: float) -> None:
    import time

    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
