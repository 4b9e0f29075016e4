"""One `pipeline run` (embedded default broker) driven by the bench: load from `pipeline replay`
processes, the CPU and RSS of every process sampled every second, the receipts and dead letters
followed as they come."""

from __future__ import annotations

import bisect
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import psutil

from bench.common import REPO, run_processes
from bench.idle.__main__ import Run, cpu_seconds, percentile
from bench.soak.__main__ import sample as rss_by_role

DONE_TOPICS = ("pages.delivered", "pages.deadletter")


class Sampler(threading.Thread):
    """CPU seconds so far (user + system, summed over every process a role ever had, so a child
    process that was replaced still counts) and RSS (MiB) per role, every ``interval_s``;
    ``extra`` processes (role -> psutil.Process, with their children) beside the run's."""

    def __init__(self, root: psutil.Process | None, interval_s: float = 1.0):
        super().__init__(daemon=True)
        self.root, self.interval_s = root, interval_s
        self.extra: dict[str, psutil.Process] = {}
        self.samples: list[dict] = []
        self._last: dict[tuple[int, float], tuple[str, float]] = {}
        self._halt = threading.Event()
        self.lock = threading.Lock()

    def _walk(self):
        if self.root is not None:
            yield from ((p, r) for p, r, _ in run_processes(self.root))
        with self.lock:
            extra = list(self.extra.items())
        for role, proc in extra:
            try:
                yield from ((p, role) for p in [proc, *proc.children(recursive=True)])
            except psutil.Error:
                continue

    def take(self) -> dict:
        now = time.time()
        for proc, role in self._walk():
            try:
                t = proc.cpu_times()
                key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            self._last[key] = (role, t.user + t.system)
        cpu: dict[str, float] = {}
        for role, seconds in self._last.values():
            cpu[role] = cpu.get(role, 0.0) + seconds
        rss = rss_by_role(self.root) if self.root is not None else {}
        with self.lock:
            extra = list(self.extra.items())
        for role, proc in extra:
            try:
                rss[role] = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
            except psutil.Error:
                pass
        row = {"t": now, "cpu": cpu, "rss_mib": rss}
        self.samples.append(row)
        return row

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.take()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def cpu_at(self, t: float) -> dict[str, float]:
        """CPU seconds so far per role at time ``t``, interpolated between the samples around it."""
        times = [s["t"] for s in self.samples]
        i = bisect.bisect_left(times, t)
        if i <= 0:
            return dict(self.samples[0]["cpu"])
        if i >= len(times):
            return dict(self.samples[-1]["cpu"])
        a, b = self.samples[i - 1], self.samples[i]
        w = (t - a["t"]) / (b["t"] - a["t"]) if b["t"] > a["t"] else 0.0
        return {r: a["cpu"].get(r, 0.0) + w * (b["cpu"].get(r, 0.0) - a["cpu"].get(r, 0.0))
                for r in set(a["cpu"]) | set(b["cpu"])}


