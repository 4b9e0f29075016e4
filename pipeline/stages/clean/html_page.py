"""Main text and metadata of an HTML page: trafilatura plus news rules, in a child process.

In the child (``extract_in_process``), per page:

1. very large pages are slimmed first (scripts, styles, inline SVG, comments and ``data:`` URIs
   removed; what remains cut at ``max_parse_chars``), so a 20 MB page parses in well under a second;
2. the page is parsed once; metadata comes from the markup (``metadata.page_metadata``);
3. trafilatura extracts the main text in its fast mode (no fallback extractors); only when that
   text is short or looks like a menu (mostly one- to three-word lines) does the full mode run
   (readability and jusText fallbacks): that gets the recall of the full mode at a fraction of
   its cost;
4. news rules clean trafilatura's text (``clean_article_text``): in-body link lists ("Baca juga:",
   "Read also:", "Lihat juga", ...), share/subscribe/follow prompts, photo credits, pagers
   ("Halaman: 1 2 3"), copyright and comment notices, and a first line that repeats the headline.

trafilatura is not thread-safe, can hang on pathological pages and grows in long runs, so it runs
in a small pool of child processes: each page has a time limit (the child is killed when it runs
out) and each child is replaced after a number of pages. The stage submits the pages ahead of the
one it finishes (``submit``, two per child), so every child is kept busy while the stage's own
process reads the next records and finishes the pages already extracted.
"""

from __future__ import annotations

import multiprocessing
import re
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from pipeline.records import STAGE_ERROR, TIMEOUT, BadInput
from pipeline.stages.clean.boilerplate import is_boilerplate, is_credit_or_pager
from pipeline.stages.pool import usable_cores

# the settings of trafilatura's own benchmark, comments off unless configured
TRAFILATURA_OPTIONS = dict(include_tables=True, include_images=False, include_links=False,
                           include_formatting=False, deduplicate=False, with_metadata=False)

SHORT_TEXT_CHARS = 1000       # fast-mode text shorter than this: try the full mode
MENU_MIN_LINES = 15           # ... or at least this many lines,
MENU_SHORT_LINE_SHARE = 0.6   # most of them of 1-3 words (a navigation menu, not an article)
SLIM_ABOVE_CHARS = 1_000_000  # pages larger than this lose scripts, styles, SVG, comments first

_HEAVY_PARTS = re.compile(
    r"<script\b.*?</script\s*>|<style\b.*?</style\s*>|<svg\b.*?</svg\s*>|<noscript\b.*?</noscript\s*>"
    r"|<!--.*?-->|(?<=[\"'(])data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+", re.IGNORECASE | re.DOTALL)
@dataclass
class HtmlPage:
    title: str | None
    text: str
    published: str | None
    authors: list[str]
    site: str | None
    canonical_url: str | None
    declared_lang: str | None
    notes: dict[str, int] = field(default_factory=dict)  # counters for the stage's stats
    child_ms: float = 0.0  # the extraction's time in its child process


def _key(text: str) -> str:
    return re.sub(r"\W+", "", text.lower())


def is_news_furniture(line: str) -> bool:
    """A line of extracted text that is page furniture, not article: link-list lines, prompts,
    photo credits, pagers, copyright and comment notices (paragraphs of more than 60 words never)."""
    words = len(line.split())
    if words > 60:
        return False
    return is_boilerplate(line) or is_credit_or_pager(line)


def clean_article_text(text: str, title: str | None = None) -> tuple[str, int]:
    """Drop furniture lines from extracted text; return the text and how many lines went."""
    lines = text.split("\n")
    kept = [ln for ln in lines if ln.strip() and not is_news_furniture(ln)]
    if kept and title and _key(kept[0]) == _key(title):
        kept = kept[1:]  # the headline is the record's title, not the first line of its text
    return "\n".join(kept), sum(1 for ln in lines if ln.strip()) - len(kept)


def looks_incomplete(text: str) -> bool:
    """Fast-mode output worth a second try in full mode: short, or a menu rather than an article."""
    if len(text) < SHORT_TEXT_CHARS:
        return True
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) < MENU_MIN_LINES:
        return False
    short = sum(1 for ln in lines if len(ln.split()) <= 3)
    return short / len(lines) >= MENU_SHORT_LINE_SHARE


