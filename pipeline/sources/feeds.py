"""``feeds:FILE`` (``pipeline run --feeds FILE``): RSS/Atom feeds and sitemaps, polled, each newly
seen article URL sent once as a URL event to ``pages.urls`` for the fetch stage.

- **The list** is a plain file, one feed or sitemap URL a line (``#`` starts a comment), read
  again before every round: add or remove a line while the pipeline runs.
- **Polling** uses conditional GET (``If-None-Match``/``If-Modified-Since`` from the last answer's
  ``ETag``/``Last-Modified``). Each feed has its own interval between ``feeds_min_interval_s`` and
  ``feeds_max_interval_s``: halved when a poll finds new articles, 1.5 times longer when it finds
  none (or gets a 304), so busy feeds are read often and quiet ones rarely.
- **Parsing**: feedparser for RSS and Atom; sitemaps (``urlset``, Google News sitemaps) and
  sitemap indexes (their sitemaps are polled in turn) with lxml. URLs are normalised with courlan
  (and their fragment dropped).
- **Once**: each feed remembers the article URLs it gave (the newest ``feeds_remember`` of them)
  with the entry's last update; an entry whose update time changed is sent again with
  ``"changed": true``, so the fetch stage fetches it again. What a poll found is remembered only
  once its URL events are flushed to the broker (a checkpoint); the state is a JSON file per feed
  list in ``feeds_state_dir``, so a restart sends nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag

import orjson

from pipeline.sources.base import Source, SourceItem

log = logging.getLogger("pipeline.sources.feeds")

_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


@dataclass
class FeedState:
    etag: str | None = None
    last_modified: str | None = None
    interval_s: float = 0.0
    next_poll: float = 0.0  # wall-clock time
    seen: dict[str, str] = field(default_factory=dict)  # article URL -> its update time ("" if none)
    children: list[str] = field(default_factory=list)  # a sitemap index's sitemaps
    polls: int = 0
    not_modified: int = 0


def normalise(url: str) -> str:
    from courlan import normalize_url

    try:
        return urldefrag(normalize_url(url.strip()))[0]
    except ValueError:
        return url.strip()


def parse(body: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """``(articles, sitemaps)``: article URLs with their update time, and the sitemaps an index names."""
    head = body.lstrip()[:400].lower()
    if b"<urlset" in head or b"<sitemapindex" in head:
        from lxml import etree

        root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
        if root.tag.endswith("sitemapindex"):
            return [], [loc.text.strip() for loc in root.iter(f"{_SITEMAP_NS}loc") if loc.text]
        articles = []
        for entry in root.iter(f"{_SITEMAP_NS}url"):
            loc = entry.find(f"{_SITEMAP_NS}loc")
            if loc is None or not loc.text:
                continue
            stamps = [e.text.strip() for e in entry.iter() if isinstance(e.tag, str)
                      and e.tag.rsplit("}", 1)[-1] in ("lastmod", "publication_date") and e.text]
            articles.append((loc.text.strip(), stamps[0] if stamps else ""))
        return articles, []
    import feedparser

    parsed = feedparser.parse(body)
    articles = []
    for entry in parsed.entries:
        link = entry.get("link")
        if link:
            keys = entry.keys()  # entry.get("updated") would fall back to "published" with a warning
            stamp = entry["updated"] if "updated" in keys else entry["published"] if "published" in keys else ""
            articles.append((link, stamp or ""))
    return articles, []


class FeedsSource(Source):
    kind = "feeds"
    bounded = False
    produces = "urls"

    @classmethod
    def open(cls, argument: str, settings: Any) -> FeedsSource:
        s = settings.sources
        return cls(argument, s.feeds_state_dir, s.feeds_min_interval_s, s.feeds_max_interval_s,
                   settings.stages.fetch.user_agent, s.feeds_timeout_s, s.feeds_remember)

    def __init__(self, path: str, state_dir: str, min_interval_s: float = 60.0, max_interval_s: float = 3600.0,
                 user_agent: str = "news-pipeline", timeout_s: float = 20.0, remember: int = 5000):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        self.min_interval_s, self.max_interval_s = min_interval_s, max_interval_s
        self.user_agent, self.timeout_s, self.remember = user_agent, timeout_s, remember
        digest = hashlib.blake2b(str(self.path.resolve()).encode(), digest_size=6).hexdigest()
        self.state_path = Path(state_dir) / f"{self.path.name}-{digest}.state.json"
        self.state: dict[str, FeedState] = self._load()
        # feed -> (articles sent, its ETag, its Last-Modified): kept until the broker confirmed them
        self._found: dict[str, tuple[dict[str, str], str | None, str | None]] = {}
        self._lock = threading.Lock()
        self._http = None

    # --- state -----------------------------------------------------------------------------------

    def _load(self) -> dict[str, FeedState]:
        if not self.state_path.exists():
            return {}
        try:
            raw = orjson.loads(self.state_path.read_bytes())
        except orjson.JSONDecodeError:
            log.warning("%s: unreadable state; every feed starts afresh", self.state_path)
            return {}
        return {url: FeedState(**value) for url, value in raw.items()}

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        data = {url: st.__dict__ for url, st in self.state.items()}
        try:
            tmp.write_bytes(orjson.dumps(data))
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        except OSError:  # a full disk: the old state stays whole; the next poll's acknowledgement tries again
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.state_path)

    def acknowledge(self, position: str) -> None:
        """The URL events of feed ``position``'s last poll are durably in the topic: remember them."""
        with self._lock:
            found, etag, last_modified = self._found.pop(position, ({}, None, None))
            st = self.state.setdefault(position, FeedState())
            st.seen.update(found)
            st.etag, st.last_modified = etag, last_modified  # a conditional GET now skips only what was sent
            while len(st.seen) > self.remember:  # the oldest first (dicts keep insertion order)
                st.seen.pop(next(iter(st.seen)))
            self._save()

    # --- polling ---------------------------------------------------------------------------------

    def feeds(self) -> list[str]:
        lines = [line.strip() for line in self.path.read_text().splitlines()]
        listed = [line for line in lines if line and not line.startswith("#")]
        children = [child for parent in listed if parent in self.state for child in self.state[parent].children]
        return listed + [child for child in children if child not in listed]

    def items(self, after: str | None = None, stop: threading.Event | None = None) -> Iterator[SourceItem]:
        stop = stop or threading.Event()
        while not stop.is_set():
            now = time.time()
            due = [url for url in self.feeds() if self.state.get(url, FeedState()).next_poll <= now]
            for url in due:
                if stop.is_set():
                    return
                yield from self._poll(url)
            if due:
                with self._lock:
                    self._save()
            waits = [self.state[u].next_poll - time.time() for u in self.feeds() if u in self.state]
            stop.wait(max(0.05, min([*waits, 1.0])))

    def _get(self, url: str, st: FeedState):
        import urllib3

        if self._http is None:
            self._http = urllib3.PoolManager(headers={"User-Agent": self.user_agent},
                                             timeout=urllib3.Timeout(total=self.timeout_s), retries=False)
        headers = {}
        if st.etag:
            headers["If-None-Match"] = st.etag
        if st.last_modified:
            headers["If-Modified-Since"] = st.last_modified
        return self._http.request("GET", url, headers=headers, redirect=True, preload_content=True)

    def _poll(self, url: str) -> Iterator[SourceItem]:
        with self._lock:
            st = self.state.setdefault(url, FeedState(interval_s=self.min_interval_s))
            pending = dict(self._found.get(url, ({}, None, None))[0])  # sent, not yet confirmed
        st.polls += 1
        new: dict[str, str] = {}
        changed: set[str] = set()
        etag = last_modified = None
        try:
            answer = self._get(url, st)
            if answer.status == 304:
                st.not_modified += 1
            elif answer.status >= 400:
                log.warning("feed %s: HTTP %d", url, answer.status)
            else:
                etag, last_modified = answer.headers.get("ETag"), answer.headers.get("Last-Modified")
                articles, sitemaps = parse(answer.data)
                if sitemaps:
                    st.children = sitemaps
                for link, updated in articles:
                    link = normalise(link)
                    if link in new or pending.get(link) == updated:
                        continue
                    if link not in st.seen:
                        new[link] = updated
                    elif updated and st.seen[link] and updated != st.seen[link]:
                        new[link] = updated
                        changed.add(link)
        except Exception as exc:  # noqa: BLE001 - a feed that fails waits for its next turn; the others go on
            log.warning("feed %s: %s: %s", url, type(exc).__name__, exc)
        if new:
            st.interval_s = max(self.min_interval_s, st.interval_s / 2)
        else:
            st.interval_s = min(self.max_interval_s, max(self.min_interval_s, st.interval_s * 1.5))
        st.next_poll = time.time() + st.interval_s
        if not new:
            if (etag or last_modified) and not pending:  # with articles unconfirmed, the next GET is unconditional
                st.etag, st.last_modified = etag, last_modified
            return
        with self._lock:
            self._found[url] = ({**pending, **new}, etag, last_modified)
        links = list(new)
        for n, link in enumerate(links):
            event = {"url": link, "feed": url, "source": url}
            if link in changed:
                event["changed"] = True
            last = n == len(links) - 1
            yield SourceItem(f"{url}#{n + 1}", event=event, position=url if last else None, checkpoint=last)

    def close(self) -> None:
        if self._http is not None:
            self._http.clear()

    def __str__(self) -> str:
        return f"feeds:{self.path}"
