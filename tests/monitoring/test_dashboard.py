"""The dashboard's record, search and dead-letter endpoints over real HTTP, with no broker: it starts
anyway, says the broker is unreachable, finds records in a real JSONL sink, and guards its replay
(a JSON POST from its own page only, never a letter whose payload cannot succeed again)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import orjson
import pytest

from pipeline import config
from pipeline.monitoring.dashboard import (
    ENTITIES_KEPT_PER_MINUTE,
    IDLE_SAMPLE_S,
    LETTERS_KEPT,
    NEWEST,
    VIEWER_S,
    BrokerFeed,
    Dashboard,
    RecentData,
)
from pipeline.monitoring.window import SlidingCounter
from pipeline.records import dead_letter
from tests.conftest import CONFIG
from tests.monitoring.test_lookup import FIRST, OTHER, lines


@pytest.fixture
def dashboard(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "enriched-p000-1.jsonl").write_bytes(lines([FIRST, OTHER]))
    settings = config.load(CONFIG, env={}).with_sinks([f"jsonl:{folder}"])
    recent = RecentData()
    board = Dashboard(settings, [], recent, port=0, sample_now=False)
    closed = settings.with_bootstrap("127.0.0.1:1")  # nothing listens there
    board.feed = BrokerFeed(lambda: closed, recent, 3600, on_broker=board.set_broker, retry_s=0.2)
    yield board
    board.close()


def call(board, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(board.server.url + path, data=body, headers=headers or {},
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_without_a_broker_the_dashboard_serves_and_says_so(dashboard):
    deadline = time.monotonic() + 10
    while dashboard.feed.error in (None, "connecting to the broker"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, state = call(dashboard, "/api/state")
    assert status == 200 and "127.0.0.1:1" in state["broker_error"] and "does not answer" in state["broker_error"]

    status, found = call(dashboard, "/api/search?entity=jakarta")
    assert status == 200 and [r["id"] for r in found["results"]] == [OTHER["id"]]
    assert found["results"][0]["found_in"].startswith("jsonl:")
    status, found = call(dashboard, "/api/search?since=2026-12-02T00:00:00Z&q=")
    assert [r["id"] for r in found["results"]] == [OTHER["id"]]
    assert call(dashboard, "/api/search?since=yesterday")[0] == 400

    status, answer = call(dashboard, f"/api/record?id={FIRST['id']}")
    assert status == 200 and answer["found"]
    assert answer["versions"][0]["record"]["text"] == FIRST["text"]
    assert answer["story_articles"] == []  # its story has no other article anywhere
    status, answer = call(dashboard, "/api/record?id=missing&topics=1")
    assert status == 200 and not answer["found"] and any("topics not read" in n for n in answer["notes"])


def test_replay_is_a_json_post_from_the_page_and_refuses_what_cannot_succeed(dashboard):
    broken = dead_letter(stage="clean", reason="empty_body", error="'text' is empty", worker="clean-0",
                         payload=b'{"id": "e1", "text": " "}', record_id="e1", topic="pages.raw", partition=0, offset=3)
    timeout = dead_letter(stage="clean", reason="timeout", error="took too long", worker="clean-0",
                          payload=b'{"id": "t1", "text": "Berita"}', record_id="t1", topic="pages.raw", partition=1,
                          offset=4)
    dashboard.recent("dead_letter", broken, time.time())
    dashboard.recent("dead_letter", timeout, time.time())
    letters = dashboard.recent.snapshot()["letters"]
    assert [(d["id"], d["can_succeed_again"]) for d in letters] == [("t1", True), ("e1", False)]
    n_timeout, n_broken = letters[0]["n"], letters[1]["n"]

    status, shown = call(dashboard, f"/api/letter?n={n_broken}")
    assert status == 200 and orjson.loads(shown["payload"]) == {"id": "e1", "text": " "}
    assert "cannot succeed" in shown["refusal"] or "would fail again" in shown["refusal"]
    assert call(dashboard, "/api/letter?n=999")[0] == 404

    as_json = {"Content-Type": "application/json"}
    body = orjson.dumps({"n": n_timeout})
    assert call(dashboard, "/api/letter/replay", body, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    assert call(dashboard, "/api/letter/replay", body, {**as_json, "Origin": "https://elsewhere.example"})[0] == 403
    assert call(dashboard, "/api/letter/replay", body, {**as_json, "Sec-Fetch-Site": "cross-site"})[0] == 403
    status, answer = call(dashboard, "/api/letter/replay", orjson.dumps({"n": n_broken}), as_json)
    assert status == 409 and "empty_body" in answer["error"]
    status, answer = call(dashboard, "/api/letter/replay", body, as_json)
    assert status == 503 and "does not answer" in answer["error"]  # no broker: nothing sent, not marked sent
    assert dashboard.recent.replayed == {}
    # the record page of a dead-lettered id lists its letter with the number of its payload
    status, answer = call(dashboard, "/api/record?id=t1")
    assert answer["found"] and [d["n"] for d in answer["letters"]] == [n_timeout]


def test_pipeline_dashboard_starts_while_the_broker_is_down(tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    from pipeline.monitoring.http import free_port
    from tests.conftest import ROOT

    down = f"127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": down, "PIPELINE__RUN__LOG_DIR": str(tmp_path / "logs"),
           "PIPELINE__MONITORING__DASHBOARD_PORT": "0"}
    env.pop("PIPELINE_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "dashboard", "--port", "0", "--target",
                             f"clean=127.0.0.1:{free_port('127.0.0.1')}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        found = re.search(r"dashboard (http://\S+/)", line)
        assert found, line + proc.stderr.read()
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(found.group(1) + "api/state", timeout=5) as response:
                state = json.loads(response.read())
            if state["broker_error"] and "does not answer" in state["broker_error"]:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert down in state["broker_error"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_an_idle_pipeline_nobody_looks_at_is_sampled_seldom(tmp_path):
    settings = config.load(CONFIG, env={})
    board = Dashboard(settings, [], RecentData(), port=0, sample_now=False)
    try:
        interval = settings.monitoring.sample_interval_s
        assert board.pause(moving=False) == max(interval, IDLE_SAMPLE_S) > interval
        assert board.pause(moving=True) == interval  # records move: every sample_interval_s
        status, _ = call(board, "/api/state")  # someone opens the page
        assert status == 200 and board.pause(moving=False) == interval
        assert board.pause(moving=False, now=time.monotonic() + VIEWER_S + 1) > interval  # and left
    finally:
        board.close()


def test_what_the_dashboard_holds_is_bounded_however_long_it_runs():
    recent = RecentData()
    for i in range(LETTERS_KEPT * 3):
        recent(kind="dead_letter", message={"id": f"r{i}", "stage": "clean", "reason": "timeout"}, at=1000.0 + i)
        if i % 7 == 0:
            numbers = [n for n in recent.held_letters]
            recent.mark_replayed(numbers[-1])
    assert len(recent.held_letters) == LETTERS_KEPT and recent.dead == LETTERS_KEPT * 3
    assert set(recent.replayed) <= set(recent.held_letters)  # no note of a letter no longer held
    unbounded = SlidingCounter(3600.0, 60.0, clock=time.time)
    start = time.time() - 7200
    for minute in range(120):  # two hours of receipts, each naming 3,000 entities never seen before
        entities = [{"canonical": f"name-{minute}-{k}", "label": "PER", "count": 1} for k in range(3000)]
        entities.append({"canonical": "Jakarta", "label": "LOC", "count": 5})
        recent(kind="receipt", message={"id": f"m{minute}", "entities": entities}, at=start + minute * 60)
        unbounded.add({(e["label"], e["canonical"]): e["count"] for e in entities}, at=start + minute * 60)
    assert recent.entities.keys_held() <= 60 * ENTITIES_KEPT_PER_MINUTE + 3001 < unbounded.keys_held()
    assert recent.entities.top(1) == unbounded.top(1) and unbounded.top(1)[0][0] == ("LOC", "Jakarta")
    assert len(recent.records) == NEWEST and len(recent.index) == 120


def test_a_lag_that_stays_put_is_no_motion_but_one_that_changes_is():
    from pipeline.monitoring.lag import PartitionLag
    from pipeline.monitoring.status import Sample

    settings = config.load(CONFIG, env={})
    board = Dashboard(settings, [], RecentData(), port=0, sample_now=False)
    try:
        def sample_with(committed: int, end: int) -> bool:
            at = time.time()
            board.collector.samples.append(Sample(at, [], {"clean": [PartitionLag("pages.raw", 0, committed, end)]}))
            return board._summarise()

        assert sample_with(10, 11) is True  # the first lag seen
        assert sample_with(10, 11) is False  # the same one record waiting, nothing read or written
        assert sample_with(10, 14) is True  # more came
        assert sample_with(14, 14) is True  # and went
    finally:
        board.close()
