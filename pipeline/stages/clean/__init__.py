"""Clean stage: raw event in, record with main text and metadata out.

* HTML (``html`` or ``html_base64`` events; bytes decoded by ``charset``): trafilatura plus news
  rules and markup metadata, in a child process with a per-page time limit (``html_page``).
* Rendered text (``text`` events, like ``seeds/``): a learned line classifier (``text_page``,
  ``line_model``; trained by ``python -m training.clean``).

Fields filled: ``title`` (without the " | Site" suffix), ``authors`` (list) and ``author`` (them
joined), ``published`` with ``published_date`` and ``published_precision`` (never after
``fetched_at``; the page's date as ``records.published_fields`` makes it: an RFC 3339 date-time
that keeps the day the page shows), ``site`` (the name the page
declares, else its host), ``canonical_url``, ``declared_lang`` (HTML only), ``text``, and
``encoding`` for ``html_base64`` events.

Outcomes that are not records, as dead letters with a reason (``pipeline.records``):
``timeout`` (HTML extraction ran out of time; the child is killed, the worker goes on),
``too_large`` (body above ``max_input_bytes``; pages above 1 MB are slimmed before parsing, so a
20 MB page is extracted, not stalled on), ``undecodable``, ``stage_error`` (the extractor failed),
and ``no_main_text``: the page was read but holds no article text (a menu-only or empty page);
that is the explicit empty-text status, rather than a record with empty ``text``.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pipeline.charset import body_text
from pipeline.config import CleanSettings
from pipeline.records import (
    NO_TEXT,
    TOO_LARGE,
    BadInput,
    RawEvent,
    accept_raw,
    new_record,
    parse_iso,
    published_fields,
)
from pipeline.stages.base import Context, Result, Stage
from pipeline.stages.clean.html_page import HtmlExtractor
from pipeline.stages.clean.line_model import LineClassifier
from pipeline.stages.clean.metadata import moment_of
from pipeline.stages.clean.text_page import extract_text_page


def not_after_fetch(published: str | None, fetched: datetime) -> str | None:
    """The publication date, unless it lies after the fetch (a wrong date, not a future article).
    A bare date counts as its first instant; a date-time without offset as UTC, with 14 h of grace
    for the zones east of UTC."""
    if not published:
        return None
    try:
        return published if moment_of(published) <= fetched + timedelta(hours=14) else None
    except (ValueError, OverflowError):
        return None


def site_of(url: str | None) -> str | None:
    if not url:
        return None
    host = urlsplit(url).hostname or ""
    return host[4:] if host.startswith("www.") else (host or None)


IN_FLIGHT_PER_CHILD = 2  # pages handed to the extraction pool ahead of the one being finished, per child


@dataclass
class _Begun:
    """A record the clean stage has read and, for HTML, handed to its extraction pool."""
    event: RawEvent
    out: dict[str, Any]
    fetched: datetime
    extraction: Future | None = None
    waited_ms: float = 0.0  # the stage's wait for the extraction
    child_ms: float = 0.0   # the extraction's own time in its child


class CleanStage(Stage):
    name = "clean"
    accepts_raw_events = True

    def __init__(self, settings: CleanSettings):
        super().__init__()
        self.settings = settings
        self.html = HtmlExtractor(settings.html_timeout_s, settings.html_processes,
                                  settings.html_recycle_after, settings.include_comments,
                                  settings.html_max_parse_chars)
        self.batch_least = self.html.processes  # a batch sized by time: a page for every extraction process
        self.text_classifier: LineClassifier | None = None  # None: the packaged model

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        return self._finish(self._begin(record, ctx))

    def process_many(self, records: list[dict[str, Any]], contexts: list[Context]) -> list[Result]:
        """Pipelined: the HTML pages ahead go to the extraction pool while the records are finished
        in order, so every child process has a page to work on. At most ``IN_FLIGHT_PER_CHILD``
        pages per child are handed over ahead of the record being finished (a batch of large pages
        is not copied to the pool all at once). A record's trace time is its own work: the stage's
        share here plus its child's."""
        n = len(records)
        begun: list[_Begun | Exception | None] = [None] * n
        spent = [0.0] * n
        ahead = IN_FLIGHT_PER_CHILD * self.html.processes
        started = 0
        results: list[Result] = []
        for i in range(n):
            while started < min(n, i + 1 + ahead):  # begin the records up to `ahead` past this one
                t0 = time.perf_counter()
                begun[started] = self.timed_step(records[started], self._begin, records[started],
                                                 contexts[started])
                spent[started] = (time.perf_counter() - t0) * 1000.0
                started += 1
            item = begun[i]
            t0 = time.perf_counter()
            result = item if isinstance(item, Exception) else self.timed_step(records[i], self._finish, item)
            own = spent[i] + (time.perf_counter() - t0) * 1000.0
            if isinstance(item, _Begun) and item.extraction is not None:
                # the wait for the child is not this record's work; the child's time is
                own += item.child_ms - item.waited_ms
            results.append(result)
            self._record_ms.append(own)
        return results

    def _begin(self, record: dict[str, Any], ctx: Context) -> _Begun:
        event = accept_raw(record, ctx.received_at)
        if len(event.body) > self.settings.max_input_bytes:
            raise BadInput(TOO_LARGE, f"body has {len(event.body):,} characters, the limit is "
                                      f"{self.settings.max_input_bytes:,}")
        begun = _Begun(event, new_record(event), parse_iso(event.fetched_at))
        if event.body_field != "text":
            html, encoding = body_text(event)
            if encoding is not None:
                begun.out["encoding"] = encoding
            begun.extraction = self.html.submit(html, event.url)
        return begun

    def _finish(self, begun: _Begun) -> dict[str, Any]:
        event, out, fetched = begun.event, begun.out, begun.fetched
        if begun.extraction is None:
            page = extract_text_page(event.body, not_after=fetched, classifier=self.text_classifier, url=event.url)
            self.stats.extra["text_pages"] += 1
            out.update(title=page.title, text=page.text, authors=page.authors,
                       site=page.site or site_of(event.url), **published_fields(page.published))
        else:
            t0 = time.perf_counter()
            try:
                page = self.html.result(begun.extraction, event.url)
            finally:
                begun.waited_ms = (time.perf_counter() - t0) * 1000.0
            begun.child_ms = page.child_ms
            self.stats.extra["html_pages"] += 1
            for note, count in page.notes.items():
                self.stats.extra[note] += count
            out.update(title=page.title, text=page.text, authors=page.authors, site=page.site or site_of(event.url),
                       canonical_url=page.canonical_url, declared_lang=page.declared_lang,
                       **published_fields(not_after_fetch(page.published, fetched)))
        out["author"] = ", ".join(out["authors"]) or None
        if not out["text"].strip():
            raise BadInput(NO_TEXT, "no main text found on the page")
        return out

    def close(self) -> None:
        self.html.close()
