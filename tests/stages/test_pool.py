"""A stage run in its worker and child processes (``pipeline/stages/pool.py``): the same answers
as in-process, and a child that hangs in C or dies costs only the record it had alone."""

from __future__ import annotations

import copy
import os
import signal
import time

import pytest

from pipeline import config
from pipeline.config import ConfigError
from pipeline.records import RECORD_SCHEMA, TemporaryFailure
from pipeline.stages import build_stage, pool, stage_processes
from pipeline.stages.base import Context, Stage
from pipeline.stages.pool import ProcessPoolStage, chunks
from tests.conftest import CONFIG


class Chancy(Stage):
    """Counts the words of a record, in whichever process it runs; a text may ask it to misbehave."""

    name = "chancy"
    parallel_safe = True

    def __init__(self, options):
        super().__init__()

    def process(self, record, ctx):
        text = record["text"]
        if text == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        if text == "hang":
            time.sleep(60)  # one C call: the record clock cannot interrupt it
        if text == "bug":
            raise ZeroDivisionError("a bug in stage code")
        if text == "index down":
            raise TemporaryFailure("the index does not answer")
        if "log" in record:  # a slow record that says where it ran
            time.sleep(0.1)
            with open(record["log"], "a") as log:
                log.write(record["id"] + "\n")
        record["words"] = len(text.split())
        record["pid"] = os.getpid()
        self.stats.extra["words"] += record["words"]
        return record


def settings(**env):
    return config.load(CONFIG, env={"PIPELINE__STAGES__PLUGINS": '{chancy = "tests.stages.test_pool:Chancy"}',
                                    "PIPELINE__STAGES__CHAIN": '["clean", "chancy"]',
                                    "PIPELINE__STAGES__PROCESSES": "{chancy = 3}",
                                    "PIPELINE__STAGES__LIMITS__TIME_LIMIT_S": "1", **env})


def record(rid: str, text: str) -> dict:
    return {"schema": RECORD_SCHEMA, "id": rid, "text": text, "trace": [], "url": f"https://news.example/{rid}",
            "fetched_at": "2026-12-01T00:00:00Z"}


def test_chunks_are_contiguous_balanced_and_never_empty():
    assert chunks([5, 5, 5, 5], 2) == [range(0, 2), range(2, 4)]
    assert chunks([100, 1, 1, 1], 2) == [range(0, 1), range(1, 4)]
    assert chunks([1, 1, 1, 100], 2) == [range(0, 3), range(3, 4)]
    assert chunks([0, 0, 0], 2) == [range(0, 2), range(2, 3)]
    assert chunks([7], 4) == [range(0, 1)]
    for n in range(1, 12):
        for parts in range(1, 5):
            got = chunks(list(range(n)), parts)
            assert [i for r in got for i in r] == list(range(n)) and len(got) == min(n, parts)


def test_a_stage_that_carries_state_cannot_be_given_processes():
    with pytest.raises(ConfigError, match="stages.processes.dedup"):
        stage_processes("dedup", config.load(CONFIG, env={"PIPELINE__STAGES__PROCESSES": "{dedup = 2}"}))
    assert stage_processes("entities", config.load(CONFIG, env={"PIPELINE__STAGES__PROCESSES": "{entities = 1}"})) == 1
    assert stage_processes("entities", config.load(CONFIG, env={"PIPELINE__STAGES__PROCESSES": "{entities = 0}"})) \
        == pool.usable_cores()


@pytest.fixture(scope="module")
def pooled():
    stage = build_stage("chancy", settings(), in_processes=True)
    yield stage
    stage.close()


