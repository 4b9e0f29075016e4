"""The commands a user types: `pipeline run` with and without --exit-when-done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import psutil
import pytest

from pipeline.sinks.jsonl import read_records
from tests.conftest import REDIS_URL, ROOT
from tests.streaming.conftest import FREE_PORTS

pytestmark = pytest.mark.integration


def _env(tmp_path, **extra) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update({
        "PIPELINE__STAGES__DEDUP__STORE": REDIS_URL,
        "PIPELINE__STAGES__DEDUP__NAMESPACE": f"test-{uuid.uuid4().hex[:12]}",
        "PIPELINE__RUN__LOG_DIR": str(tmp_path / "logs"),
        **FREE_PORTS,
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


def test_run_exit_when_done_prints_a_summary_and_leaves_nothing_behind(tmp_path):
    sink = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--replay", "seeds/", "--exit-when-done",
                             "--sink", f"jsonl:{sink}"], cwd=ROOT, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    family = Descendants(proc.pid)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "records in      5" in out
    assert "records out     5  (unique 5, exact duplicates 0, near duplicates 0)" in out
    assert "dead letters    0" in out
    # after a clean stop every file is finished: readers see all five records
    assert len(list(read_records(sink))) == 5
    assert not list(sink.glob("*.part"))
    assert len(family.seen) >= 6  # broker + 5 workers (+ their helpers)
    assert family.alive() == []


def test_continuous_run_stops_cleanly_on_ctrl_c_after_committing(tmp_path):
    """Against a broker the test owns, so committed offsets can be read after the pipeline stops."""
    from kafka import KafkaAdminClient

    from pipeline import config
    from pipeline.streaming.broker import EmbeddedBroker
    from pipeline.streaming.topics import ALL_STAGES, consumer_group, stage_topics
    from tests.conftest import CONFIG

    settings = config.load(CONFIG, env={})
    broker = EmbeddedBroker(settings.embedded_broker, tmp_path)
    bootstrap = broker.start()
    try:
        sink = tmp_path / "out"
        env = _env(tmp_path, KAFKA_BOOTSTRAP_SERVERS=bootstrap, PIPELINE__BROKER__PROFILE="embedded")
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
            for stage in ALL_STAGES:
                topic = stage_topics(s, stage).source
                group = consumer_group(s, stage)
                committed = admin.list_group_offsets(group)[group]
                consumed = sum(meta.offset for tp, meta in committed.items() if tp.topic == topic)
                assert consumed == 5, (stage, committed)
        finally:
            admin.close()
        assert [r["lang"]["code"] for r in read_records(sink)] == ["id"] * 5
    finally:
        broker.stop()
