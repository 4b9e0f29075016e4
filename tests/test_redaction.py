"""Secrets are masked by shape and by value in everything the pipeline writes (issue 15, rule 7)."""

import io
import logging

import orjson
import pytest

from pipeline import redaction
from pipeline.monitoring.logs import JsonLinesFormatter, TextFormatter
from pipeline.monitoring.metrics import WorkerMetrics
from pipeline.records import dead_letter
from pipeline.redaction import RedactingStream, redact


@pytest.fixture(autouse=True)
def nothing_remembered():
    redaction.forget_all()
    yield
    redaction.forget_all()


@pytest.mark.parametrize("text, expected", [
    ("postgresql://bob:s3cret@127.0.0.1:5432/test", "postgresql://bob:***@127.0.0.1:5432/test"),
    ("postgres:postgresql://bob:pa:ss@h/db#records", "postgres:postgresql://bob:***@h/db#records"),
    ("redis://:hunter22@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
    ("host=db user=bob password=s3cret dbname=news", "host=db user=bob password=*** dbname=news"),
    ("PASSWORD = 's3cret'", "PASSWORD = '***'"),
    ('{"sasl_password": "s3cret", "user": "bob"}', '{"sasl_password": "***", "user": "bob"}'),
    ("https://feeds.example/rss?token=abc123&lang=id", "https://feeds.example/rss?token=***&lang=id"),
    ("GET /x?lang=id&api_key=k-99&x=1", "GET /x?lang=id&api_key=***&x=1"),
    ("GET /x?sig=Zm9v#top", "GET /x?sig=***#top"),
])
def test_secrets_are_masked_by_their_shape(text, expected):
    assert redact(text) == expected
    assert redact(redact(text)) == expected  # masking twice changes nothing


@pytest.mark.parametrize("text", [
    "redis://127.0.0.1:6379/15",
    "http://127.0.0.1:9100/metrics",
    "postgresql://127.0.0.1:5432/test",
    "the password to the city's heart, said the mayor",
    "records out 60 (skipped 0)",
    "mailto:desk@example.com",
])
def test_texts_without_secrets_are_left_alone(text):
    assert redact(text) == text


def test_a_remembered_secret_is_masked_in_any_shape():
    redaction.remember_texts(["postgres:postgresql://bob:Tr0ub4dor-x@h/db"])
    assert redaction.secrets_in("postgresql://bob:Tr0ub4dor-x@h/db") == {"Tr0ub4dor-x"}
    said = "FATAL: authentication failed; tried 'Tr0ub4dor-x' (bob)"
    assert redact(said) == "FATAL: authentication failed; tried '***' (bob)"
    redaction.remember(["abc"])  # too short to mask by value: it would hide ordinary words
    assert redact("abc of news") == "abc of news"


def test_secrets_come_from_settings_and_the_environment(settings):
    import dataclasses

    settings = dataclasses.replace(
        settings, broker=dataclasses.replace(settings.broker, sasl_password="kafka-pw-1"),
        sink=dataclasses.replace(settings.sink, targets=["postgres:postgresql://u:sink-pw-2@h/db"]))
    redaction.remember_settings(settings)
    redaction.remember_environment({"DATABASE_URL": "postgresql://u:env-pw-3@h/db", "MY_TOKEN": "tok-4444",
                                    "HOME": "/root"})
    line = "kafka-pw-1 sink-pw-2 env-pw-3 tok-4444 /root"
    assert redact(line) == "*** *** *** *** /root"


def test_a_redacting_stream_masks_writes_and_passes_the_rest_through():
    inner = io.StringIO()
    stream = RedactingStream(inner)
    redaction.remember(["s3cret-value"])
    stream.write("connect postgresql://u:s3cret-value@h/db failed\n")
    stream.writelines(["again: s3cret-value\n"])
    assert inner.getvalue() == "connect postgresql://u:***@h/db failed\nagain: ***\n"
    assert stream.isatty() is False and stream.wrapped is inner


def test_dead_letters_log_lines_and_health_reasons_carry_no_secret():
    redaction.remember(["s3cret-value"])
    letter = dead_letter(stage="sink", reason="error", error="psycopg: postgresql://u:s3cret-value@h/db refused",
                         worker="w", payload=b'{"password": "s3cret-value"}')
    assert "s3cret-value" not in letter["error"] and "***" in letter["error"]

    record = logging.LogRecord("pipeline", logging.WARNING, __file__, 1, "cannot reach %s", ("s3cret-value",), None)
    record.stage = "sink"
    assert "s3cret-value" not in TextFormatter().format(record)
    assert orjson.loads(JsonLinesFormatter().format(record))["message"] == "cannot reach ***"

    metrics = WorkerMetrics("sink", "sink-0", lambda: None)
    metrics.retrying("sink postgres:postgresql://u:s3cret-value@h/db: connection refused")
    assert "s3cret-value" not in metrics.blocked_reason
