"""Where raw events come from: one module per kind of source behind ``base.Source``.

A source is named on the command line (`pipeline replay SOURCE...`, `pipeline run --replay
SOURCE`, `pipeline enrich SOURCE...`) as ``KIND:ARGUMENT``, or as a plain path for files::

    seeds/                       files (FilesSource): pages, folders, JSONL, WARC; - is stdin
    warc:crawl/                  the HTML pages of WARC files (WarcSource)
    watch:inbox/                 a folder watched for new files, each ingested once (WatchedFolderSource)
    ingest:                      POST /ingest, raw events pushed over HTTP (IngestSource)
    urls:list.txt                URLs for the fetch stage, one a line (UrlListSource)
    feeds:feeds.txt              RSS/Atom feeds and sitemaps, polled; new article URLs (FeedsSource)
    files:out:odd-name.jsonl     files, when the path itself looks like KIND:...
    mykind:https://example/feed  a source of your own: sources.plugins = {mykind = "pkg.mod:Class"}

A source of your own is a ``Source`` subclass in any importable module, built with the
argument after ``KIND:``, plus that one line of configuration; nothing under ``pipeline/`` changes
(``tests/toy_source.py`` is one).
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.sources.base import Source, SourceItem

#: kind -> "module:Class"; a Source class is made by its ``open(argument, settings)``
BUILT_IN = {"files": "pipeline.sources.files:FilesSource", "warc": "pipeline.sources.warc:WarcSource",
            "watch": "pipeline.sources.folder:WatchedFolderSource", "ingest": "pipeline.sources.ingest:IngestSource",
            "urls": "pipeline.sources.urls:UrlListSource", "feeds": "pipeline.sources.feeds:FeedsSource"}


class UnknownSource(ValueError):
    """A source that cannot be opened (an unknown kind, a plugin that does not load)."""


def kinds(settings: Any) -> dict[str, str]:
    shadowing = sorted(set(settings.sources.plugins) & set(BUILT_IN))
    if shadowing:
        raise UnknownSource(f"sources.plugins: {', '.join(shadowing)} is built in; give your source another kind")
    return {**BUILT_IN, **settings.sources.plugins}


def open_source(spec: str, settings: Any) -> Source:
    """The source ``spec`` names (``KIND:ARGUMENT``, or a path for files)."""
    known = kinds(settings)
    kind, sep, argument = spec.partition(":")
    if not sep or kind not in known:
        kind, argument = "files", spec
    module, _, attr = known[kind].partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownSource(f"source kind {kind!r}: cannot load {known[kind]} ({exc})") from None
    source = factory.open(argument, settings) if isinstance(factory, type) and issubclass(factory, Source) \
        else factory(argument)
    if not isinstance(source, Source):
        raise UnknownSource(f"source kind {kind!r}: {known[kind]} made a {type(source).__name__}, not a Source")
    return source


def check_fetching(sources: list[Source], fetches: bool) -> None:
    """Sources of URL events need a chain that fetches them (``UnknownSource`` otherwise)."""
    urls = [str(s) for s in sources if s.produces == "urls"]
    if urls and not fetches:
        raise UnknownSource(f"{', '.join(urls)} gives URLs, and the stages have none to fetch them: "
                            "put \"fetch\" first in stages.chain")


def open_sources(specs: list[str], settings: Any) -> list[Source]:
    return [open_source(spec, settings) for spec in specs]


__all__ = ["BUILT_IN", "Source", "SourceItem", "UnknownSource", "check_fetching", "kinds", "open_source", "open_sources"]
