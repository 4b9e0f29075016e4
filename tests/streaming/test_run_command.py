"""The commands a user types: `pipeline run` with and without --exit-when-done."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import orjson
import psutil
import pytest

from pipeline.sinks.jsonl import read_records
from tests.conftest import ROLES, ROOT, copy_formatted_broker
from tests.streaming.conftest import FREE_PORTS, QUICK_START

pytestmark = pytest.mark.integration


def _env(tmp_path, **extra) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("PIPELINE__STAGES__DEDUP__STORE", None)
    env.update({  # the configured default dedup store: the embedded index server, its data in tmp_path
        "PIPELINE__EMBEDDED_INDEX__DIR": str(tmp_path / "dedup-index"),
        "PIPELINE__EMBEDDED_BROKER__DATA_DIR": str(tmp_path / "broker"),
        "PIPELINE__STAGES__DEDUP__NAMESPACE": "test",  # the index folder is the test's own
        "PIPELINE__RUN__LOG_DIR": str(tmp_path / "logs"),
        **FREE_PORTS,
        **QUICK_START,
        **extra,
    })
    return env


class Descendants:
    """Every process started under ``pid`` while it runs (workers, broker, their children)."""

    def __init__(self, pid: int):
        self.seen: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._root = psutil.Process(pid)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                for child in self._root.children(recursive=True):
                    self.seen.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)

    def alive(self) -> list[psutil.Process]:
        self._stop.set()
        self._thread.join(2)
        return [p for p in self.seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _run_seeds(tmp_path, sink) -> tuple[str, Descendants]:
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--replay", "seeds/", "--exit-when-done",
                             "--sink", f"jsonl:{sink}"], cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    family = Descendants(proc.pid)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out, family


def test_run_exit_when_done_prints_a_summary_and_leaves_nothing_behind(tmp_path):
    """Twice, as a user would on a bare machine: the run starts its own broker and dedup index
    (no Redis configured), and the index outlives the first run."""
    sink = tmp_path / "out"
    out, family = _run_seeds(tmp_path, sink)
    assert "records in      5" in out
    assert "records out     5  (unique 5, exact duplicates 0, near duplicates 0)" in out
    assert "dead letters    0" in out
    # after a clean stop every file is finished: readers see all five records
    assert len(list(read_records(sink))) == 5
    assert not list(sink.glob("*.part"))
    assert len(family.seen) >= 7  # broker + dedup index server + 5 workers (+ their helpers)
    assert family.alive() == []
    # the index server was stopped, not killed: it wrote its data out
    assert "ready to exit" in (tmp_path / "logs" / "dedup-index.log").read_text()
    assert list((tmp_path / "dedup-index").glob("appendonly/*.aof"))  # the index is on disk

    out, family = _run_seeds(tmp_path, tmp_path / "again")
    assert "records out     5  (unique 0, exact duplicates 5, near duplicates 0)" in out, out
    assert family.alive() == []


def test_a_second_run_over_the_same_dedup_index_fails_at_once(tmp_path):
    """Two servers on one append-only file would corrupt it: the folder is locked while in use."""
    from pipeline import config
    from pipeline.streaming.index_server import EmbeddedIndexServer
    from tests.conftest import CONFIG

    settings = config.load(CONFIG, env={"PIPELINE__EMBEDDED_INDEX__DIR": str(tmp_path / "dedup-index")})
    with EmbeddedIndexServer(settings.embedded_index, tmp_path / "held"):
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pipeline", "run", "--replay", "seeds/", "--exit-when-done",
                               "--sink", f"jsonl:{tmp_path / 'out'}"], cwd=ROOT, env=_env(tmp_path),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert "the dedup index in" in proc.stderr and "is in use" in proc.stderr, proc.stderr
        assert time.monotonic() - started < 20  # before any broker or worker was started
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "logs" / "broker.log").exists()


def test_continuous_run_stops_cleanly_on_ctrl_c_after_committing(tmp_path):
    """Against a broker the test owns, so committed offsets can be read after the pipeline stops."""
    from kafka import KafkaAdminClient

    from pipeline import config, registry
    from tests.conftest import CONFIG, test_broker

    settings = config.load(CONFIG, env={})
    broker, common = test_broker(tmp_path)
    bootstrap = common["KAFKA_BOOTSTRAP_SERVERS"]
    try:
        sink = tmp_path / "out"
        env = _env(tmp_path, **common)
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--replay", "seeds/",
                                 "--sink", f"jsonl:{sink}"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        family = Descendants(proc.pid)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(list(read_records(sink, include_open=True))) < 5:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert len(list(read_records(sink, include_open=True))) == 5
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "stopping" in err
        assert "records out     5" in out
        assert family.alive() == []

        # every stage committed what it consumed before it left
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            s = settings.with_bootstrap(bootstrap)
            for stage in ROLES:
                topic = registry.stage_topics(s, stage).source
                group = registry.consumer_group(s, stage)
                committed = admin.list_group_offsets(group)[group]
                consumed = sum(meta.offset for tp, meta in committed.items() if tp.topic == topic)
                assert consumed == 5, (stage, committed)
        finally:
            admin.close()
        assert [r["lang"]["code"] for r in read_records(sink)] == ["id"] * 5
    finally:
        broker.stop()


def test_ctrl_c_with_a_backlog_keeps_it_and_the_next_run_resumes_it(tmp_path):
    """Records still waiting when the run stops stay in the embedded broker's folder; the next
    `pipeline run` in the same folder processes them: each reaches the sink exactly once."""
    from tests.streaming.test_delivery import events

    batch = events(600)
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in batch))
    sink = tmp_path / "out"
    copy_formatted_broker(tmp_path / "broker")
    env = _env(tmp_path)

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--no-dashboard", "--sink", f"jsonl:{sink}",
                                 *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def written() -> list[str]:
        return [r["id"] for r in read_records(sink, include_open=True)]

    def wait_for(proc, at_least: int, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while len(written()) < at_least:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"{len(written())} records written after {timeout_s} s"
            time.sleep(0.2)

    first = start("--replay", str(source))
    wait_for(first, 60)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=90)
    assert first.returncode == 0, err
    done_first = len(set(written()))
    # the console wraps at its width (80 columns without a terminal)
    match = re.search(r"waiting\s+(\d+)\s+\([^)]*kept\s+by\s+the\s+broker", out)
    assert match and int(match.group(1)) > 0, out
    assert done_first < len(batch)

    second = start()  # no replay: only what the first run left
    wait_for(second, len(batch))
    second.send_signal(signal.SIGINT)
    out, err = second.communicate(timeout=90)
    assert second.returncode == 0, err
    ids = written()
    print(f"\nCtrl-C with a backlog: first run wrote {done_first}, said {match.group(0)!r}; "
          f"after the second run {len(ids)} lines, {len(set(ids))} distinct")
    assert len(ids) == len(set(ids)) == len(batch) and set(ids) == {e["id"] for e in batch}
    assert "waiting" not in out
