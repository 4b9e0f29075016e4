"""The NER models: linear-chain CRFs (CRFsuite) over the features of ``features.py`` (Indonesian, English,
multilingual; a character-level one for Chinese).

The model directory holds ``model.crfsuite`` (the weights) and ``meta.json.gz`` (the words the cased
training sets write in lower case, the domains the model was trained with, and how it was trained).
``train.py`` writes both. Word frequencies come from the ``wordfreq`` package at load time (its data
is CC BY-SA; we do not copy it into the repository).

Domains: the features of NERGrit and NERP sentences are also emitted prefixed by their set's name
("frustratingly easy" domain adaptation, with idner-news-2k as the base domain that uses the shared
features only), so the sets can disagree on conventions (idner-news-2k leaves "serangan Israel"
untagged, NERGrit tags it; NERP's organisations are companies) without blurring each other. At tagging
time the model is asked for one domain: news text uses the base domain, ``idner-news-2k``.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pycrfsuite

from pipeline.stages.entities import gazetteer as gazetteer_mod
from pipeline.stages.entities import linear_chain
from pipeline.stages.entities.features import ChainScorer, CharFeatureExtractor, FeatureExtractor
from pipeline.stages.entities.tokens import Token, sentences, tokenize, tokenize_chars

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = "id-news-crf"


@dataclass
class ModelMention:
    start: int
    end: int
    text: str
    label: str


def augment(feats: list[list[str]], domain: str, base_domain: str) -> list[list[str]]:
    """Features plus a copy prefixed by the domain; the base domain (news) uses the shared ones only."""
    if domain == base_domain:
        return feats
    prefix = domain + ":"
    return [attrs + [prefix + a for a in attrs] for attrs in feats]


# wordfreq's names for languages it lists under another code
WORDFREQ_CODES = {"hr": "sh", "sr": "sh", "bs": "sh", "no": "nb", "nn": "nb", "tl": "fil", "zh-hans": "zh"}
#: ``word_freq.lang`` of a model whose frequencies are those of each record's language
RECORD_LANGUAGE = "record"
#: ``tokens`` of a character-level model (Chinese): one token per CJK character (``tokens.tokenize_chars``)
CHARS = "chars"


@functools.lru_cache(maxsize=16)
def word_freq_table(lang: str, wordlist: str = "small") -> dict[str, int]:
    """Lower-case word -> frequency bucket (log10 frequency + 9) from the wordfreq package's list (empty for
    a language wordfreq does not have)."""
    import wordfreq

    code = (lang or "").lower()
    code = WORDFREQ_CODES.get(code, code.split("-")[0])
    if code not in wordfreq.available_languages(wordlist):
        return {}
    return {w: int(math.log10(f) + 9) for w, f in wordfreq.get_frequency_dict(code, wordlist=wordlist).items()}


def model_attributes(path: Path) -> frozenset[str]:
    """The attributes a CRFsuite model has weights for (its attribute dictionary, a CQDB chunk of the model
    file). The tagger ignores every other attribute, so leaving them out of its input changes no tag."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"lCRF":
        raise ValueError(f"{path} is not a CRFsuite model")
    num_attrs, _, _, off_attrs = struct.unpack_from("<IIII", buf, 24)
    try:
        return frozenset(linear_chain.cqdb_strings(buf, off_attrs, num_attrs))
    except ValueError as exc:
        raise ValueError(f"{path}: attribute dictionary: {exc}") from None


def build_extractor(meta: dict, gaz: gazetteer_mod.Gazetteer, lang: str | None = None,
                    known: frozenset[str] | None = None) -> FeatureExtractor:
    """The model's feature extractor; for a model with per-language word frequencies, the one of ``lang``.
    ``known``: the model's attributes (``model_attributes``), for ``items``; None when training."""
    if meta.get("tokens") == CHARS:
        return CharFeatureExtractor(surnames=meta.get("surnames"), known=known,  # type: ignore[return-value]
                                    words=meta.get("words") == "rjieba")
    source = meta["word_freq"]
    freq_lang = lang if source["lang"] == RECORD_LANGUAGE else source["lang"]
    return FeatureExtractor(gaz, frozenset(meta["lowercase_words"]),
                            word_freq_table(freq_lang or "", source["wordlist"]), meta.get("clusters"),
                            extended=meta.get("features_version", 1) >= 2, names=meta.get("names"), known=known)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_differently(words: list[str]) -> bool:
    """CRFsuite reads an attribute up to a NUL and cannot take what UTF-8 cannot encode: such a sentence
    gets the full attribute lists and CRFsuite's own tagging, as before."""
    joined = "".join(words)
    return "\x00" in joined or not (joined.isascii() or _utf8(joined))


def spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """(start, end, label) token spans of an IOB2 sequence (an I- after another label opens a span)."""
    found = set()
    start = label = None
    for i, tag in enumerate([*tags, "O"]):
        if tag.startswith("I-") and label == tag[2:]:
            continue
        if label is not None:
            found.add((start, i, label))
            start = label = None
        if tag != "O":
            start, label = i, tag[2:]
    return found



