"""Article versions (the dedup stage's ``version``): the same URL with other text is a new version,
with what changed; a refetch with the same text is unchanged; a record delivered again gets the
same answer; several workers sharing Redis see one sequence. In memory and in Redis."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from pipeline.stages.dedup.versions import VersionIndex
from tests.conftest import ROOT

V1 = {"id": "v1", "url": "https://news.example/a", "title": "Banjir di Jakarta",
      "text": "Hujan deras sejak pagi.\nSungai meluap di tiga kecamatan.\nWarga mengungsi."}
V2 = {"id": "v2", "url": "https://news.example/a", "title": "Banjir di Jakarta, 300 warga mengungsi",
      "text": "Hujan deras sejak pagi.\nSungai meluap di lima kecamatan.\nWarga mengungsi.\nBantuan tiba sore hari."}
REFETCH = {**V2, "id": "v2-again"}
V3 = {"id": "v3", "url": "https://news.example/a", "title": V2["title"],
      "text": "Hujan deras sejak pagi.\nSungai meluap di lima kecamatan.\nBantuan tiba sore hari."}


def sequence(first: VersionIndex, second: VersionIndex):
    return [first.version(V1), second.version(V2), first.version(REFETCH), second.version(V3),
            first.version(V2), second.version({"id": "x", "text": "tanpa alamat"})]


EXPECTED = [
    {"number": 1, "previous_id": None, "status": "first"},
    {"number": 2, "previous_id": "v1", "status": "changed", "title_changed": True, "paragraphs_added": 1,
     "paragraphs_removed": 0, "paragraphs_edited": 1},
    {"number": 2, "previous_id": "v2", "status": "unchanged"},
    {"number": 3, "previous_id": "v2", "status": "changed", "title_changed": False, "paragraphs_added": 0,
     "paragraphs_removed": 1, "paragraphs_edited": 0},
    # v2 delivered again while v3 is the newest: the answer v2 had, not a fourth version
    {"number": 2, "previous_id": "v1", "status": "changed", "title_changed": True, "paragraphs_added": 1,
     "paragraphs_removed": 0, "paragraphs_edited": 1},
    None,  # no URL, no version
]


def test_versions_in_memory():
    index = VersionIndex()
    assert sequence(index, index) == EXPECTED


def test_versions_in_redis_are_one_sequence_for_two_workers(redis_url, redis_namespace):
    import redis

    workers = [VersionIndex(redis.Redis.from_url(redis_url), redis_namespace, 3600) for _ in range(2)]
    assert sequence(*workers) == EXPECTED
    again = VersionIndex(redis.Redis.from_url(redis_url), redis_namespace, 3600)
    assert again.version(V3) == EXPECTED[3]  # a restarted worker, the newest delivered again: the same answer


def test_a_batch_in_redis_gives_the_answers_of_one_record_at_a_time_even_when_another_worker_writes_between(
        redis_url, redis_namespace):
    import redis

    other_url = {**V1, "id": "b1", "url": "https://news.example/b"}
    batch_worker, other = (VersionIndex(redis.Redis.from_url(redis_url), redis_namespace, 3600) for _ in range(2))
    # one batch: a URL three times (v1, v2, v2 delivered again in the same batch), another URL, no URL
    assert batch_worker.version_many([V1, other_url, V2, {"id": "x", "text": "tanpa alamat"}, V2]) == \
        [EXPECTED[0], EXPECTED[0], EXPECTED[1], None, EXPECTED[1]]
    # another worker writes v2's refetch between this batch's read and its compare-and-set: the
    # batch's answers for that URL are asked again, in order, after it
    read = batch_worker.client.mget

    def read_then_other_writes(keys):
        found = read(keys)
        other.version(REFETCH)
        return found

    batch_worker.client.mget = read_then_other_writes
    assert batch_worker.version_many([V3, V2]) == [EXPECTED[3], EXPECTED[4]]
    batch_worker.client.mget = read
    assert other.version(REFETCH) == EXPECTED[2]  # its own answer, kept


def test_pipeline_enrich_gives_versions_of_an_updated_article(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps({"url": v["url"], "fetched_at": f"2026-12-0{n}T08:00:00Z",
                                              "text": v["title"] + "\n" + v["text"]}) + b"\n"
                                for n, v in enumerate((V1, V2, REFETCH), 1)))
    result = subprocess.run([sys.executable, "-m", "pipeline", "enrich", str(events), "--no-progress"], cwd=ROOT,
                            env=os.environ, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    versions = [orjson.loads(line)["version"] for line in result.stdout.splitlines()]
    assert [(v["number"], v["status"]) for v in versions] == [(1, "first"), (2, "changed"), (2, "unchanged")]
    assert versions[1]["paragraphs_added"] >= 1 and versions[2]["previous_id"] == orjson.loads(
        result.stdout.splitlines()[1])["id"]


@pytest.fixture
def redis_url():
    from tests.conftest import require_redis

    return require_redis()
