from datetime import UTC, datetime

import pytest

from pipeline.records import TemporaryFailure, encode
from pipeline.stages.base import Context, Stage
from pipeline.stages.runner import Origin, handle_message, run_records

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Exploding(Stage):
    name = "explode"

    def process(self, record, ctx):
        raise ZeroDivisionError("boom")


class Unavailable(Stage):
    name = "unavailable"

    def process(self, record, ctx):
        raise TemporaryFailure("index down")


RECORD = {"schema": "news-pipeline/record/1", "id": "r1", "text": "t", "trace": []}


def test_exception_in_stage_code_becomes_a_dead_letter_with_the_payload():
    stage = Exploding()
    outcome = handle_message(stage, encode(RECORD), b"r1", NOW, "w", Origin("topic", 2, 7))
    letter = outcome.dead_letter
    assert outcome.record is None
    assert letter["reason"] == "stage_error" and "ZeroDivisionError: boom" in letter["error"]
    assert (letter["id"], letter["topic"], letter["partition"], letter["offset"]) == ("r1", "topic", 2, 7)
    assert letter["payload"] == encode(RECORD).decode()
    assert stage.stats.failed["stage_error"] == 1


def test_temporary_failure_is_not_a_dead_letter():
    with pytest.raises(TemporaryFailure):
        run_records(Unavailable(), [dict(RECORD)], [Context(worker="w")])
