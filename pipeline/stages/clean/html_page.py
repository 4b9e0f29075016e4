"""Main text and metadata of an HTML page, with trafilatura, in child processes.

trafilatura is not thread-safe, can hang on pathological pages and grows in long runs, so it runs
in a small pool of child processes: each page has a time limit (the child is killed when it runs
out) and each child is replaced after a number of pages.
"""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from pipeline.records import STAGE_ERROR, TIMEOUT, BadInput

_TITLE_SUFFIX = re.compile(r"\s+[|\-–—:»·]\s+[^|\-–—:»·]{2,60}$")


@dataclass
class HtmlPage:
    title: str | None
    text: str
    published: str | None
    authors: list[str]
    site: str | None
    canonical_url: str | None
    declared_lang: str | None


def strip_site_suffix(title: str | None, site: str | None) -> str | None:
    """"Headline | Site name" -> "Headline" (only when the tail looks like the site's name)."""
    if not title:
        return title
    match = _TITLE_SUFFIX.search(title)
    if not match:
        return title
    tail = match.group(0).strip(" |-–—:»·").lower()
    if site and (tail in site.lower() or site.lower() in tail) or re.search(r"\.\w{2,3}$", tail):
        return title[:match.start()].strip()
    return title


def extract_in_process(html: str, url: str | None, include_comments: bool) -> dict[str, Any] | None:
    """Run trafilatura here (in a child process); returns plain data that pickles cheaply."""
    import trafilatura

    doc = trafilatura.bare_extraction(html, url=url, include_comments=include_comments, with_metadata=True,
                                      include_tables=True, deduplicate=False)
    if doc is None:
        return None
    return {"title": doc.title, "text": doc.text or "", "date": doc.date, "author": doc.author,
            "sitename": doc.sitename, "hostname": doc.hostname, "url": doc.url, "language": doc.language}


class HtmlExtractor:
    """A pool of trafilatura processes with a per-page time limit. Created on first use."""

    def __init__(self, timeout_s: float, processes: int = 1, recycle_after: int = 500,
                 include_comments: bool = False):
        self.timeout_s = timeout_s
        self.processes = processes
        self.recycle_after = recycle_after
        self.include_comments = include_comments
        self._pool = None

    def _ensure_pool(self):
        if self._pool is None:
            from pebble import ProcessPool

            # forkserver: children start clean, without the parent's threads and event loop.
            self._pool = ProcessPool(max_workers=self.processes, max_tasks=self.recycle_after,
                                     context=multiprocessing.get_context("forkserver"))
        return self._pool

    def extract(self, html: str, url: str | None) -> HtmlPage:
        future = self._ensure_pool().schedule(extract_in_process, args=(html, url, self.include_comments),
                                              timeout=self.timeout_s)
        try:
            data = future.result()
        except FutureTimeout:
            raise BadInput(TIMEOUT, f"HTML extraction took longer than {self.timeout_s:g} s") from None
        except BadInput:
            raise
        except Exception as exc:  # an error inside trafilatura, or its process died
            raise BadInput(STAGE_ERROR, f"HTML extraction failed: {type(exc).__name__}: {exc}") from None
        if data is None:
            return HtmlPage(None, "", None, [], None, url, None)
        site = data.get("sitename") or data.get("hostname")
        authors = [a.strip() for a in re.split(r";|\band\b|,", data.get("author") or "") if a.strip()]
        return HtmlPage(
            title=strip_site_suffix(data.get("title"), site),
            text=data.get("text") or "",
            published=data.get("date"),
            authors=authors,
            site=site,
            canonical_url=data.get("url") or url,
            declared_lang=data.get("language"),
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=5)
            self._pool = None