def test_the_children_give_what_the_stage_gives_in_process(pooled):
    assert isinstance(pooled, ProcessPoolStage) and pooled.batch_least == 3 and pooled.children == 2
    records = [record(f"r{i}", "word " * (i + 1)) for i in range(9)] + [record("bug", "bug")]
    contexts = [Context("w")] * len(records)
    here = build_stage("chancy", settings())
    assert not isinstance(here, ProcessPoolStage)
    expected = here.run_many(copy.deepcopy(records), contexts)
    got = pooled.run_many(copy.deepcopy(records), contexts)
    for want, out in zip(expected[:-1], got[:-1], strict=True):
        assert {k: v for k, v in out.items() if k not in ("pid", "trace")} == \
               {k: v for k, v in want.items() if k not in ("pid", "trace")}
        assert out["trace"][-1]["stage"] == "chancy" and out["trace"][-1]["ms"] >= 0
    pids = {out["pid"] for out in got[:-1]}  # this process's (the first chunk) and the children's
    assert os.getpid() in pids and 2 <= len(pids) <= 3
    assert got[-1].reason == "stage_error" and "ZeroDivisionError: a bug in stage code" in got[-1].message
    assert pooled.stats.extra["words"] == here.stats.extra["words"] == sum(range(1, 10))
    assert pooled.stats.records_out == 9 and pooled.stats.failed["stage_error"] == 1
    (lone,) = pooled.run_many([record("lone", "one record")], [Context("w")])
    assert lone["pid"] == os.getpid()  # a batch of one record never leaves the worker


def test_a_child_that_dies_or_hangs_costs_only_its_record(pooled, monkeypatch):
    monkeypatch.setattr(pool, "CHUNK_GRACE_S", 0.5)
    monkeypatch.setattr(pool, "CHUNKS_PER_PROCESS", 1)  # 3 chunks: the others of a lost chunk are tried again
    # chunks of about equal text: [a], [b], [dies, c, hangs, d]; the first is worked on in this
    # process, so the records that kill or hang go to a child
    records = [record("a", "word " * 20), record("b", "word " * 20), record("dies", "die"),
               record("c", "three more words"), record("hangs", "hang"), record("d", "four words in all")]
    assert pool.chunks([len(r["text"]) for r in records], 3)[0] == range(0, 1)
    started = time.monotonic()
    out = pooled.run_many(records, [Context("w")] * len(records))
    took = time.monotonic() - started
    by_id = {r["id"]: o for r, o in zip(records, out, strict=True)}
    assert by_id["dies"].reason == "stage_error" and "ended" in by_id["dies"].message
    assert by_id["hangs"].reason == "timeout"
    assert [by_id[k]["words"] for k in "abcd"] == [20, 20, 3, 4]
    assert took < 30, took  # the hung child was replaced, not waited for (60 s)
    again = pooled.run_many([record("e", "alive again"), record("f", "and well")], [Context("w")] * 2)
    assert [o["words"] for o in again] == [2, 2]
    assert pooled.stats.extra["chunks_retried"] >= 1 and pooled.stats.extra["child_processes_replaced"] == 2


def test_a_temporary_failure_in_a_child_fails_the_batch_to_be_retried(pooled):
    """As in-process: nothing of the batch is dead-lettered or passed on; the worker retries it."""
    records = [record("a", "word " * 20), record("down", "index down")]
    assert pool.chunks([len(r["text"]) for r in records], 3)[1] == range(1, 2)  # the failing one in a child
    with pytest.raises(TemporaryFailure, match="the index does not answer"):
        pooled.run_many(records, [Context("w")] * 2)
    (ok,) = pooled.run_many([record("later", "fine again")], [Context("w")])
    assert ok["words"] == 2


def test_a_batch_that_failed_hands_out_no_more_chunks(pooled, tmp_path):
    """The worker's own chunk raises TemporaryFailure while the children work on theirs: they finish
    those and take no more of the failed batch (the worker retries it whole)."""
    log = tmp_path / "ran.txt"
    slow = [{**record(f"s{i}", "slow one"), "log": str(log)} for i in range(24)]
    records = [record("down", "index down"), *slow]
    assert 0 in pool.chunks([len(r["text"]) for r in records], 3 * pool.CHUNKS_PER_PROCESS)[0]  # failing here
    with pytest.raises(TemporaryFailure):
        pooled.run_many(records, [Context("w")] * len(records))
    time.sleep(1.5)  # the 24 slow records take 1.2 s in two children
    ran = log.read_text().split() if log.exists() else []
    assert len(ran) <= 2 * 3, ran  # at most the chunk each child had in hand (2 or 3 records)
