"""A stage added by configuration alone (``tests/toy_stage.py``, nothing changed under
``pipeline/``) runs in `pipeline enrich` and in real streaming workers, with its own topic,
consumer group, metrics and place in `pipeline status`."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from pipeline import config, registry
from pipeline.monitoring.scrape import scrape
from pipeline.sources.files import read_paths
from tests.conftest import CONFIG, ROOT, SEEDS
from tests.streaming.conftest import running_pipeline
from tests.toy_stage import ENV

pytestmark = pytest.mark.integration
CHAIN = ["clean", "words", "language", "entities", "dedup"]


def test_a_stage_from_outside_the_package_is_derived_everywhere():
    settings = config.load(CONFIG, env=ENV)
    assert registry.roles(settings) == [*CHAIN, "sink"]
    assert registry.stage_topics(settings, "words") == registry.StageTopics("pages.cleaned", "pages.words")
    assert registry.stage_topics(settings, "language").source == "pages.words"
    assert "pages.words" in registry.topic_names(settings)
    assert registry.consumer_group(settings, "words") == "news-pipeline-words"


def test_pipeline_enrich_runs_a_plugin_stage_in_its_place(tmp_path):
    short = tmp_path / "short.jsonl"
    short.write_bytes(orjson.dumps({"id": "short", "text": "Too few words here."}) + b"\n")
    result = subprocess.run([sys.executable, "-m", "pipeline", "enrich", str(SEEDS), str(short), "--no-progress"],
                            cwd=ROOT, env={**os.environ, **ENV}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    letters = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert len(records) == 5 and all(r["word_count"] > 150 for r in records)
    assert all([t["stage"] for t in r["trace"]] == CHAIN for r in records)
    assert [(d["stage"], d["reason"], d["id"]) for d in letters] == [("words", "too_short", "short")]


def test_real_workers_run_a_plugin_stage_between_clean_and_language(tmp_path):
    with running_pipeline(tmp_path, **ENV) as pipeline:
        items = list(read_paths([str(SEEDS)]))
        sent, _ = pipeline.replay_items(items)
        pipeline.wait(sent)
        records = pipeline.sink_records()
        pids = pipeline.worker_pids()
        words_url = next(f"http://{w.host}:{w.serving_port()}" for w in pipeline.supervisor.workers
                         if w.stage == "words")
        metrics = scrape(words_url)
        topics = pipeline.topic_messages("pages.words")
        # `pipeline status` in a shell without the run's settings takes the chain from the run file
        shell = {k: v for k, v in os.environ.items() if k not in ENV}
        status = subprocess.run([sys.executable, "-m", "pipeline", "status", "--once", "--json", "--window", "1"],
                                cwd=ROOT, env=shell, capture_output=True, text=True, timeout=60)
    assert sorted(pids) == sorted(f"{s}-0" for s in [*CHAIN, "sink"])
    for s in sent:
        (record,) = records[s.id]
        assert record["word_count"] > 150
        assert [t["stage"] for t in record["trace"]] == CHAIN
        assert int(record["trace"][1]["worker"].rsplit(":", 1)[1]) == pids["words-0"]
    assert len(topics) == 5
    assert metrics.stage == "words" and metrics.records_out == 5
    stages = orjson.loads(status.stdout)["stages"]
    assert [s["stage"] for s in stages] == [*CHAIN, "sink"], status.stderr
    assert next(s for s in stages if s["stage"] == "words")["lag"] == 0
