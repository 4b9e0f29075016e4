"""Faults injected for real into one running pipeline (embedded broker, real worker processes, a
redis-server of the module's own as the dedup index), one after the other: the dedup index full,
refusing, frozen and restarted empty; records over a stage's limits; half-sent HTTP requests.
Each test uses ids of its own and leaves the pipeline as it found it (the other faults, each with
a pipeline of its own, are in ``test_faults.py``)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.records import encode
from tests.streaming.conftest import RunningPipeline, running_pipeline
from tests.streaming.test_delivery import events
from tests.streaming.test_faults import RedisServer, http_get, status_json, wait_until, worker_url


@dataclass
class Shared:
    pipeline: RunningPipeline
    redis: RedisServer

    def worker(self, stage: str):
        return next(w for w in self.pipeline.supervisor.workers if w.stage == stage)

    def send(self, batch: list[dict]):
        return self.pipeline.send(self.pipeline.settings.topics.raw, [(e["id"].encode(), encode(e)) for e in batch])

    def delivered(self, batch: list[dict]) -> int:
        ids = {e["id"] for e in batch}
        return sum(1 for rid in self.pipeline.tracker.snapshot().delivered if rid in ids)

    def once_each(self, batch: list[dict]) -> dict[str, dict]:
        """Every record of ``batch`` in the sink exactly once, and none dead-lettered; returns them."""
        ids = {e["id"] for e in batch}
        found = {rid: copies for rid, copies in self.pipeline.sink_records().items() if rid in ids}
        twice = [rid for rid, copies in found.items() if len(copies) > 1]
        assert not twice, f"{len(twice)} ids written more than once"
        assert set(found) == ids, f"{len(ids - set(found))} records missing"
        assert not [letter for letter in self.pipeline.dead_letters() if letter.get("id") in ids]
        return {rid: copies[0] for rid, copies in found.items()}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    server = RedisServer(tmp)
    try:
        with running_pipeline(tmp, PIPELINE__STAGES__DEDUP__STORE=server.url,
                              PIPELINE__MONITORING__STALL_AFTER_S="3",
                              PIPELINE__MONITORING__HTTP_READ_TIMEOUT_S="2",
                              PIPELINE__MONITORING__HTTP_MAX_CONNECTIONS="8",
                              PIPELINE__STAGES__LIMITS__MAX_TEXT_CHARS="12000000",
                              PIPELINE__STAGES__LIMITS__TIME_LIMIT_S="3") as pipeline:
            yield Shared(pipeline, server)
    finally:
        server.stop()


def tagged(batch: list[dict], tag: str) -> list[dict]:
    return [{**e, "id": f"{tag}-{e['id']}"} for e in batch]


def test_dedup_index_full_holds_the_records_until_it_has_room(shared):
    """Redis at its memory limit (noeviction) refuses the dedup index's writes: the dedup worker
    retries the batch without committing it, its /healthz and `pipeline status` say why, and when
    memory is freed every record goes through once."""
    batch = tagged(events(200), "full")
    client = shared.redis.client()
    worker = shared.worker("dedup")
    restarts = worker.restarts
    client.config_set("maxmemory", 1)  # below what Redis already uses: every write refused
    try:
        full_at = time.monotonic()
        sent = shared.send(batch)
        health = worker_url(shared.pipeline, "dedup") + "/healthz"
        code, text = wait_until(lambda: (answer := http_get(health))[0] == 503 and answer, 90,
                                "the dedup worker's /healthz turns red")
        red_s = time.monotonic() - full_at
        assert "refuses writes" in text and "maxmemory" in text, text
        dedup = next(s for s in status_json()["stages"] if s["stage"] == "dedup")
        assert dedup["level"] == "failing" and "retrying the same batch" in dedup["verdict"], dedup
        assert worker.proc.poll() is None and worker.restarts == restarts  # alive, waiting
        assert shared.delivered(batch) == 0  # nothing got past dedup
    finally:
        client.config_set("maxmemory", 0)
    freed_at = time.monotonic()
    shared.pipeline.wait(sent, timeout_s=120)
    recovered_s = time.monotonic() - freed_at
    assert http_get(health)[0] == 200
    shared.once_each(batch)
    print(f"\nRedis full: /healthz red after {red_s:.0f} s; all {len(batch)} records delivered once "
          f"{recovered_s:.1f} s after memory was freed")


def test_an_unexpected_error_stops_the_worker_before_it_commits_and_a_new_one_loses_nothing(shared):
    """The dedup index refuses the scripts the stage runs (an ACL change), an error that is
    neither a record's fault nor a known temporary failure: the dedup worker stops at once
    (exit 3) without committing its batch, so no record is lost; started again after the ACL is
    fixed, it delivers every record once."""
    batch = tagged(events(80), "acl")
    client = shared.redis.client()
    worker = shared.worker("dedup")
    client.acl_setuser("default", enabled=True, nopass=True, commands=["+@all", "-@scripting"],
                       keys=["*"], channels=["*"], reset=False)
    try:
        sent = shared.send(batch)
        code = worker.proc.wait(120)
        stopped = time.monotonic()
    finally:
        shared.redis.client().acl_setuser("default", enabled=True, nopass=True, commands=["+@all"],
                                          keys=["*"], channels=["*"], reset=False)
    assert code == 3
    log_text = worker.log_path.read_text()
    assert "the dedup agent failed: NoPermissionError" in log_text and "without committing" in log_text
    assert shared.delivered(batch) == 0  # nothing got past dedup
    shared.pipeline.supervisor.restart(worker)
    shared.pipeline.wait(sent, timeout_s=120)
    recovered_s = time.monotonic() - stopped
    shared.once_each(batch)
    print(f"\nunexpected index error: dedup worker exited 3 before committing; after a restart all {len(batch)} "
          f"records delivered once, {recovered_s:.1f} s after it stopped")


def test_a_worker_stuck_on_a_stopped_index_still_stops_on_sigterm_in_time(shared):
    """The dedup index's server frozen (SIGSTOP) mid-stream: the dedup worker hangs in a call to
    it. SIGTERM must end the worker within the commit interval plus a few seconds anyway, and
    when the server runs again, a new worker delivers every record once."""
    batch = tagged(events(100), "frozen")
    pipeline = shared.pipeline
    worker = shared.worker("dedup")
    entities = pipeline.settings.topics.entities
    ids = {e["id"].encode() for e in batch}
    shared.redis.proc.send_signal(signal.SIGSTOP)
    try:
        sent = shared.send(batch)
        wait_until(lambda: len([k for k, _ in pipeline.topic_messages(entities) if k in ids]) == len(batch), 90,
                   "every record waits for dedup")
        time.sleep(2.0)  # the dedup worker has taken a batch and waits on the index
        limit = pipeline.settings.profile.commit_interval_s + 10.0
        asked = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(limit + 10)
        stopped_s = time.monotonic() - asked
    finally:
        shared.redis.proc.send_signal(signal.SIGCONT)
    assert stopped_s <= limit + 3, stopped_s
    assert code != 0
    assert "exiting without a clean stop" in worker.log_path.read_text()
    pipeline.supervisor.restart(worker)
    pipeline.wait(sent, timeout_s=120)
    shared.once_each(batch)
    print(f"\nworker stuck on a stopped index: exited {stopped_s:.1f} s after SIGTERM (code {code}; limit "
          f"{limit:.1f} s); all {len(batch)} records delivered once after a restart")


def test_huge_records_are_dead_letters_and_the_records_behind_them_go_on(shared):
    """A 15 MB text of 600,000 lines (over the size limit, 12,000,000 characters here) and 9 MB
    of capitalised names on one line (under it, but entity search on it would take minutes): the
    first is `too_large`, the second is interrupted at the time limit (3 s here, `timeout`); the
    records queued behind them arrive, and no worker restarts or grows past a bound."""
    normal = tagged(events(20), "behind")
    words = ["Joko Widodo", "Prabowo Subianto", "Jakarta", "Bank Indonesia", "Moskow", "Baku"]
    lines = {**events(1)[0], "id": "huge-many-lines",
             "text": "\n".join(f"Baris {i} dari teks yang sangat panjang." for i in range(600_000))}
    names = {**events(1)[0], "id": "huge-all-names", "text": " ".join(words[i % len(words)] for i in range(800_000))}
    pipeline = shared.pipeline
    restarts = {w.name: w.restarts for w in pipeline.supervisor.workers}
    started = time.monotonic()
    pipeline.wait(shared.send([lines, names, *normal]), timeout_s=180)
    took = time.monotonic() - started
    letters = {letter["id"]: letter for letter in pipeline.dead_letters()}
    shared.once_each(normal)
    workers = pipeline.supervisor.workers
    peak_mb = {w.name: _peak_rss_mb(w.proc.pid) for w in workers}
    assert all(w.restarts == restarts[w.name] and w.proc.poll() is None for w in workers)
    assert letters["huge-many-lines"]["reason"] == "too_large", letters["huge-many-lines"]
    assert letters["huge-all-names"]["reason"] == "timeout", letters["huge-all-names"]
    assert max(peak_mb.values()) < 1500, peak_mb
    print(f"\nhuge records: {letters['huge-many-lines']['stage']}/too_large and "
          f"{letters['huge-all-names']['stage']}/timeout; {len(normal)} records behind them delivered; "
          f"{took:.1f} s in all; peak RSS per worker (MB) {peak_mb}")


def _peak_rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) // 1024


def test_half_sent_requests_to_a_worker_do_not_hold_its_threads(shared):
    """300 connections that send half a request to a worker's metrics port: the worker serves at
    most its connection limit (8 here) at once, refuses the rest, drops the half-sent ones after
    its read time-out (2 s here), and answers /healthz again."""
    worker = shared.worker("language")
    url = worker_url(shared.pipeline, "language")
    port = int(url.rsplit(":", 1)[1])

    def threads() -> int:
        status = Path(f"/proc/{worker.proc.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))

    before = threads()
    peak = [before]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], threads())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    held = []
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        held.append(sock)
    refused = 0
    for sock in held:
        sock.settimeout(5)
        try:
            refused += sock.recv(100).startswith(b"HTTP/1.1 503")
        except TimeoutError:
            pass
    assert refused >= 250, refused  # the rest were taken in turn and dropped after the time-out
    time.sleep(3.0)  # past the read time-out: the half-sent requests were dropped
    assert http_get(url + "/healthz")[0] == 200
    sampling.set()
    sampler.join()
    after = threads()
    for sock in held:
        sock.close()
    assert before < peak[0] <= before + 8, (before, peak[0])
    assert after <= before + 1, (before, after)
    assert worker.proc.poll() is None
    print(f"\n300 half-sent requests: {refused} refused at once; worker threads {before} before, at most "
          f"{peak[0]} during, {after} after the time-out")


def test_a_dedup_index_restarted_empty_is_noticed_and_never_calls_a_duplicate_unique(shared):
    """Redis restarted without its data between two batches, the second repeating the texts of
    the first under new ids: the dedup worker notices the index's new epoch; the repeats come out
    'index_reset' (not 'unique'), and `pipeline status` warns. (Last in the module: from here on
    the index reports resets.)"""
    batch = tagged(events(60), "before-reset")
    again = tagged(events(60), "after-reset")
    pipeline = shared.pipeline
    pipeline.wait(shared.send(batch), timeout_s=120)
    shared.redis.stop()
    shared.redis.start()  # empty: no persistence
    pipeline.wait(shared.send(again), timeout_s=120)
    records = shared.once_each(again)
    dedup = next(s for s in status_json()["stages"] if s["stage"] == "dedup")
    second = Counter(r["dedup"]["status"] for r in records.values())
    assert second == {"index_reset": 60}, second
    assert dedup["level"] == "warn" and "lost its memory" in dedup["verdict"], dedup
    assert "the dedup index lost its memory" in shared.worker("dedup").log_path.read_text()
    print(f"\nRedis restarted empty: the 60 repeats were {dict(second)}; status: {dedup['verdict']!r}")
