"""Continuous inputs of one running `pipeline run` whose chain starts with the fetch stage:
`--replay urls:FILE` and `--feeds FILE` (pages of a local news site, listed or found in its RSS
feed, fetched by the fetch worker), `ingest:` (events
POSTed to /ingest reach the sink under the ids of the 202) and `pipeline watch DIR` (files dropped
into the folder reach the sink once each, also across a restart of the watcher; files still being
written wait). A story the feed lists is updated on the site: its second fetch is a new version.
`pipeline status` and the dashboard (its data, and the page in a real headless Chromium) show the
fetcher and the update."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from pipeline.monitoring.http import free_port
from pipeline.sinks.jsonl import read_records
from tests.conftest import ROLES, ROOT, SEEDS
from tests.news_site import Host
from tests.streaming.test_faults import run_env, wait_for_workers, wait_until
from tests.streaming.test_monitoring import CHROMIUM, CHROMIUM_ARGS, _chromium_or_skip

TOKEN = "ingest-test-token"

pytestmark = pytest.mark.integration


def drop(folder, name: str, data: bytes) -> None:
    """As a crawler writes: to an in-progress name first, then renamed."""
    part = folder / f"{name}.part"
    part.write_bytes(data)
    part.rename(folder / name)


def watch(tmp_path, inbox) -> subprocess.Popen:
    env = {**run_env(tmp_path), "PIPELINE__SOURCES__WATCH_STATE_DIR": str(tmp_path / "watch-state"),
           "PIPELINE__SOURCES__WATCH_SETTLE_S": "0.5", "PIPELINE__SOURCES__WATCH_POLL_S": "0.2"}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "watch", str(inbox)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stopped(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def push(port: int, events: list[dict]) -> tuple[int, dict]:
    import json
    import urllib.request

    body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    request = urllib.request.Request(f"http://127.0.0.1:{port}/ingest", data=body, method="POST", headers={
        "Content-Type": "application/x-ndjson", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.status, json.loads(answer.read())


def test_fetched_pushed_and_dropped_pages_reach_the_sink_once_each(tmp_path):
    import urllib.request

    seeds = sorted(SEEDS.glob("*.txt"))
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    site = Host()
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{site.url}/article/0\n{site.url}/moved/1\n{site.url}/nowhere\n")
    site.feed_items = [2, 3]
    site.feed_stories = [0]
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(f"{site.url}/feed.xml\n")
    port = free_port("127.0.0.1")
    chain = '["fetch", "clean", "language", "entities", "dedup"]'
    run = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--sink", f"jsonl:{out}",
                            "--replay", f"urls:{listing}", f"ingest:127.0.0.1:{port}", "--feeds", str(feeds)], cwd=ROOT,
                           env={**run_env(tmp_path), "PIPELINE__INGEST__TOKEN": TOKEN, "PIPELINE__STAGES__CHAIN": chain,
                                "PIPELINE__STAGES__FETCH__PER_HOST_DELAY_S": "0.1",
                                "PIPELINE__SOURCES__FEEDS_STATE_DIR": str(tmp_path / "feeds-state"),
                                "PIPELINE__SOURCES__FEEDS_MIN_INTERVAL_S": "0.5"},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ingest_up():  # the sources start once every worker is ready: on a busy machine, a while after
        assert run.poll() is None, run.communicate()
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
        except OSError:
            return False

    try:
        info = wait_for_workers(tmp_path, run, roles=len(ROLES) + 1)
        wait_until(ingest_up, 180, "POST /ingest answers (after the URLs were sent)")
        pushed = [{"text": seed.read_text(), "url": f"https://pushed.example/{n}"} for n, seed in enumerate(seeds[:2])]
        status, answer = push(port, pushed)
        assert status == 202 and len(answer["ids"]) == 2
        watcher = watch(tmp_path, inbox)
        for seed in seeds[:3]:
            drop(inbox, seed.name, seed.read_bytes())
        (inbox / "half.txt.part").write_bytes(b"a file still being written")
        wait_until(lambda: len(list(read_records(out, include_open=True))) >= 10, 90,
                   "5 fetched, 2 pushed, 3 files delivered")
        site.revisions[0] = 1  # the story gains a paragraph, and its feed entry a new update time
        assert "3 files read" in stopped(watcher)
        for seed in seeds[3:]:  # while nobody watches
            drop(inbox, seed.name, seed.read_bytes())
        watcher = watch(tmp_path, inbox)  # reads only what it has not read
        wait_until(lambda: len(list(read_records(out, include_open=True))) >= len(seeds) + 8, 90,
                   f"{len(seeds)} files and the story's update delivered")
        assert f"{len(seeds) - 3} files read" in stopped(watcher)
        fetcher_shown(tmp_path, info["dashboard_url"])
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=90)
        site.close()
    records = list(read_records(out))
    dropped = sorted(r["source"].rsplit("/", 1)[-1] for r in records if r["source"] and "inbox" in r["source"])
    assert dropped == [s.name for s in seeds]  # each once; the .part file never
    assert sorted(r["id"] for r in records if not r["source"]) == sorted(answer["ids"])
    fetched = sorted((r["url"], r["first_url"]) for r in records if r["url"] and r["url"].startswith(site.url))
    assert fetched == [(f"{site.url}/article/0", None), (f"{site.url}/article/1", f"{site.url}/moved/1"),
                       (f"{site.url}/article/2", None), (f"{site.url}/article/3", None),
                       (f"{site.url}/story/0", None), (f"{site.url}/story/0", None)]
    assert all([t["stage"] for t in r["trace"]][:2] == ["fetch", "clean"] for r in records
               if r["url"] and r["url"].startswith(site.url))
    story = sorted((r for r in records if r["url"] == f"{site.url}/story/0"), key=lambda r: r["version"]["number"])
    assert [r["version"]["number"] for r in story] == [1, 2] and site.hits["/story/0"] == 2
    assert story[1]["version"]["previous_id"] == story[0]["id"]
    assert {k: story[1]["version"][k] for k in ("status", "title_changed", "paragraphs_added", "paragraphs_removed",
                                                 "paragraphs_edited")} == {
        "status": "changed", "title_changed": False, "paragraphs_added": 1, "paragraphs_removed": 0,
        "paragraphs_edited": 0}
    assert site.hits["/nowhere"] == 1 and len(records) == len(seeds) + 8
    assert site.hits["/article/2"] == 1 and site.not_modified >= 1  # the feed polled again: 304, nothing more


def fetcher_shown(tmp_path, dashboard_url: str) -> None:
    """`pipeline status --json` and the dashboard show the fetcher's answers and the story's update."""
    status = subprocess.run([sys.executable, "-m", "pipeline", "status", "--json", "--window", "1"], cwd=ROOT,
                            env=run_env(tmp_path), capture_output=True, text=True, timeout=60)
    fetcher = json.loads(status.stdout)["fetcher"]
    assert fetcher["stage"] == "fetch" and fetcher["requests_per_s"] is not None, fetcher
    # 6 pages (4 articles, the story twice), the redirect's first hop, the 404 asked once
    assert fetcher["answers"]["200"] == 6 and fetcher["answers"]["301"] == 1 and fetcher["answers"]["404"] == 1
    assert fetcher["robots_answers"] == {"200": 1} and fetcher["robots_blocked"] == 0
    assert "fetch: " in subprocess.run([sys.executable, "-m", "pipeline", "status", "--once", "--window", "1"],
                                       cwd=ROOT, env=run_env(tmp_path), capture_output=True, text=True,
                                       timeout=60).stdout

    def updates():
        with urllib.request.urlopen(dashboard_url + "api/state", timeout=5) as answer:
            state = json.loads(answer.read())
        return state if state["data"]["updates"] and state["status"] and state["status"]["fetcher"] else None

    state = wait_until(updates, 30, "the dashboard's data shows the update and the fetcher")
    (update,) = state["data"]["updates"]
    assert update["number"] == 2 and update["added"] == 1 and update["url"].endswith("/story/0")
    sync_playwright = _chromium_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path / "chromium-profile"), executable_path=CHROMIUM,
                                                       headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(dashboard_url)
            page.wait_for_function("!document.getElementById('fetcher-card').hidden && "
                                   "document.querySelectorAll('#updates tbody td.wrap').length >= 1", timeout=30000)
            assert "200" in page.inner_text("#fetch-answers") and "404" in page.inner_text("#fetch-answers")
            assert "+1 paragraphs" in page.inner_text("#updates")
            assert not errors, errors
        finally:
            browser.close()
