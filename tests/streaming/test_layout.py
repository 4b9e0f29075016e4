"""``--layout auto``: the planner's decisions on given measurements (no broker), and the probe's
CPU reading of real processes (a burning child of a worker counts for its stage)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from pipeline.streaming.layout import LayoutPlanner, LoadProbe, StageLoad

FLOOR = {"clean": 1, "language": 1, "entities": 1, "dedup": 1, "sink": 1}


def loads(**by_stage) -> list[StageLoad]:
    """``stage=(workers, demand_cores, lag, lag_growth)`` (CPU used: 0.8 of the demand); the other
    stages calm with one worker."""
    out = []
    for stage in FLOOR:
        workers, demand, lag, growth = by_stage.get(stage, (1, 0.1, 0, 0))
        out.append(StageLoad(stage, workers, 0.8 * demand, demand, lag, growth, max_workers=4))
    return out


def test_the_stage_falling_behind_most_gets_a_worker_when_a_core_is_spare():
    planner = LayoutPlanner(FLOOR, cores=2, min_lag=200, rising_windows=1)
    change = planner.decide(loads(clean=(1, 0.95, 900, 400), entities=(1, 0.9, 600, 100)), idle_cores=0.9)
    assert (change.stage, change.workers) == ("clean", 2)
    assert "backlog 900" in change.reason and "idle" in change.reason


def test_a_busy_machine_gets_no_cpu_bound_worker_but_a_waiting_stage_does():
    planner = LayoutPlanner(FLOOR, cores=2, min_lag=200, rising_windows=1)
    assert planner.decide(loads(clean=(1, 0.95, 900, 400)), idle_cores=0.1) is None
    change = planner.decide(loads(clean=(1, 0.95, 900, 400), sink=(1, 0.2, 700, 300)), idle_cores=0.1)
    assert (change.stage, change.workers) == ("sink", 2) and "wait" in change.reason


def test_no_worker_for_a_small_or_shrinking_backlog_or_beyond_the_partitions_or_the_cores():
    planner = LayoutPlanner(FLOOR, cores=2, min_lag=200, rising_windows=1)
    assert planner.decide(loads(clean=(1, 0.9, 150, 100)), idle_cores=1.5) is None  # under min_lag
    assert planner.decide(loads(clean=(1, 0.9, 900, -50)), idle_cores=1.5) is None  # catching up
    assert planner.decide(loads(clean=(4, 3.0, 900, 400)), idle_cores=1.5) is None  # 4 partitions
    # two workers above the floor on two cores: no third
    assert LayoutPlanner(FLOOR, cores=2, min_lag=200, rising_windows=1).decide(loads(clean=(2, 1.0, 900, 400), language=(2, 0.5, 0, 0)), idle_cores=1.5) is None


def test_a_change_is_followed_by_a_skipped_window_and_extra_workers_go_after_calm_windows():
    planner = LayoutPlanner(FLOOR, cores=2, min_lag=200, rising_windows=1, calm_windows=3)
    assert planner.decide(loads(entities=(1, 0.9, 900, 400)), idle_cores=1.0).workers == 2
    # the window after the change (a rebalance) decides nothing, even with the backlog still growing
    assert planner.decide(loads(entities=(2, 1.4, 1200, 300)), idle_cores=1.0) is None
    # catching up: not calm yet (the backlog is above min_lag)
    assert planner.decide(loads(entities=(2, 1.6, 500, -700)), idle_cores=0.2) is None
    calm = loads(entities=(2, 0.3, 10, -490))
    assert planner.decide(calm, idle_cores=1.5) is None  # calm 1
    assert planner.decide(loads(entities=(2, 0.3, 0, -10)), idle_cores=1.5) is None  # calm 2
    change = planner.decide(loads(entities=(2, 0.3, 0, 0)), idle_cores=1.5)  # calm 3
    assert (change.stage, change.workers) == ("entities", 1) and "3 windows" in change.reason
    # the floor stays: one worker is never taken away
    for _ in range(5):
        assert planner.decide(loads(), idle_cores=1.5) is None


def test_by_default_a_backlog_must_grow_past_a_thousand_records_in_two_windows_running():
    planner = LayoutPlanner(FLOOR, cores=2)
    assert planner.decide(loads(dedup=(1, 0.9, 900, 900)), idle_cores=1.5) is None  # a batch in flight
    assert planner.decide(loads(dedup=(1, 0.9, 1500, 600)), idle_cores=1.5) is None  # one window
    assert planner.decide(loads(dedup=(1, 0.9, 1400, -100)), idle_cores=1.5) is None  # fell back
    assert planner.decide(loads(dedup=(1, 0.9, 1600, 200)), idle_cores=1.5) is None
    assert planner.decide(loads(dedup=(1, 0.9, 1900, 300)), idle_cores=1.5).workers == 2


def test_the_probe_counts_a_workers_children_and_the_backlog_growth():
    """A stand-in worker whose child burns CPU: the stage's CPU is the child's; another stage whose
    process sleeps reads about zero. The backlog comes from the given reader."""
    burn = "import time\nend = time.monotonic() + 4\nwhile time.monotonic() < end: pass"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    backlog = {"clean": 100, "sink": 0}
    try:
        probe = LoadProbe(lambda stages: {stage: (backlog[stage], 4) for stage in stages})
        deadline = time.monotonic() + 30  # the burning child has started (a slow machine takes its time)
        while not psutil.Process(parent.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        probe.measure({"clean": [parent.pid], "sink": [sleeper.pid]})
        time.sleep(1.5)
        backlog["clean"] = 350
        (clean, sink), idle = probe.measure({"clean": [parent.pid], "sink": [sleeper.pid]})
    finally:
        parent.wait(10)
        sleeper.wait(10)
    assert clean.cpu_cores > 0.15 and sink.cpu_cores < 0.1, (clean, sink)
    # a burning process runs or waits for a core all the time, whatever else the machine does
    assert clean.demand_cores > 0.7 and sink.demand_cores < 0.1, (clean, sink)  # a shared machine: any core share
    assert (clean.lag, clean.lag_growth, clean.workers, clean.max_workers) == (350, 250, 1, 4)
    assert idle >= 0
