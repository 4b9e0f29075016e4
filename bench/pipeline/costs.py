"""What a record costs each stage, against its length: one record at a time, no broker.

    .venv/bin/python -m bench.pipeline.costs --kind text --records 600
    .venv/bin/python -m bench.pipeline.costs --kind html --records 300 --slowest 10

Every stage of the chain over ``--records`` events (the shared sets' pages, cycling), one record
per call of the ``handle_messages`` a worker calls, with one numeric thread as in a worker, the
seed pages first. Per stage: wall ms per record (mean, p99, max), the least-squares line of ms
on the message's bytes (what a stage sized by bytes assumes, ``pipeline/streaming/batching.py``),
its correlation, and the spread left around it; then the slowest records of the stage named by
``--stage`` with their language and length.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import REPO
from bench.pipeline.compute import messages_of, warm_up
from bench.pipeline.events import event, pages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=("html", "text"), default="text")
    ap.add_argument("--records", type=int, default=600)
    ap.add_argument("--stage", default="entities", help="whose slowest records to list")
    ap.add_argument("--slowest", type=int, default=8)
    ap.add_argument("--eval-dir", default=str(REPO.parent / "shared" / "eval"))
    args = ap.parse_args()

    from pipeline import config, registry
    from pipeline.records import decode, encode
    from pipeline.stages import build_stage, freeze_loaded_objects
    from pipeline.stages.runner import Message, handle_messages
    from pipeline.streaming.worker import one_numeric_thread

    one_numeric_thread()
    settings = config.load()
    stages = {name: build_stage(name, settings, dedup_store="memory") for name in registry.chain(settings)}
    try:
        warm_up(stages, "bench-costs")
        freeze_loaded_objects()  # as a worker does once its stage is built
        bodies = pages(Path(args.eval_dir), args.kind)
        messages = messages_of([event(args.kind, bodies[i % len(bodies)], "costs", i) for i in range(args.records)])
        for name, stage in stages.items():
            sizes, times, outs = [], [], []
            for message in messages:
                t0 = time.perf_counter()
                outs += handle_messages(stage, [message], "bench-costs")
                times.append((time.perf_counter() - t0) * 1000.0)
                sizes.append(len(message.value))
            x, y = np.array(sizes, dtype=float), np.array(times)
            slope, intercept = np.polyfit(x, y, 1)
            residual = y - (intercept + slope * x)
            print(f"{name:9s} {len(y)} records: ms {y.mean():.1f} mean, {np.percentile(y, 99):.0f} p99, {y.max():.0f} max; "
                  f"{intercept:.2f} ms + {slope * 1024:.3f} ms per KB (r {np.corrcoef(x, y)[0, 1]:.2f}; "
                  f"sd {y.std():.1f}, around the line {residual.std():.1f})", flush=True)
            kept = [(o, m) for o, m in zip(outs, messages, strict=True) if o.record is not None]
            if name == args.stage:
                slowest = sorted(zip(times, messages, strict=True), key=lambda tm: -tm[0])[:args.slowest]
                for ms, message in slowest:
                    record = decode(message.value)
                    lang = (record.get("lang") or {}).get("code") if isinstance(record.get("lang"), dict) else None
                    print(f"    {ms:7.0f} ms  {lang or '-':4s} {len(record.get('text') or ''):7,} characters  "
                          f"{record.get('url')}")
            messages = [Message(encode(o.record), None, m.received_at, m.origin) for o, m in kept]
    finally:
        for stage in stages.values():
            stage.close()


if __name__ == "__main__":
    main()