def slim_html(page: str, max_chars: int) -> str:
    """A very large page without the parts that are never text; cut at ``max_chars`` if still larger."""
    if len(page) > SLIM_ABOVE_CHARS:
        page = _HEAVY_PARTS.sub("", page)
    return page[:max_chars]


def extract_in_process(html: str, url: str | None, include_comments: bool,
                       max_parse_chars: int = 5_000_000) -> dict[str, Any] | None:
    """Run in a child process: plain data in and out (cheap to pickle)."""
    import trafilatura

    from pipeline.stages.clean.metadata import fallback_date, page_metadata, parse_html

    started = time.perf_counter()
    notes: dict[str, int] = {}
    if len(html) > SLIM_ABOVE_CHARS:
        notes["html_slimmed"] = 1
        html = slim_html(html, max_parse_chars)
    tree = parse_html(html)
    if tree is None:
        return None
    meta = page_metadata(tree, url)
    if not meta.published:
        meta.published = fallback_date(tree, url)
    doc = trafilatura.bare_extraction(tree, url=url, fast=True, include_comments=include_comments,
                                      **TRAFILATURA_OPTIONS)
    text = (doc.text if doc is not None else "") or ""
    if looks_incomplete(text):
        notes["html_full_mode"] = 1
        full = trafilatura.bare_extraction(tree, url=url, fast=False, include_comments=include_comments,
                                           **TRAFILATURA_OPTIONS)
        full_text = (full.text if full is not None else "") or ""
        if full_text.strip():
            text = full_text
    text, dropped = clean_article_text(text, meta.title)
    notes["html_lines_dropped"] = dropped
    return {"title": meta.title, "text": text, "date": meta.published, "authors": meta.authors,
            "site": meta.site, "url": meta.canonical_url, "language": meta.declared_lang, "notes": notes,
            "ms": (time.perf_counter() - started) * 1000.0}


class HtmlExtractor:
    """A pool of trafilatura processes with a per-page time limit. Created on first use."""

    def __init__(self, timeout_s: float, processes: int = 1, recycle_after: int = 500,
                 include_comments: bool = False, max_parse_chars: int = 5_000_000):
        self.timeout_s = timeout_s
        self.processes = processes or usable_cores()
        self.recycle_after = recycle_after
        self.include_comments = include_comments
        self.max_parse_chars = max_parse_chars
        self._pool = None

    def _ensure_pool(self):
        if self._pool is None:
            from pebble import ProcessPool

            # forkserver: children start clean, without the parent's threads and event loop.
            self._pool = ProcessPool(max_workers=self.processes, max_tasks=self.recycle_after,
                                     context=multiprocessing.get_context("forkserver"),
                                     initializer=_warm_up)
        return self._pool

    def submit(self, html: str, url: str | None) -> Future:
        """Start extracting a page in the pool (queued when every child is busy); its time limit
        counts from when a child takes it. :meth:`result` gives the page."""
        return self._ensure_pool().schedule(
            extract_in_process, args=(html, url, self.include_comments, self.max_parse_chars),
            timeout=self.timeout_s)

    def result(self, future: Future, url: str | None) -> HtmlPage:
        """The page a :meth:`submit` started, once its child is done; ``BadInput`` when it ran out
        of time or failed."""
        try:
            data = future.result()
        except FutureTimeout:
            raise BadInput(TIMEOUT, f"HTML extraction took longer than {self.timeout_s:g} s") from None
        except BadInput:
            raise
        except Exception as exc:  # an error inside trafilatura, or its process died
            raise BadInput(STAGE_ERROR, f"HTML extraction failed: {type(exc).__name__}: {exc}") from None
        if data is None:
            return HtmlPage(None, "", None, [], None, url, None, {"html_unparsable": 1})
        return HtmlPage(
            title=data.get("title"),
            text=data.get("text") or "",
            published=data.get("date"),
            authors=list(data.get("authors") or []),
            site=data.get("site"),
            canonical_url=data.get("url") or url,
            declared_lang=data.get("language"),
            notes=data.get("notes") or {},
            child_ms=float(data.get("ms") or 0.0),
        )

    def extract(self, html: str, url: str | None) -> HtmlPage:
        """One page, start to end."""
        return self.result(self.submit(html, url), url)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=5)
            self._pool = None


def _warm_up() -> None:
    """Import trafilatura when a child starts, not inside the first page's time limit."""
    import trafilatura  # noqa: F401
    import trafilatura.utils  # noqa: F401
