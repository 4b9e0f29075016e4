"""``POST /ingest`` against its own OpenAPI description: examples, then a property-based test
(hypothesis) over bodies, content types and tokens. The sender is played by a thread that
acknowledges each request's checkpoint, as `pipeline replay` does once the broker confirmed;
the real broker path is in tests/streaming/test_watch.py."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import IngestSettings
from pipeline.sources.ingest import IngestSource

TOKEN = "s3cret-token"


class Server:
    def __init__(self, **options):
        self.source = IngestSource(IngestSettings(host="127.0.0.1", port=0, token=TOKEN, **options))
        self.stop = threading.Event()
        self.sent: list[dict] = []
        self.confirm = threading.Event()
        self.confirm.set()
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()
        assert self.source.ready.wait(15)
        self.url = f"http://127.0.0.1:{self.source.port}"
        self.spec = json.loads(urllib.request.urlopen(self.url + "/openapi.json", timeout=5).read())

    def _send(self):
        for item in self.source.items(stop=self.stop):
            self.sent.append(item.event)
            if item.checkpoint:
                self.confirm.wait()
                self.source.acknowledge(item.position)

    def post(self, body: bytes, content_type="application/x-ndjson", token=TOKEN):
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + "/ingest", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, dict(answer.headers), json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")

    def conforms(self, status, body):
        responses = self.spec["paths"]["/ingest"]["post"]["responses"]
        assert str(status) in responses, status
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        jsonschema.validate(body, schema)

    def close(self):
        self.stop.set()
        self.thread.join(10)


@pytest.fixture(scope="module")
def server():
    s = Server(max_body_bytes=64 * 1024, ack_timeout_s=2.0)
    yield s
    s.close()


def lines(*events) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def test_events_are_taken_only_when_confirmed_and_answers_follow_the_description(server):
    status, _, body = server.post(lines({"text": "Satu.", "url": "https://x.example/1"},
                                        {"html": "<p>Dua</p>", "id": "given-id"}))
    assert status == 202 and len(body["ids"]) == 2 and body["ids"][1] == "given-id"
    assert [e["id"] for e in server.sent[-2:]] == body["ids"] and all(e["fetched_at"] for e in server.sent[-2:])
    server.conforms(status, body)
    status, _, body = server.post(orjson.dumps({"text": "Tiga."}), "application/json")
    assert status == 202 and len(body["ids"]) == 1
    before = len(server.sent)
    status, _, body = server.post(lines({"text": "ok"}, {"text": ""}, {"url": "x"}) + b"[1]\n{oops\n")
    assert status == 400 and [(e["line"], e["reason"]) for e in body["errors"]] == [
        (2, "empty_body"), (3, "invalid_event"), (4, "invalid_event"), (5, "malformed_json")]
    assert len(server.sent) == before  # nothing of a bad request is taken
    server.conforms(status, body)
    for token in (None, "wrong"):
        status, headers, body = server.post(lines({"text": "x"}), token=token)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    status, _, body = server.post(b"x" * (65 * 1024))
    assert status == 413
    status, _, _ = server.post(b"text=x", "application/x-www-form-urlencoded")
    assert status == 415


def test_the_broker_not_confirming_in_time_is_a_503_and_a_backlog_a_429(server):
    server.confirm.clear()
    try:
        status, _, body = server.post(lines({"text": "tak terkonfirmasi"}))
        assert status == 503 and "did not confirm" in body["error"]
    finally:
        server.confirm.set()
    busy = Server(max_pending_events=1, ack_timeout_s=5.0)
    try:
        busy.confirm.clear()
        results = []
        first = threading.Thread(target=lambda: results.append(busy.post(lines({"text": "satu"}))))
        first.start()
        for _ in range(50):
            if busy.source.pending_events:
                break
            threading.Event().wait(0.05)
        status, headers, body = busy.post(lines({"text": "dua"}))
        assert status == 429 and headers["Retry-After"] == "5" and "max_pending_events" in body["error"]
        busy.conforms(status, body)
        busy.confirm.set()
        first.join(10)
        assert results[0][0] == 202
    finally:
        busy.close()


FIELDS = st.sampled_from(["id", "url", "source", "fetched_at", "charset", "html", "html_base64", "text", "other"])
VALUES = st.one_of(st.text(max_size=30), st.integers(), st.none(), st.booleans(),
                   st.sampled_from(["2026-12-05T10:00:00Z", "yesterday", "<p>isi</p>"]))
EVENTS = st.dictionaries(FIELDS, VALUES, max_size=5)
LINES = st.one_of(EVENTS.map(lambda e: json.dumps(e).encode()), st.binary(max_size=40),
                  st.lists(st.integers(), max_size=3).map(lambda e: json.dumps(e).encode()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body_lines=st.lists(LINES, max_size=6),
       content_type=st.sampled_from(["application/x-ndjson", "application/json", "text/plain"]),
       token=st.sampled_from([TOKEN, None, "nope"]))
def test_any_request_gets_a_described_answer_and_a_202_only_for_valid_events(server, body_lines, content_type,
                                                                              token):
    body = body_lines[0] if content_type == "application/json" and body_lines else b"\n".join(body_lines)
    before = len(server.sent)
    status, _, answer = server.post(body, content_type, token)
    server.conforms(status, answer)
    if token != TOKEN:
        assert status == 401
    elif content_type == "text/plain":
        assert status == 415
    if status == 202:
        assert len(server.sent) - before == len(answer["ids"]) > 0
        assert all(e["id"] == i for e, i in zip(server.sent[before:], answer["ids"], strict=True))
    else:
        assert len(server.sent) == before


def test_pipeline_enrich_takes_pushed_events_and_answers_once_their_records_are_out(tmp_path):
    """`enrich ingest: seeds/`: the endpoint is read alongside the seeds (not before them: it never ends)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from pipeline.monitoring.http import free_port
    from tests.conftest import ROOT, SEEDS

    port = free_port("127.0.0.1")
    enrich = subprocess.Popen([sys.executable, "-m", "pipeline", "enrich", f"ingest:127.0.0.1:{port}", str(SEEDS),
                               "--no-progress"],
                              cwd=ROOT, env={**os.environ, "PIPELINE__INGEST__TOKEN": TOKEN},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline and enrich.poll() is None, enrich.stderr.read()
                time.sleep(0.2)
        text = sorted(SEEDS.glob("*.txt"))[0].read_text()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/ingest", method="POST",
                                         data=orjson.dumps({"text": text, "url": "https://pushed.example/1"}),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 202
            ids = json.loads(answer.read())["ids"]
    finally:
        enrich.send_signal(signal.SIGINT)
        out, _ = enrich.communicate(timeout=30)
    records = [orjson.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    pushed = [r for r in records if r["url"] == "https://pushed.example/1"]
    assert [r["id"] for r in pushed] == ids and pushed[0]["lang"]["code"] == "id"
    # the seeds were read while the endpoint waited (before the push: their thread started first)
    assert sorted(r["source"] for r in records if r is not pushed[0]) == sorted(str(p) for p in SEEDS.glob("*.txt"))
    assert enrich.returncode == 130  # stopped by the signal, between items
