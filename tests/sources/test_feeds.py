"""Feeds and sitemaps (``feeds:FILE``) against the local news site: each new article URL once,
conditional GET, changed entries sent again, sitemap indexes followed, nothing twice after a
restart; no broker (the sender's acknowledgements are played by the test)."""

from __future__ import annotations

import pytest

from pipeline.sources.feeds import FeedsSource
from tests.news_site import Host
from tests.sources import playback


@pytest.fixture
def site():
    host = Host()
    yield host
    host.close()


def source(listing, tmp_path):
    return FeedsSource(str(listing), str(tmp_path / "state"), min_interval_s=0.1, max_interval_s=0.3, timeout_s=5)


def collect(feeds, seconds, acknowledge=True, until=None):
    return [item.event for item in playback.collect(feeds, seconds, acknowledge, until)]


def test_each_new_article_once_with_conditional_get_and_changes_sent_again(site, tmp_path):
    listing = tmp_path / "feeds.txt"
    listing.write_text(f"# our feeds\n{site.url}/feed.xml\n")
    feeds = source(listing, tmp_path)
    polled_again = lambda items: len(items) >= 2 and site.not_modified >= 1  # noqa: E731
    first = collect(feeds, 20, until=polled_again)
    assert [e["url"] for e in first] == [f"{site.url}/article/0", f"{site.url}/article/1"]
    assert all(e["feed"] == f"{site.url}/feed.xml" and "changed" not in e for e in first)
    assert site.hits["/feed.xml"] >= 2 and site.not_modified >= 1  # polled again: 304, nothing sent
    site.feed_items.append(2)
    site.updated[0] = "Tue, 01 Dec 2026 09:30:00 GMT"  # article 0 was updated
    second = collect(feeds, 20, until=2)
    assert sorted((e["url"], e.get("changed", False)) for e in second) == [
        (f"{site.url}/article/0", True), (f"{site.url}/article/2", False)]
    assert collect(source(listing, tmp_path), 0.5) == []  # restarted: the state remembers


def test_a_sitemap_index_is_followed_and_an_unacknowledged_poll_is_sent_again(site, tmp_path):
    listing = tmp_path / "feeds.txt"
    listing.write_text(f"{site.url}/sitemap_index.xml\n")
    crashed = collect(source(listing, tmp_path), 20, acknowledge=False, until=2)
    assert [e["url"] for e in crashed] == [f"{site.url}/article/0", f"{site.url}/article/1"]
    again = collect(source(listing, tmp_path), 20, until=2)  # the sender died before the broker confirmed
    assert [e["url"] for e in again] == [e["url"] for e in crashed]
    assert collect(source(listing, tmp_path), 0.5) == []
