"""Idle cost and light-load latency of `pipeline run` on the embedded broker.

    python -m bench.idle [--runs 3] [--seconds 60] [--broker kafka|tansu] [--load-rate 5]

Each run starts `pipeline run --replay seeds/` (the dashboard on, as by default) in a folder of its
own, waits until the seeds went through and the run settled, then reads the CPU time (user +
system, psutil) of every process of the run at the start and the end of ``--seconds``: the broker,
the dedup index server, the supervisor (with its dashboard), each stage worker (with its child
processes). With ``--load-rate R`` it then starts `pipeline run --replay seeds/ --loop --rate R`
and, after a warm-up, reads the receipts of ``--load-seconds`` from the delivery topic: their
``latency_ms`` (ingestion to sink) percentiles. Medians over the runs; everything to
``--out``/idle.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import psutil

from bench.common import REPO, run_processes


def roles(root: psutil.Process) -> dict[int, str]:
    """pid -> role of every process of the run; a worker's children count with the worker."""
    return {proc.pid: role for proc, role, _ in run_processes(root)}


def cpu_seconds(root: psutil.Process) -> dict[int, tuple[str, float]]:
    out = {}
    for pid, r in roles(root).items():
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[pid] = (r, t.user + t.system)
    return out


class Run:
    """One `pipeline run` in a folder of its own, its console read in a thread;
    ``overrides``: settings of its own on top (e.g. ``PIPELINE__RUN__WORKERS``)."""

    def __init__(self, out: Path, broker: str, extra: list[str], overrides: dict[str, str] | None = None):
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        env = dict(os.environ)
        env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        env.update({
            "PIPELINE__RUN__LOG_DIR": str(out / "logs"),
            "PIPELINE__EMBEDDED_BROKER__DATA_DIR": str(out / "broker"),
            "PIPELINE__EMBEDDED_BROKER__KIND": broker,
            "PIPELINE__EMBEDDED_INDEX__DIR": str(out / "dedup-index"),
            "PIPELINE__MONITORING__PORTS": "{clean = 0, language = 0, entities = 0, dedup = 0, sink = 0}",
            **(overrides or {}),
        })
        cmd = [sys.executable, "-m", "pipeline", "run", "--replay", str(REPO / "seeds"), *extra,
               "--dashboard-port", "0", "--sink", f"jsonl:{out / 'enriched'}"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "workers ready" in line:
                self.ready.set()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        if not self.ready.wait(timeout_s) or self.proc.poll() is not None:
            self.stop()
            raise SystemExit("pipeline run did not get ready:\n" + "\n".join(self.lines[-20:]))

    def bootstrap(self) -> str:
        return orjson.loads((self.out / "logs" / "run.json").read_bytes())["bootstrap_servers"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def idle_cpu(out: Path, broker: str, settle_s: float, seconds: float) -> dict[str, float]:
    """Percent of one core per role over ``seconds`` of an idle run."""
    run = Run(out, broker, [])
    try:
        run.wait_ready()
        time.sleep(settle_s)
        root = psutil.Process(run.proc.pid)
        before = cpu_seconds(root)
        t0 = time.monotonic()
        time.sleep(seconds)
        after = cpu_seconds(root)
        elapsed = time.monotonic() - t0
    finally:
        run.stop()
    share: dict[str, float] = {}
    for pid, (r, t) in after.items():
        share[r] = share.get(r, 0.0) + (t - before.get(pid, (r, 0.0))[1]) / elapsed * 100
    share["total"] = sum(share.values())
    return share


def receipts_latency(bootstrap: str, topic: str, since_ms: int, until_ms: int) -> list[float]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        ends = consumer.end_offsets(parts)
        consumer.seek_to_beginning(*parts)
        out = []
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for messages in consumer.poll(timeout_ms=1000).values():
                for message in messages:
                    if since_ms <= message.timestamp <= until_ms:
                        value = orjson.loads(message.value)
                        if value.get("latency_ms") is not None:
                            out.append(float(value["latency_ms"]))
        return out
    finally:
        consumer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_latency(out: Path, broker: str, rate: float, warmup_s: float, seconds: float) -> dict[str, float]:
    run = Run(out, broker, ["--loop", "--rate", str(rate)])
    try:
        run.wait_ready()
        time.sleep(warmup_s)
        since = int(time.time() * 1000)
        time.sleep(seconds)
        until = int(time.time() * 1000)
        latencies = receipts_latency(run.bootstrap(), "pages.delivered", since, until)
    finally:
        run.stop()
    if not latencies:
        return {"receipts": 0}
    return {"receipts": len(latencies), "p50_ms": percentile(latencies, 0.5), "p95_ms": percentile(latencies, 0.95),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies)}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0, help="idle CPU measured over this long")
    ap.add_argument("--settle", type=float, default=20.0, help="after the workers are ready, before measuring")
    ap.add_argument("--broker", choices=("kafka", "tansu"), default="kafka")
    ap.add_argument("--load-rate", type=float, default=0.0, help="also the latency at this many events/s (0: not)")
    ap.add_argument("--load-seconds", type=float, default=60.0)
    ap.add_argument("--no-idle", action="store_true", help="only the latency under load")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="idle-"))
    results = {"broker": args.broker, "seconds": args.seconds, "idle": [], "load": [], "load_rate": args.load_rate}
    for i in range(args.runs):
        if not args.no_idle:
            print(f"run {i + 1}: idle ({args.broker}), load average before {load_average()}", flush=True)
            share = idle_cpu(out / f"idle-{i}", args.broker, args.settle, args.seconds)
            share["load_average"] = load_average()
            results["idle"].append(share)
            print("  " + "  ".join(f"{k} {v:.1f}%" if isinstance(v, float) else f"load {v}"
                                   for k, v in sorted(share.items())), flush=True)
        if args.load_rate:
            print(f"run {i + 1}: {args.load_rate:g} events/s ({args.broker}), load average {load_average()}", flush=True)
            lat = load_latency(out / f"load-{i}", args.broker, args.load_rate, 15.0, args.load_seconds)
            results["load"].append(lat)
            print("  " + "  ".join(f"{k} {v:g}" for k, v in lat.items()), flush=True)
    (out / "idle.json").write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    print(f"\nmedians of {args.runs} runs ({args.broker}); {out / 'idle.json'}")
    for key in sorted({k for r in results["idle"] for k in r if k != "load_average"}):
        values = [r.get(key, 0.0) for r in results["idle"]]
        print(f"  idle {key:18} {statistics.median(values):6.2f} % of a core  ({', '.join(f'{v:.2f}' for v in values)})")
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "receipts"):
        values = [r[key] for r in results["load"] if key in r]
        if values:
            print(f"  load {key:18} {statistics.median(values):8.1f}  ({', '.join(f'{v:g}' for v in values)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
