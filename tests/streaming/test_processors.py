"""The worker's batch processors, without a broker."""

import orjson

from pipeline.records import TemporaryFailure, encode
from pipeline.sinks.base import Sink
from pipeline.sinks.jsonl import read_records
from pipeline.stages.base import Stage
from pipeline.streaming.worker import Item, SinkProcessor, StageProcessor

RECORD = {"schema": "news-pipeline/record/1", "id": "r1", "text": "t", "trace": []}


def item(value, key=b"r1", offset=0):
    return Item(key, value, 1_700_000_000.0, "pages.in", 0, offset)


class FlakyThenFine(Stage):
    name = "language"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def process(self, record, ctx):
        self.calls += 1
        if self.calls == 2:
            raise TemporaryFailure("down once")
        record["lang"] = {"code": "id"}
        return record


def test_stage_processor_routes_records_and_dead_letters_and_retries_a_temporary_failure(settings):
    proc = StageProcessor(settings, FlakyThenFine(), "w")
    batch = [item(encode(RECORD)), item(encode({**RECORD, "id": "r2"}), b"r2", 1), item(b"{bad", b"k", 2)]
    outputs, remaining = proc.process(batch)
    assert outputs == [] and remaining == batch  # the whole batch again: nothing half-done
    outputs, remaining = proc.process(remaining)
    assert remaining == []
    assert [(o.topic, o.key) for o in outputs] == [("pages.language", b"r1"), ("pages.language", b"r2"),
                                              ("pages.deadletter", b"k")]
    assert orjson.loads(outputs[2][2])["reason"] == "malformed_json"


def test_sink_processor_writes_then_emits_receipts(settings, tmp_path):
    proc = SinkProcessor(settings, [f"jsonl:{tmp_path}"], "w")
    outputs, remaining = proc.process([item(encode(RECORD)), item(b"[]", b"bad", 1), item(encode(RECORD), offset=2)])
    assert remaining == []
    topics = [o.topic for o in outputs]
    assert [o.source_partition for o in outputs] == [0, 0, 0]
    assert topics == ["pages.deadletter", "pages.delivered", "pages.delivered"]
    assert orjson.loads(outputs[1][2])["id"] == "r1"
    assert [r["id"] for r in read_records(tmp_path, include_open=True)] == ["r1"]
    # the part file is finished on close only when every offset in it is committed
    proc.runner.close({0: 2})
    assert list(read_records(tmp_path)) == []
    proc = SinkProcessor(settings, [f"jsonl:{tmp_path}"], "w")
    proc.process([item(encode(RECORD), offset=2)])
    proc.runner.close({0: 3})
    assert [r["id"] for r in read_records(tmp_path)] == ["r1"]


def test_sink_processor_retries_when_the_sink_is_unavailable(settings, tmp_path):
    proc = SinkProcessor(settings, [f"jsonl:{tmp_path}"], "w")

    class Down(Sink):
        name = "down"

        def write(self, records):
            raise TemporaryFailure("db down")

    proc.runner.sinks.append(Down())
    batch = [item(encode(RECORD))]
    outputs, remaining = proc.process(batch)
    assert outputs == [] and remaining == batch


def test_processors_feed_the_worker_metrics(settings, tmp_path):
    from pipeline.monitoring.metrics import WorkerMetrics
    from pipeline.monitoring.scrape import parse
    from pipeline.records import iso, utc_now
    from pipeline.stages.language import LanguageStage

    metrics = WorkerMetrics("language", "w", lambda: proc.stats, record_metrics=LanguageStage.record_metrics)
    proc = StageProcessor(settings, FlakyThenFine(), "w", metrics)
    proc.process([item(encode(RECORD))])
    proc.process([item(encode({**RECORD, "id": "r2"}), b"r2", 1)])  # fails temporarily: retried
    s = parse("u", metrics.exposition().decode(), 0)
    assert s.languages == {"id": 1} and s.processing.count == 1 and s.retries == 1
    assert s.records_in == 1 and s.records_out == 1

    sink_metrics = WorkerMetrics("sink", "w", lambda: sink.stats)
    sink = SinkProcessor(settings, [f"jsonl:{tmp_path}"], "w", sink_metrics)
    outputs, _ = sink.process([item(encode({**RECORD, "ingested_at": iso(utc_now())}))])
    s = parse("u", sink_metrics.exposition().decode(), 0)
    assert s.end_to_end.count == 1 and s.records_out == 1
    assert orjson.loads(outputs[0][2])["latency_ms"] >= 0
