"""Faults injected for real into a running pipeline (embedded broker, real worker processes): each
test reproduces one way records used to be lost or doubled without a word, and asserts that now
every record comes out once (or as a dead letter with its reason), and that health and status say
what is wrong while it is wrong."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from pipeline.monitoring.http import free_port
from pipeline.records import encode
from pipeline.streaming.index_server import redis_server_binary
from tests.conftest import ROOT
from tests.streaming.conftest import running_pipeline
from tests.streaming.test_delivery import events


class RedisServer:
    """A redis-server of the test's own (no persistence), to fill up or to restart empty."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port("127.0.0.1")
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen([redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def client(self):
        import redis

        return redis.Redis(port=self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def worker_url(pipeline, stage: str) -> str:
    worker = next(w for w in pipeline.supervisor.workers if w.stage == stage)
    return f"http://127.0.0.1:{worker.serving_port()}"


def status_json() -> dict:
    """``pipeline status --once --json`` of the running test pipeline (its run file in the log folder)."""
    result = subprocess.run([sys.executable, "-m", "pipeline", "status", "--once", "--json", "--window", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    return json.loads(result.stdout)


def wait_until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.25)
    return found


def once_each(pipeline, batch: list[dict]) -> None:
    ids = [rid for rid, records in pipeline.sink_records().items() for _ in records]
    twice = [rid for rid, n in Counter(ids).items() if n > 1]
    assert not twice, f"{len(twice)} ids written more than once"
    assert set(ids) == {e["id"] for e in batch}


def test_dedup_index_full_holds_the_records_until_it_has_room(tmp_path, own_redis):
    """Redis at its memory limit (noeviction) refuses the dedup index's writes: the dedup worker
    retries the batch without committing it, its /healthz and `pipeline status` say why, and when
    memory is freed every record goes through once."""
    batch = events(200)
    client = own_redis.client()
    with running_pipeline(tmp_path, PIPELINE__STAGES__DEDUP__STORE=own_redis.url,
                          PIPELINE__MONITORING__STALL_AFTER_S="3") as pipeline:
        client.config_set("maxmemory", 1)  # below what Redis already uses: every write refused
        full_at = time.monotonic()
        sent = pipeline.send(pipeline.settings.topics.raw, [(e["id"].encode(), encode(e)) for e in batch])
        health = worker_url(pipeline, "dedup") + "/healthz"
        code, text = wait_until(lambda: (answer := http_get(health))[0] == 503 and answer, 90,
                                "the dedup worker's /healthz turns red")
        assert "refuses writes" in text and "maxmemory" in text, text
        dedup = next(s for s in status_json()["stages"] if s["stage"] == "dedup")
        assert dedup["level"] == "failing" and "retrying the same batch" in dedup["verdict"], dedup
        dedup_worker = next(w for w in pipeline.supervisor.workers if w.stage == "dedup")
        assert dedup_worker.proc.poll() is None and dedup_worker.restarts == 0  # alive, waiting
        assert not pipeline.tracker.snapshot().delivered  # nothing got past dedup
        client.config_set("maxmemory", 0)
        freed_at = time.monotonic()
        pipeline.wait(sent, timeout_s=120)
        recovered_s = time.monotonic() - freed_at
        assert http_get(health)[0] == 200
        once_each(pipeline, batch)
        assert pipeline.dead_letters() == []
    print(f"\nRedis full: /healthz red {freed_at - full_at:.0f} s after; all {len(batch)} records delivered "
          f"{recovered_s:.1f} s after memory was freed")


def test_half_sent_requests_to_a_worker_do_not_hold_its_threads(tmp_path):
    """300 connections that send half a request to a worker's metrics port: the worker serves at
    most its connection limit at once, refuses the rest, drops the half-sent ones after its read
    time-out, and answers /healthz again."""
    with running_pipeline(tmp_path, PIPELINE__MONITORING__HTTP_READ_TIMEOUT_S="2",
                          PIPELINE__MONITORING__HTTP_MAX_CONNECTIONS="8") as pipeline:
        worker = next(w for w in pipeline.supervisor.workers if w.stage == "language")
        url = worker_url(pipeline, "language")
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
