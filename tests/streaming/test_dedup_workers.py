"""The dedup stage over the whole stream: the same verdicts with 1 and 3 dedup worker processes,
and after a dedup worker is killed and restarted."""

from __future__ import annotations

import os
import random
import signal

import orjson
import pytest

from pipeline.records import encode
from tests.conftest import SEEDS
from tests.streaming.conftest import running_pipeline

pytestmark = pytest.mark.integration

T0 = "2026-11-20T08:00:00Z"
T1 = "2026-11-20T09:00:00Z"


def story(seed: int) -> str:
    """A page of a few paragraphs of sentences, like a rendered news page."""
    rng = random.Random(seed)
    vocab = [f"kata{i}" for i in range(4000)]
    paragraphs = []
    for _ in range(6):
        sentences = [" ".join(rng.choice(vocab) for _ in range(rng.randint(12, 20))).capitalize() + "."
                     for _ in range(3)]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join([f"Judul berita nomor {seed}", *paragraphs])


def originals() -> list[dict]:
    events = [{"id": f"orig-{i:02d}", "source": f"story-{i}", "fetched_at": T0, "text": story(i)} for i in range(24)]
    for path in sorted(SEEDS.glob("*.txt")):
        events.append({"id": f"seed-{path.stem[:3]}", "source": path.name, "fetched_at": T0,
                       "text": path.read_text(encoding="utf-8")})
    return events


def copies() -> list[dict]:
    """Exact copies, near copies (a paragraph added) and new stories, fetched later."""
    events = []
    for i in range(0, 24, 3):
        events.append({"id": f"exact-{i:02d}", "fetched_at": T1, "text": story(i)})
        extra = ("\n\nPembaruan: redaksi menambahkan beberapa kalimat penjelasan tentang peristiwa ini, "
                 "termasuk tanggapan resmi dari pemerintah setempat dan warga sekitar lokasi kejadian.")
        events.append({"id": f"near-{i:02d}", "fetched_at": T1, "text": story(i) + extra})
        events.append({"id": f"new-{i:02d}", "fetched_at": T1, "text": story(1000 + i)})
    for path in sorted(SEEDS.glob("*.txt"))[:2]:
        events.append({"id": f"again-{path.stem[:3]}", "fetched_at": T1, "text": path.read_text(encoding="utf-8")})
    return events


def send_and_wait(pipeline, events: list[dict]) -> None:
    sent = pipeline.send(pipeline.settings.topics.raw, [(e["id"].encode(), encode(e)) for e in events])
    pipeline.wait(sent, timeout_s=120)


def verdicts(pipeline, events: list[dict]) -> dict[str, dict]:
    records = pipeline.sink_records()
    return {e["id"]: records[e["id"]][0]["dedup"] for e in events}


def dedup_workers(records: dict[str, list[dict]], events: list[dict]) -> set[str]:
    """The dedup worker processes that handled ``events`` (from the records' traces)."""
    return {t["worker"] for e in events for t in records[e["id"]][0]["trace"] if t["stage"] == "dedup"}


def run_with_dedup_workers(tmp_path, n: int, kill_and_restart: bool = False, store: str = "embedded"):
    """The verdicts of the originals, then of the copies (with ``kill_and_restart``: every dedup
    worker SIGKILLed and started again in between), and the dedup workers that handled each."""
    workers = f"{{ clean = 1, language = 1, entities = 1, dedup = {n}, sink = 1 }}"
    with running_pipeline(tmp_path, PIPELINE__RUN__WORKERS=workers, PIPELINE__STAGES__DEDUP__STORE=store) as pipeline:
        send_and_wait(pipeline, originals())
        if kill_and_restart:
            for worker in [w for w in pipeline.supervisor.workers if w.stage == "dedup"]:
                os.kill(worker.proc.pid, signal.SIGKILL)
                worker.proc.wait(10)
                pipeline.supervisor.restart(worker)
            pipeline.supervisor.wait_ready(90)
        send_and_wait(pipeline, copies())
        result = verdicts(pipeline, originals() + copies())
        records = pipeline.sink_records()
        return result, dedup_workers(records, originals()), dedup_workers(records, originals() + copies())


def check_expected(result: dict[str, dict]) -> None:
    for event in originals():
        assert result[event["id"]]["status"] == "unique", event["id"]
    for i in range(0, 24, 3):
        assert result[f"exact-{i:02d}"] == {"status": "exact_duplicate", "duplicate_of": f"orig-{i:02d}",
                                            "similarity": 1.0}
        near = result[f"near-{i:02d}"]
        assert near["status"] == "near_duplicate" and near["duplicate_of"] == f"orig-{i:02d}"
        assert result[f"new-{i:02d}"]["status"] == "unique"
    assert result["again-000"]["duplicate_of"] == "seed-000"
    assert result["again-001"]["duplicate_of"] == "seed-001"


def test_same_verdicts_with_one_dedup_worker_killed_midway_and_with_three(tmp_path, redis_url):
    """One dedup worker on the embedded index, SIGKILLed and restarted between the originals and
    their copies (it still knows what it saw: the copies are found), then three sharing a Redis the
    user runs (stages.dedup.store = redis://..., as dedup workers on several machines use): the
    same verdicts."""
    one, one_before_kill, one_workers = run_with_dedup_workers(tmp_path / "one", 1, kill_and_restart=True)
    three, _, three_workers = run_with_dedup_workers(tmp_path / "three", 3, store=redis_url)
    check_expected(one)
    assert len(one_before_kill) == 1  # one dedup process handled every original
    assert len(one_workers) == 2  # before and after the kill
    assert len(three_workers) >= 2  # the records really were spread over several dedup processes
    assert orjson.dumps(one, option=orjson.OPT_SORT_KEYS) == orjson.dumps(three, option=orjson.OPT_SORT_KEYS)
