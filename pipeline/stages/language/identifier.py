"""Language identification: a vote of generic detectors, an Indonesian/Malay discriminator and a
calibration map that turns scores into probabilities of being right.

How one text is identified (``LanguageIdentifier.identify``):

1. The text is prepared: URLs and e-mail addresses removed, spaces collapsed (line breaks kept), capped at
   ``max_chars``. Text with fewer than ``min_chars`` letters is ``und`` at once.
2. Vote. CLD2 and fastText always vote. When both put the same language on top (CLD2 with >= 0.9,
   fastText >= 0.5) and it is not a language of the Indonesian area, or both give Indonesian/Malay
   as a group these shares on a text of >= 30 letters and neither gives a regional language of
   Indonesia a share >= 0.1, that is the cascade's fast exit (most Indonesian news sentences take
   it). Otherwise CLD3 votes too, and py3langid (the slowest) when no two of the three agree or
   Indonesian, Malay or a regional language has a share >= 0.1 in any ballot. The vote is the
   weighted mean of the detectors' distributions; votes for a regional language of Indonesia
   (Javanese, Sundanese, Minangkabau, ...) that two detectors put on top count ``REGIONAL_WEIGHT``
   times: generic detectors read regional text as Indonesian far more often than the reverse (on
   Indonesian/Malay test sentences two of them almost never agree on a regional language).
3. Regional languages of Indonesia (``regional.RegionalModel``): when a language of the Indonesian
   area (Indonesian, Malay, a regional language) is the vote's top or has a share >= ``IN_PLAY_SCORE``
   in a ballot, or the vote's top share is below ``REGIONAL_WEAK_TOP``, a classifier trained here on
   NusaX and lingua (``training/language_regional.py``) gives P(Indonesian/Malay), P(other language)
   and P(each regional language) for texts of >= ``REGIONAL_MIN_TOKENS`` words. When it puts the text
   in the area (P(other) < 0.5) it decides which language of the area: a regional language (Balinese
   ``ban``, Minangkabau ``min``, Banjarese ``bjn``, Acehnese ``ace``, Buginese ``bug``, Madurese
   ``mad``, Toba Batak ``bbc``, Ngaju ``nij``, Javanese, Sundanese) with its calibrated probability as
   the confidence (at most ``REGIONAL_MAX_CONFIDENCE``), or Indonesian/Malay (step 4). A vote for
   Indonesian/Malay, Javanese or Sundanese (``DETECTED_AREA``) is overruled only by a classifier answer of
   >= ``REGIONAL_OVER_GROUP``.
4. Indonesian and Malay are one group for the vote; when the group is in play its share is split by
   the discriminator (``MalayDiscriminator``), a logistic model over words, character n-grams and
   word-frequency evidence that we train and ship. A text of one segment (sentence) is decided by
   its margin against ``ms_threshold`` and gets an isotonic-calibrated P(Malay); a text of two or
   more segments (lines, sentences) by ``DocumentModel`` from its segments' margins, so evidence
   accumulates over a page.
5. Confidence = P(the group/language of the vote is right | vote share, text length), an isotonic
   map per length bucket fitted on held-apart data (``train.py``), times the discriminator's
   P(Malay) or P(Indonesian) when the answer is one of them, capped at ``short_text_max_confidence``
   for texts of at most ``short_text_words`` words (single words and word pairs are too often
   ambiguous or mislabelled to be called reliably). Below ``min_confidence`` the code is ``und``
   (the alternatives still show the guesses).
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.stages.language.codes import MALAY_GROUP, UNDETERMINED
from pipeline.stages.language.detectors import (
    CONTROL_RE,
    Cld2Detector,
    Cld3Detector,
    FastTextDetector,
    Py3LangidDetector,
)
from pipeline.stages.language.features import (
    LEXICAL_SCALE,
    SENTENCE_END_RE,
    lexical_ratio,
    segments,
    token_keys,
    tokens,
)
from pipeline.stages.language.regional import IDMS, OTHER, RegionalModel

MODELS_DIR = Path(__file__).resolve().parent / "models"
DISCRIMINATOR_FILE = MODELS_DIR / "id_ms_discriminator.json.gz"
CALIBRATION_FILE = MODELS_DIR / "calibration.json"

#: Regional languages of Indonesia (and neighbours) the detectors know, by code.
REGIONAL = frozenset({"jv", "su", "min", "ace", "ban", "bug", "mad", "bjn", "bbc", "nij", "bew", "war", "ceb", "tet"})
REGIONAL_WEIGHT = 2.0
FAST_EXIT_CLD2 = 0.9       # fast exit: CLD2 and fastText agree, CLD2 with at least this share
FAST_EXIT_FASTTEXT = 0.5   # ... and fastText with at least this probability
IN_PLAY_SCORE = 0.1        # a language with this share in any ballot is "in play"
DISCRIMINATE_FROM = 0.15         # group share from which the discriminator runs
PARAGRAPH_CLD2_SCORE = 0.9       # paragraph quick check: CLD2's share for the page language (group)
PARAGRAPH_FASTTEXT_SCORE = 0.5   # ... and fastText's
GROUP_EXIT_LETTERS = 30          # the Indonesian/Malay fast exit needs at least this many letters
REGIONAL_MIN_TOKENS = 3          # the regional classifier decides texts of at least this many words
REGIONAL_MAX_TOKENS = 64         # ... from their first this many words (enough for a page; cheap)
REGIONAL_SKIP_KNOWN = 0.95       # a vote for Indonesian/Malay stands without the classifier when at
                                 # least this share of the words are in wordfreq's id/ms lists
REGIONAL_OVER_GROUP = 0.8        # P(regional language) needed to overrule a vote for Indonesian/Malay
REGIONAL_WEAK_TOP = 0.8          # the classifier also runs when the vote's top share is below this
#: languages of the area the generic detectors know well: their vote is overruled only by a classifier
#: answer of at least REGIONAL_OVER_GROUP (Javanese krama reads as Sundanese to it, for instance)
DETECTED_AREA = frozenset({"id", "ms", "jv", "su"})
LATIN_END = "\u024f"              # the languages of the area are written in Latin script here
VOTE_FLOOR = 0.01                # between two of those, the vote share (plus this) weighs the classifier's
REGIONAL_MAX_CONFIDENCE = 0.99   # the classifier's calibration is NusaX's (one domain): never surer

TOKEN_CACHE_SIZE = 200_000   # tokens whose feature keys are kept (cleared when full)

_URL_RE = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+")
_LETTER_RE = re.compile(r"[^\W\d_]")
_NON_LETTER_RE = re.compile(r"[\W\d_]")
#: scripts written without spaces between words (Thai, Lao, Myanmar, Khmer, kana, CJK ideographs)
_UNSPACED_RE = re.compile("[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
UNSPACED_CHARS_PER_WORD = 3
SHORT_TEXT_MAX_CHARS = 100   # longer texts are never "short" (words_of is not even counted)


def _indonesian_area(code: str | None) -> bool:
    return code in MALAY_GROUP or code in REGIONAL


class IsotonicMap:
    """A non-decreasing piecewise-linear map (fitted by isotonic regression), clamped at the ends."""

    def __init__(self, xs: list[float], ys: list[float]):
        if not xs or len(xs) != len(ys):
            raise ValueError("an isotonic map needs matching, non-empty x and y lists")
        self.xs = [float(x) for x in xs]
        self.ys = [float(y) for y in ys]

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        i = bisect.bisect_right(xs, x)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    def as_dict(self) -> dict[str, list[float]]:
        return {"x": [round(x, 6) for x in self.xs], "y": [round(y, 6) for y in self.ys]}


def in_indonesian_or_malay(cld2: Cld2Detector, segment: str) -> bool:
    """CLD2 puts Indonesian or Malay on top of this segment (or says nothing): the document model's
    segment filter on mixed pages (an English paragraph or a Javanese quote says nothing about
    Indonesian vs Malay)."""
    ballot = cld2.scores(segment)
    return not ballot or max(ballot, key=ballot.get) in MALAY_GROUP


def _shift_to_half(probability: float, at_threshold: float) -> float:
    """P(Malay) under the prior that puts the decision threshold at 0.5.

    The thresholds are set above the point where the (benchmark-calibrated, half Indonesian, half
    Malay) P(Malay) passes 0.5, to keep Indonesian feeds Indonesian: that is a prior favouring
    Indonesian. Dividing the odds by the odds at the threshold applies that prior, so the reported
    P(Malay) is > 0.5 exactly when the answer is Malay (and the alternatives agree with the code).
    """
    if at_threshold <= 0.5 or probability <= 0.0 or probability >= 1.0:
        return probability
    at_threshold = min(at_threshold, 1.0 - 1e-6)
    odds = probability / (1.0 - probability) * (1.0 - at_threshold) / at_threshold
    return odds / (1.0 + odds)


class DocumentModel:
    """P(Malay | a text of several segments), from the discriminator margins of its segments.

    A page is many sentences, and evidence accumulates: a logistic model over the token-weighted
    mean and the maximum of the segments' margins (``features.segment_tokens``), fitted by
    ``train.py`` on synthetic documents packed from the training sentences and scored with
    out-of-fold margins. The mean carries the page's overall Indonesian or Malay spelling; the
    maximum lets a few unmistakably Malay sentences (kerana, iaitu, sahaja, peratus, ...) decide a
    page whose other sentences could be either. One model per bucket of segment counts (2-3
    segments say less than 4 or more); in each the answer is Malay above its threshold (>= 0.5,
    higher if needed to keep Indonesian news pages Indonesian).
    """

    def __init__(self, buckets: list[dict[str, float]]):
        if not buckets or buckets[0]["min_segments"] != 2:
            raise ValueError("document model buckets must start at 2 segments")
        self.buckets = sorted(buckets, key=lambda b: b["min_segments"])
        self._starts = [b["min_segments"] for b in self.buckets]

    def bucket(self, segments: int) -> dict[str, float]:
        return self.buckets[max(0, bisect.bisect_right(self._starts, segments) - 1)]

    def probability(self, margins: list[float], sizes: list[int]) -> tuple[float, float]:
        """(P(Malay), Malay threshold) for segments with these margins and token counts."""
        bucket = self.bucket(len(margins))
        mean = sum(m * n for m, n in zip(margins, sizes, strict=True)) / sum(sizes)
        z = bucket["bias"] + bucket["mean_weight"] * mean + bucket["max_weight"] * max(margins)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))), bucket["threshold"]

    def as_list(self) -> list[dict[str, float]]:
        return [dict(b) for b in self.buckets]


class MalayDiscriminator:
    """P(Malay | text is Indonesian or Malay): a linear model over ``features.features``.

    One segment (a sentence, a title): ``raw_probability`` is the logistic model's output; the
    answer is Malay when it exceeds ``ms_threshold``; ``calibrated`` maps it to the probability of
    the label being Malay. Two or more segments: ``document`` decides from the segments' margins.
    The margin is computed from per-token sums cached in ``_token_stats`` (see ``features``): the
    same value as the model's dot product with ``features.features(text)``.
    """

    def __init__(self, weights: dict[str, float], bias: float, calibration: IsotonicMap | None = None,
                 ms_threshold: float = 0.5, document: DocumentModel | None = None):
        self.ms_threshold = ms_threshold
        self.weights = weights
        self.bias = bias
        self.calibration = calibration
        self.document = document
        self._lexical_sum = weights.get("lex:sum", 0.0) / LEXICAL_SCALE
        self._lexical_mean = weights.get("lex:mean", 0.0)
        self._token_stats: dict[str, tuple[float, int, float, int]] = {}
        self._prewarm_words = 0

    @classmethod
    def load(cls, path: Path = DISCRIMINATOR_FILE) -> MalayDiscriminator:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
        cal = data.get("calibration")
        document = data.get("document")
        return cls(data["weights"], data["bias"], IsotonicMap(cal["x"], cal["y"]) if cal else None,
                   data.get("ms_threshold", 0.5),
                   DocumentModel(document) if document else None)

    def _stats_of(self, token: str) -> tuple[float, int, float, int]:
        """(summed weight of the token's keys, number of keys, lexical log ratio, found in wordfreq)."""
        get = self.weights.get
        keys = token_keys(token)
        ratio = lexical_ratio(token)
        stats = (sum(get(k, 0.0) for k in keys), len(keys),
                 0.0 if ratio is None else ratio, 0 if ratio is None else 1)
        if len(self._token_stats) >= TOKEN_CACHE_SIZE:
            self._token_stats.clear()
        self._token_stats[token] = stats
        return stats

    def prewarm(self, words_per_language: int) -> None:
        """Pre-compute the per-token sums of the ``words_per_language`` most frequent Indonesian and
        Malay words (wordfreq): about 93 % of the tokens of Indonesian news, so a fresh worker
        runs at its steady speed from its first record (30,000 words: ~0.7 s, ~10 MB)."""
        import wordfreq

        self._prewarm_words = words_per_language
        for language in ("id", "ms"):
            for word in wordfreq.top_n_list(language, words_per_language):
                if word not in self._token_stats:
                    self._stats_of(word)

    def clear_cache(self) -> None:
        """Back to the state after loading (and ``prewarm``): benchmarks time a re-warmed cache."""
        self._token_stats.clear()
        if self._prewarm_words:
            self.prewarm(self._prewarm_words)

    def margin_of_tokens(self, words: list[str]) -> float:
        """bias + w . features_of_tokens(words), without building the feature vector."""
        cache = self._token_stats
        weight = 0.0
        keys = 0
        lexical = 0.0
        found = 0
        for token in words:
            stats = cache.get(token) or self._stats_of(token)
            weight += stats[0]
            keys += stats[1]
            lexical += stats[2]
            found += stats[3]
        z = self.bias
        if keys:
            z += weight / math.sqrt(keys)
        if found:
            z += self._lexical_sum * lexical + self._lexical_mean * lexical / found
        return z

    def known_share(self, words: list[str]) -> float:
        """Share of ``words`` found in wordfreq's Indonesian or Malay list (from the token cache,
        which the margin uses next)."""
        cache = self._token_stats
        found = 0
        for token in words:
            found += (cache.get(token) or self._stats_of(token))[3]
        return found / len(words) if words else 0.0

    def margin(self, text: str) -> float:
        return self.margin_of_tokens(tokens(text))

    def raw_probability(self, text: str) -> float:
        return self.probability_of_tokens(tokens(text))

    def calibrated(self, raw: float) -> float:
        return self.calibration(raw) if self.calibration else raw

    def decide(self, text: str, in_group: Callable[[str], bool] | None = None,
               words: list[str] | None = None) -> tuple[bool, float]:
        """(is Malay, P(Malay)) for a text whose language is Indonesian or Malay: by the document
        model when the text has two or more segments, else by the sentence model. ``in_group``
        tells which segments are Indonesian or Malay at all: only those are evidence (an English
        paragraph says nothing about id vs ms); one such segment is decided as a sentence, none
        leaves all segments in. ``words``: ``tokens(text)`` when the caller has them."""
        if self.document is not None and ("\n" in text or SENTENCE_END_RE.search(text)):
            parts = segments(text)
            if in_group is not None and len(parts) >= 2:
                kept = [part for part in parts if in_group(part[0])]
                if len(kept) == 1:
                    return self._sentence_decision(self.probability_of_tokens(kept[0][1]))
                parts = kept or parts
            if len(parts) >= 2:
                words = [part[1] for part in parts]
                probability, threshold = self.document.probability(
                    [self.margin_of_tokens(w) for w in words], [len(w) for w in words])
                return probability > threshold, _shift_to_half(probability, threshold)
        return self._sentence_decision(self.probability_of_tokens(tokens(text) if words is None else words))

    def _sentence_decision(self, raw: float) -> tuple[bool, float]:
        return raw > self.ms_threshold, _shift_to_half(self.calibrated(raw), self.calibrated(self.ms_threshold))

    def probability_of_tokens(self, words: list[str]) -> float:
        z = self.margin_of_tokens(words)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


class Calibration:
    """P(the vote's top group is right | its share), one isotonic map per text-length bucket."""

    def __init__(self, edges: list[int], maps: list[IsotonicMap]):
        if len(maps) != len(edges) + 1:
            raise ValueError("calibration needs one map per length bucket")
        self.edges = edges
        self.maps = maps

    @staticmethod
    def bucket_of(letters: int, edges: list[int]) -> int:
        return bisect.bisect_right(edges, letters)

    def __call__(self, share: float, letters: int) -> float:
        return self.maps[self.bucket_of(letters, self.edges)](share)

    @classmethod
    def load(cls, path: Path = CALIBRATION_FILE) -> Calibration:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["edges"], [IsotonicMap(m["x"], m["y"]) for m in data["maps"]])


