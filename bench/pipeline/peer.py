"""The peer: one stage function of ours driven by a minimal Quix Streams application, one
process per stage as `pipeline run` has, on the same broker.

    python -m bench.pipeline.peer STAGE BOOTSTRAP SOURCE_TOPIC TARGET_TOPIC STATS_FILE

Each message of SOURCE_TOPIC goes through the stage's ``handle_messages`` (what our worker calls),
its record to TARGET_TOPIC; a dead letter goes on marked (later stages pass it through), so every
event reaches the last topic. The stage's own time (wall ms, summed) and the records it took are
written to STATS_FILE every 2 s and at the end. Producer and consumer settings follow our
embedded profile (zstd, linger 5 ms, 1 MiB batches, 500 ms fetch wait, commits every 0.5 s).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

DEAD = b"\x00dead-letter\x00"  # marks a dead letter that later stages pass on untouched
TOPIC_PREFIX = "peer."


def main(argv: list[str]) -> int:
    from quixstreams import Application

    from pipeline import config
    from pipeline.records import encode, utc_now
    from pipeline.stages import build_stage, freeze_loaded_objects
    from pipeline.stages.runner import Message, Origin, handle_messages
    from pipeline.streaming.worker import one_numeric_thread

    name, bootstrap, source, target, stats_path = argv
    one_numeric_thread()
    settings = config.load()
    stage = build_stage(name, settings, dedup_store="memory")
    freeze_loaded_objects()  # the same stage code as our workers run, under the same collector
    worker = f"peer-{name}"
    stats = {"stage": name, "records": 0, "stage_ms": 0.0}
    written = [time.monotonic()]

    def save() -> None:
        Path(stats_path).write_bytes(orjson.dumps(stats))

    def work(value: bytes) -> bytes:
        if value.startswith(DEAD):
            return value
        t0 = time.perf_counter()
        (outcome,) = handle_messages(stage, [Message(value, None, utc_now(), Origin())], worker)
        stats["stage_ms"] += (time.perf_counter() - t0) * 1000
        stats["records"] += 1
        if time.monotonic() - written[0] > 2:
            written[0] = time.monotonic()
            save()
        return encode(outcome.record) if outcome.record is not None else DEAD + encode(outcome.dead_letter)

    profile = settings.profile
    app = Application(
        broker_address=bootstrap, consumer_group=f"bench-peer-{name}", auto_offset_reset="earliest",
        commit_interval=profile.commit_interval_s, loglevel="WARNING", use_changelog_topics=False,
        consumer_extra_config={"fetch.wait.max.ms": profile.fetch_max_wait_ms},
        producer_extra_config={"compression.type": profile.compression, "linger.ms": profile.producer_linger_ms,
                               "batch.size": profile.producer_max_batch_bytes,
                               "message.max.bytes": profile.max_message_bytes})
    sdf = app.dataframe(app.topic(source, value_deserializer="bytes", value_serializer="bytes"))
    sdf = sdf.apply(work)
    sdf.to_topic(app.topic(target, value_deserializer="bytes", value_serializer="bytes"))
    try:
        app.run()
    finally:
        save()
        stage.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
