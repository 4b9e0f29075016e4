"""A stage that lives outside ``pipeline/``: the tests register it by configuration only
(``stages.plugins``, ``stages.chain``) and run it through `pipeline enrich` and real workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.records import BadInput
from pipeline.stage_metrics import SizeOf
from pipeline.stages.base import Context, Stage


class WordCountStage(Stage):
    """Counts the words of the text; a text with fewer than ``min_words`` is a dead letter."""

    name = "words"
    # its worker exports news_pipeline_words_per_record (a histogram of record.word_count)
    record_metrics = (SizeOf("words_per_record", "Words in the text of a record.", "word_count",
                             (50, 100, 200, 400, 800, 1600)),)

    @dataclass(frozen=True)
    class Options:  # [stages.plugin_options.words], checked like every section of the configuration
        min_words: int = 0

    def __init__(self, options: Options):
        super().__init__()
        self.min_words = options.min_words

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        words = len(record["text"].split())
        if words < self.min_words:
            raise BadInput("too_short", f"{words} words; the words stage wants {self.min_words}")
        record["word_count"] = words
        self.stats.extra["words"] += words
        return record


#: what makes the pipeline run it between clean and language (as PIPELINE__ variables)
ENV = {"PIPELINE__STAGES__PLUGINS": '{words = "tests.toy_stage:WordCountStage"}',
       "PIPELINE__STAGES__PLUGIN_OPTIONS": "{words = {min_words = 50}}",
       "PIPELINE__STAGES__CHAIN": '["clean", "words", "language", "entities", "dedup"]'}
