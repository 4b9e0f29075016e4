"""``pipeline run --layout auto``: workers per stage from what the stages cost while they run.

Every ``run.layout_interval_s`` the supervisor measures each stage: the CPU its workers (and their
helper processes) used per second, the records waiting in its source topic and how that backlog
moved. :class:`LayoutPlanner` turns one such measurement into at most one change:

- **one more worker** for the stage whose backlog grew most, when its backlog is at least
  ``min_lag`` records and grew in each of the last ``rising_windows`` measurements (a worker's
  fetched but unfinished batches count as backlog too, so one window says little), and either the machine has a spare core (CPU-bound work
  can use it) or the stage's workers use little CPU (they wait: on the network, a store, a pool),
  so another one helps even on a busy machine. Never more workers than the source topic has
  partitions (the extra ones would get none), and never more than ``cores`` workers above the
  configured layout in all;
- **one worker fewer** for a stage above its configured count whose backlog stayed below
  ``min_lag`` and did not grow for ``calm_windows`` measurements in a row;
- after a change, one measurement is skipped: a rebalance pauses the stage's group, so that
  window says nothing about the new layout.

The configured ``run.workers`` is the floor. The planner is pure (a measurement in, a decision
out); :class:`LoadProbe` takes the measurements from the processes and the broker.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class StageLoad:
    """One stage over one measurement window."""

    stage: str
    workers: int
    cpu_cores: float  # CPU-seconds per second of the stage's workers and their children
    # ... plus the seconds per second their threads were ready to run but waited for a core (Linux
    # schedstat): what the stage would use on an idle machine. Low: the workers wait on something else.
    demand_cores: float
    lag: int  # records waiting in the stage's source topic at the end of the window
    lag_growth: int  # lag at the end minus lag at the start of the window
    max_workers: int  # partitions of the source topic


@dataclass(frozen=True)
class LayoutChange:
    stage: str
    workers: int
    reason: str


@dataclass
class LayoutPlanner:
    """Decides one change per measurement window (see the module's docstring)."""

    floor: dict[str, int]  # the configured workers per stage
    cores: int  # cores the pipeline may use
    min_lag: int = 1000
    rising_windows: int = 2
    spare_core: float = 0.5  # the machine has a spare core when at least this much of one is idle
    waiting_share: float = 0.5  # a worker using less than this share of a core mostly waits
    calm_windows: int = 3
    _calm: dict[str, int] = field(default_factory=dict)
    _rising: dict[str, int] = field(default_factory=dict)
    _skip: int = 0

    def decide(self, loads: list[StageLoad], idle_cores: float) -> LayoutChange | None:
        for load in loads:  # calm windows are counted in every window, also the skipped ones
            calm = load.lag < self.min_lag and load.lag_growth <= 0
            self._calm[load.stage] = self._calm.get(load.stage, 0) + 1 if calm else 0
            rising = load.lag >= self.min_lag and load.lag_growth > 0
            self._rising[load.stage] = self._rising.get(load.stage, 0) + 1 if rising else 0
        if self._skip:
            self._skip -= 1
            return None
        change = self._grow(loads, idle_cores) or self._shrink(loads)
        if change is not None:
            self._skip = 1
            self._calm[change.stage] = self._rising[change.stage] = 0
        return change

    def _grow(self, loads: list[StageLoad], idle_cores: float) -> LayoutChange | None:
        extra = sum(max(0, load.workers - self.floor.get(load.stage, 1)) for load in loads)
        if extra >= self.cores:
            return None
        behind = [load for load in loads if self._rising.get(load.stage, 0) >= self.rising_windows
                  and load.workers < load.max_workers]
        for load in sorted(behind, key=lambda x: (-x.lag_growth, x.stage)):
            per_worker = load.demand_cores / max(1, load.workers)
            if idle_cores >= self.spare_core:
                why = f"{idle_cores:.1f} cores idle"
            elif per_worker < self.waiting_share:
                why = f"its workers wait on other work than the CPU (they ran or were ready to run {per_worker:.0%} of the time)"
            else:
                continue
            return LayoutChange(load.stage, load.workers + 1,
                                f"backlog {load.lag} records, +{load.lag_growth} in the window; {why}")
        return None

    def _shrink(self, loads: list[StageLoad]) -> LayoutChange | None:
        for load in sorted(loads, key=lambda x: x.stage):
            if load.workers > self.floor.get(load.stage, 1) and self._calm.get(load.stage, 0) >= self.calm_windows:
                return LayoutChange(load.stage, load.workers - 1,
                                    f"backlog under {self.min_lag} records for {self._calm[load.stage]} windows")
        return None


class LoadProbe:
    """Measures :class:`StageLoad` of every stage between two calls of :meth:`measure`: CPU from
    the worker processes (their own and their children's, reaped ones included), lag from the
    broker (committed offsets of the stage's group against the end of its source topic)."""

    def __init__(self, backlogs, clock=time.monotonic):
        # stages -> {stage: (records waiting, partitions of its source topic)}, in one round of requests
        self.backlogs = backlogs
        self.clock = clock
        self._seen: dict[int, tuple[float, float]] = {}  # pid -> (CPU, CPU + run delay) at the last measurement
        self._lag: dict[str, int] = {}
        self._machine = psutil.cpu_times()
        self._at = clock()

    @staticmethod
    def _run_delay(pid: int) -> float:
        """Seconds the process's threads waited, ready, for a core (0 where schedstat is missing)."""
        total = 0
        try:
            for task in os.scandir(f"/proc/{pid}/task"):
                try:
                    with open(f"{task.path}/schedstat", "rb") as f:
                        total += int(f.read().split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        except OSError:
            pass
        return total / 1e9

    @classmethod
    def _seconds(cls, pid: int) -> tuple[float, float] | None:
        """CPU seconds of the process and its children (reaped ones too), and the same plus the
        time their threads waited for a core."""
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                t = proc.cpu_times()
                cpu = t.user + t.system + t.children_user + t.children_system
            delay = cls._run_delay(pid)
            for child in proc.children(recursive=True):
                try:
                    c = child.cpu_times()
                    cpu += c.user + c.system
                    delay += cls._run_delay(child.pid)
                except psutil.Error:
                    pass
            return cpu, cpu + delay
        except psutil.Error:
            return None

    def measure(self, workers: dict[str, list[int]]) -> tuple[list[StageLoad], float]:
        """``workers``: stage -> pids of its workers. Returns the loads and the machine's idle cores
        over the window (None readings, such as a worker that just restarted, count as 0)."""
        now = self.clock()
        window = max(1e-3, now - self._at)
        machine = psutil.cpu_times()
        idle = ((machine.idle + getattr(machine, "iowait", 0.0))
                - (self._machine.idle + getattr(self._machine, "iowait", 0.0))) / window
        self._machine, self._at = machine, now
        loads = []
        seen: dict[int, tuple[float, float]] = {}
        backlogs = self.backlogs(list(workers))
        for stage, pids in workers.items():
            used = wanted = 0.0
            for pid in pids:
                now_s = self._seconds(pid)
                if now_s is None:
                    continue
                seen[pid] = now_s
                if pid in self._seen:
                    used += max(0.0, now_s[0] - self._seen[pid][0])
                    wanted += max(0.0, now_s[1] - self._seen[pid][1])
            lag, partitions = backlogs[stage]
            growth = lag - self._lag.get(stage, lag)
            self._lag[stage] = lag
            loads.append(StageLoad(stage, len(pids), used / window, wanted / window, lag, growth, partitions))
        self._seen = seen
        return loads, max(0.0, idle)