@dataclass
class Vote:
    """What the detectors and the discriminator said about one text (before calibration)."""

    scores: dict[str, float]            # language -> share of the vote (Indonesian/Malay split)
    top: str                            # best language, UNDETERMINED if nothing voted
    top_share: float                    # share of the top language, id+ms merged when it is one of them
    letters: int
    ms_probability: float | None = None  # discriminator's calibrated P(Malay), when it ran
    detectors: list[str] = field(default_factory=list)
    short: bool = False                  # at most short_text_words words (LanguageIdentifier.words_of)
    direct: float | None = None          # the regional classifier's calibrated P(top group): the
                                         # confidence (before the id/ms split), instead of the vote map


@dataclass
class Identification:
    code: str
    confidence: float
    reliable: bool
    alternatives: list[tuple[str, float]]
    guess: str                           # best language even when ``code`` is ``und``
    letters: int
    group_confidence: float = 0.0        # for Indonesian/Malay: P(Indonesian or Malay), not which

    def as_record(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "confidence": round(self.confidence, 4),
            "reliable": self.reliable,
            "alternatives": [{"code": c, "score": round(s, 4)} for c, s in self.alternatives],
        }


class LanguageIdentifier:
    def __init__(self, *, min_chars: int, min_confidence: float, reliable_confidence: float,
                 max_chars: int, short_text_words: int = 0, short_text_max_confidence: float = 1.0,
                 cache_words: int = 0, discriminator: MalayDiscriminator | None = None,
                 calibration: Calibration | None = None, regional: RegionalModel | None = None):
        self.min_chars = min_chars
        self.min_confidence = min_confidence
        self.reliable_confidence = reliable_confidence
        self.max_chars = max_chars
        self.short_text_words = short_text_words
        self.short_text_max_confidence = short_text_max_confidence
        self.cld2 = Cld2Detector()
        self.fasttext = FastTextDetector()
        self.cld3 = Cld3Detector()
        self.py3langid = Py3LangidDetector()
        self.discriminator = discriminator
        self.calibration = calibration
        self.regional = regional
        self.regional_over_group = REGIONAL_OVER_GROUP
        self.regional_weak_top = REGIONAL_WEAK_TOP
        if discriminator is not None and cache_words > 0:
            discriminator.prewarm(cache_words)
        if regional is not None and cache_words > 0:
            regional.prewarm(cache_words)

    @classmethod
    def with_shipped_models(cls, **kwargs: Any) -> LanguageIdentifier:
        return cls(discriminator=MalayDiscriminator.load(), calibration=Calibration.load(),
                   regional=RegionalModel.load(), **kwargs)

    # --- the vote ---------------------------------------------------------------------------------

    def prepare(self, text: str) -> str:
        """URLs, e-mail addresses and control characters out, runs of spaces collapsed, blank lines
        dropped (line breaks kept: they separate the discriminator's segments), capped at
        ``max_chars``."""
        text = text[: self.max_chars * 2]
        if "@" in text or "://" in text or "www." in text:
            text = _URL_RE.sub(" ", text)
        text = CONTROL_RE.sub(" ", text)
        if "\n" in text:
            text = "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())
            return text.strip("\n")[: self.max_chars]
        return " ".join(text.split())[: self.max_chars]

    @staticmethod
    def words_of(text: str) -> int:
        """Words, counting ``UNSPACED_CHARS_PER_WORD`` characters of a script written without
        spaces (Chinese, Japanese, Thai, ...) as one word."""
        unspaced = len(_UNSPACED_RE.findall(text))
        if not unspaced:
            return len(text.split())
        return len(_UNSPACED_RE.sub("", text).split()) + max(1, unspaced // UNSPACED_CHARS_PER_WORD)

    def vote(self, text: str) -> Vote:
        text = self.prepare(text)
        letters = len(text) - len(_NON_LETTER_RE.findall(text))
        if letters < self.min_chars:
            return Vote({}, UNDETERMINED, 0.0, letters)
        ballots = [self.cld2.scores(text), self.fasttext.scores(text)]
        names = ["cld2", "fasttext"]
        tops = [max(b, key=b.get) if b else None for b in ballots]
        if not self._fast_exit(ballots, tops, letters):
            ballots.append(self.cld3.scores(text))
            names.append("cld3")
            tops.append(max(ballots[2], key=ballots[2].get) if ballots[2] else None)
            # py3langid (the slowest voter) only where Indonesian, Malay or a regional language is
            # in play, or where no two of the three agree
            agree = any(c is not None and tops.count(c) >= 2 for c in tops)
            in_play = any(_indonesian_area(c) for ballot in ballots for c in ballot
                          if ballot[c] >= IN_PLAY_SCORE)
            if in_play or not agree:
                ballots.append(self.py3langid.scores(text))
                names.append("py3langid")
        # a regional language's votes count REGIONAL_WEIGHT times when two detectors put it on top
        regional_tops = [max(b, key=b.get) for b in ballots if b]
        boosted = {c for c in REGIONAL if regional_tops.count(c) >= 2}
        scores: dict[str, float] = {}
        for ballot in ballots:
            for code, p in ballot.items():
                scores[code] = scores.get(code, 0.0) + (p * REGIONAL_WEIGHT if code in boosted else p)
        total = sum(scores.values())
        if total <= 0:
            return Vote({}, UNDETERMINED, 0.0, letters, detectors=names)
        scores = {c: s / total for c, s in scores.items()}
        direct = None
        words = None
        if self.regional is not None:
            words = tokens(text)
            decided = self._regional(words, scores, ballots, "\n" in text)
            if decided is not None:
                scores, top, direct = decided
                if top not in MALAY_GROUP:
                    short = len(text) <= SHORT_TEXT_MAX_CHARS and self.words_of(text) <= self.short_text_words
                    return Vote(scores, top, direct, letters, None, names, short, direct)
        group = scores.get("id", 0.0) + scores.get("ms", 0.0)
        others = [c for c in scores if c not in MALAY_GROUP]
        best_other = max(others, key=scores.get) if others else None
        ms_probability = None
        if group >= DISCRIMINATE_FROM and self.discriminator is not None:
            # a page that also holds another language: only its Indonesian/Malay segments are id/ms
            # evidence. (Pages of Indonesian/Malay alone keep every segment, as in training: CLD2
            # misreads short Indonesian or Malay lines often enough to lose evidence.)
            mixed = any(c not in MALAY_GROUP and p >= IN_PLAY_SCORE for b in ballots[:2] for c, p in b.items())
            is_malay, ms_probability = self.discriminator.decide(text, self._in_group if mixed else None, words)
            scores["ms"] = group * ms_probability
            scores["id"] = group * (1.0 - ms_probability)
        if group > 0 and (best_other is None or group >= scores[best_other]):
            if ms_probability is not None:
                top = "ms" if is_malay else "id"
            else:
                top = "ms" if scores.get("ms", 0.0) > scores.get("id", 0.0) else "id"
            top_share = group
        else:
            top, top_share = best_other, scores[best_other]
        # a text longer than SHORT_TEXT_MAX_CHARS has more words than any sensible short-text limit
        short = len(text) <= SHORT_TEXT_MAX_CHARS and self.words_of(text) <= self.short_text_words
        return Vote(scores, top, top_share, letters, ms_probability, names, short, direct)

    def _regional(self, words: list[str], scores: dict[str, float], ballots: list[dict[str, float]],
                  several_lines: bool) -> tuple[dict[str, float], str, float] | None:
        """The regional classifier's answer when a language of the Indonesian area is in play (the
        vote's top, or a share >= IN_PLAY_SCORE in a ballot) and the classifier puts the text in the
        area: (new scores, top code or "id" for the Indonesian/Malay group, calibrated P(top)).
        None leaves the vote as it is: the classifier says "not a language of the area", or the vote's
        top is a language the detectors know well (Indonesian/Malay, Javanese, Sundanese) and the
        classifier agrees with it or is not sure enough (< ``regional_over_group``) to overrule it; or
        the vote's top is outside the area and the text has several lines (a page mixing languages is
        not what the classifier was trained on: its regional lines become spans, ``paragraph``)."""
        top = max(scores, key=scores.get)
        if several_lines and not _indonesian_area(top):
            return None
        if not _indonesian_area(top) and scores[top] >= self.regional_weak_top and not any(
                _indonesian_area(c) and p >= IN_PLAY_SCORE for ballot in ballots for c, p in ballot.items()):
            return None
        if len(words) < REGIONAL_MIN_TOKENS:
            return None
        words = words[:REGIONAL_MAX_TOKENS]
        if not _indonesian_area(top) and max(map(max, words[:REGIONAL_MIN_TOKENS])) > LATIN_END:
            return None   # a weak vote on a text in another script: not a language of the area
        if top in MALAY_GROUP and self.discriminator is not None \
                and self.discriminator.known_share(words) >= REGIONAL_SKIP_KNOWN:
            return None   # half of Indonesian news sentences; regional sentences: 1 % at most (NusaX)
        q = self.regional.probabilities_of_tokens(words)
        other = q.get(OTHER, 0.0)
        if other >= 0.5:
            return None
        best = max((c for c in q if c != OTHER), key=q.get)
        answer = "id" if best == IDMS else best
        if top in DETECTED_AREA:
            if answer == top or (top in MALAY_GROUP and answer in MALAY_GROUP) or q[best] < self.regional_over_group:
                return None
            if answer in DETECTED_AREA:
                # both are languages the detectors know: the vote's evidence and the classifier's are
                # multiplied (Javanese krama reads as Sundanese to the classifier, not to the detectors)
                top_class = IDMS if top in MALAY_GROUP else top
                top_share = scores.get("id", 0.0) + scores.get("ms", 0.0) if top in MALAY_GROUP else scores[top]
                answer_share = scores.get("id", 0.0) + scores.get("ms", 0.0) if best == IDMS else scores.get(best, 0.0)
                if q[best] * (answer_share + VOTE_FLOOR) <= q.get(top_class, 0.0) * (top_share + VOTE_FLOOR):
                    return None
        # the classifier's distribution over the area; languages outside it keep their share of the
        # vote's non-area part, scaled to the classifier's P(other)
        outside = {c: p for c, p in scores.items() if not _indonesian_area(c)}
        outside_total = sum(outside.values())
        new = {c: p * other / outside_total for c, p in outside.items()} if outside_total > 0 else {}
        group = scores.get("id", 0.0) + scores.get("ms", 0.0)
        id_share = scores.get("id", 0.0) / group if group > 0 else 1.0
        for c, p in q.items():
            if c == IDMS:
                new["id"] = p * id_share
                new["ms"] = p * (1.0 - id_share)
            elif c != OTHER:
                new[c] = p
        return new, answer, q[best]

    def _in_group(self, segment: str) -> bool:
        return in_indonesian_or_malay(self.cld2, segment)

    @staticmethod
    def _fast_exit(ballots: list[dict[str, float]], tops: list[str | None], letters: int) -> bool:
        """CLD2 and fastText agree strongly: no other detector changes the answer.

        * on a language outside the Indonesian area (CLD2 share >= FAST_EXIT_CLD2, fastText >=
          FAST_EXIT_FASTTEXT);
        * or on Indonesian/Malay as a group (same thresholds on the group's share, text of at
          least GROUP_EXIT_LETTERS letters) with no regional language of Indonesia in play in
          either ballot. The discriminator still splits the group. On the lingua and NER data this
          exit never changes the group-level answer (bench/language/README.md).
        """
        cld2, fasttext = ballots
        if tops[0] is None or tops[1] is None:
            return False
        if tops[0] == tops[1] and not _indonesian_area(tops[0]):
            return cld2[tops[0]] >= FAST_EXIT_CLD2 and fasttext[tops[1]] >= FAST_EXIT_FASTTEXT
        if letters < GROUP_EXIT_LETTERS or tops[0] not in MALAY_GROUP or tops[1] not in MALAY_GROUP:
            return False
        if (cld2.get("id", 0.0) + cld2.get("ms", 0.0) < FAST_EXIT_CLD2
                or fasttext.get("id", 0.0) + fasttext.get("ms", 0.0) < FAST_EXIT_FASTTEXT):
            return False
        return not any(c in REGIONAL and p >= IN_PLAY_SCORE for b in ballots for c, p in b.items())

    # --- calibrated answer ------------------------------------------------------------------------

    def confidence_of(self, vote: Vote) -> float:
        return self._confidences(vote)[0]

    def _confidences(self, vote: Vote) -> tuple[float, float]:
        """(confidence of the answer, confidence of its group: for Indonesian or Malay, that the text
        is one of the two)."""
        if vote.top == UNDETERMINED:
            return 0.0, 0.0
        if vote.direct is not None:
            group = min(vote.direct, REGIONAL_MAX_CONFIDENCE)
        else:
            group = self.calibration(vote.top_share, vote.letters) if self.calibration else vote.top_share
        if vote.short:
            group = min(group, self.short_text_max_confidence)
        group = max(0.0, min(1.0, group))
        if vote.top in MALAY_GROUP and vote.ms_probability is not None:
            return group * (vote.ms_probability if vote.top == "ms" else 1.0 - vote.ms_probability), group
        return group, group

    def identify(self, text: str) -> Identification:
        vote = self.vote(text)
        confidence, group_confidence = self._confidences(vote)
        ranked = sorted(vote.scores.items(), key=lambda kv: -kv[1])[:3]
        code = vote.top if confidence >= self.min_confidence else UNDETERMINED
        return Identification(code=code, confidence=confidence,
                              reliable=code != UNDETERMINED and confidence >= self.reliable_confidence,
                              alternatives=ranked, guess=vote.top, letters=vote.letters,
                              group_confidence=group_confidence)

    def paragraph(self, text: str, page_code: str) -> Identification:
        """One paragraph of a page: a quick CLD2 + fastText check that it is in the page's
        language (group), else the full identification. A paragraph that passes the check gets the
        page's code with confidence 1.0 (a span's confidence is the mean over its paragraphs)."""
        prepared = self.prepare(text)
        letters = len(_LETTER_RE.findall(prepared))
        if letters >= self.min_chars:
            page_group = MALAY_GROUP if page_code in MALAY_GROUP else (page_code,)
            agreeing = 0
            for ballot, needed in ((self.cld2.scores(prepared), PARAGRAPH_CLD2_SCORE),
                                   (self.fasttext.scores(prepared), PARAGRAPH_FASTTEXT_SCORE)):
                in_page = sum(ballot.get(c, 0.0) for c in page_group)
                others = [p for c, p in ballot.items() if c not in page_group]
                if in_page >= needed and in_page > max(others, default=0.0):
                    agreeing += 1
            if agreeing == 2:
                return Identification(code=page_code, confidence=1.0, reliable=True,
                                      alternatives=[(page_code, 1.0)], guess=page_code, letters=letters,
                                      group_confidence=1.0)
        return self.identify(text)
