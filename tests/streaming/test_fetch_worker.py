"""The fetch worker SIGKILLed while it fetches: the URL events it had not committed come again,
their pages are fetched again under the same ids, and every page reaches the sink exactly once.

Real worker processes on the embedded broker, a local news site of four hosts (tests/news_site.py)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from pipeline.records import derive_id, encode, host_of
from pipeline.sinks.jsonl import read_records
from tests.news_site import Host
from tests.streaming.conftest import running_pipeline
from tests.streaming.test_delivery import flowing, kill_and_restart, stalled

pytestmark = pytest.mark.integration

URLS = 160
HOSTS = 4


def uncommitted(metrics_url: str, topic: str) -> float:
    """URL events a worker has read past its committed offsets (its /metrics)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    position, committed = {}, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("topic") != topic:
                continue
            if sample.name == "news_pipeline_consumer_position":
                position[sample.labels["partition"]] = sample.value
            elif sample.name == "news_pipeline_consumer_committed_offset":
                committed[sample.labels["partition"]] = sample.value
    return sum(max(0.0, p - committed.get(k, 0.0)) for k, p in position.items())


def test_sigkill_of_the_fetch_worker_mid_stream_loses_and_doubles_no_page(tmp_path):
    hosts = [Host() for _ in range(HOSTS)]
    events = [{"id": f"url-{i:04d}", "url": f"{hosts[i % HOSTS].url}/article/{i // HOSTS}", "source": "test"}
              for i in range(URLS)]
    expected = {derive_id(e["id"], "", "fetched") for e in events}  # the id of each URL event's page
    env = {"PIPELINE__STAGES__CHAIN": json.dumps(["fetch", "clean", "language", "entities", "dedup"]),
           "PIPELINE__STAGES__FETCH__PER_HOST_DELAY_S": "0.02",
           # no offset is committed in the first 10 minutes of a worker: the kill, a few seconds into
           # the stream, leaves every URL event fetched so far uncommitted, so they all come again
           # (at 30 s, a loaded machine's start-up took long enough for a commit to land between
           # the count of uncommitted events and the kill: 1 failure, nothing fetched twice)
           "PIPELINE__PROFILES__EMBEDDED__COMMIT_INTERVAL_S": "600.0"}
    try:
        with running_pipeline(tmp_path, **env) as pipeline:
            sent: list = []

            def feed():
                sent.extend(pipeline.send(pipeline.settings.topics.urls,
                                          [(host_of(e["url"]).encode(), encode(e)) for e in events], rate=40))

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            at = flowing(pipeline, more=40)
            fetcher = next(w for w in pipeline.supervisor.workers if w.stage == "fetch")
            held = uncommitted(fetcher.info()["metrics_url"], pipeline.settings.topics.urls)
            assert held >= 20 and at < URLS, f"the kill must come mid-stream ({at} delivered, {held} uncommitted)"
            kill_and_restart(pipeline, "fetch")
            feeder.join(60)
            assert len(sent) == URLS
            deadline = time.monotonic() + 120
            while not expected <= set(pipeline.tracker.snapshot().delivered):
                assert time.monotonic() < deadline, f"pages missing after 120 s; {stalled(pipeline)}"
                time.sleep(0.2)
            letters = pipeline.dead_letters()
            receipts = pipeline.tracker.snapshot().receipts
    finally:
        for host in hosts:
            host.close()
    ids = [r["id"] for r in read_records(tmp_path / "enriched")]
    fetched_twice = sum(1 for host in hosts for path, n in host.hits.items() if path.startswith("/article/") and n > 1)
    print(f"\nfetch worker killed after {at} or more pages delivered; {fetched_twice} pages fetched twice; "
          f"{sum(1 for n in receipts.values() if n > 1)} delivered twice (skipped by id)")
    assert len(ids) == len(set(ids)) == URLS and set(ids) == expected  # every page once
    assert letters == []
    assert Counter(r["url"] for r in read_records(tmp_path / "enriched")) == Counter(e["url"] for e in events)
    assert fetched_twice > 0  # the kill really made URL events come again
