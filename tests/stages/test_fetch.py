"""The fetch stage against a local news site (tests/news_site.py): pages, redirects, the troubles
a crawler meets, robots.txt, politeness per host and the seen-set; no broker."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys

import orjson
import pytest

from pipeline.config import FetchSettings
from pipeline.records import utc_now
from pipeline.stages.base import Context
from pipeline.stages.fetch import FetchStage
from tests.conftest import ROOT
from tests.news_site import Host, article, news_pages

CHAIN = ["clean", "language", "entities", "dedup"]
SETTINGS = FetchSettings(per_host_concurrency=2, per_host_delay_s=0.15, timeout_s=1.5, retries=2,
                         retry_base_s=0.1, retry_max_s=5.0, max_bytes=1_000_000, seen_store="memory")


@pytest.fixture
def site():
    hosts = [Host(), Host(robots="User-agent: *\nDisallow: /private/\nCrawl-delay: 0.3\n")]
    yield hosts
    for host in hosts:
        host.close()


def run(stage, events):
    ctx = Context("fetch-test", utc_now())
    return stage.run_many([dict(e) for e in events], [ctx] * len(events))


def outcome(result):
    return result.reason if isinstance(result, Exception) else "page"


def test_pages_troubles_and_robots_each_get_their_outcome(site):
    a, b = site
    urls = {
        f"{a.url}/article/1": "page", f"{a.url}/moved/2": "page", f"{a.url}/flaky": "page",
        f"{a.url}/busy": "page", f"{a.url}/nowhere": "http_404", f"{a.url}/overloaded": "http_5xx",
        f"{a.url}/hang": "timeout", f"{a.url}/huge": "too_large", f"{a.url}/report.pdf": "not_html",
        f"{a.url}/private/secret": "robots_disallowed", f"{b.url}/article/3": "page", f"{b.url}/article/4": "page",
        "ftp://example.com/x": "invalid_event",
    }
    stage = FetchStage(SETTINGS)
    try:
        results = run(stage, [{"url": url} for url in urls])
    finally:
        stage.close()
    assert {url: outcome(r) for url, r in zip(urls, results, strict=True)} == urls
    moved = results[1]
    assert moved["url"] == f"{a.url}/article/2" and moved["first_url"] == f"{a.url}/moved/2"
    assert base64.b64decode(moved["html_base64"]) == article(2) and moved["charset"] == "utf-8"
    assert moved["trace"][0]["stage"] == "fetch" and len(moved["id"]) == 32
    assert a.hits["/flaky"] == 3 and a.hits["/busy"] == 2 and a.hits["/robots.txt"] == 1
    assert a.hits["/private/secret"] == 0  # robots.txt said no: never asked
    # politeness: never more than 2 at once per host, request starts at least the delay apart
    # (host b asks for a 0.3 s crawl-delay in its robots.txt)
    for host, delay in ((a, SETTINGS.per_host_delay_s), (b, 0.3)):
        starts = host.page_starts()
        assert host.max_in_flight <= 2
        assert min(later - earlier for earlier, later in zip(starts, starts[1:], strict=False)) >= delay - 0.01


def test_a_url_is_not_fetched_twice_within_the_horizon_unless_it_changed(site):
    a, _ = site
    stage = FetchStage(SETTINGS)
    try:
        first = run(stage, [{"url": f"{a.url}/article/5"}])
        again = run(stage, [{"url": f"{a.url}/article/5"}, {"url": f"{a.url}/article/5", "changed": True}])
    finally:
        stage.close()
    assert outcome(first[0]) == "page" and [outcome(r) for r in again] == ["already_fetched", "page"]
    assert a.hits["/article/5"] == 2


def test_the_same_url_event_delivered_again_is_fetched_again_under_the_same_id(site):
    """A fetch worker killed after fetching, before its offsets were committed: the URL event comes
    again and must not be taken for a repeat (its page would be lost)."""
    a, _ = site
    event = {"url": f"{a.url}/article/6", "id": "url-event-1"}
    stage = FetchStage(SETTINGS)
    try:
        first = run(stage, [event])
        redelivered = run(stage, [event])
        other = run(stage, [{"url": f"{a.url}/article/6", "id": "url-event-2"}])
    finally:
        stage.close()
    assert outcome(first[0]) == outcome(redelivered[0]) == "page" and first[0]["id"] == redelivered[0]["id"]
    assert outcome(other[0]) == "already_fetched"


def test_a_robots_txt_that_fails_disallows_the_host_for_now(site):
    a, _ = site
    a.robots = None  # the handler below answers 503 for robots.txt
    stage = FetchStage(dataclasses.replace(SETTINGS, retries=0))
    original = a.server.RequestHandlerClass.answer

    def answer(handler, path, hits):
        if path == "/robots.txt":
            return handler.send(503, b"down")
        return original(handler, path, hits)

    a.server.RequestHandlerClass.answer = answer
    try:
        results = run(stage, [{"url": f"{a.url}/article/1"}])
    finally:
        stage.close()
    assert outcome(results[0]) == "robots_disallowed" and "RFC 9309" in str(results[0])
    assert a.hits["/article/1"] == 0


def test_pipeline_enrich_fetches_a_list_of_urls(site, tmp_path):
    a, _ = site
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# today's links\n{a.url}/article/0\n{a.url}/moved/1\n{a.url}/nowhere\n")
    env = {**os.environ, "PIPELINE__STAGES__CHAIN": json.dumps(["fetch", *CHAIN]),
           "PIPELINE__STAGES__FETCH__PER_HOST_DELAY_S": "0.05"}
    result = subprocess.run([sys.executable, "-m", "pipeline", "enrich", f"urls:{listing}", "--no-progress"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    letters = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [r["url"] for r in records] == [f"{a.url}/article/0", f"{a.url}/article/1"]
    assert records[1]["first_url"] == f"{a.url}/moved/1" and records[0]["first_url"] is None
    for record, page in zip(records, news_pages()[:2], strict=True):  # the pages' main text, from the fetched bytes
        gold = " ".join(page["gold_text"].split())
        text = " ".join(record["text"].split())
        assert record["title"] and gold[:80] in text and gold[-80:] in text, (gold[:80], text[:300])
    assert [[t["stage"] for t in r["trace"]] for r in records] == [["fetch", *CHAIN]] * 2
    assert [(d["stage"], d["reason"]) for d in letters] == [("fetch", "http_404")]
    # without the fetch stage in the chain, URLs are refused in one line
    plain = subprocess.run([sys.executable, "-m", "pipeline", "enrich", f"urls:{listing}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2 and "fetch" in plain.stderr and len(plain.stderr.strip().splitlines()) == 1
