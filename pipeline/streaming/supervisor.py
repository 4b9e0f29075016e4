"""``pipeline run``: broker (embedded unless configured), topics, one process per stage worker,
optional replay, then either a summary and exit, or a continuous pipeline until Ctrl-C.

Workers run in their own sessions (Ctrl-C reaches only this process, which stops them in order)
and get SIGTERM if this process dies, so nothing is left behind. A worker that exits on its own
is restarted.

Each worker serves its metrics on its own port: worker i of a stage gets the stage's
``monitoring.ports`` entry + i, or a free port when that one is taken. The ports are in the run
file (``out/logs/run.json``) and in ``out/logs/prometheus-targets.json``; the web dashboard
(``monitoring.dashboard_port``) reads the workers from there and follows the receipts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from pipeline import registry, sinks
from pipeline.config import Settings
from pipeline.monitoring import runfile
from pipeline.monitoring.http import port_is_free
from pipeline.monitoring.lag import OffsetsProbe
from pipeline.records import iso, utc_now
from pipeline.streaming import preflight, processes
from pipeline.streaming.broker import EmbeddedKafka, TansuBroker, embedded_broker, wait_for_kafka
from pipeline.streaming.folders import FolderInUse, FolderLock
from pipeline.streaming.index_server import EmbeddedIndexServer
from pipeline.streaming.layout import LayoutChange, LayoutPlanner, LoadProbe, StageLoad
from pipeline.streaming.topics import ensure_topics

RESTART_BACKOFF_S = 2.0
BROKER_RETRY_S = 10.0  # after a failed broker restart
RETENTION_CHECK_S = 30.0  # how often a run checks that retention deleted nothing unread


@dataclass
class WorkerProcess:
    stage: str
    index: int
    log_path: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    metrics_port: int = 0  # the port asked for; the worker may take another (see port_file)
    host: str = "127.0.0.1"

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.index}"

    @property
    def ready_file(self) -> Path:
        return self.log_path.with_suffix(".ready")

    @property
    def port_file(self) -> Path:
        """Written by the worker: the port it serves its metrics on."""
        return self.log_path.with_suffix(".port")

    def serving_port(self) -> int | None:
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def info(self) -> dict:
        port = self.serving_port()
        return {"name": self.name, "stage": self.stage, "index": self.index,
                "pid": self.proc.pid if self.proc is not None else None, "metrics_port": port,
                "metrics_url": f"http://{self.host}:{port}" if port else None, "log": str(self.log_path)}


@dataclass
class RunSummary:
    replayed: int = 0
    delivered: int = 0  # records that reached the sink: written, or skipped as already written
    skipped_written: int = 0  # of those, records every sink had already (sent again, not written again)
    unique: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    index_reset: int = 0  # not found in a dedup index that had lost its memory
    dead_letters: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    rejected: int = 0
    startup_s: float = 0.0
    processing_s: float = 0.0
    total_s: float = 0.0
    restarts: int = 0
    waiting: dict[str, int] = field(default_factory=dict)  # stage -> records left in its source topic
    waiting_kept: bool = True  # in a durable broker (False: the memory-only one, gone)
    broker_restarts: int = 0

    def lines(self) -> list[str]:
        dead = sum(self.dead_letters.values())
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.dead_letters.items()))
        out = [
            f"records in      {self.replayed}",
            f"records out     {self.delivered}  (unique {self.unique}, exact duplicates {self.exact_duplicates}, "
            f"near duplicates {self.near_duplicates}"
            + (f", index reset {self.index_reset}: not checked against what came before" if self.index_reset else "")
            + ")",
            f"dead letters    {dead}" + (f"  ({detail})" if detail else ""),
        ]
        if self.skipped_written:
            out.insert(2, f"written         {self.delivered - self.skipped_written}  (skipped {self.skipped_written}: "
                          "already in the sink, not written again)")
        if self.rejected:
            out.append(f"not sent        {self.rejected}  (refused by the broker, see replay output)")
        if self.missing:
            out.append(f"missing         {self.missing}  (neither delivered nor dead-lettered in time)")
        if self.restarts:
            out.append(f"worker restarts {self.restarts}")
        if self.broker_restarts:
            out.append(f"broker restarts {self.broker_restarts}")
        if sum(self.waiting.values()):
            detail = ", ".join(f"{stage} {n}" for stage, n in self.waiting.items() if n)
            fate = ("kept by the broker: the next `pipeline run` here resumes them" if self.waiting_kept
                    else "LOST: the memory-only broker held them")
            out.append(f"waiting         {sum(self.waiting.values())}  ({detail}; {fate})")
        out.append(f"time            {self.total_s:.1f} s  (start-up {self.startup_s:.1f} s, "
                   f"replay to last record {self.processing_s:.1f} s)")
        return out


START_RETRIES = 2  # a worker that exits while the run starts is started again this many times


class Supervisor:
    def __init__(self, settings: Settings, sink_targets: list[str] | None = None, console: Console | None = None,
                 log_level: str | None = None, log_format: str | None = None, dashboard: bool = True,
                 dashboard_port: int | None = None, layout: str | None = None):
        self.sink_targets = sink_targets or settings.sink.targets
        # the run's sinks (`--sink`) in its settings: the run file and the dashboard read them there
        self.settings = settings.with_sinks(self.sink_targets)
        self.console = console or Console(stderr=True)
        self.log_dir = Path(settings.run.log_dir)
        self.log_level = log_level or settings.run.log_level
        self.log_format = log_format or settings.run.log_format
        self.broker: EmbeddedKafka | TansuBroker | None = None
        self.broker_restarts = 0
        self._broker_retry_at = 0.0
        self._retention_lost: dict[str, int] = {}
        self.index_server: EmbeddedIndexServer | None = None
        self.dedup_store = settings.stages.dedup.store
        self.bootstrap = settings.broker.bootstrap_servers
        self.workers: list[WorkerProcess] = []
        self.want_dashboard = dashboard
        self.dashboard_port = dashboard_port
        self.dashboard = None
        self.started_at = iso(utc_now())
        self._published: list[dict] | None = None
        self._published_at = 0.0
        self._stopping = False
        self._locks: list[FolderLock] = []
        self.layout = layout or settings.run.layout
        self._layout: tuple[LayoutPlanner, LoadProbe, OffsetsProbe] | None = None
        self._layout_due = 0.0
        self.layout_loads: list[StageLoad] = []  # the last measurement of `--layout auto`

    # --- start-up --------------------------------------------------------------------------------

    def _lock_folders(self) -> None:
        """One run per folder: its log folder (run file, worker logs), the embedded broker's data
        and every local sink folder. A second run is refused before anything starts, naming the
        first; the locks go with this process, even after ``kill -9``."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        holder = f"`pipeline run` (process {os.getpid()}, started {stamp})"
        hint = ("stop that run (Ctrl-C, or `kill` its process), or give this one other folders "
                "(PIPELINE__RUN__LOG_DIR, PIPELINE__EMBEDDED_BROKER__DATA_DIR, --sink)")
        folders = [("the run folder", self.log_dir, "run.lock")]
        if self.settings.uses_embedded_broker and self.settings.embedded_broker.kind != "tansu":
            folders.append(("the embedded broker's data", Path(self.settings.embedded_broker.data_dir), "broker.lock"))
        for target in self.sink_targets:
            where = sinks.local_folder(target, self.settings.sink)
            if where is not None:
                folders.append((f"the {target.partition(':')[0]} sink folder", where, ".run.lock"))
        try:
            for what, folder, name in folders:
                self._locks.append(FolderLock(folder, what, hint, name=name).acquire(holder))
        except FolderInUse:
            self._unlock_folders()
            raise

    def _unlock_folders(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks = []

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._lock_folders()
        # the dedup index first: a second run over the same index folder fails before starting anything
        if self.settings.uses_embedded_index:
            self.index_server = EmbeddedIndexServer(self.settings.embedded_index, self.log_dir)
            self.dedup_store = self.index_server.start()
            self.console.print(f"[dim]dedup index: {self.dedup_store}, data in {self.settings.embedded_index.dir}[/dim]")
            self._check_index_epoch()
        if self.settings.uses_embedded_broker:
            self.broker, warning = embedded_broker(self.settings, self.log_dir)
            if warning:
                self.console.print(f"[bold red]warning: {warning}[/bold red]")
            self.bootstrap = self.broker.start()
            self.settings = self.settings.with_bootstrap(self.bootstrap, profile=self.broker.profile)
            where = f"data in {self.settings.embedded_broker.data_dir}" if self.broker.durable else "memory only"
            self.console.print(f"[dim]broker: {self.broker.name} on {self.bootstrap}, {where}[/dim]")
        else:
            wait_for_kafka(self.bootstrap, timeout_s=30, options=self.settings.broker.client_options())
            self.console.print(f"[dim]broker {self.bootstrap} (profile {self.settings.profile_name})[/dim]")
        ensure_topics(self.bootstrap, self.settings)
        runfile.write(self.settings, self.bootstrap, started_at=self.started_at)
        host = self.settings.monitoring.host
        host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        for stage in registry.roles(self.settings):
            for i in range(self.settings.run.workers.get(stage, 1)):
                worker = WorkerProcess(stage, i, self.log_dir / f"{stage}-{i}.log", host=host)
                worker.metrics_port = self._metrics_port(worker)
                configured = self.settings.monitoring.ports.get(stage, 0)
                if configured and not worker.metrics_port:  # a scraper of the configured port would miss it
                    self.console.print(f"[dim]{worker.name}: metrics port {configured + i} is taken; it serves "
                                       f"on a free port (`pipeline status` and {runfile.path(self.settings)} "
                                       "say which)[/dim]", highlight=False)
                self.workers.append(worker)
                self._spawn(worker)

    def _metrics_port(self, worker: WorkerProcess) -> int:
        """The stage's configured port + the worker's index, unless taken (then 0: any free port)."""
        base = self.settings.monitoring.ports.get(worker.stage, 0)
        if not base:
            return 0
        want = base + worker.index
        taken = {w.metrics_port for w in self.workers if w is not worker}
        if want in taken or not port_is_free(self.settings.monitoring.host, want):
            return 0
        return want

    def start_dashboard(self, recent, sample_now: bool = True) -> None:
        """The web page (``monitoring.dashboard_port``, or a free port when it is taken)."""
        from pipeline.monitoring.dashboard import Dashboard

        self.dashboard = Dashboard(self.settings, self.targets(), recent, port=self.dashboard_port,
                                   expected={w.stage: self.settings.run.workers.get(w.stage, 1) for w in self.workers},
                                   sample_now=sample_now)
        self.console.print(f"dashboard {self.dashboard.url}", highlight=False)

    def targets(self):
        from pipeline.monitoring.status import Target

        out = []
        for w in self.workers:
            port = w.serving_port() or w.metrics_port
            if port:
                out.append(Target(f"http://{w.host}:{port}", w.stage, w.name))
        return out

    def publish(self, force: bool = False) -> None:
        """Write the run file (workers, ports, dashboard) when something changed (a restart)."""
        if not force and time.monotonic() - self._published_at < 1.0:
            return
        self._published_at = time.monotonic()
        workers = [w.info() for w in self.workers]
        if workers == self._published and not force:
            return
        self._published = workers
        runfile.write(self.settings, self.bootstrap, workers,
                      self.dashboard.url if self.dashboard is not None else None, self.started_at)
        if self.dashboard is not None:
            self.dashboard.set_targets(self.targets())

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until every worker has joined its group and fetches (or fail, naming the late ones)."""
        deadline = time.monotonic() + timeout_s
        while True:
            late = [w for w in self.workers if not w.ready_file.exists()]
            if not late:
                self.publish(force=True)  # the run file gets every worker's metrics port
                return
            for w in late:
                if w.proc is not None and w.proc.poll() is not None:
                    # a worker may fail to join while a new topic's metadata reaches every broker
                    # (Faust, with transactions, stops on a topic its group leader did not see yet):
                    # started again a few times, as check_workers does once the run is up
                    if w.restarts >= START_RETRIES:
                        raise RuntimeError(f"worker {w.name} exited with code {w.proc.returncode} during start-up "
                                           f"({w.restarts + 1} times); see {w.log_path}")
                    self.console.print(f"[yellow]worker {w.name} exited with code {w.proc.returncode} during start-up; "
                                       f"starting it again (log: {w.log_path})[/yellow]")
                    self.restart(w)
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after {timeout_s:g} s: "
                                   f"{', '.join(w.name for w in late)}; see their logs in {self.log_dir}/")
            time.sleep(0.05)

    def _worker_env(self) -> dict[str, str]:
        import orjson

        env = dict(os.environ)
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap
        env["PIPELINE__BROKER__PROFILE"] = self.settings.profile_name
        env["PIPELINE__SINK__TARGETS"] = orjson.dumps(self.sink_targets).decode()
        env["PIPELINE__STAGES__DEDUP__STORE"] = orjson.dumps(self.dedup_store).decode()
        env["PIPELINE__STAGES__CHAIN"] = orjson.dumps(self.settings.stages.chain).decode()  # the run's (--feeds adds fetch)
        if self.settings.source:
            env["PIPELINE_CONFIG"] = str(Path(self.settings.source).resolve())
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, worker: WorkerProcess) -> None:
        args = [sys.executable, "-m", "pipeline", "worker", worker.stage, "--log-level", self.log_level,
                "--log-format", self.log_format, "--ready-file", str(worker.ready_file),
                "--metrics-port", str(worker.serving_port() or worker.metrics_port), "--metrics-port-fallback"]
        worker.ready_file.unlink(missing_ok=True)
        worker.port_file.unlink(missing_ok=True)
        # a supervisor that dies (kill -9) takes its workers with it at once: SIGKILL is the one signal
        # a stuck worker cannot miss, and loses nothing (what they had not committed is read again)
        worker.proc = processes.spawn(args, worker.log_path, env=self._worker_env(), die_signal=signal.SIGKILL)
        worker.started_at = time.monotonic()

    def check_broker(self) -> None:
        """Restart the embedded broker when it died: on the same port and, for Kafka, the same data,
        so workers reconnect and go on from their committed offsets."""
        if self._stopping or self.broker is None or self.broker.alive() or time.monotonic() < self._broker_retry_at:
            return
        code = self.broker.returncode
        lost = "" if self.broker.durable else " (memory only: what it held is lost)"
        self.console.print(f"[bold red]{time.strftime('%H:%M:%S')} broker down (exit code {code}){lost}; "
                           f"restarting it (log: {self.broker.log_path})[/bold red]")
        self.broker_restarts += 1
        try:
            self.broker.restart()
        except Exception as exc:  # noqa: BLE001 - said on the console; tried again after a pause
            self._broker_retry_at = time.monotonic() + BROKER_RETRY_S
            self.console.print(f"[bold red]broker restart failed ({exc}); trying again in {BROKER_RETRY_S:g} s"
                               "[/bold red]")
            return
        self.console.print(f"[yellow]{time.strftime('%H:%M:%S')} broker up again on {self.bootstrap}[/yellow]")

    def check_workers(self) -> None:
        """Restart the broker or any worker that exited while the pipeline runs."""
        if self._stopping:
            return
        self.check_broker()
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is not None:
                if time.monotonic() - worker.started_at < RESTART_BACKOFF_S:
                    continue
                self.console.print(f"[yellow]worker {worker.name} exited with code "
                                   f"{worker.proc.returncode}; restarting (log: {worker.log_path})[/yellow]")
                self.restart(worker)

    def scale(self, stage: str, count: int) -> None:
        """Run ``count`` workers of ``stage``: start new ones, or stop (SIGTERM: they commit and
        leave the group, their partitions move to the others) the ones with the highest index."""
        mine = sorted((w for w in self.workers if w.stage == stage), key=lambda w: w.index)
        host = mine[0].host if mine else "127.0.0.1"
        for index in range(len(mine), count):
            worker = WorkerProcess(stage, index, self.log_dir / f"{stage}-{index}.log", host=host)
            worker.metrics_port = self._metrics_port(worker)
            self.workers.append(worker)
            self._spawn(worker)
        extra = mine[count:]
        if extra:
            for worker in extra:
                self.workers.remove(worker)
            processes.stop([w.proc for w in extra if w.proc is not None], timeout=20.0)
        if self.dashboard is not None and self.dashboard.expected is not None:
            self.dashboard.expected = {**self.dashboard.expected, stage: count}
        self.publish(force=True)

    # --- `--layout auto` -------------------------------------------------------------------------

    def adapt_layout(self, now: bool = False) -> LayoutChange | None:
        """With ``layout = "auto"``: every ``run.layout_interval_s`` (``now``: at once), measure the
        stages (kept in ``layout_loads``) and make the planner's change, if any (see
        pipeline/streaming/layout.py). A window in which a worker was restarting is not used."""
        if self.layout != "auto" or self._stopping:
            return None
        if not now and time.monotonic() < self._layout_due:
            return None
        self._layout_due = time.monotonic() + self.settings.run.layout_interval_s
        if self._layout is None:  # the first window starts now
            from pipeline.stages.pool import usable_cores

            offsets = OffsetsProbe(self.bootstrap, options=self.settings.broker.client_options(),
                                   transactional=self.settings.exactly_once)
            planner = LayoutPlanner(floor=dict(self.settings.run.workers), cores=usable_cores())
            self._layout = (planner, LoadProbe(self._backlogs), offsets)
        planner, probe, _ = self._layout
        pids: dict[str, list[int]] = {}
        for w in self.workers:
            pids.setdefault(w.stage, []).extend([w.proc.pid] if w.proc is not None and w.proc.poll() is None else [])
        try:
            loads, idle = probe.measure(pids)
        except Exception as exc:  # noqa: BLE001 - the broker did not answer: the next window tells
            self.console.print(f"[dim]layout: no measurement ({type(exc).__name__}: {exc})[/dim]", highlight=False)
            return None
        self.layout_loads = loads
        if sum(len(p) for p in pids.values()) < len(self.workers):
            return None  # a worker is restarting
        change = planner.decide(loads, idle)
        if change is not None:
            self.console.print(f"[dim]{time.strftime('%H:%M:%S')} layout: {change.stage} "
                               f"{len([w for w in self.workers if w.stage == change.stage])} -> {change.workers} "
                               f"workers ({change.reason})[/dim]", highlight=False)
            self.scale(change.stage, change.workers)
        return change

    def _backlogs(self, stages: list[str]) -> dict[str, tuple[int, int]]:
        """Per stage: records waiting in its source topic, and that topic's partitions (every
        stage's group in one round of broker requests)."""
        wanted = {}
        for stage in stages:
            topic = registry.stage_topics(self.settings, stage).source
            wanted[stage] = (registry.consumer_group(self.settings, stage), topic,
                             list(range(self.settings.topics.partitions_of(topic))))
        lags = self._layout[2].groups_lag({group: (topic, parts, None) for group, topic, parts in wanted.values()})
        return {stage: (sum(lag.lag or 0 for lag in lags[group]), len(parts))
                for stage, (group, _, parts) in wanted.items()}

    def restart(self, worker: WorkerProcess) -> None:
        """Start ``worker`` again (after it exited or was killed)."""
        if worker.proc is not None and worker.proc.poll() is None:
            processes.stop([worker.proc])
        worker.restarts += 1
        self._spawn(worker)

    # --- shut-down -------------------------------------------------------------------------------

    def stop_workers(self) -> None:
        self._stopping = True
        # every worker commits what it has finished and leaves its group; nothing is lost either way
        procs = [w.proc for w in self.workers if w.proc is not None]
        processes.stop(procs, timeout=20.0)

    def waiting(self) -> dict[str, int]:
        """Records each stage has not committed yet (after the workers stopped), or {} if unknown."""
        from pipeline.monitoring.lag import OffsetsProbe

        probe = OffsetsProbe(self.bootstrap, timeout_s=5.0, options=self.settings.broker.client_options(),
                             transactional=self.settings.exactly_once)
        out = {}
        try:
            for stage in registry.roles(self.settings):
                topic = registry.stage_topics(self.settings, stage).source
                parts = list(range(self.settings.topics.partitions_of(topic)))
                out[stage] = sum(p.lag or 0 for p in probe.group_lag(registry.consumer_group(self.settings, stage), topic, parts))
        except Exception:  # noqa: BLE001 - a broker that is gone: nothing to say
            return {}
        finally:
            probe.close()
        return out

    def _index_epoch_file(self) -> Path:
        return Path(self.settings.embedded_index.dir) / "epoch"

    def _check_index_epoch(self) -> None:
        """The embedded index's folder remembers the epoch of the index it held (written at the end
        of each run): an index that comes back without it (its data lost or replaced) is marked
        reset, so that dedup says ``index_reset`` instead of a false ``unique``; said loudly."""
        from pipeline.stages.dedup import index_namespace
        from pipeline.stages.dedup.index import RedisIndex

        try:
            known = self._index_epoch_file().read_text().strip()
        except OSError:
            return
        index = RedisIndex(self.dedup_store, index_namespace(self.settings.stages.dedup), None)
        try:
            if known and index.stored_epoch() != known:
                index.mark_reset(known)
                self.console.print(f"[bold red]the dedup index in {self.settings.embedded_index.dir} lost what it "
                                   "held (its data is gone or was replaced): records not found in it are "
                                   "'index_reset', not 'unique', within the dedup horizon[/bold red]")
        finally:
            index.close()

    def _remember_index_epoch(self) -> None:
        from pipeline.stages.dedup import index_namespace
        from pipeline.stages.dedup.index import RedisIndex

        index = RedisIndex(self.dedup_store, index_namespace(self.settings.stages.dedup), None)
        try:
            epoch = index.stored_epoch()
            if epoch:
                self._index_epoch_file().write_text(epoch + "\n")
        except Exception as exc:  # noqa: BLE001 - the next run only cannot tell a lost index from a new one
            self.console.print(f"[yellow]could not note the dedup index's epoch: {exc}[/yellow]")
        finally:
            index.close()

    def stop(self) -> None:
        self.stop_workers()
        if self._layout is not None:
            self._layout[2].close()
            self._layout = None
        if self.dashboard is not None:
            self.dashboard.close()
            self.dashboard = None
        if self._locks:  # a run refused at start-up leaves the running one's file alone
            runfile.remove(self.settings)
        if self.index_server is not None:
            if self._locks and self.index_server.proc is not None:  # it started: note what it holds
                self._remember_index_epoch()
            self.index_server.stop()
            self.index_server = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        self._unlock_folders()

    # --- the two modes ---------------------------------------------------------------------------

    def run(self, replay_paths: list[str] | None, exit_when_done: bool, rate: float | None = None,
            loop: bool = False, timeout_s: float = 300.0) -> RunSummary:
        from pipeline.sources import open_sources
        from pipeline.streaming.tracker import DeliveryTracker

        t0 = time.monotonic()
        summary = RunSummary()
        # a source that cannot be opened (a missing path, an unknown kind) fails before anything starts
        sources = open_sources(replay_paths, self.settings) if replay_paths else None
        if sources:
            from pipeline.streaming.replay import check_targets

            check_targets(sources, self.settings)
            endless = [str(s) for s in sources if not s.bounded]
            if exit_when_done and endless:  # it would wait for the end of a source that has none
                raise preflight.PreflightFailed([
                    f"--exit-when-done: {', '.join(endless)} never ends by itself; leave --exit-when-done "
                    "out (Ctrl-C or SIGTERM stops the run), or replay only sources that end (files, urls:, warc:)"])
        # sinks, an external Redis or broker, a port a source listens on: what would fail later fails
        # now, one line each
        preflight.require(self.settings, self.sink_targets, sources or ())
        stop = threading.Event()
        replaying = threading.Event()

        def on_signal(signum, frame):
            stop.set()
            if not replaying.is_set():  # the replay stops between two events by itself
                raise KeyboardInterrupt

        # SIGINT too: a shell starts background jobs with SIGINT ignored, and `kill -INT` should still stop us
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        tracker = None
        sent = []
        interrupted = False
        t_replay = time.monotonic()
        try:
            self.start()
            tracker = DeliveryTracker(self.bootstrap, self.settings, keep_ids=exit_when_done)
            if self.want_dashboard:
                from pipeline.monitoring.dashboard import RecentData

                recent = RecentData()
                tracker.listeners.append(recent)
                # a short batch run samples only if someone opens the page
                self.start_dashboard(recent, sample_now=not exit_when_done)
            self.wait_ready(self.settings.run.ready_timeout_s)
            summary.startup_s = time.monotonic() - t0
            self.console.print(f"[dim]{len(self.workers)} workers ready in {summary.startup_s:.1f} s; "
                               f"logs in {self.log_dir}/[/dim]")
            t_replay = time.monotonic()
            if sources:
                result = self._replay_supervised(sources, rate, loop and not exit_when_done, exit_when_done,
                                                 stop, replaying, tracker)
                sent = result.sent
                summary.replayed = result.count
                summary.rejected = len(result.rejected)
                for origin, error in result.rejected:
                    self.console.print(f"[red]not sent: {origin}: {error}[/red]")
                if result.interrupted:
                    raise KeyboardInterrupt
            if exit_when_done:
                missing = self._wait(tracker, sent, timeout_s)
                summary.missing = len(missing)
            else:
                self._follow(tracker)
        except KeyboardInterrupt:
            interrupted = True
            self.console.print("[dim]stopping...[/dim]")
        finally:
            for sig in previous:  # stopping has its own time limits; a second Ctrl-C must not cut it short
                signal.signal(sig, signal.SIG_IGN)
            if tracker is not None and not exit_when_done:
                # receipts of records the sink finished just before the stop are still on their way
                self.stop_workers()
                tracker.wait_quiet(quiet_s=0.3, timeout_s=3.0)
            if tracker is not None:
                self._tally(summary, tracker, sent if exit_when_done else None, t_replay)
                tracker.close()
            summary.restarts = sum(w.restarts for w in self.workers)
            summary.broker_restarts = self.broker_restarts
            if self.workers and (interrupted or not exit_when_done or summary.missing):
                self.stop_workers()
                summary.waiting = self.waiting()
                summary.waiting_kept = self.broker is None or self.broker.durable
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            summary.total_s = time.monotonic() - t0
        return summary

    @staticmethod
    def _tally(summary: RunSummary, tracker, sent, t_replay: float) -> None:
        tally = tracker.snapshot()
        summary.processing_s = max(0.0, (tally.last_at or t_replay) - t_replay)
        if sent is not None:
            ids = {s.id for s in sent if s.id}
            statuses = Counter(tally.delivered[i] for i in ids if i in tally.delivered)
            summary.skipped_written = sum(1 for i in ids if i in tally.delivered and i not in tally.written)
        else:  # a continuous run counts receipts (a redelivered record counts again)
            statuses = tally.statuses
            summary.skipped_written = tally.outcomes["skipped_written"]
        summary.delivered = sum(statuses.values())
        summary.unique = statuses["unique"]
        summary.exact_duplicates = statuses["exact_duplicate"]
        summary.near_duplicates = statuses["near_duplicate"]
        summary.index_reset = statuses["index_reset"]
        summary.dead_letters = {f"{stage}/{reason}": n for (stage, reason), n in tally.dead_letters.items()}

    def _wait(self, tracker, sent, timeout_s: float):
        from pipeline.progress import progress_bar

        with progress_bar("processing", "records", console=self.console, enabled=sys.stderr.isatty()) as bar:
            task = bar.add_task("processing", total=len(sent))

            def on_progress(done: int, total: int) -> None:
                self.check_workers()
                self.adapt_layout()
                self.publish()
                bar.update(task, completed=done)

            return tracker.wait_for(sent, timeout_s, on_progress)

    def _replay_supervised(self, sources, rate, loop, track, stop, replaying, tracker):
        """The replay in a thread of its own while this one keeps the broker and the workers alive
        (a `--loop` replay never ends by itself)."""
        from pipeline.streaming.replay import replay

        box: dict = {}

        def run() -> None:
            try:
                box["result"] = replay(sources, self.bootstrap, self.settings, rate=rate, loop=loop,
                                       progress=sys.stderr.isatty(), track=track, stop=stop)
            except BaseException as exc:  # noqa: BLE001 - raised again in this thread
                box["error"] = exc

        thread = threading.Thread(target=run, name="replay", daemon=True)
        replaying.set()  # a signal now only asks the replay to stop between two events
        thread.start()
        try:
            self._supervise(tracker, thread.is_alive, status=not track)
        finally:
            thread.join()
            replaying.clear()
        if "error" in box:
            raise box["error"]
        return box["result"]

    def _follow(self, tracker) -> None:
        """Continuous mode: keep workers alive and print a status line until interrupted."""
        self._supervise(tracker, lambda: True, status=True)

    def check_retention(self) -> None:
        """Say loudly when the broker's retention deleted records a stage had not read yet: the
        stage's consumer then skips to the oldest record left, and those records are gone."""
        from pipeline.monitoring.lag import OffsetsProbe

        probe = OffsetsProbe(self.bootstrap, timeout_s=5.0, options=self.settings.broker.client_options(),
                             transactional=self.settings.exactly_once)
        try:
            for stage in registry.roles(self.settings):
                topic = registry.stage_topics(self.settings, stage).source
                parts = [(topic, p) for p in range(self.settings.topics.partitions_of(topic))]
                committed = probe.committed(registry.consumer_group(self.settings, stage))
                starts = probe.ends(parts, earliest=True)
                lost = sum(max(0, starts[tp] - committed[tp]) for tp in parts if tp in committed and tp in starts)
                previous = self._retention_lost.get(stage, 0)
                if lost > previous:
                    self.console.print(f"[bold red]{time.strftime('%H:%M:%S')} retention deleted {lost - previous} "
                                       f"records of {topic} before the {stage} stage read them: raise "
                                       "\\[embedded_broker] retention (or the topic's), or add workers[/bold red]")
                self._retention_lost[stage] = max(previous, lost)
        except Exception:  # noqa: BLE001 - the broker is down or busy: the next check tells
            pass
        finally:
            probe.close()

    def _supervise(self, tracker, while_, status: bool) -> None:
        """Restart what died, publish the run file, and (``status``) print a line every 10 s."""
        last = time.monotonic()
        last_retention = time.monotonic()
        while while_():
            self.check_workers()
            self.adapt_layout()
            self.publish()
            if time.monotonic() - last_retention > RETENTION_CHECK_S:
                last_retention = time.monotonic()
                self.check_retention()
            if status and time.monotonic() - last > 10:
                last = time.monotonic()
                tally = tracker.snapshot()
                alive = sum(1 for w in self.workers if w.proc and w.proc.poll() is None)
                self.console.print(f"[dim]{time.strftime('%H:%M:%S')} delivered {tally.receipt_count}, "
                                   f"dead letters {sum(tally.dead_letters.values())}, "
                                   f"workers alive {alive}/{len(self.workers)}[/dim]")
            time.sleep(0.2)
