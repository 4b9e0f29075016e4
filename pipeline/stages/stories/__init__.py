"""The stories stage: every record, on arrival, joins the story of the real-world event it reports
or starts one (``record["story"]``). The model is ``model.py``; the shared state ``state.py``.

What a record gives the model: its title and main text, the canonical names of its entities
(``entity_summary``, else ``entities``), its language, its outlet (``site``, else the URL's host),
its publication time (``published``, when it parses) and the dedup stage's
``duplicate_of``. The state lives beside the dedup index (``store = "dedup"``: the same Redis,
shared by every story worker; ``pipeline enrich`` keeps it in memory), so several workers give the
answers one would, and a restarted worker goes on where the stream was.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from pipeline.config import ConfigError, StoriesSettings, build_section
from pipeline.records import TemporaryFailure, parse_iso
from pipeline.stage_metrics import CountBy, SizeOf
from pipeline.stages.base import Context, Result, Stage
from pipeline.stages.stories.model import Article, StoryAssigner, StoryOptions
from pipeline.stages.stories.state import MemoryStoryState, RedisStoryState

ENTITY_LABELS = ("PER", "ORG", "LOC", "GPE")


def options_of(settings: StoriesSettings) -> StoryOptions:
    """The model's options from ``[stages.stories.options]`` (unset keys: the model's defaults)."""
    try:
        return build_section(StoryOptions, dict(settings.options), "stages.stories.options")
    except ConfigError:
        raise
    except ValueError as exc:  # StoryOptions refuses inconsistent values
        raise ConfigError(f"[stages.stories.options] {exc}") from None


def open_state(settings: StoriesSettings):
    if settings.store == "memory":
        return MemoryStoryState()
    if settings.store.startswith(("redis://", "rediss://", "unix://")):
        import redis

        return RedisStoryState(redis.Redis.from_url(settings.store, socket_timeout=10, socket_connect_timeout=5),
                               settings.namespace)
    raise ValueError(f"stages.stories.store: {settings.store!r} is not memory or a redis:// URL (\"embedded\" is the "
                     "index server `pipeline run` starts: run the stories worker under it)")


def _when(record: dict[str, Any]):
    """When the article appeared: its publication time, else unknown. Not the fetch time: a page
    fetched (or replayed) long after it appeared would close its story too early, and a page
    without a date does not split a story."""
    value = record.get("published")
    if isinstance(value, str) and value:
        try:
            return parse_iso(value)
        except ValueError:
            return None
    return None


def article_of(record: dict[str, Any]) -> Article:
    """What the model reads of a record."""
    summary = record.get("entity_summary")
    mentions: Counter[str] = Counter()  # canonical name -> mentions, most mentioned first as the summary has them
    if isinstance(summary, list) and summary:
        for e in summary:
            if isinstance(e, dict) and e.get("label") in ENTITY_LABELS and isinstance(e.get("canonical"), str):
                count = e.get("count")
                mentions[e["canonical"]] += count if isinstance(count, int) and count > 0 else 1
    else:
        for e in record.get("entities") or []:
            if isinstance(e, dict) and e.get("label") in ENTITY_LABELS:
                name = e.get("canonical") or e.get("text")
                if isinstance(name, str):
                    mentions[name] += 1
    mentions.pop("", None)
    url = record.get("canonical_url") or record.get("url")
    outlet = record.get("site") or (urlsplit(url).hostname if isinstance(url, str) and url else None)
    return Article(id=record["id"], title=record.get("title") or "", text=record.get("text") or "",
                   entities=tuple(mentions), mentions=tuple(mentions.values()),
                   lang=(record.get("lang") or {}).get("code"), outlet=outlet, when=_when(record),
                   duplicate_of=(record.get("dedup") or {}).get("duplicate_of"))


class StoriesStage(Stage):
    name = "stories"
    record_metrics = (
        CountBy("story_decisions", "Records that started a story, joined one, or joined their original's.",
                "status", "story.status"),
        SizeOf("story_articles", "Articles in the story a record joined or started, when it did.",
               "story.summary.articles", (1, 2, 3, 5, 10, 20, 50, 100, 500)),
    )

    def __init__(self, settings: StoriesSettings):
        super().__init__()
        self.settings = settings
        self.assigner = StoryAssigner(options_of(settings), open_state(settings))

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        # the state turns an unreachable or full Redis into TemporaryFailure: the worker retries
        record["story"] = self.assigner.assign(article_of(record))
        self.stats.extra[f"story_{record['story']['status']}"] += 1
        return record

    def process_many(self, records: list[dict[str, Any]], contexts: list[Context]) -> list[Result]:
        """The batch's articles decided together (``StoryAssigner.assign_many``: with Redis, a few round
        trips per batch instead of three per record), in order: the answers of one by one. A record
        that fails sends the batch through :meth:`process` one record at a time (the answers committed
        already are given again), so that only it fails."""
        try:
            articles = [article_of(record) for record in records]
            answers = self.assigner.assign_many(articles)
        except TemporaryFailure:
            raise
        except Exception:  # noqa: BLE001 - which record it was is found one by one
            return super().process_many(records, contexts)
        for record, answer in zip(records, answers, strict=True):
            record["story"] = answer
            self.stats.extra[f"story_{answer['status']}"] += 1
        return list(records)

    def close(self) -> None:
        self.assigner.state.close()
