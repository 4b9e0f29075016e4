"""Every stage the pipeline can run, in one place, and everything derived from the chain.

A stage is its package plus one entry here (``BUILT_IN``), or, for a stage that lives outside
``pipeline/``, one line of configuration::

    [stages]
    chain = ["clean", "topics", "language", "entities", "dedup"]
    plugins = { topics = "mypackage.topics:TopicStage" }    # module:class, built with
    plugin_options = { topics = { min_words = 20 } }         # this table (a dict)

From ``stages.chain`` follow: the order ``pipeline enrich`` runs stages in; the worker kinds of
``pipeline run`` (each stage of the chain, then the sink); which topic each stage reads and
writes (stage *n* reads what stage *n-1* wrote, the first reads the raw topic, the last writes
the enriched topic the sink reads); the topics to create; the consumer group of each; the stages
``pipeline status`` and the dashboard show, in order. A stage's metrics port is
``monitoring.ports[name]`` when configured, else any free port.

This module imports nothing of the pipeline: stage classes are found by their dotted path when
a stage is built (``pipeline.stages.build_stage``), so configuration can check a chain without
loading any model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# ``settings`` below is a ``pipeline.config.Settings`` and ``stages`` its ``stages`` section; they
# are not imported, since configuration checks a chain with this module
Settings = StageSettings = Any

SINK = "sink"
#: the stage that turns a raw event (a URL and its page) into a record; only a stage that makes
#: raw events (``fetch``: from URL events) may come before it
FIRST = "clean"


@dataclass(frozen=True)
class StageSpec:
    name: str
    factory: str  # "module:Class": called with the stage's settings (its [stages.NAME] section)
    section: str | None = None  # attribute of ``Settings.stages`` given to the factory (None: plugin options)
    topic_key: str | None = None  # field of ``[topics]`` naming what it writes (None: "pages.NAME")
    #: True: it reads URL events (``topics.urls``) and writes raw events (``topics.raw``), before ``clean``
    makes_raw_events: bool = False


BUILT_IN: dict[str, StageSpec] = {spec.name: spec for spec in (
    StageSpec("fetch", "pipeline.stages.fetch:FetchStage", "fetch", "raw", makes_raw_events=True),
    StageSpec("clean", "pipeline.stages.clean:CleanStage", "clean", "cleaned"),
    StageSpec("language", "pipeline.stages.language:LanguageStage", "language", "language"),
    StageSpec("entities", "pipeline.stages.entities:EntitiesStage", "entities", "entities"),
    # followed by a stage: "pages.dedup"
    StageSpec("dedup", "pipeline.stages.dedup:DedupStage", "dedup"),
    # last in the default chain, so it writes topics.enriched; followed by a stage: topics.storied
    StageSpec("stories", "pipeline.stages.stories:StoriesStage", "stories", "storied"),
)}


class UnknownStage(ValueError):
    """A name that is no stage of the configured chain."""


def specs(stages: StageSettings) -> dict[str, StageSpec]:
    """The built-in stages and the configured plugins, by name."""
    out = dict(BUILT_IN)
    for name, factory in stages.plugins.items():
        out[name] = StageSpec(name, factory)
    return out


def check(stages: StageSettings) -> str | None:
    """What is wrong with the configured chain, or None."""
    known = specs(stages)
    chain = list(stages.chain)
    if not chain:
        return "stages.chain is empty"
    if len(set(chain)) != len(chain):
        return "stages.chain names a stage twice"
    unknown = [n for n in chain if n not in known]
    if unknown:
        return (f"stages.chain names unknown stage(s) {', '.join(unknown)}; known: {', '.join(known)} "
                "(a stage of your own: stages.plugins = {NAME = \"module:Class\"})")
    if FIRST not in chain:
        return f"stages.chain must have {FIRST!r}, the stage that turns raw events into records"
    before = chain[:chain.index(FIRST)]
    if len(before) > 1 or any(not known[n].makes_raw_events for n in before):
        return (f"stages.chain: only one stage that makes raw events (fetch) may come before {FIRST!r}, "
                f"got {', '.join(before)}")
    late = [n for n in chain[chain.index(FIRST):] if known[n].makes_raw_events]
    if late:
        return f"stages.chain: {', '.join(late)} makes raw events and must come before {FIRST!r}"
    clash = [n for n in stages.plugins if n in BUILT_IN or n == SINK]
    if clash:
        return f"stages.plugins reuses a built-in name: {', '.join(clash)}"
    bad = [f for f in stages.plugins.values() if ":" not in f]
    if bad:
        return f"stages.plugins entries are \"module:Class\", got {', '.join(bad)}"
    return None


def chain(settings: Settings) -> list[str]:
    """The stages records go through, in order."""
    return list(settings.stages.chain)


def fetches(settings: Settings) -> bool:
    """Whether the chain starts from URL events (a stage such as ``fetch`` before ``clean``)."""
    stages = chain(settings)
    return stages.index(FIRST) > 0


def roles(settings: Settings) -> list[str]:
    """The kinds of worker ``pipeline run`` starts: each stage of the chain, then the sink."""
    return [*settings.stages.chain, SINK]


def spec(settings: Settings, name: str) -> StageSpec:
    try:
        return specs(settings.stages)[name]
    except KeyError:
        raise UnknownStage(f"unknown stage {name!r}; stages are {', '.join(roles(settings))}") from None


@dataclass(frozen=True)
class StageTopics:
    source: str
    target: str  # records out (the sink's target is the delivery-receipt topic)


def output_topic(settings: Settings, name: str) -> str:
    """The topic ``name`` writes: the enriched topic for the last stage of the chain."""
    t = settings.topics
    if name == SINK:
        return t.delivered
    stages = chain(settings)
    if name not in stages:
        raise UnknownStage(f"unknown stage {name!r}; stages are {', '.join(roles(settings))}")
    if name == stages[-1]:
        return t.enriched
    key = spec(settings, name).topic_key
    return getattr(t, key) if key else f"pages.{name}"


def stage_topics(settings: Settings, name: str) -> StageTopics:
    """What a worker of ``name`` (a stage or the sink) reads and writes."""
    stages = chain(settings)
    if name == SINK:
        return StageTopics(settings.topics.enriched, settings.topics.delivered)
    target = output_topic(settings, name)  # refuses unknown names
    if spec(settings, name).makes_raw_events:
        return StageTopics(settings.topics.urls, settings.topics.raw)
    i = stages.index(name)
    source = settings.topics.raw if i == 0 else output_topic(settings, stages[i - 1])
    return StageTopics(source, target)


def story_updates_topic(settings: Settings) -> str | None:
    """Where the sink publishes story updates: ``topics.stories`` when the chain has the stories stage."""
    return settings.topics.stories if "stories" in chain(settings) else None


def topic_names(settings: Settings) -> list[str]:
    """Every topic the pipeline uses: raw, what each stage writes, dead letters, receipts."""
    t = settings.topics
    urls = [t.urls] if fetches(settings) else []
    stories = [story_updates_topic(settings)] if story_updates_topic(settings) else []
    names = [*urls, t.raw, *(output_topic(settings, n) for n in chain(settings)), t.deadletter, t.delivered, *stories]
    return list(dict.fromkeys(names))


def consumer_group(settings: Settings, name: str) -> str:
    return f"{settings.broker.consumer_group_prefix}-{name}"


__all__ = ["BUILT_IN", "FIRST", "SINK", "StageSpec", "StageTopics", "UnknownStage", "chain", "check",
           "consumer_group", "fetches", "output_topic", "roles", "spec", "specs", "stage_topics", "story_updates_topic",
           "topic_names"]
