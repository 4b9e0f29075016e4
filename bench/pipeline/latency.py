"""Where the latency goes: a bench.pipeline run's records, stage by stage, from its sink files.

    .venv/bin/python -m bench.pipeline.latency /tmp/bp/text-default-0            # every load level
    .venv/bin/python -m bench.pipeline.latency /tmp/bp/text-default-0 --level 50

Every record keeps a trace: per stage, when the stage's batch began (``started_at``) and the
record's own time in it (``ms``). A batch is the records of one worker with one ``started_at`` (in
a stage that handles records one at a time, language and entities, a piece of the worker's batch,
handed on as soon as it is done: ``pipeline.streaming.batching.cut_in_pieces``); it
ends (its records are handed on together) at its start plus the sum of its records' ``ms``. Per
record and stage:

- *wait*: from the end of the previous stage's batch (for the first stage, from ``ingested_at``)
  to the start of this stage's batch: the hop through the broker (producer linger, fetch), the
  worker's batch window, and the wait for the batch before it to finish;
- *batch*: how long the stage's batch took, which the record waits whole, wherever it stands in
  it; *n*: the batch's records.

The sink's part (ingestion to durably written ends there) is not in the records; the receipts'
``latency_ms`` (bench.pipeline's latency rows) is what the records' *to the last stage* plus the
hop to the sink and its write come to. The clean stage's ``ms`` of an HTML page is its own work, not
the wait for its extraction process, so its batches of HTML pages end later than they seem (the
next stage's wait then looks shorter, or negative).
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import orjson

TAG = re.compile(r"/lat-(\d+)-(\d+)/")


def seconds(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


def read_levels(run: Path) -> dict[int, list[dict]]:
    """The records of the sink's files (``run``/enriched) by load level (percent)."""
    levels: dict[int, list[dict]] = defaultdict(list)
    for path in sorted((run / "enriched").glob("*.jsonl")):
        with open(path, "rb") as fh:
            for line in fh:
                record = orjson.loads(line)
                found = TAG.search(record.get("url") or "")
                if found and record.get("ingested_at") and record.get("trace"):
                    levels[int(found.group(2))].append(record)
    return levels


def split(records: list[dict]) -> tuple[list[str], list[dict[str, float]]]:
    """The columns, and per record: each stage's wait, batch and batch size, and the total."""
    batches: dict[tuple, list[float]] = defaultdict(list)
    for record in records:
        for entry in record["trace"]:
            batches[(entry["stage"], entry["worker"], entry["started_at"])].append(float(entry.get("ms") or 0.0))
    rows, columns = [], []
    for record in records:
        row: dict[str, float] = {}
        ended = seconds(record["ingested_at"])
        first = ended
        for entry in record["trace"]:
            batch = batches[(entry["stage"], entry["worker"], entry["started_at"])]
            start = seconds(entry["started_at"])
            row[f"{entry['stage']} wait"] = (start - ended) * 1000.0
            row[f"{entry['stage']} batch"] = sum(batch)
            row[f"{entry['stage']} n"] = len(batch)
            ended = start + sum(batch) / 1000.0
        row["to the last stage"] = (ended - first) * 1000.0
        rows.append(row)
        columns += [c for c in row if c not in columns]
    return columns, rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(records: list[dict]) -> str:
    columns, rows = split(records)
    slowest = sorted(rows, key=lambda r: r.get("to the last stage", 0.0))[int(0.95 * len(rows)):]
    lines = [f"{'':20} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}   mean of the slowest 5 %"]
    for column in columns:
        values = [r[column] for r in rows if column in r]
        tail = [r[column] for r in slowest if column in r]
        lines.append(f"{column:20} {percentile(values, 0.5):7.0f} {percentile(values, 0.95):7.0f} "
                     f"{percentile(values, 0.99):7.0f} {max(values):7.0f}   "
                     f"{statistics.mean(tail) if tail else float('nan'):7.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pipeline.latency", description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a run's folder (bench.pipeline's --out/KIND-default-RUN)")
    ap.add_argument("--level", type=int, default=None, help="only this load level (percent of saturation)")
    args = ap.parse_args(argv)
    if not (args.run / "enriched").is_dir():
        ap.error(f"no sink files in {args.run}/enriched (a bench.pipeline run's KIND-default-RUN folder)")
    levels = read_levels(args.run)
    wanted = [args.level] if args.level is not None else sorted(levels)
    if not any(levels.get(level) for level in wanted):
        ap.error(f"no records of load level(s) {', '.join(map(str, wanted))} in {args.run}/enriched")
    for level in wanted:
        if levels.get(level):
            print(f"{level} % of saturation: {len(levels[level])} records, ms per record")
            print(table(levels[level]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
