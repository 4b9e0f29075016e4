"""Soak: `pipeline run --loop` on the embedded default at a steady rate of real HTML pages.

    python -m bench.soak [--minutes 30] [--rate 50] [--workers clean=2] [--sample-s 30]

The pages are the shared extraction sets' HTML (AEB and trafilatura, 1,171 pages), replayed over
and over without a fetch time, so every pass makes new records (the dedup stage calls them exact
duplicates of the first pass). Every ``--sample-s`` seconds it records the resident memory of
every process of the run (broker, dedup index server, supervisor, each worker with its child
processes), the size of the broker's folder, and the records delivered so far (the run's own
status line). At the end: a table per 5 minutes, each process's RSS growth between minute 5 and
the end, the broker folder against the bound its retention settings give, and the consumer lag
left. Everything goes to a folder of its own (``--out``, default a temporary one).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import psutil

from bench.common import REPO, eval_dir, read_jsonl_gz, run_processes

SETS = ("extraction-aeb.jsonl.gz", "extraction-trafilatura.jsonl.gz")


def write_events(eval_path: Path, target: Path) -> int:
    n = 0
    with open(target, "wb") as out:
        for name in SETS:
            for row in read_jsonl_gz(eval_path / name):
                if row.get("html"):
                    out.write(orjson.dumps({"url": row.get("url") or f"https://soak.example/{n}", "html": row["html"]}))
                    out.write(b"\n")
                    n += 1
    return n


def sample(root: psutil.Process) -> dict[str, float]:
    """RSS in MiB per role; a process of no known role counts with the nearest ancestor that has
    one, except a worker's child processes (the clean stage's HTML parsers, replaced every
    ``html_recycle_after`` pages), which are a role of their own ("clean-children"); several
    workers of a stage add up."""
    out: dict[str, float] = {}
    for proc, r, inherited in run_processes(root):
        if inherited and r.endswith("-worker"):
            r = r.replace("-worker", "-children")
        try:
            out[r] = out.get(r, 0.0) + proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return out


def folder_bytes(path: Path) -> int:
    """Disk used (allocated blocks: Kafka's preallocated index files are sparse)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--workers", default="clean=2", help="workers per stage, e.g. clean=2,entities=1")
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument("--retention-bytes", type=int, default=None, help="per partition (default: the config's)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--eval-dir", default=None)
    args = ap.parse_args(argv)

    out = Path(args.out or tempfile.mkdtemp(prefix="soak-"))
    out.mkdir(parents=True, exist_ok=True)
    events = out / "events.jsonl"
    n_pages = write_events(eval_dir(args.eval_dir), events)
    workers = {"clean": 1, "language": 1, "entities": 1, "dedup": 1, "sink": 1}
    for part in filter(None, args.workers.split(",")):
        stage, count = part.split("=")
        workers[stage.strip()] = int(count)
    env = dict(os.environ)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update({
        "PIPELINE__RUN__LOG_DIR": str(out / "logs"),
        "PIPELINE__EMBEDDED_BROKER__DATA_DIR": str(out / "broker"),
        "PIPELINE__EMBEDDED_INDEX__DIR": str(out / "dedup-index"),
        "PIPELINE__RUN__WORKERS": "{" + ", ".join(f"{k} = {v}" for k, v in workers.items()) + "}",
        "PIPELINE__MONITORING__PORTS": "{clean = 0, language = 0, entities = 0, dedup = 0, sink = 0}",
    })
    if args.retention_bytes:
        env["PIPELINE__EMBEDDED_BROKER__RETENTION_BYTES_PER_PARTITION"] = str(args.retention_bytes)
    from pipeline import config, registry

    settings = config.load(env=env)
    e = settings.embedded_broker
    topics = registry.topic_names(settings)
    bound = sum(settings.topics.partitions_of(t) for t in topics) * (e.retention_bytes_per_partition + e.segment_bytes)
    print(f"soak: {n_pages} HTML pages at {args.rate:g}/s for {args.minutes:g} min, workers {workers}; "
          f"folder {out}; broker folder bound by retention ~{bound / 2**30:.1f} GiB (+ offsets topics)", flush=True)

    def interrupt(signum, frame):  # also when started in the background, where SIGINT is ignored
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    cmd = [sys.executable, "-m", "pipeline", "run", "--replay", str(events), "--loop", "--rate", str(args.rate),
           "--no-dashboard", "--sink", f"jsonl:{out / 'enriched'}"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    delivered = [0]
    lines: list[str] = []

    def read_output() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip())
            m = re.search(r"delivered (\d+)", line)
            if m:
                delivered[0] = int(m.group(1))

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    samples = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < args.minutes * 60:  # Ctrl-C: stop early, report what was seen
            time.sleep(args.sample_s)
            if proc.poll() is not None:
                print("\n".join(lines[-20:]))
                raise SystemExit(f"pipeline run exited with code {proc.returncode}")
            minute = (time.monotonic() - started) / 60
            row = {"minute": round(minute, 2), "delivered": delivered[0], "rss_mib": sample(root),
                   "broker_bytes": folder_bytes(out / "broker")}
            samples.append(row)
            print(f"{minute:5.1f} min  delivered {row['delivered']:>7}  broker folder "
                  f"{row['broker_bytes'] / 2**20:7.0f} MiB  " +
                  "  ".join(f"{k} {v:.0f}" for k, v in sorted(row["rss_mib"].items())), flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping the run and reporting what was sampled", flush=True)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.join(5)
    (out / "soak.json").write_text(orjson.dumps(samples, option=orjson.OPT_INDENT_2).decode())
    report(samples, bound, args.rate)
    print("\n".join(line for line in lines[-12:] if line.strip()))
    return 0


def report(samples: list[dict], bound: int, rate: float) -> None:
    if not samples:
        return
    roles = sorted({k for s in samples for k in s["rss_mib"]})
    print("\n| minute | delivered | rec/s since previous | broker folder MiB | " + " | ".join(roles) + " |")
    print("|---" * (4 + len(roles)) + "|")
    previous = None
    for s in samples:
        if previous is not None and int(s["minute"] + 0.01) // 5 == int(previous["minute"] + 0.01) // 5 \
                and s is not samples[-1]:
            continue
        rate_now = ""
        if previous is not None:
            dt = (s["minute"] - previous["minute"]) * 60
            rate_now = f"{(s['delivered'] - previous['delivered']) / dt:.1f}" if dt > 0 else ""
        print(f"| {s['minute']:.1f} | {s['delivered']} | {rate_now} | {s['broker_bytes'] / 2**20:.0f} | "
              + " | ".join(f"{s['rss_mib'].get(r, 0):.0f}" for r in roles) + " |")
        previous = s
    at5 = min(samples, key=lambda s: abs(s["minute"] - 5))
    last = samples[-1]
    print(f"\nRSS growth from minute {at5['minute']:.1f} to {last['minute']:.1f}:")
    for r in roles:
        a, b = at5["rss_mib"].get(r, 0), last["rss_mib"].get(r, 0)
        print(f"  {r:18s} {a:7.0f} -> {b:7.0f} MiB  ({(b / a - 1) * 100 if a else 0:+.1f} %)")
    # Single samples catch sawtooth memory (parsers replaced every few hundred pages, collections)
    # at random phases; the means over the first and the last five minutes from minute 5 do not.
    first = [s for s in samples if 5 <= s["minute"] < 10]
    final = [s for s in samples if s["minute"] >= max(10.0, last["minute"] - 5)]
    if first and final and final[0] is not first[0]:
        print(f"\nMean RSS of minutes {first[0]['minute']:.1f}-{first[-1]['minute']:.1f} against "
              f"{final[0]['minute']:.1f}-{final[-1]['minute']:.1f} (min-max of the samples):")
        for r in roles:
            a = [s["rss_mib"].get(r, 0) for s in first]
            b = [s["rss_mib"].get(r, 0) for s in final]
            ma, mb = sum(a) / len(a), sum(b) / len(b)
            print(f"  {r:18s} {ma:7.0f} ({min(a):.0f}-{max(a):.0f}) -> {mb:7.0f} ({min(b):.0f}-{max(b):.0f}) MiB  "
                  f"({(mb / ma - 1) * 100 if ma else 0:+.1f} %)")
    peak = max(s["broker_bytes"] for s in samples)
    print(f"broker folder: peak {peak / 2**20:.0f} MiB, bound by retention {bound / 2**20:.0f} MiB "
          f"(+ the offsets topics)")
    minutes = last["minute"]
    print(f"delivered {last['delivered']} in {minutes:.1f} min = {last['delivered'] / (minutes * 60):.1f} rec/s "
          f"(offered {rate:g}/s)")


if __name__ == "__main__":
    raise SystemExit(main())
