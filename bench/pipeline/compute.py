"""The compute bound: CPU per record of each stage function, in this process, no broker.

Each stage runs over the whole batch of records before the next one (as `pipeline enrich` would,
through the same ``handle_messages`` a worker calls, in batches like a worker's), with one numeric
thread as in a worker; the CPU of a stage is this process's and its child processes' (the clean
stage's HTML parsers) user + system time over its pass. The messages between stages are encoded
outside the timed part (that is transport). Records per second on the machine's cores =
cores / CPU per record of all stages.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from bench.common import REPO
from bench.pipeline.events import cpu_with_children, event

BATCH = 32


def messages_of(events: list[dict]):
    from pipeline.records import encode, utc_now
    from pipeline.stages.runner import Message, Origin

    now = utc_now()
    return [Message(encode(e), None, now, Origin()) for e in events]


def warm_up(stages: dict, worker: str) -> None:
    """The seed pages through every stage first: models loaded, HTML parsers started."""
    from pipeline.records import encode
    from pipeline.stages.runner import Message, handle_messages

    seeds = [{"url": f"https://bench.example/seed/{p.name}", "text": p.read_text()} for p in sorted((REPO / "seeds").iterdir())]
    messages = messages_of(seeds)
    for stage in stages.values():
        outs = handle_messages(stage, messages, worker)
        messages = [Message(encode(o.record), None, m.received_at, m.origin) for o, m in zip(outs, messages, strict=True)
                    if o.record is not None]


def compute_bound(bodies: list[str], kind: str, n: int, tag: str) -> dict:
    """CPU ms per record of each stage over ``n`` pages (cycling through ``bodies``)."""
    from pipeline import config, registry
    from pipeline.records import encode
    from pipeline.stages import build_stage, freeze_loaded_objects
    from pipeline.stages.runner import Message, handle_messages
    from pipeline.streaming.worker import one_numeric_thread

    one_numeric_thread()
    settings = config.load()
    worker = "bench-compute"
    stages = {name: build_stage(name, settings, dedup_store="memory") for name in registry.chain(settings)}
    me = psutil.Process()
    try:
        warm_up(stages, worker)
        freeze_loaded_objects()  # as a worker does once its stage is built
        messages = messages_of([event(kind, bodies[i % len(bodies)], tag, i) for i in range(n)])
        per_stage: dict[str, dict] = {}
        for name, stage in stages.items():
            outs = []
            c0, w0 = cpu_with_children(me), time.perf_counter()
            for start in range(0, len(messages), BATCH):
                outs += handle_messages(stage, messages[start:start + BATCH], worker)
            c1, w1 = cpu_with_children(me), time.perf_counter()
            per_stage[name] = {"records_in": len(messages), "cpu_ms_per_event": (c1 - c0) * 1000 / n,
                               "cpu_ms_per_record_in": (c1 - c0) * 1000 / max(1, len(messages)),
                               "wall_ms_per_record_in": (w1 - w0) * 1000 / max(1, len(messages))}
            messages = [Message(encode(o.record), None, m.received_at, m.origin)
                        for o, m in zip(outs, messages, strict=True) if o.record is not None]
    finally:
        for stage in stages.values():
            stage.close()
    total = sum(s["cpu_ms_per_event"] for s in per_stage.values())
    cores = psutil.cpu_count() or 1
    return {"events": n, "records_out": len(messages), "stages": per_stage, "cpu_ms_per_event": total,
            "cores": cores, "bound_events_per_s": cores * 1000 / total if total else 0.0}


if __name__ == "__main__":  # one measurement in a fresh process: python -m bench.pipeline.compute KIND N EVAL_DIR
    import sys

    import orjson

    from bench.pipeline.events import pages

    kind, n, eval_path = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    sys.stdout.write(orjson.dumps(compute_bound(pages(eval_path, kind), kind, n, "compute")).decode() + "\n")
