"""Which tagger runs for which language.

A tagger spec is one of:

* ``crf:<model>[@<domain>]``: a CRF model of ours under ``models/`` (Indonesian and Malay use
  ``crf:id-news-crf``, English ``crf:en-news-crf``, every other language ``crf:multi-crf``, which reads
  the word frequencies of the record's language);
* ``spacy:<package>``: an installed spaCy pipeline with an ``ner`` component (e.g. ``spacy:en_core_web_sm``);
  its labels are mapped to PER/ORG/LOC (PERSON, ORG, GPE/LOC/FAC);
* ``slovnet:<model>``: a pre-trained Slovnet NER model whose weights an installed package ships
  (``slovnet:ner_news_v1``: Natasha's Russian news NER, PER/LOC/ORG; ``slovnet_ner.py``);
* ``rules``: no statistical tagger; the gazetteer and rule layer alone (every language gets it).

The registry maps a language code (``record["lang"]["code"]``) to a spec, with a default for the rest.
A tagger that cannot be loaded (spaCy, slovnet or the package not installed) is logged once and replaced by
``rules``; records then say ``rules`` ran. Nothing is downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pipeline.stages.entities import crf
from pipeline.stages.entities.rules import Mention
from pipeline.stages.entities.tokens import Token

log = logging.getLogger(__name__)

RULES_NAME = "rules"
SPECS = "crf:<model>[@domain], spacy:<package>, slovnet:<model> or rules"
SPACY_LABELS = {"PERSON": "PER", "PER": "PER", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC"}


class Tagger(Protocol):
    name: str
    statistical: bool  # False: no model, the rules' people are the only people
    common_words: frozenset[str]  # lower-case words of the language, if the tagger knows them
    lexicon_checked: bool  # True: its mentions go through the language's noun lexicon (nouns.py)
    learnt: frozenset[str]  # languages whose annotated text it learnt from (its labels are trusted there)
    short_form_labels: frozenset[str]  # labels its annotation writes with "(SHORT)" inside: "Mahkamah Konstitusi (MK)"
    place_heads: frozenset[str]  # words its annotation starts places' names with: "Kabupaten", "Desa"

    def tag(self, text: str, lang: str | None = None) -> list[Mention]: ...


class RulesOnly:
    """No statistical tagger: the gazetteer and rules around it do all the work."""

    name = RULES_NAME
    statistical = False
    common_words: frozenset[str] = frozenset()
    lexicon_checked = False
    learnt: frozenset[str] = frozenset()
    short_form_labels: frozenset[str] = frozenset()
    place_heads: frozenset[str] = frozenset()

    def tag(self, text: str, lang: str | None = None) -> list[Mention]:
        return []


class CrfModel:
    statistical = True
    lexicon_checked = True  # our CRFs: the multilingual one never saw German

    def __init__(self, model: str, domain: str | None):
        self.model = crf.load(model, domain)
        self.name = self.model.name + (f"@{domain}" if domain else "")
        self.common_words = self.model.extractor.lowercase_words
        meta = self.model.meta
        own = meta.get("word_freq", {}).get("lang")
        self.learnt = frozenset({own} if own and own != crf.RECORD_LANGUAGE else
                                {name.rsplit(".", 1)[-1] for name in meta.get("datasets", ())})
        self.short_form_labels = frozenset(meta.get("short_form_labels", ()))
        self.place_heads = frozenset(meta.get("place_heads", ()))

    def tag(self, text: str, lang: str | None = None,
            may_name: Callable[[list[Token]], bool] | None = None) -> list[Mention]:
        """``may_name``: a test of a sentence's tokens; the model skips sentences it says no to."""
        return [Mention(m.start, m.end, m.text, m.label, "", {}, "model")
                for m in self.model.tag(text, lang=lang, may_name=may_name)]


class SpacyPipeline:
    statistical = True
    common_words: frozenset[str] = frozenset()
    lexicon_checked = False  # a pipeline trained on its language
    short_form_labels: frozenset[str] = frozenset()
    place_heads: frozenset[str] = frozenset()

    def __init__(self, package: str):
        import spacy  # only when configured

        self.nlp = spacy.load(package, exclude=["parser", "lemmatizer", "textcat", "tagger"])
        if "ner" not in self.nlp.pipe_names and "entity_ruler" not in self.nlp.pipe_names:
            raise ValueError(f"spaCy pipeline {package} has no ner component")
        self.name = f"spacy:{package}/{self.nlp.meta.get('version', '?')}"
        self.learnt = frozenset({self.nlp.lang})

    def tag(self, text: str, lang: str | None = None) -> list[Mention]:
        doc = self.nlp(text)
        return [Mention(ent.start_char, ent.end_char, ent.text, SPACY_LABELS[ent.label_], "", {}, "model")
                for ent in doc.ents if ent.label_ in SPACY_LABELS]


def build(spec: str) -> Tagger:
    kind, _, arg = spec.partition(":")
    if kind == RULES_NAME and not arg:
        return RulesOnly()
    if kind == "crf" and arg:
        model, _, domain = arg.partition("@")
        return CrfModel(model, domain or None)
    if kind == "spacy" and arg:
        return SpacyPipeline(arg)
    if kind == "slovnet" and arg:
        from pipeline.stages.entities.slovnet_ner import SlovnetNer  # only when configured

        return SlovnetNer(arg)
    raise ValueError(f"unknown tagger spec {spec!r} ({SPECS})")


@dataclass
class Registry:
    """Language code -> tagger, built on first use; unknown languages get ``default``."""

    by_language: dict[str, str]
    default: str = RULES_NAME

    def __post_init__(self) -> None:
        self._loaded: dict[str, Tagger] = {}
        self.fallbacks: dict[str, str] = {}  # spec -> why it could not load
        for spec in {*self.by_language.values(), self.default}:
            kind = spec.partition(":")[0]
            if kind not in ("crf", "spacy", "slovnet", RULES_NAME):
                raise ValueError(f"unknown tagger spec {spec!r} ({SPECS})")

    def preload(self) -> None:
        """Load every configured tagger now (a worker is then ready before its first record)."""
        for lang in self.by_language:
            self.tagger_for(lang)
        self.tagger_for(None)

    def spec_for(self, lang: str | None) -> str:
        code = (lang or "").lower()
        return self.by_language.get(code) or self.by_language.get(code.split("-")[0]) or self.default

    def tagger_for(self, lang: str | None) -> Tagger:
        spec = self.spec_for(lang)
        tagger = self._loaded.get(spec)
        if tagger is None:
            try:
                tagger = build(spec)
            except Exception as exc:  # a missing package must not fail records
                log.warning("entities: tagger %s unavailable (%s); using rules", spec, exc)
                self.fallbacks[spec] = f"{type(exc).__name__}: {exc}"
                tagger = RulesOnly()
            self._loaded[spec] = tagger
        return tagger
