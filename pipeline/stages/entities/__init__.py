"""Entities stage: people, organisations and places in the cleaned text, with canonical names.

Per record: ``entities`` ([{text, label, start, end, canonical, ids, source}], character offsets into
``text``; label PER/ORG/LOC; ``ids`` from the gazetteer: ``iso3166`` for countries, ``geonames`` for
cities, ``country`` for institutions of a country), ``entity_summary`` (distinct canonical entities with
counts), ``entities_tagger`` (what ran, e.g. ``crf:id-news-crf/1+rules``), ``entities_lang`` (the
language the tagger was chosen for) and ``entities_lang_source`` (where that language came from:
``lang`` from the language stage, ``declared_lang`` from the page or the event, ``detected`` here, or
``none``; see ``language.py``).

How: a tagger chosen by the record's language (``taggers.py``: our CRFs for Indonesian and Malay, for
English, and a multilingual one for every other language; Natasha's pre-trained Slovnet model for
Russian, ``slovnet_ner.py``; an installed spaCy pipeline where configured), the gazetteer and rule layer around it
(``rules.py``, ``combine.py``: countries, cities, institutions, role-word people, headline lines, one
label per name), then canonical names (``canonical.py``). In German, where every noun is capitalised,
the model's mentions are first checked against a lexicon of common nouns, names and function words
(``nouns.py``). A language without a model still gets the
gazetteer and rules; a record is never failed for its language.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import EntitiesSettings
from pipeline.stage_metrics import CountBy, SizeOf, TopOf
from pipeline.stages.base import Context, Stage
from pipeline.stages.entities import canonical, caseless, gazetteer, nouns, rules
from pipeline.stages.entities.combine import combine
from pipeline.stages.entities.language import UNDETERMINED, LanguageOf
from pipeline.stages.entities.taggers import RULES_NAME, Registry

RULES_VERSION = "rules"
OPENING_WORDS = Path(__file__).parent / "lexicons" / "opening_words.json"


@functools.lru_cache(maxsize=1)
def opening_words() -> dict[str, frozenset[str]]:
    """Language -> its common words that are also one-word place names ("para", "medan"): made by
    ``python -m training.entities_opening_words``."""
    return {lang: frozenset(words) for lang, words in orjson.loads(OPENING_WORDS.read_bytes()).items()}


def opening_word_test(lang: str | None) -> Callable[[str], bool] | None:
    """Whether a lower-case word is one of the opening words of the text's language (None: the language has
    none, or is not known)."""
    words = opening_words().get(nouns.code_of(lang)) if lang else None
    return words.__contains__ if words else None


def summarise(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct canonical entities with their mention counts, most mentioned first."""
    counts = Counter((e["label"], e["canonical"]) for e in entities)
    return [{"canonical": canonical, "label": label, "count": n}
            for (label, canonical), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][1]))]


class EntityTagger:
    """Text and language in, canonicalised entity dicts out (the stage without the record plumbing)."""

    def __init__(self, settings: EntitiesSettings):
        self.settings = settings
        self.gazetteer = gazetteer.load()
        self.caseless = caseless.load()
        self.registry = Registry(dict(settings.taggers), settings.default_tagger)
        self.registry.preload()
        self.lexicons = nouns.load_all()
        opening_words()  # read at start-up: a missing file stops the worker before its first record

    def tag(self, text: str, lang: str | None) -> tuple[list[dict[str, Any]], str, int]:
        """(entities, tagger name, mentions dropped on headline lines)."""
        tagger = self.registry.tagger_for(lang)
        lexicon = self.lexicons.get(nouns.code_of(lang)) if lang and getattr(tagger, "lexicon_checked", False) else None
        if lexicon is None:
            model_mentions = tagger.tag(text, lang) if text else []
        else:  # the model skips sentences with no word that could be a name; what it finds is checked
            model_mentions = lexicon.refine(text, tagger.tag(text, lang, may_name=lexicon.may_name) if text else [])
        rule_mentions = rules.tag(text, self.gazetteer, tagger.common_words) if text else []
        if lexicon is not None:
            rule_mentions = lexicon.without_function_words(rule_mentions)
        rule_mentions += self.caseless.tag(text)  # scripts without capitals: no overlap with the above
        trusted = bool(lang) and nouns.code_of(lang) in tagger.learnt
        # the conventions of the annotation the tagger learnt hold where it learnt the record's language
        merged = combine(text, model_mentions, rule_mentions, self.gazetteer, tagger.statistical,
                         opening_word_test(lang), trusted=trusted,
                         short_forms=tagger.short_form_labels if trusted else frozenset(),
                         place_heads=tagger.place_heads if trusted else frozenset())
        entities = [m.as_dict() for m in merged.mentions[: self.settings.max_entities]]
        canonical.canonicalise(entities, self.gazetteer, text)
        name = RULES_VERSION if tagger.name == RULES_NAME else f"{tagger.name}+{RULES_VERSION}"
        if lexicon is not None:
            name += f"+{lexicon.name}"
        return entities, name, merged.dropped_in_headlines


class EntitiesStage(Stage):
    name = "entities"
    parallel_safe = True
    record_metrics = (
        CountBy("entity_mentions", "Entity mentions found, by label.", "label", "entities[].label"),
        SizeOf("entities_per_record", "Entity mentions per record.", "entities", (0, 1, 2, 5, 10, 20, 50, 100, 200, 500)),
        TopOf("top_entity_mentions", "Mentions of the 20 most mentioned entities of the last hour.", "entity_summary[]",
              keys=("label", "canonical"), labels=("label", "name"), weight="count", n=20),
    )

    def __init__(self, settings: EntitiesSettings):
        super().__init__()
        self.settings = settings
        self.tagger = EntityTagger(settings)
        self.language_of = LanguageOf()

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        lang, lang_source = self.language_of(record)
        entities, tagger_name, dropped = self.tagger.tag(record.get("text") or "", lang)
        record["entities"] = entities
        record["entity_summary"] = summarise(entities)
        record["entities_tagger"] = tagger_name
        record["entities_lang"] = lang or UNDETERMINED
        record["entities_lang_source"] = lang_source
        self.stats.extra[f"lang_source:{lang_source}"] += 1
        self.stats.extra["entities"] += len(entities)
        self.stats.extra[f"tagger:{tagger_name}"] += 1
        if dropped:
            self.stats.extra["dropped_in_headlines"] += dropped
        return record
