"""Per-stage status and verdicts from samples (no broker, no workers)."""

import math

from pipeline.monitoring.lag import PartitionLag
from pipeline.monitoring.scrape import HistogramSample, WorkerSample
from pipeline.monitoring.status import Sample, Target, lag_trend, summarise
from tests.conftest import ROLES

T0 = 1_800_000_000.0


def worker(stage, at, n_in, n_out=None, dead=0, pid=100, ok=True, lag_seconds=None):
    w = WorkerSample(url=f"http://h/{stage}", at=at, ok=ok, stage=stage if ok else "", pid=pid, ready=ok,
                     records_in=n_in, records_out=n_in - dead if n_out is None else n_out)
    if dead:
        w.dead_letters["timeout"] = dead
    w.processing = HistogramSample({0.01: n_in * 0.9, 0.1: float(n_in), math.inf: float(n_in)}, float(n_in), n_in * 0.01)
    if stage == "sink":
        w.end_to_end = HistogramSample({1.0: n_in * 0.5, 10.0: float(n_in), math.inf: float(n_in)}, float(n_in), 0.0)
    return w


def sample(at, counts, lag=None, down=(), dead=None, pids=None):
    """``counts``: records in per stage; ``lag``: records waiting per stage (on partition 0)."""
    workers = []
    for stage in ROLES:
        target = Target(f"http://h/{stage}", stage, f"{stage}-0")
        if stage in down:
            workers.append((target, WorkerSample(url=target.url, at=at, ok=False, error="connection refused")))
        else:
            workers.append((target, worker(stage, at, counts, dead=(dead or {}).get(stage, 0),
                                           pid=(pids or {}).get(stage, 100))))
    lags = {stage: [PartitionLag("t", 0, committed=int(counts), broker_end=int(counts + (lag or {}).get(stage, 0)))]
            for stage in ROLES}
    return Sample(at, workers, lags)


def test_rates_latency_and_an_ok_verdict(settings):
    history = [sample(T0, 100), sample(T0 + 10, 200)]
    status = summarise(history, settings.monitoring.health, window_s=10)
    clean = status.stages[0]
    assert clean.in_per_s == 10 and clean.out_per_s == 10 and clean.workers_up == 1
    assert 1 < clean.p50_ms < 10 and clean.latency_window == "last 10 s"
    assert status.level == "ok" and status.verdict.startswith("OK: keeping up: 10.0 records/s in")
    assert 0.5 < status.end_to_end_p50_s < 1.5 and status.delivered_per_s == 10


def test_a_worker_that_does_not_answer_makes_its_stage_down(settings):
    history = [sample(T0, 100), sample(T0 + 5, 150, down=("dedup",))]
    status = summarise(history, settings.monitoring.health, window_s=5)
    dedup = next(s for s in status.stages if s.stage == "dedup")
    assert dedup.level == "down" and dedup.workers_up == 0 and dedup.workers_expected == 1
    assert status.level == "down" and status.verdict == "DOWN: dedup: no worker answers"
    assert [w.name for w in status.workers if not w.up] == ["dedup-0"]


def test_a_restarted_worker_counts_from_zero_not_negative(settings):
    history = [sample(T0, 1000), sample(T0 + 10, 50, pids={s: 200 for s in ROLES})]
    status = summarise(history, settings.monitoring.health, window_s=10)
    assert status.stages[0].in_per_s == 5  # 50 records since it started, not (50 - 1000) / 10


def test_dead_letters_above_the_ratio_make_a_stage_failing(settings):
    history = [sample(T0, 100, dead={"clean": 0}), sample(T0 + 10, 200, dead={"clean": 20})]
    status = summarise(history, settings.monitoring.health, window_s=10)
    clean = status.stages[0]
    assert clean.dead_per_s == 2 and clean.level == "failing" and "20% of records dead-lettered" in clean.verdict


def test_lag_in_flight_is_not_a_trend_but_steady_growth_is(settings):
    noisy = [3, 1, 4, 2, 0, 3, 2, 4, 1, 3, 2, 0, 4, 2, 3, 1, 2, 4, 0, 3, 2]
    history = [sample(T0 + 3 * i, 100 + 10 * i, lag={"language": v}) for i, v in enumerate(noisy)]
    status = summarise(history, settings.monitoring.health, window_s=10)
    assert status.stages[1].lag_rising_s == 0 and status.stages[1].level == "ok"
    growing = [sample(T0 + 3 * i, 100 + 10 * i, lag={"entities": 5 * i + (i % 3)}) for i in range(21)]
    status = summarise(growing, settings.monitoring.health, window_s=10)
    entities = status.stages[2]
    assert entities.lag_rising_s == 60 and entities.lag_growth_per_min > 90
    assert entities.level == "warn" and "lag growing" in entities.verdict
    long = [sample(T0 + 20 * i, 100 + 10 * i, lag={"entities": 50 * i}) for i in range(20)]  # 380 s
    status = summarise(long, settings.monitoring.health, window_s=10)
    assert status.stages[2].level == "behind" and "not keeping up" in status.stages[2].verdict


def test_waiting_records_and_no_commit_for_half_a_minute_is_a_stall(settings):
    history = [sample(T0 + 5 * i, 100, lag={"sink": 7}) for i in range(8)]  # 35 s, counts do not move
    status = summarise(history, settings.monitoring.health, window_s=10)
    sink = status.stages[-1]
    assert sink.stalled_s == 35 and sink.level == "failing" and "nothing committed for 35 s" in sink.verdict


def test_the_broker_end_offset_is_corrected_by_what_the_pipeline_saw():
    short = PartitionLag("pages.raw", 0, committed=10, broker_end=12, seen_end=110)
    assert short.end == 110 and short.lag == 100 and short.broker_short_by == 98
    fine = PartitionLag("pages.raw", 1, committed=10, broker_end=12, seen_end=11)
    assert fine.lag == 2 and fine.broker_short_by == 0
    never = PartitionLag("pages.raw", 2, committed=None, broker_end=40, start=30)
    assert never.lag == 10
    assert PartitionLag("t", 3, None, None).lag is None


def test_lag_trend_is_a_least_squares_line():
    slope, spread = lag_trend([(0, 0), (1, 2), (2, 4), (3, 6)])
    assert slope == 2 and spread == 0
    assert lag_trend([(5, 1), (5, 2)]) == (0.0, 0.0)


def test_a_worker_found_late_is_measured_from_its_own_first_sample(settings):
    empty = Sample(T0, [], {})  # e.g. before the workers' ports were known
    history = [empty, sample(T0 + 4, 100), sample(T0 + 9, 150)]
    status = summarise(history, settings.monitoring.health, window_s=10)
    assert status.stages[0].in_per_s == 10 and status.workers[0].cpu_percent is not None
    assert status.window_s == 5
