"""Faults injected for real into a running pipeline (embedded broker, real worker processes): each
test reproduces one way records used to be lost or doubled without a word, and asserts that now
every record comes out once (or as a dead letter with its reason), and that health and status say
what is wrong while it is wrong. These need a pipeline (or `pipeline run`) of their own; the faults
one pipeline can take one after the other are in ``test_faults_one_pipeline.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from pipeline.monitoring.http import free_port
from pipeline.records import encode
from pipeline.streaming.index_server import redis_server_binary
from tests.conftest import ROLES, ROOT, copy_formatted_broker, fill
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


def run_env(tmp_path) -> dict[str, str]:
    """The environment of a `pipeline run` in ``tmp_path``, whose broker folder is formatted already."""
    from tests.streaming.test_run_command import _env

    copy_formatted_broker(tmp_path / "broker")
    return _env(tmp_path)


def start_run(tmp_path, *args: str, sink: str = "out") -> subprocess.Popen:
    """`pipeline run` in ``tmp_path`` (logs, broker data and dedup index there)."""
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--no-dashboard", "--sink",
                             f"jsonl:{tmp_path / sink}", *args], cwd=ROOT, env=run_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_workers(tmp_path, proc: subprocess.Popen, timeout_s: float = 120, roles: int = len(ROLES)) -> dict:
    """The run file once every worker (one per role) serves its metrics."""
    run_file = tmp_path / "logs" / "run.json"

    def ready():
        assert proc.poll() is None, proc.communicate()
        try:
            info = json.loads(run_file.read_text())
        except (OSError, ValueError):
            return None
        workers = info.get("workers", [])
        return info if info.get("pid") == proc.pid and len(workers) == roles and all(w["metrics_url"] for w in workers) \
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


def test_records_sent_again_are_counted_as_skipped_the_same_everywhere_and_no_password_leaves(tmp_path, pg_dsn):
    """Events that carry their own ids, replayed by a second run into the same sinks (JSONL and
    PostgreSQL): nothing is written again, and the console, the dashboard, `pipeline status --json`
    and the sink's /metrics all say so with the same numbers.

    The PostgreSQL sink is given with a password (`postgres:postgresql://user:PASSWORD@...`) and
    both runs log at the debug level, with dead letters: the password is in nothing the runs wrote
    or served (console, logs, run file, broker data, sink files and rows, dead letters, status,
    dashboard, every worker's /metrics, /healthz and /readyz)."""
    import getpass
    import signal
    import urllib.parse
    import uuid

    import psycopg

    from pipeline.monitoring.scrape import scrape
    from pipeline.sinks.jsonl import read_records

    password = f"pw-{uuid.uuid4().hex}"
    where = urllib.parse.urlsplit(pg_dsn)
    user = where.username or getpass.getuser()
    dsn = f"postgresql://{user}:{password}@{where.hostname}:{where.port or 5432}{where.path}"
    table = f"again_{uuid.uuid4().hex[:8]}"
    batch = events(60)
    bad = [{"id": "bad-empty", "url": "https://x.example/a", "html": ""},
           {"id": "bad-type", "url": "https://x.example/b", "html": 5}]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in [*batch, *bad]))
    env = {**run_env(tmp_path), "PIPELINE__SINK__POSTGRES_TABLE": table}
    sinks = ["--sink", f"jsonl:{tmp_path / 'out'}", "--sink", f"postgres:{dsn}"]
    first = subprocess.run([sys.executable, "-m", "pipeline", "run", "--no-dashboard", "--log-level", "debug",
                            "--replay", str(source), "--exit-when-done", *sinks], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    assert "records out     60" in first.stdout and "skipped" not in first.stdout, first.stdout
    assert f"postgres:postgresql://{user}:***@" in first.stdout, first.stdout  # the sink, named, masked
    seen = {"first run": first.stdout + first.stderr}

    second = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--log-level", "debug", "--replay",
                               str(source), *sinks], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = wait_for_workers(tmp_path, second)
        state_url = info["dashboard_url"].rstrip("/") + "/api/state"
        data = wait_until(lambda: (d := json.loads(http_get(state_url)[1]).get("data") or {}).get("delivered") == 60
                          and d, 120, "the dashboard has seen 60 receipts")
        seen["dashboard"] = http_get(state_url)[1]
        sink_url = next(w["metrics_url"] for w in info["workers"] if w["stage"] == "sink")
        sink_metrics = scrape(sink_url)
        for w in info["workers"]:
            for path in ("/metrics", "/healthz", "/readyz"):
                seen[w["name"] + path] = http_get(w["metrics_url"].rstrip("/") + path)[1]
        result = subprocess.run([sys.executable, "-m", "pipeline", "status", "--once", "--json", "--window", "1"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        seen["status"] = result.stdout + result.stderr
        sink_status = next(s for s in json.loads(result.stdout)["stages"] if s["stage"] == "sink")
        letters = subprocess.run([sys.executable, "-m", "pipeline", "deadletter", "list", "--json"], cwd=ROOT,
                                 env=env, capture_output=True, text=True, timeout=60)
        seen["dead letters"] = letters.stdout + letters.stderr
    finally:
        second.send_signal(signal.SIGINT)
        out, err = second.communicate(timeout=90)
    seen["second run"] = out + err
    with psycopg.connect(pg_dsn) as conn:
        rows = [str(row) for row in conn.execute(f"SELECT * FROM {table}")]
        conn.execute(f"DROP TABLE {table} CASCADE")  # with the view of the newest versions
    seen["postgres"] = "\n".join(rows)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            seen[str(path.relative_to(tmp_path))] = path.read_bytes().decode("utf-8", "replace")

    assert second.returncode == 0, err
    assert (data["written"], data["skipped_written"]) == (0, 60), data
    assert (sink_metrics.events["written"], sink_metrics.events["skipped_written"]) == (0, 60)
    assert sink_status["skipped_written"] == 60 and sink_status["records_out"] == 60, sink_status
    assert "records out     60" in out and "written         0  (skipped 60: already in the sink" in out, out
    ids = [r["id"] for r in read_records(tmp_path / "out")]
    assert sorted(ids) == sorted(e["id"] for e in batch) and len(rows) == 60
    assert seen["dead letters"].count('"bad-type"') == 2  # once per run
    leaked = [name for name, text in seen.items() if password in text]
    assert not leaked, f"the password is in: {', '.join(leaked)}"


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
