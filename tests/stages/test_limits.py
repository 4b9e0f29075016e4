"""Every stage's per-record limits (``stages.limits``): text size and time."""

from __future__ import annotations

import threading
import time

from pipeline.monitoring.metrics import WorkerMetrics
from pipeline.records import RECORD_SCHEMA
from pipeline.stages.base import Context, Stage


def record(rid: str, text: str = "Presiden bertemu menteri di Jakarta.") -> dict:
    return {"schema": RECORD_SCHEMA, "id": rid, "text": text, "trace": [], "url": "https://news.example/1",
            "fetched_at": "2026-12-01T00:00:00Z"}


class Spinning(Stage):
    """Works in Python for as long as the record's text says (seconds), or sleeps in C."""

    name = "spinning"

    def process(self, record, ctx):
        seconds = float(record["text"].split()[0]) if record["text"][0].isdigit() else 0.0
        if "sleep" in record["text"]:
            time.sleep(seconds)  # one C call: interrupted only when it returns
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
        record["spins"] = n
        return record


def test_a_record_past_the_time_limit_is_a_timeout_dead_letter_and_the_next_goes_through():
    stage = Spinning()
    stage.set_limits(max_text_chars=1000, time_limit_s=0.5)
    started = time.monotonic()
    slow, fast = stage.run_many([record("slow", "60 spin"), record("fast", "0 spin")], [Context("w")] * 2)
    took = time.monotonic() - started
    assert getattr(slow, "reason", None) == "timeout", slow
    assert isinstance(fast, dict) and fast["id"] == "fast"
    assert took < 3.0, took
    assert stage.stats.failed["timeout"] == 1 and stage.stats.records_out == 1
    # the interruption never reaches a later record
    later = stage.run_many([record(f"r{i}", "0.02 spin") for i in range(20)], [Context("w")] * 20)
    assert all(isinstance(r, dict) for r in later)


def test_a_text_over_the_size_limit_is_too_large_on_the_way_in_and_out():
    stage = Spinning()
    stage.set_limits(max_text_chars=100, time_limit_s=5)
    big_in, ok = stage.run_many([record("big", "0 " + "x" * 200), record("ok", "0 fine")], [Context("w")] * 2)
    assert big_in.reason == "too_large" and "100" in big_in.message
    assert ok["id"] == "ok"

    class Growing(Spinning):
        def process(self, record, ctx):
            record["text"] = record["text"] * 1000
            return record

    grower = Growing()
    grower.set_limits(max_text_chars=100, time_limit_s=5)
    (out,) = grower.run_many([record("grows", "0 abc")], [Context("w")])
    assert out.reason == "too_large"


def test_health_says_which_record_is_past_its_limit_while_a_c_call_holds_the_stage():
    stage = Spinning()
    stage.set_limits(max_text_chars=1000, time_limit_s=0.3)
    metrics = WorkerMetrics("spinning", "w", lambda: stage.stats)
    metrics.record_clock = stage.clock
    results = []
    worker = threading.Thread(target=lambda: results.extend(stage.run_many([record("stuck", "2 sleep")],
                                                                          [Context("w")])))
    worker.start()
    time.sleep(1.0)
    ok, text = metrics.health()
    assert not ok and "busy on record stuck" in text, text
    assert b"news_pipeline_record_busy_seconds" in metrics.exposition()
    worker.join(10)
    assert results[0].reason == "timeout"  # interrupted once the call returned
    assert metrics.health() == (True, "ok")
