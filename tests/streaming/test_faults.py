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

import orjson
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


def run_env(tmp_path) -> dict[str, str]:
    from tests.streaming.test_run_command import _env

    return _env(tmp_path)


def start_run(tmp_path, *args: str, sink: str = "out") -> subprocess.Popen:
    """`pipeline run` in ``tmp_path`` (logs, broker data and dedup index there)."""
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--no-dashboard", "--sink",
                             f"jsonl:{tmp_path / sink}", *args], cwd=ROOT, env=run_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_workers(tmp_path, proc: subprocess.Popen, timeout_s: float = 120) -> dict:
    """The run file once every worker serves its metrics."""
    run_file = tmp_path / "logs" / "run.json"

    def ready():
        assert proc.poll() is None, proc.communicate()
        try:
            info = json.loads(run_file.read_text())
        except (OSError, ValueError):
            return None
        workers = info.get("workers", [])
        return info if info.get("pid") == proc.pid and len(workers) == 5 and all(w["metrics_url"] for w in workers) \
            else None

    return wait_until(ready, timeout_s, "the run's workers are up")


def test_a_second_run_in_the_same_folder_is_refused_and_kill_9_leaves_no_process(tmp_path):
    """A second `pipeline run` in the folder of a running one is refused at once with one line that
    names the first, and leaves the first's run file alone; `kill -9` of the first takes every
    process it started with it (workers, broker, index server, the clean stage's parsers), and the
    ports are free again."""
    import psutil

    from pipeline.sinks.jsonl import read_records
    from tests.streaming.test_run_command import Descendants

    pages = tmp_path / "pages.jsonl"  # HTML pages: the clean stage starts its parser processes
    body = "<p>" + " ".join(["Warga kota berkumpul di alun-alun untuk merayakan hari jadi kota."] * 6) + "</p>"
    pages.write_bytes(b"".join(orjson.dumps({"url": f"https://news.example/{i}", "fetched_at": "2026-12-01T10:00:00Z",
                                             "html": f"<html><head><title>Berita {i}</title></head><body><article>"
                                                     f"<h1>Berita {i}</h1>{body}</article></body></html>"}) + b"\n"
                               for i in range(5)))
    first = start_run(tmp_path, "--replay", str(pages))
    family = Descendants(first.pid)
    info = wait_for_workers(tmp_path, first)
    wait_until(lambda: len(list(read_records(tmp_path / "out", include_open=True))) == 5, 60,
               "the pages are written")
    run_file = (tmp_path / "logs" / "run.json").read_bytes()
    started = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "pipeline", "run", "--no-dashboard", "--replay", "seeds/",
                             "--exit-when-done", "--sink", f"jsonl:{tmp_path / 'other'}"], cwd=ROOT,
                            env=run_env(tmp_path), capture_output=True, text=True,
                            timeout=60)
    refused_s = time.monotonic() - started
    assert second.returncode == 1, second.stderr
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "the run folder" in lines[0] and f"process {first.pid}" in lines[0], second.stderr
    assert (tmp_path / "logs" / "run.json").read_bytes() == run_file
    assert refused_s < 15 and first.poll() is None

    ports = [int(w["metrics_url"].rsplit(":", 1)[1]) for w in info["workers"]]
    seen = len(family.seen)
    first.kill()
    first.wait(10)
    killed = time.monotonic()
    wait_until(lambda: not [p for p in family.seen.values()
                            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], 30,
               "every process of the killed run has ended")
    gone_s = time.monotonic() - killed
    from pipeline.monitoring.http import port_is_free

    assert all(port_is_free("127.0.0.1", port) for port in ports)
    # the folder is free again: a new run starts there
    third = start_run(tmp_path)
    wait_for_workers(tmp_path, third)
    third.terminate()
    third.communicate(timeout=90)
    assert third.returncode == 0
    print(f"\nsecond run refused in {refused_s:.1f} s: {lines[0]!r}; kill -9 of the run: {seen} processes "
          f"gone {gone_s:.1f} s after")


