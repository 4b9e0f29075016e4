"""Stories with several workers: three story workers sharing the state (the embedded index's Redis),
one of them SIGKILLed halfway, give every article the story `pipeline enrich` (one process, the
state in memory) gives it for the same arrival order; the sink publishes one story update per
article written, and PostgreSQL keeps one row per story."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys

import orjson
import psycopg
import pytest

from pipeline.records import encode
from tests.conftest import PG_DSN, ROOT, SEEDS
from tests.news_site import EVAL
from tests.streaming.conftest import running_pipeline

pytestmark = pytest.mark.integration

CHAIN = ["clean", "dedup", "stories"]


def articles(n_topics: int = 1) -> list[dict]:
    """Raw events of news articles about a few events each, in a fixed arrival order: ECB+ topics of
    the shared evaluation data when it is there (two similar events per topic), else the seeds."""
    path = EVAL / "stories-ecbplus-dev.jsonl.gz"
    if not path.exists():
        return [{"id": f"seed-{i}", "text": p.read_text(), "fetched_at": "2026-12-01T08:00:00Z"}
                for i, p in enumerate(sorted(SEEDS.glob("*.txt")))]
    with gzip.open(path, "rb") as fh:
        docs = [orjson.loads(line) for line in fh]
    topics = sorted({d["topic"] for d in docs})[:n_topics]
    chosen = [d for d in docs if d["topic"] in topics]
    chosen.sort(key=lambda d: d["id"][::-1])  # a fixed order that mixes the stories
    return [{"id": d["id"], "text": d["title"] + "\n\n" + d["text"], "fetched_at": "2026-12-01T08:00:00Z"}
            for d in chosen]


def test_three_story_workers_one_killed_give_the_stories_of_one_process(tmp_path, pg_table):
    events = articles()
    feed = tmp_path / "events.jsonl"
    feed.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    env = {**os.environ, "PIPELINE__STAGES__CHAIN": json.dumps(CHAIN)}
    offline = subprocess.run([sys.executable, "-m", "pipeline", "enrich", str(feed), "--no-progress"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=300)
    assert offline.returncode == 0, offline.stderr
    expected = {r["id"]: r["story"] for r in map(orjson.loads, offline.stdout.splitlines())}
    assert len(expected) == len(events) and 1 < len({s["id"] for s in expected.values()}) < len(events)

    workers = "{ clean = 1, dedup = 1, stories = 3, sink = 1 }"
    sinks = json.dumps([f"jsonl:{tmp_path / 'enriched'}", f"postgres:{PG_DSN}"])
    with running_pipeline(tmp_path, sink_targets=None, PIPELINE__STAGES__CHAIN=json.dumps(CHAIN),
                          PIPELINE__RUN__WORKERS=workers, PIPELINE__SINK__TARGETS=sinks,
                          PIPELINE__SINK__POSTGRES_TABLE=pg_table) as pipeline:
        story_workers = [w for w in pipeline.supervisor.workers if w.stage == "stories"]
        assert len(story_workers) == 3
        for n, event in enumerate(events):  # one at a time: the arrival order is the input's
            sent = pipeline.send(pipeline.settings.topics.raw, [(event["id"].encode(), encode(event))])
            pipeline.wait(sent, timeout_s=60)
            if n == len(events) // 2:
                victim = story_workers[0]
                os.kill(victim.proc.pid, signal.SIGKILL)
                victim.proc.wait(10)
                pipeline.supervisor.restart(victim)
        updates = [orjson.loads(value) for _, value in pipeline.topic_messages(pipeline.settings.topics.stories)]
        records = pipeline.sink_records()
    streamed = {rid: copies[0]["story"] for rid, copies in records.items()}
    deciders = {t["worker"] for copies in records.values() for t in copies[0]["trace"] if t["stage"] == "stories"}
    assert len(deciders) >= 2  # the decisions really were made by several processes
    assert {rid: (s["id"], s["status"]) for rid, s in streamed.items()} == \
        {rid: (s["id"], s["status"]) for rid, s in expected.items()}
    assert all(streamed[rid]["summary"]["articles"] == expected[rid]["summary"]["articles"] for rid in expected)
    # one story update per article written (an article sent again after the kill is not written again)
    assert sorted(u["article"]["id"] for u in updates) == sorted(expected)
    with psycopg.connect(PG_DSN) as conn:
        rows = dict(conn.execute(f"SELECT story_id, articles FROM {pg_table}_stories").fetchall())
        stored = dict(conn.execute(f"SELECT id, story_id FROM {pg_table}").fetchall())
    sizes: dict[str, int] = {}
    for story in expected.values():
        sizes[story["id"]] = sizes.get(story["id"], 0) + 1
    assert rows == sizes and stored == {rid: s["id"] for rid, s in expected.items()}
