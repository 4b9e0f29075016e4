"""At-least-once against exactly-once: what Kafka transactions cost in throughput and latency.

    python -m bench.guarantee [--records 4000] [--runs 3] [--kind text|html]

Each run is `pipeline run --replay EVENTS --exit-when-done --no-dashboard` in a folder of its own
(a new embedded Apache Kafka, a new dedup index) with
``profiles.embedded.processing_guarantee`` set one way or the other; the runs alternate
(at-least-once, exactly-once, at-least-once, ...) so drift of the machine hits both alike. The
events are the shared extraction sets' pages with ids of their own, ``--kind text`` as rendered
text (cheap to clean: the transport's share of the work is largest) or ``--kind html``. Figures
per run: records per second from the first record sent to the last one delivered (the run's own
summary), and the end-to-end latency percentiles the sink worker measured (ingest to written).
Prints the medians per guarantee and their ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import REPO, eval_dir, read_jsonl_gz

GUARANTEES = ("at_least_once", "exactly_once")
SETS = {"text": ("textmode/textmode-aeb.jsonl.gz", "textmode/textmode-trafilatura.jsonl.gz"),
        "html": ("extraction-aeb.jsonl.gz", "extraction-trafilatura.jsonl.gz")}


def write_events(eval_path: Path, kind: str, n: int, target: Path) -> int:
    pages = []
    for name in SETS[kind]:
        for row in read_jsonl_gz(eval_path / name):
            body = row.get(kind)
            if body:
                pages.append(body)
    if not pages:
        raise SystemExit(f"no {kind} pages in {eval_path}")
    with open(target, "wb") as out:
        for i in range(n):
            out.write(orjson.dumps({"id": f"bench-{i:06d}", "url": f"https://bench.example/{i}",
                                    "fetched_at": "2026-12-01T00:00:00Z", kind: pages[i % len(pages)]}))
            out.write(b"\n")
    return n


SUMMARY = re.compile(r"replay to last record ([0-9.]+) s")
LATENCY = re.compile(r'pipeline_end_to_end_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} ([0-9.e+]+)')


def one_run(events: Path, n: int, guarantee: str, workdir: Path, rate: float | None) -> dict:
    env = {**os.environ, "PIPELINE_CONFIG": str(REPO / "config" / "pipeline.toml"),
           "PIPELINE__PROFILES__EMBEDDED__PROCESSING_GUARANTEE": guarantee,
           "PIPELINE__MONITORING__PORTS": "{clean = 0, language = 0, entities = 0, dedup = 0, sink = 0}"}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", "--replay", str(events), "--exit-when-done",
                           "--no-dashboard", "--timeout", "1200", *(["--rate", str(rate)] if rate else [])], cwd=workdir, env=env, capture_output=True,
                          text=True)
    wall = time.monotonic() - t0
    out = done.stdout + done.stderr
    found = SUMMARY.search(out)
    if done.returncode != 0 or not found:
        raise SystemExit(f"run failed ({guarantee}, exit {done.returncode}):\n{out[-3000:]}")
    seconds = float(found.group(1))
    delivered = sum(1 for path in (workdir / "out" / "enriched").glob("*.jsonl") for _ in open(path, "rb"))
    letters = int(re.search(r"dead letters\s+([0-9,]+)", out).group(1).replace(",", ""))
    if delivered + letters != n:  # a page without an article is dead-lettered by the clean stage
        raise SystemExit(f"{guarantee}: {delivered} records in the sink and {letters} dead letters, of {n}")
    return {"guarantee": guarantee, "rate": n / seconds, "seconds": seconds, "wall": wall,
            "latency": latencies(workdir / "out" / "enriched")}


def latencies(enriched: Path) -> dict[str, float]:
    """Seconds from a record's ingestion (the replay) to the end of its last stage (dedup), p50,
    p95 and p99 over the records in the sink folder: with exactly-once, a stage's records become
    readable to the next stage only when its transaction commits, so each hop can add up to one
    commit interval."""
    from datetime import datetime

    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    values = []
    for path in enriched.glob("*.jsonl"):
        for line in open(path, "rb"):
            record = orjson.loads(line)
            last = record["trace"][-1]
            values.append(at(last["started_at"]) + last["ms"] / 1000 - at(record["ingested_at"]))
    values.sort()
    return {f"p{q}": values[min(len(values) - 1, int(len(values) * q / 100))] for q in (50, 95, 99)}


def fmt(latency: dict[str, float]) -> str:
    return "/".join(f"{latency[q]:.2f}" for q in ("p50", "p95", "p99"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guarantee", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3, help="runs per guarantee")
    parser.add_argument("--kind", choices=sorted(SETS), default="text")
    parser.add_argument("--rate", type=float, help="replay at most this many events per second (for latency; "
                        "default: as fast as the pipeline takes them, for throughput)")
    parser.add_argument("--eval-dir")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-guarantee-") as tmp:
        events = Path(tmp) / "events.jsonl"
        write_events(eval_dir(args.eval_dir), args.kind, args.records, events)
        results: dict[str, list[dict]] = {g: [] for g in GUARANTEES}
        for run in range(args.runs):
            for guarantee in GUARANTEES:
                workdir = Path(tmp) / f"{guarantee}-{run}"
                workdir.mkdir()
                result = one_run(events, args.records, guarantee, workdir, args.rate)
                results[guarantee].append(result)
                print(f"run {run + 1} {guarantee:14s} {result['rate']:7.1f} records/s "
                      f"({result['seconds']:.1f} s to the last record; wall {result['wall']:.1f} s); latency to the "
                      f"last stage p50/p95/p99 {fmt(result['latency'])} s", flush=True)
    print(f"\n{args.records} {args.kind} records, {args.runs} runs per guarantee, medians:")
    medians = {g: statistics.median(r["rate"] for r in results[g]) for g in GUARANTEES}
    for g in GUARANTEES:
        runs = ", ".join(f"{r['rate']:.1f}" for r in results[g])
        print(f"  {g:14s} {medians[g]:7.1f} records/s  (runs: {runs})")
        lat = {q: statistics.median(r["latency"][q] for r in results[g]) for q in ("p50", "p95", "p99")}
        print(f"  {'':14s} latency to the last stage p50/p95/p99 {fmt(lat)} s")
    print(f"  exactly_once / at_least_once = {medians['exactly_once'] / medians['at_least_once']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