class Follower(threading.Thread):
    """Every message of ``topics`` from their end at the start: (time it was read, topic, receipt
    id, latency ms) in ``seen``. The time read, not the message's timestamp: Quix Streams passes
    the input message's timestamp on to what it produces (so on the peer's last topic, the time
    read minus the timestamp is its latency from the replay)."""

    def __init__(self, bootstrap: str, topics: tuple[str, ...]):
        from kafka import KafkaConsumer, TopicPartition

        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None,
                                      enable_auto_commit=False, fetch_max_wait_ms=200)
        parts = [TopicPartition(t, p) for t in topics for p in sorted(self.consumer.partitions_for_topic(t) or ())]
        self.consumer.assign(parts)
        self.consumer.seek_to_end(*parts)
        for tp in parts:
            self.consumer.position(tp)
        self.seen: list[tuple[float, str, str | None, float | None]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                for messages in self.consumer.poll(timeout_ms=500).values():
                    now = time.time()
                    for m in messages:
                        rid = latency = None
                        if m.topic == "pages.delivered":
                            value = orjson.loads(m.value)
                            rid, latency = value.get("id"), value.get("latency_ms")
                        elif m.topic not in DONE_TOPICS:  # the peer's last topic: Quix keeps the
                            latency = (now - m.timestamp / 1000) * 1000  # replayed message's timestamp
                        self.seen.append((now, m.topic, rid, latency))
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def since(self, t0: float, topics: tuple[str, ...]) -> list[tuple[float, str, str | None, float | None]]:
        return [s for s in list(self.seen) if s[0] >= t0 and s[1] in topics]


def replay(events: Path, bootstrap: str, rate: float | None = None, raw_topic: str | None = None) -> subprocess.Popen:
    """`pipeline replay EVENTS` into the run's broker (``raw_topic``: another topic than pages.raw)."""
    env = dict(os.environ)
    if raw_topic:
        env["PIPELINE__TOPICS__RAW"] = raw_topic
    cmd = [sys.executable, "-m", "pipeline", "replay", str(events), "--bootstrap", bootstrap,
           *(["--rate", str(rate)] if rate else [])]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_process(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Session:
    """`pipeline run` with ``workers`` per stage in ``out``, ready, sampled and followed."""

    def __init__(self, out: Path, workers: dict[str, int], broker: str = "kafka", auto: bool = False):
        overrides = {"PIPELINE__RUN__WORKERS": "{" + ", ".join(f"{k} = {v}" for k, v in workers.items()) + "}"}
        if auto:  # a saturation run lasts a minute or two: the layout is measured every 5 s, not 20
            overrides |= {"PIPELINE__RUN__LAYOUT": "auto", "PIPELINE__RUN__LAYOUT_INTERVAL_S": "5"}
        self.out = out
        self.run = Run(out, broker, [], overrides)
        self.run.wait_ready(180)
        self.root = psutil.Process(self.run.proc.pid)
        self.bootstrap = self.run.bootstrap()
        self.sampler = Sampler(self.root)
        self.sampler.take()
        self.sampler.start()
        self.follower = Follower(self.bootstrap, DONE_TOPICS)
        self.follower.start()
        self.started = time.time()

    # --- phases ------------------------------------------------------------------------------------

    def idle(self, settle_s: float, seconds: float) -> dict[str, float]:
        """Percent of one core per role over ``seconds`` with no traffic (after ``settle_s``)."""
        time.sleep(settle_s)
        before = cpu_seconds(self.root)
        t0 = time.monotonic()
        time.sleep(seconds)
        after = cpu_seconds(self.root)
        elapsed = time.monotonic() - t0
        share: dict[str, float] = {}
        for pid, (role, t) in after.items():
            share[role] = share.get(role, 0.0) + (t - before.get(pid, (role, 0.0))[1]) / elapsed * 100
        share["total"] = sum(share.values())
        return share

    def saturate(self, events: Path, n: int, done_topics: tuple[str, ...] = DONE_TOPICS,
                 raw_topic: str | None = None, follower: Follower | None = None) -> dict:
        """``n`` events as fast as the broker takes them. Events per second from the start of the
        replay to the last completion (an event completes when its receipt or its dead letter is
        written), and between the 10th and the 90th percentile of completions (the pipeline full);
        CPU per event of every process from the start of the replay to the last completion (the
        stages work in batches of hundreds, so a shorter window would catch one stage busy and the
        next one waiting)."""
        follower = follower or self.follower
        t0 = time.time()
        feeder = replay(events, self.bootstrap, raw_topic=raw_topic)
        try:
            with self.sampler.lock:
                self.sampler.extra["replay"] = psutil.Process(feeder.pid)
            deadline = time.monotonic() + 120 + n / 2
            while len(follower.since(t0, done_topics)) < n and time.monotonic() < deadline:
                time.sleep(0.25)
            time.sleep(2.5)  # a CPU sample after the last completion
        finally:
            stop_process(feeder)
        got = follower.since(t0, done_topics)
        done = sorted(s[0] for s in got)
        if len(done) < n:
            print(f"  only {len(done)} of {n} events completed before the time limit", flush=True)
        if len(done) < 10:
            return {"events": n, "completed": len(done)}
        lo, hi = int(0.1 * len(done)), int(0.9 * len(done)) - 1
        t_end = done[-1]
        a, b = self.sampler.cpu_at(t0), self.sampler.cpu_at(t_end)
        cpu_ms = {r: (b.get(r, 0.0) - a.get(r, 0.0)) * 1000 / len(done) for r in set(a) | set(b)}
        return {"events": n, "completed": len(done), "events_per_s": len(done) / (t_end - t0),
                "steady_events_per_s": (hi - lo) / (done[hi] - done[lo]) if done[hi] > done[lo] else None,
                "window": [t0, t_end], "first_done_s": done[0] - t0, "last_done_s": t_end - t0,
                "cpu_ms_per_event": cpu_ms, "ids": [s[2] for s in got if s[2]],
                "dead_letters": sum(1 for s in got if s[1] == "pages.deadletter")}

    def latency(self, events: Path, rate: float, warmup_s: float, seconds: float) -> dict:
        """Receipts' ingestion-to-sink latency at ``rate`` events/s, over ``seconds`` after ``warmup_s``."""
        t0 = time.time()
        feeder = replay(events, self.bootstrap, rate=rate)
        try:
            with self.sampler.lock:
                self.sampler.extra["replay"] = psutil.Process(feeder.pid)
            time.sleep(warmup_s + seconds)
        finally:
            stop_process(feeder)
        t_lo, t_hi = t0 + warmup_s, t0 + warmup_s + seconds
        got = [s for s in self.follower.since(t_lo, DONE_TOPICS) if s[0] <= t_hi]
        latencies = [s[3] for s in got if s[3] is not None]
        self.drain()
        out = {"rate": rate, "window": [t_lo, t_hi], "events_per_s": len(got) / seconds, "receipts": len(latencies)}
        if latencies:
            out.update({f"p{q}_ms": percentile(latencies, q / 100) for q in (50, 95, 99)})
            out["max_ms"] = max(latencies)
        return out

    def drain(self, quiet_s: float = 3.0, timeout_s: float = 120.0) -> None:
        """Until nothing completed for ``quiet_s`` (what was sent went through)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.follower.since(time.time() - quiet_s, DONE_TOPICS):
                return
            time.sleep(0.5)

    # --- end -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        try:
            self.follower.stop()
            self.sampler.stop()
        finally:
            self.run.stop()

    def stage_ms(self, ids: list[str]) -> dict[str, float]:
        """The stages' own time per record (their trace ``ms``, as the workers report it) over the
        records ``ids`` in the sink's files, mean per record and stage."""
        wanted = set(ids)
        sums: dict[str, float] = {}
        found = 0
        for path in (self.out / "enriched").glob("*.jsonl"):
            with open(path, "rb") as fh:
                for line in fh:
                    record = orjson.loads(line)
                    if record.get("id") not in wanted:
                        continue
                    found += 1
                    for entry in record.get("trace") or ():
                        sums[entry["stage"]] = sums.get(entry["stage"], 0.0) + float(entry.get("ms") or 0.0)
        return {k: v / found for k, v in sums.items()} if found else {}


def series(follower_seen: list, start: float, bin_s: float = 5.0) -> list[dict]:
    """Completions per second and latency percentiles per ``bin_s`` from ``start``."""
    bins: dict[int, list] = {}
    for t, _, _, latency in follower_seen:
        bins.setdefault(int((t - start) // bin_s), []).append(latency)
    out = []
    for k in sorted(bins):
        lat = [x for x in bins[k] if x is not None]
        out.append({"t": k * bin_s, "events_per_s": len(bins[k]) / bin_s,
                    "p50_ms": statistics.median(lat) if lat else None,
                    "p99_ms": percentile(lat, 0.99) if lat else None})
    return out


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


class PeerSession(Session):
    """The embedded default broker alone (started as `pipeline run` starts it, in a folder of its
    own) for the Quix Streams peer (bench/pipeline/peer.py): one process per stage, topics of its
    own, sampled like a run."""

    def __init__(self, out: Path, chain: list[str]):
        from bench.pipeline.peer import TOPIC_PREFIX
        from pipeline import config
        from pipeline.streaming.broker import embedded_broker

        out.mkdir(parents=True, exist_ok=True)
        self.out, self.chain = out, chain
        self.settings = config.load(env={**os.environ, "PIPELINE__EMBEDDED_BROKER__DATA_DIR": str(out / "broker")})
        self.broker, warning = embedded_broker(self.settings, out)
        if warning:
            print(f"  {warning}", flush=True)
        self.bootstrap = self.broker.start()
        self.topics = [f"{TOPIC_PREFIX}raw", *(f"{TOPIC_PREFIX}{s}" for s in chain)]
        create_topics(self.bootstrap, self.topics, self.settings.topics.partitions)
        self.sampler = Sampler(None)
        self.sampler.extra["broker"] = psutil.Process(self.broker_pid())
        self.procs: list[subprocess.Popen] = []
        self.stats_files: list[Path] = []
        for i, stage in enumerate(chain):
            self.stats_files.append(out / f"peer-{stage}.json")
            log = open(out / f"peer-{stage}.log", "wb")
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.pipeline.peer", stage, self.bootstrap, self.topics[i],
                 self.topics[i + 1], str(self.stats_files[-1])], cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
            self.sampler.extra[f"peer-{stage}"] = psutil.Process(self.procs[-1].pid)
        self.sampler.take()
        self.sampler.start()
        self.follower = Follower(self.bootstrap, (self.topics[-1],))
        self.follower.start()
        self.started = time.time()

    def broker_pid(self) -> int:
        node = getattr(self.broker, "node", None)
        proc = node.proc if node is not None else getattr(self.broker, "proc", None)
        return proc.pid

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """The seed pages through every peer stage (models loaded, groups joined)."""
        t0 = time.time()
        seeds = replay(REPO / "seeds", self.bootstrap, raw_topic=self.topics[0])
        try:
            deadline = time.monotonic() + timeout_s
            while len(self.follower.since(t0, (self.topics[-1],))) < 5 and time.monotonic() < deadline:
                if any(p.poll() is not None for p in self.procs):
                    raise RuntimeError(f"a peer process ended: see {self.out}/peer-*.log")
                time.sleep(0.5)
        finally:
            stop_process(seeds)
        if len(self.follower.since(t0, (self.topics[-1],))) < 5:
            raise RuntimeError(f"the peer did not pass the seed pages in {timeout_s:g} s: see {self.out}/peer-*.log")

    def measure(self, events: Path, n: int) -> dict:
        result = self.saturate(events, n, done_topics=(self.topics[-1],), raw_topic=self.topics[0])
        result["stage_ms"] = {}
        for stage, path in zip(self.chain, self.stats_files, strict=True):
            if path.exists():
                s = orjson.loads(path.read_bytes())
                result["stage_ms"][stage] = s["stage_ms"] / max(1, s["records"])
        return result

    def stop(self) -> None:
        try:
            for p in self.procs:
                stop_process(p)
            self.follower.stop()
            self.sampler.stop()
        finally:
            self.broker.stop()