class CrfTagger:
    """Tags PER/ORG/LOC in text with the committed CRF model."""

    def __init__(self, model_dir: Path, domain: str | None = None, gaz: gazetteer_mod.Gazetteer | None = None):
        self.model_dir = Path(model_dir)
        with gzip.open(self.model_dir / "meta.json.gz", "rt", encoding="utf-8") as fh:
            self.meta = json.load(fh)
        self.domain = domain or self.meta["default_domain"]
        if self.domain not in self.meta["domains"]:
            raise ValueError(f"model {self.model_dir.name} knows domains {self.meta['domains']}, not {self.domain!r}")
        self.gaz = gaz or gazetteer_mod.load()
        self.per_language = self.meta["word_freq"]["lang"] == RECORD_LANGUAGE
        self.tokenize = tokenize_chars if self.meta.get("tokens") == CHARS else tokenize
        # word-level models in their base domain: scored per distinct token and decoded in numpy (CRFsuite's
        # tags, for about a fifth less of the entities stage's CPU on the shared rendered pages); CRFsuite tags the rest
        self.weights = None
        if self.tokenize is tokenize and self.domain == self.meta["base_domain"]:
            self.weights = linear_chain.read_weights(self.model_dir / "model.crfsuite")
        # the attributes the model has weights for: the tagger is given only those (CRFsuite drops the rest)
        self.known = frozenset(self.weights.attributes) if self.weights is not None \
            else model_attributes(self.model_dir / "model.crfsuite")
        self.extractor = build_extractor(self.meta, self.gaz, self.meta.get("default_language"), self.known)
        self._extractors: dict[str, FeatureExtractor] = {}
        self.tagger = pycrfsuite.Tagger()
        self.tagger.open(str(self.model_dir / "model.crfsuite"))
        self._scorers: dict[int, ChainScorer] = {}
        self.name = f"crf:{self.model_dir.name}/{self.meta['version']}"

    def extractor_for(self, lang: str | None) -> FeatureExtractor:
        """The feature extractor for text in ``lang`` (one for all languages unless the model reads the
        word frequencies of each record's language)."""
        if not self.per_language or not lang:
            return self.extractor
        code = lang.lower()
        extractor = self._extractors.get(code)
        if extractor is None:
            extractor = self._extractors[code] = build_extractor(self.meta, self.gaz, code, self.known)
        return extractor

    def _items(self, words: list[str], lang: str | None = None) -> list[list[str]]:
        """The CRF's attribute lists of one sentence, in the tagger's domain: the attributes of the model only,
        in the order of the features (CRFsuite skips unknown attributes, so the tags and marginals are those
        of the full lists)."""
        extractor = self.extractor_for(lang)
        if read_differently(words):
            return augment(extractor.sentence(words), self.domain, self.meta["base_domain"])
        if self.domain == self.meta["base_domain"]:
            return extractor.items(words)
        known = self.known
        return [[a for a in attrs if a in known]
                for attrs in augment(extractor.sentence(words), self.domain, self.meta["base_domain"])]

    def tag_many(self, sents: list[list[str]], lang: str | None = None) -> list[list[str]]:
        """IOB2 tags for several tokenised sentences."""
        if self.weights is None:
            return [self.tagger.tag(self._items(w, lang)) if w else [] for w in sents]
        out: list[list[str]] = [[] for _ in sents]
        chain = []  # the sentences scored in numpy: all but those CRFsuite would read differently
        for k, words in enumerate(sents):
            if not words:
                continue
            if read_differently(words):
                out[k] = self.tagger.tag(self._items(words, lang))
            else:
                chain.append(k)
        if chain:
            extractor = self.extractor_for(lang)
            scorer = self._scorers.get(id(extractor))
            if scorer is None:
                scorer = self._scorers[id(extractor)] = ChainScorer(extractor, self.weights)
            words = [sents[k] for k in chain]
            labels = self.weights.labels
            paths = linear_chain.viterbi(scorer.scores(words), [len(w) for w in words], self.weights.transitions)
            for k, path in zip(chain, paths, strict=True):
                out[k] = [labels[i] for i in path.tolist()]
        return out

    def tag_tokens(self, words: list[str], lang: str | None = None) -> list[str]:
        """IOB2 tags for one tokenised sentence."""
        return self.tag_many([words], lang)[0]

    def tag(self, text: str, tokens: list[Token] | None = None, lang: str | None = None,
            may_name: Callable[[list[Token]], bool] | None = None) -> list[ModelMention]:
        """``may_name``: a test of a sentence's tokens; sentences it says no to are not tagged (German:
        ``nouns.NounLexicon.may_name``, whose capitalised words are all common nouns)."""
        found = []
        sents = sentences(text, self.tokenize(text) if tokens is None else tokens)
        if may_name is not None:
            sents = [s for s in sents if may_name(s)]
        if self.tokenize is tokenize:
            # A word-level model learnt names from capitals: a sentence in a script without letter
            # case (Arabic, Hebrew, Devanagari, Thai, ...) gives it nothing to go on (the multilingual
            # model once tagged a whole Arabic sentence as one ORG); the gazetteer's caseless layer
            # finds that text's places.
            sents = [s for s in sents if any(ch.isupper() or ch.islower() for t in s for ch in t.text)]
        for sent, tags in zip(sents, self.tag_many([[t.text for t in s] for s in sents], lang), strict=True):
            for s, e, label in sorted(spans(tags)):
                start, end = sent[s].start, sent[e - 1].end
                found.append(ModelMention(start, end, text[start:end], label))
        return found


@functools.lru_cache(maxsize=4)
def load(name: str = DEFAULT_MODEL, domain: str | None = None) -> CrfTagger:
    return CrfTagger(MODELS_DIR / name, domain)
