"""The fetch worker SIGKILLed while it fetches: the URL events it had not committed come again,
their pages are fetched again under the same ids, and every page reaches the sink exactly once.

Real worker processes on the embedded broker, a local news site of four hosts (tests/news_site.py)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest

from pipeline import registry
from pipeline.records import derive_id, encode, host_of
from pipeline.sinks.jsonl import read_records
from tests.news_site import Host
from tests.streaming.conftest import running_pipeline
from tests.streaming.test_delivery import flowing, kill_and_restart, stalled

pytestmark = pytest.mark.integration

URLS = 160
HOSTS = 4


def fetched_uncommitted(pipeline, events, sent, hosts) -> tuple[set[str], dict]:
    """The URL events whose page the (frozen) fetch worker has fetched past its group's offsets
    committed on the broker: a restart must read, and fetch, each of them again."""
    from pipeline.monitoring.lag import OffsetsProbe

    probe = OffsetsProbe(pipeline.supervisor.bootstrap, timeout_s=10.0,
                         options=pipeline.settings.broker.client_options())
    try:
        committed = probe.committed(registry.consumer_group(pipeline.settings, "fetch"))
    finally:
        probe.close()
    topic = pipeline.settings.topics.urls
    held = {e["id"] for e, s in zip(events, sent, strict=True)
            if s.offset >= committed.get((topic, s.partition), 0)
            and hits_of(hosts, e["url"]) >= 1}
    return held, committed


def hits_of(hosts, url: str) -> int:
    return sum(host.hits.get("/article/" + url.rsplit("/article/", 1)[1], 0) for host in hosts
               if url.startswith(host.url + "/"))


def test_sigkill_of_the_fetch_worker_mid_stream_loses_and_doubles_no_page(tmp_path):
    hosts = [Host() for _ in range(HOSTS)]
    events = [{"id": f"url-{i:04d}", "url": f"{hosts[i % HOSTS].url}/article/{i // HOSTS}", "source": "test"}
              for i in range(URLS)]
    expected = {derive_id(e["id"], "", "fetched") for e in events}  # the id of each URL event's page
    url_of = {e["id"]: e["url"] for e in events}
    env = {"PIPELINE__STAGES__CHAIN": json.dumps(["fetch", "clean", "language", "entities", "dedup"]),
           "PIPELINE__STAGES__FETCH__PER_HOST_DELAY_S": "0.02",
           # no offset is committed by the timer in the first 10 minutes of a worker, so most pages
           # fetched before the kill lie past the committed offsets (a rebalance still commits; the
           # test reads what was committed from the broker while the worker is frozen)
           "PIPELINE__PROFILES__EMBEDDED__COMMIT_INTERVAL_S": "600.0"}
    try:
        with running_pipeline(tmp_path, **env) as pipeline:
            sent: list = []

            def feed():
                sent.extend(pipeline.send(pipeline.settings.topics.urls,
                                          [(host_of(e["url"]).encode(), encode(e)) for e in events], rate=80))

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            flowing(pipeline, more=20)  # some pages are through the whole chain before the kill
            feeder.join(60)
            assert len(sent) == URLS
            fetcher = next(w for w in pipeline.supervisor.workers if w.stage == "fetch")
            # the worker is frozen (SIGSTOP: it commits nothing more) while the broker is asked what
            # its group has committed; it is killed once enough fetched pages lie past that
            for _ in range(20):
                os.kill(fetcher.proc.pid, signal.SIGSTOP)
                held, committed = fetched_uncommitted(pipeline, events, sent, hosts)
                if len(held) >= 20:
                    break
                os.kill(fetcher.proc.pid, signal.SIGCONT)
                time.sleep(0.25)
            at = len(pipeline.tracker.snapshot().delivered)
            assert len(held) >= 20 and at < URLS, \
                f"the kill must come mid-stream ({at} delivered, {len(held)} fetched and uncommitted: {committed})"
            kill_and_restart(pipeline, "fetch")
            # done when every page is delivered, every URL event read again is fetched again, and
            # every page the fetch stage wrote (its first writes included) has its receipt; the
            # restarted worker may take its partitions after the pages from before the kill have
            # all reached the sink
            fetched_topic = registry.stage_topics(pipeline.settings, "fetch").target
            deadline = time.monotonic() + 120
            written_before = -1
            while True:
                missing = expected - set(pipeline.tracker.snapshot().delivered)
                not_again = {event_id for event_id in held if hits_of(hosts, url_of[event_id]) < 2}
                written = receipts_due = 0
                if not (missing or not_again):
                    written = len(pipeline.topic_messages(fetched_topic))
                    receipts_due = written - sum(pipeline.tracker.snapshot().receipts.values())
                    if receipts_due == 0 and written == written_before:
                        break
                    written_before = written
                assert time.monotonic() < deadline, \
                    (f"after 120 s: {len(missing)} pages missing, {len(not_again)} URL events past the committed "
                     f"offsets not fetched again, {receipts_due} of the {written} pages written without a "
                     f"receipt; {stalled(pipeline)}")
                time.sleep(0.5)
            letters = pipeline.dead_letters()
            receipts = pipeline.tracker.snapshot().receipts
    finally:
        for host in hosts:
            host.close()
    ids = [r["id"] for r in read_records(tmp_path / "enriched")]
    fetched_twice = sum(1 for e in events if hits_of(hosts, e["url"]) >= 2)
    print(f"\nfetch worker killed after {at} or more pages delivered, {len(held)} URL events fetched past the "
          f"committed offsets; {fetched_twice} pages fetched twice; "
          f"{sum(1 for n in receipts.values() if n > 1)} delivered twice (skipped by id)")
    assert len(ids) == len(set(ids)) == URLS and set(ids) == expected  # every page once
    assert letters == []
    assert Counter(r["url"] for r in read_records(tmp_path / "enriched")) == Counter(e["url"] for e in events)