def test_a_worker_stuck_on_a_stopped_index_still_stops_on_sigterm_in_time(tmp_path, own_redis):
    """The dedup index's server frozen (SIGSTOP) mid-stream: the dedup worker hangs in a call to
    it. SIGTERM must end the worker within the commit interval plus a few seconds anyway, and
    when the server runs again, a new worker delivers every record once."""
    import signal

    batch = events(100)
    with running_pipeline(tmp_path, PIPELINE__STAGES__DEDUP__STORE=own_redis.url) as pipeline:
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            sent = pipeline.send(pipeline.settings.topics.raw, [(e["id"].encode(), encode(e)) for e in batch])
            worker = next(w for w in pipeline.supervisor.workers if w.stage == "dedup")
            entities = pipeline.settings.topics.entities
            wait_until(lambda: len(pipeline.topic_messages(entities)) == len(batch), 90,
                       "every record waits for dedup")
            time.sleep(2.0)  # the dedup worker has taken a batch and waits on the index
            limit = pipeline.settings.profile.commit_interval_s + 10.0
            asked = time.monotonic()
            worker.proc.send_signal(signal.SIGTERM)
            code = worker.proc.wait(limit + 10)
            stopped_s = time.monotonic() - asked
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        assert stopped_s <= limit + 3, stopped_s
        assert code != 0
        assert "exiting without a clean stop" in worker.log_path.read_text()
        pipeline.supervisor.restart(worker)
        pipeline.wait(sent, timeout_s=120)
        once_each(pipeline, batch)
        assert pipeline.dead_letters() == []
    print(f"\nworker stuck on a stopped index: exited {stopped_s:.1f} s after SIGTERM (code {code}; limit "
          f"{limit:.0f} s); all {len(batch)} records delivered once after a restart")



