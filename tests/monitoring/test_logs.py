"""Structured logs: JSON lines with stage and record id; text lines with the same context."""

import logging

import orjson

from pipeline.monitoring.logs import JsonLinesFormatter, TextFormatter, logging_config


def _record(**extra):
    record = logging.LogRecord("pipeline.worker", logging.INFO, __file__, 1, "dead letter: %s", ("boom",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_lines_carry_stage_record_id_and_reason():
    line = JsonLinesFormatter().format(_record(stage="clean", record_id="abc", reason="timeout"))
    entry = orjson.loads(line)
    assert entry["message"] == "dead letter: boom"
    assert entry["level"] == "info" and entry["logger"] == "pipeline.worker"
    assert (entry["stage"], entry["record_id"], entry["reason"]) == ("clean", "abc", "timeout")
    assert entry["time"][:2] == "20" and "\n" not in line


def test_json_lines_keep_the_exception():
    try:
        raise ValueError("bad page")
    except ValueError:
        import sys

        record = _record(stage="clean")
        record.exc_info = sys.exc_info()
    entry = orjson.loads(JsonLinesFormatter().format(record))
    assert "ValueError: bad page" in entry["exception"]


def test_text_lines_append_the_context():
    line = TextFormatter().format(_record(stage="dedup", record_id="r1"))
    assert line.endswith("dead letter: boom [stage=dedup record_id=r1]")
    assert not TextFormatter().format(_record()).endswith("]")


def test_the_default_level_hides_the_kafka_clients_reconnect_warnings():
    config = logging_config("warn", "json")
    assert config["root"]["level"] == logging.WARNING
    assert config["loggers"]["aiokafka"]["level"] == logging.ERROR
    assert logging_config("debug", "text")["loggers"]["kafka"]["level"] == logging.DEBUG
