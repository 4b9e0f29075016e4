"""A stage added by configuration alone (``tests/toy_stage.py``, nothing changed under
``pipeline/``) runs in `pipeline enrich` and in real streaming workers, with its own topic,
consumer group, metrics and place in `pipeline status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import orjson
import pytest

from pipeline import config, registry
from pipeline.monitoring.scrape import scrape
from tests.conftest import CONFIG, ROOT, SEEDS
from tests.toy_sink import ENV as SINK_ENV
from tests.toy_sink import rows
from tests.toy_source import ENV as SOURCE_ENV
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


@pytest.mark.parametrize(("options", "error"), [
    ('{words = {min_words = "many"}}', "stages.plugin_options.words.min_words must be a number, got 'many'"),
    ("{words = {min_word = 5}}", "unknown key(s) in [stages.plugin_options.words]: min_word"),
])
def test_a_plugin_stage_s_options_are_checked_against_what_it_declares(options, error):
    for command in (["enrich", str(SEEDS), "--no-progress"], ["run", "--replay", str(SEEDS), "--no-dashboard"]):
        result = subprocess.run([sys.executable, "-m", "pipeline", *command], cwd=ROOT, capture_output=True,
                                env={**os.environ, **ENV, "PIPELINE__STAGES__PLUGIN_OPTIONS": options},
                                text=True, timeout=120)
        assert (result.returncode, result.stderr.strip()) == (2, f"pipeline: configuration error: {error}"), command


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


def test_pipeline_run_with_a_source_a_stage_and_a_sink_of_your_own(tmp_path):
    """`pipeline run --replay count:12` with the toy source, the toy stage and the toy sink beside
    the JSONL sink (configuration only): every record goes through the words worker, which has its
    own topic, metrics and status row, and reaches both sinks once."""
    import signal

    from pipeline.sinks.jsonl import read_records
    from tests.streaming.test_faults import http_get, run_env, wait_for_workers, wait_until

    env = {**run_env(tmp_path), **ENV, **SOURCE_ENV, **SINK_ENV}
    run = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--replay", "count:12", "--sink",
                            f"jsonl:{tmp_path / 'out'}", "--sink", f"tally:{tmp_path / 'tally.sqlite'}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        info = wait_for_workers(tmp_path, run, roles=len(CHAIN) + 1)
        state_url = info["dashboard_url"].rstrip("/") + "/api/state"
        wait_until(lambda: (json.loads(http_get(state_url)[1]).get("data") or {}).get("delivered") == 12, 120,
                   "the dashboard has seen 12 receipts")
        words = next(w for w in info["workers"] if w["stage"] == "words")
        metrics = scrape(words["metrics_url"])
        exposition = http_get(words["metrics_url"] + "/metrics")[1]
        # `pipeline status` in a shell without the run's settings takes the chain from the run file
        shell = {k: v for k, v in env.items() if k not in ENV and k not in SINK_ENV}
        status = subprocess.run([sys.executable, "-m", "pipeline", "status", "--once", "--json", "--window", "1"],
                                cwd=ROOT, env=shell, capture_output=True, text=True, timeout=60)
    finally:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=90)
    assert run.returncode == 0, err
    records = list(read_records(tmp_path / "out"))
    assert sorted(r["url"] for r in records) == sorted(f"https://news.example/{i}" for i in range(1, 13))
    for record in records:
        assert [t["stage"] for t in record["trace"]] == CHAIN
        assert int(record["trace"][1]["worker"].rsplit(":", 1)[1]) == words["pid"]
        assert record["word_count"] >= 50
    tallied = rows(str(tmp_path / "tally.sqlite"))
    assert sorted((r[0], r[1]) for r in tallied) == sorted((r["id"], r["url"]) for r in records)
    assert metrics.stage == "words" and metrics.records_out == 12
    assert 'news_pipeline_words_per_record_count{stage="words"} 12.0' in exposition  # its declared metric
    stages = orjson.loads(status.stdout)["stages"]
    assert [s["stage"] for s in stages] == [*CHAIN, "sink"], status.stderr
    assert "records out     12" in out, out