def test_records_sent_again_are_counted_as_skipped_the_same_everywhere(tmp_path):
    """Events that carry their own ids, replayed by a second run into the same sink: nothing is
    written again, and the console, the dashboard, `pipeline status --json` and the sink's
    /metrics all say so with the same numbers."""
    from pipeline.monitoring.scrape import scrape
    from pipeline.sinks.jsonl import read_records

    batch = events(60)
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in batch))
    first = subprocess.run([sys.executable, "-m", "pipeline", "run", "--no-dashboard", "--replay", str(source),
                            "--exit-when-done", "--sink", f"jsonl:{tmp_path / 'out'}"], cwd=ROOT,
                           env=run_env(tmp_path), capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    assert "records out     60" in first.stdout and "skipped" not in first.stdout, first.stdout

    second = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--replay", str(source), "--sink",
                               f"jsonl:{tmp_path / 'out'}"], cwd=ROOT, env=run_env(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = wait_for_workers(tmp_path, second)
        state_url = info["dashboard_url"].rstrip("/") + "/api/state"
        data = wait_until(lambda: (d := json.loads(http_get(state_url)[1]).get("data") or {}).get("delivered") == 60
                          and d, 120, "the dashboard has seen 60 receipts")
        sink_url = next(w["metrics_url"] for w in info["workers"] if w["stage"] == "sink")
        sink_metrics = scrape(sink_url)
        result = subprocess.run([sys.executable, "-m", "pipeline", "status", "--once", "--json", "--window", "1"],
                                cwd=ROOT, env=run_env(tmp_path), capture_output=True, text=True, timeout=60)
        sink_status = next(s for s in json.loads(result.stdout)["stages"] if s["stage"] == "sink")
    finally:
        second.send_signal(__import__("signal").SIGINT)
        out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    assert (data["written"], data["skipped_written"]) == (0, 60), data
    assert (sink_metrics.events["written"], sink_metrics.events["skipped_written"]) == (0, 60)
    assert sink_status["skipped_written"] == 60 and sink_status["records_out"] == 60, sink_status
    assert "records out     60" in out and "written         0  (skipped 60: already in the sink" in out, out
    ids = [r["id"] for r in read_records(tmp_path / "out")]
    assert sorted(ids) == sorted(e["id"] for e in batch)


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs of the test's own (mounting needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """A file that takes all of the file system's free space but ``leave_bytes``."""
    import os

    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "wb") as fh:
        chunk = b"\0" * (1 << 20)
        left = free - leave_bytes
        while left > 0:
            try:
                left -= fh.write(chunk[: min(left, len(chunk))])
                fh.flush()
            except OSError:
                break
    return filler


def test_a_full_disk_pauses_the_sink_and_loses_nothing_when_space_returns(tmp_path, small_disk):
    """JSONL and Parquet sinks on a file system that fills up (a few KB left, so appends are cut
    short) while records arrive: the sink retries without committing, /healthz and status say
    "No space left", and when space is freed every record is in both sinks once: no half line,
    no staging file that breaks the Parquet conversion."""
    import pyarrow.parquet as pq

    from pipeline.sinks.jsonl import read_records

    batch = events(200)
    targets = [f"jsonl:{small_disk / 'jsonl'}", f"parquet:{small_disk / 'parquet'}"]
    with running_pipeline(tmp_path, sink_targets=targets, PIPELINE__SINK__ID_WINDOW="1000",
                          PIPELINE__SINK__ROLL_SECONDS="2", PIPELINE__MONITORING__STALL_AFTER_S="3") as pipeline:
        filler = fill(small_disk, leave_bytes=6000)
        sent = pipeline.send(pipeline.settings.topics.raw, [(e["id"].encode(), encode(e)) for e in batch], rate=100)
        health = worker_url(pipeline, "sink") + "/healthz"
        code, text = wait_until(lambda: (answer := http_get(health))[0] == 503 and answer, 90,
                                "the sink's /healthz turns red")
        assert "No space left" in text, text
        sink = next(s for s in status_json()["stages"] if s["stage"] == "sink")
        assert sink["level"] == "failing", sink
        stuck = len(pipeline.tracker.snapshot().delivered)
        assert stuck < len(batch)
        filler.unlink()
        freed_at = time.monotonic()
        pipeline.wait(sent, timeout_s=120)
        recovered_s = time.monotonic() - freed_at
        assert pipeline.dead_letters() == []
    jsonl_ids = [r["id"] for r in read_records(small_disk / "jsonl")]
    parquet_ids = pq.read_table(small_disk / "parquet", columns=["id"]).column("id").to_pylist()
    expected = sorted(e["id"] for e in batch)
    assert sorted(jsonl_ids) == expected and sorted(parquet_ids) == expected
    assert not list(small_disk.rglob("*.part"))
    print(f"\nfull disk: {stuck} of {len(batch)} records through before the sink stopped; every record in JSONL "
          f"and Parquet once {recovered_s:.1f} s after space was freed")


def test_a_dedup_index_restarted_empty_is_noticed_and_never_calls_a_duplicate_unique(tmp_path, own_redis):
    """Redis restarted without its data between two batches, the second repeating the texts of
    the first under new ids: the dedup worker notices the index's new epoch; the repeats come out
    'index_reset' (not 'unique'), and `pipeline status` warns."""
    batch = events(60)
    again = [{**e, "id": f"again-{e['id']}"} for e in batch]
    with running_pipeline(tmp_path, PIPELINE__STAGES__DEDUP__STORE=own_redis.url) as pipeline:
        raw = pipeline.settings.topics.raw
        pipeline.wait(pipeline.send(raw, [(e["id"].encode(), encode(e)) for e in batch]), timeout_s=120)
        own_redis.stop()
        own_redis.start()  # empty: no persistence
        pipeline.wait(pipeline.send(raw, [(e["id"].encode(), encode(e)) for e in again]), timeout_s=120)
        records = pipeline.sink_records()
        dedup = next(s for s in status_json()["stages"] if s["stage"] == "dedup")
    first = Counter(records[e["id"]][0]["dedup"]["status"] for e in batch)
    second = Counter(records[e["id"]][0]["dedup"]["status"] for e in again)
    assert first == {"unique": 60} and second == {"index_reset": 60}, (first, second)
    assert dedup["level"] == "warn" and "lost its memory" in dedup["verdict"], dedup
    worker_log = next(w for w in pipeline.supervisor.workers if w.stage == "dedup").log_path.read_text()
    assert "the dedup index lost its memory" in worker_log
    print(f"\nRedis restarted empty: the 60 repeats were {dict(second)}; status: {dedup['verdict']!r}")


def test_huge_records_are_dead_letters_and_the_records_behind_them_go_on(tmp_path):
    """A 15 MB text of 600,000 lines (over the size limit) and 9 MB of capitalised names on one
    line (under it, but entity search on it would take minutes): the first is `too_large`, the
    second is interrupted at the time limit (`timeout`); the records queued behind them arrive,
    and no worker restarts or grows past a bound."""
    normal = events(20)
    words = ["Joko Widodo", "Prabowo Subianto", "Jakarta", "Bank Indonesia", "Moskow", "Baku"]
    lines = {**events(1)[0], "id": "many-lines",
             "text": "\n".join(f"Baris {i} dari teks yang sangat panjang." for i in range(600_000))}
    names = {**events(1)[0], "id": "all-names", "text": " ".join(words[i % len(words)] for i in range(800_000))}
    with running_pipeline(tmp_path, PIPELINE__STAGES__LIMITS__MAX_TEXT_CHARS="12000000",
                          PIPELINE__STAGES__LIMITS__TIME_LIMIT_S="3") as pipeline:
        started = time.monotonic()
        sent = pipeline.send(pipeline.settings.topics.raw,
                             [(e["id"].encode(), encode(e)) for e in [lines, names, *normal]])
        pipeline.wait(sent, timeout_s=180)
        took = time.monotonic() - started
        letters = {letter["id"]: letter for letter in pipeline.dead_letters()}
        records = pipeline.sink_records()
        workers = pipeline.supervisor.workers
        peak_mb = {w.name: _peak_rss_mb(w.proc.pid) for w in workers}
        assert all(w.restarts == 0 and w.proc.poll() is None for w in workers)
    assert letters["many-lines"]["reason"] == "too_large", letters["many-lines"]
    assert letters["all-names"]["reason"] == "timeout", letters["all-names"]
    assert set(records) == {e["id"] for e in normal}
    assert max(peak_mb.values()) < 1500, peak_mb
    print(f"\nhuge records: {letters['many-lines']['stage']}/too_large and {letters['all-names']['stage']}/timeout; "
          f"{len(normal)} records behind them delivered; {took:.1f} s in all; peak RSS per worker (MB) {peak_mb}")


def _peak_rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) // 1024


def test_an_unexpected_error_stops_the_worker_before_it_commits_and_a_new_one_loses_nothing(tmp_path, own_redis):
    """The dedup index refuses the scripts the stage runs (an ACL change), an error that
    is neither a record's fault nor a known temporary failure: the dedup worker stops at once
    (exit 3) without committing its batch, so no record is lost; started again after the ACL is
    fixed, it delivers every record once."""
    import redis

    batch = events(80)
    client = own_redis.client()
    with running_pipeline(tmp_path, PIPELINE__STAGES__DEDUP__STORE=own_redis.url) as pipeline:
        client.acl_setuser("default", enabled=True, nopass=True, commands=["+@all", "-@scripting"],
                           keys=["*"], channels=["*"], reset=False)
        try:
            sent = pipeline.send(pipeline.settings.topics.raw, [(e["id"].encode(), encode(e)) for e in batch])
            worker = next(w for w in pipeline.supervisor.workers if w.stage == "dedup")
            code = worker.proc.wait(120)
            stopped = time.monotonic()
        finally:
            redis.Redis(port=own_redis.port).acl_setuser("default", enabled=True, nopass=True, commands=["+@all"],
                                                          keys=["*"], channels=["*"], reset=False)
        assert code == 3
        log_text = worker.log_path.read_text()
        assert "the dedup agent failed: NoPermissionError" in log_text and "without committing" in log_text
        assert not pipeline.tracker.snapshot().delivered  # nothing got past dedup
        pipeline.supervisor.restart(worker)
        pipeline.wait(sent, timeout_s=120)
        recovered_s = time.monotonic() - stopped
        once_each(pipeline, batch)
        assert pipeline.dead_letters() == []
    print(f"\nunexpected index error: dedup worker exited 3 before committing; after a restart all {len(batch)} "
          f"records delivered once, {recovered_s:.1f} s after it stopped")
