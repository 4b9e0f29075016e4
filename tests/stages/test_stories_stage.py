"""The stories stage as the pipeline builds it (no broker): what it reads of a record, its
configuration, and its place in the chain."""

from __future__ import annotations

import pytest

from pipeline import config, registry
from pipeline.config import ConfigError
from pipeline.stages import build_stage
from pipeline.stages.base import Context
from pipeline.stages.stories import article_of
from tests.conftest import CONFIG

CHAIN = '["clean", "language", "entities", "dedup", "stories"]'


def test_what_the_stage_reads_of_a_record():
    record = {"id": "r1", "title": "Banjir", "text": "Hujan deras.", "url": "https://news.example/a/1",
              "published": "2026-11-30T08:00:00+07:00", "fetched_at": "2026-12-05T10:00:00Z", "lang": {"code": "id"},
              "dedup": {"status": "near_duplicate", "duplicate_of": "r0"},
              "entity_summary": [{"canonical": "Jakarta", "label": "LOC", "count": 2},
                                 {"canonical": "Joko Widodo", "label": "PER", "count": 1},
                                 {"canonical": "Senin", "label": "DATE", "count": 1}]}
    a = article_of(record)
    assert (a.id, a.title, a.lang, a.outlet, a.duplicate_of) == ("r1", "Banjir", "id", "news.example", "r0")
    assert a.entities == ("Jakarta", "Joko Widodo") and a.when.isoformat() == "2026-11-30T08:00:00+07:00"
    assert a.mentions == (2, 1)  # the summary's counts (no summary: the mentions of ``entities``)
    mentions = [{"text": "Jokowi", "canonical": "Joko Widodo", "label": "PER"}, {"text": "Widodo", "label": "PER"},
                {"text": "Jokowi", "canonical": "Joko Widodo", "label": "PER"}, {"text": "Senin", "label": "DATE"}]
    b = article_of({**record, "entity_summary": [], "entities": mentions})
    assert (b.entities, b.mentions) == (("Joko Widodo", "Widodo"), (2, 1))
    # no publication date: the time is unknown (the fetch time is not the article's)
    assert article_of({**record, "published": "not a date"}).when is None
    assert article_of({"id": "r2", "text": "x", "site": "Kompas.com"}).outlet == "Kompas.com"


def test_the_chain_with_stories_has_its_topics_and_its_stage_builds_with_its_options():
    settings = config.load(CONFIG, env={"PIPELINE__STAGES__CHAIN": CHAIN,
                                        "PIPELINE__STAGES__STORIES__OPTIONS": "{ quiet_days = 5.0 }"})
    assert registry.stage_topics(settings, "stories").source == "pages.dedup"
    assert registry.output_topic(settings, "stories") == settings.topics.enriched
    assert settings.topics.stories in registry.topic_names(settings)
    stage = build_stage("stories", settings, dedup_store="memory")
    try:
        assert stage.assigner.options.quiet_days == 5.0
        first = stage.run({"schema": "news-pipeline/record/1", "id": "a", "text": "Gempa di Cianjur.",
                           "fetched_at": "2026-12-05T10:00:00Z", "trace": []}, Context(worker="t"))
        assert first["story"]["id"] == "a" and first["story"]["status"] == "started"
    finally:
        stage.close()


def test_wrong_story_settings_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="stages.stories.options"):
        build_stage("stories", config.load(CONFIG, env={"PIPELINE__STAGES__CHAIN": CHAIN,
                                                         "PIPELINE__STAGES__STORIES__OPTIONS": "{ nonsense = 1 }"}),
                    dedup_store="memory")
    with pytest.raises(ConfigError, match="private to one process"):
        config.load(CONFIG, env={"PIPELINE__STAGES__CHAIN": CHAIN, "PIPELINE__STAGES__STORIES__STORE": "memory",
                                 "PIPELINE__RUN__WORKERS": "{ stories = 3 }"})


def test_an_unreachable_story_state_is_a_temporary_failure_not_a_dead_letter():
    from pipeline.records import TemporaryFailure

    settings = config.load(CONFIG, env={"PIPELINE__STAGES__CHAIN": CHAIN})
    stage = build_stage("stories", settings, dedup_store="redis://127.0.0.1:1/0")  # nothing listens there
    try:
        with pytest.raises(TemporaryFailure):
            stage.process({"id": "a", "text": "Gempa di Cianjur.", "title": "Gempa"}, Context(worker="t"))
        with pytest.raises(TemporaryFailure):  # the worker retries the batch: nothing passed on, nothing dead-lettered
            stage.run_many([{"schema": "news-pipeline/record/1", "id": "b", "text": "Gempa.", "trace": [],
                             "fetched_at": "2026-12-05T10:00:00Z"}], [Context(worker="t")])
    finally:
        stage.close()


def test_a_state_other_workers_keep_changing_is_retried_not_dead_lettered():
    """When every commit loses to another worker's (the version moved each time), the stage gives up
    for now with a TemporaryFailure: the worker retries the batch; no record becomes a dead letter."""
    from pipeline.records import TemporaryFailure
    from pipeline.stages.stories.state import MemoryStoryState

    class Overtaken(MemoryStoryState):
        def commit(self, version, change):
            self.commits_tried = getattr(self, "commits_tried", 0) + 1
            return False  # another worker committed first, every time

    settings = config.load(CONFIG, env={"PIPELINE__STAGES__CHAIN": CHAIN, "PIPELINE__STAGES__STORIES__STORE": "memory"})
    stage = build_stage("stories", settings)
    stage.assigner.state = Overtaken()
    record = {"schema": "news-pipeline/record/1", "id": "b", "title": "Gempa di Cianjur", "trace": [],
              "text": "Gempa mengguncang Cianjur pada Senin siang.", "fetched_at": "2026-12-05T10:00:00Z"}
    try:
        with pytest.raises(TemporaryFailure, match="kept changing"):
            stage.run_many([dict(record)], [Context(worker="t")])
        assert stage.assigner.state.commits_tried >= 2 and not stage.stats.failed
    finally:
        stage.close()
