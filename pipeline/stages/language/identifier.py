"""Language identification: a vote of generic detectors, an Indonesian/Malay discriminator and a
calibration map that turns scores into probabilities of being right.

How one text is identified (``LanguageIdentifier.identify``):

1. The text is prepared: URLs and e-mail addresses removed, whitespace collapsed, capped at
   ``max_chars``. Text with fewer than ``min_chars`` letters is ``und`` at once.
2. Vote. CLD2 and fastText always vote. When both put the same language on top (CLD2 with >= 0.9,
   fastText >= 0.5) and it is neither Indonesian/Malay nor a regional language of Indonesia, that
   is the cascade's fast exit. Otherwise CLD3 votes too, and py3langid (the slowest) when no two of
   the three agree or Indonesian, Malay or a regional language has a share >= 0.1 in any ballot. The vote is the weighted mean of the detectors'
   distributions; votes for a regional language of Indonesia (Javanese, Sundanese, Minangkabau, ...)
   that two detectors put on top count ``REGIONAL_WEIGHT`` times: generic detectors read regional
   text as Indonesian far more often than the reverse (on Indonesian/Malay test sentences two of
   them almost never agree on a regional language).
3. Indonesian and Malay are one group for the vote; when the group is in play its share is split by
   the discriminator (``malay.MalayDiscriminator``), a logistic model over words and character
   n-grams that we train and ship, with its own calibration.
4. Confidence = P(the group/language of the vote is right | vote share, text length), an isotonic
   map per length bucket fitted on held-apart data (``train.py``), times the discriminator's
   calibrated probability when the answer is Indonesian or Malay. Below ``min_confidence`` the code
   is ``und`` (the alternatives still show the guesses).
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
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
from pipeline.stages.language.features import lexical_features, token_keys, tokens

MODELS_DIR = Path(__file__).resolve().parent / "models"
DISCRIMINATOR_FILE = MODELS_DIR / "id_ms_discriminator.json.gz"
CALIBRATION_FILE = MODELS_DIR / "calibration.json"

#: Regional languages of Indonesia (and neighbours) the detectors know, by code.
REGIONAL = frozenset({"jv", "su", "min", "ace", "ban", "bug", "mad", "bjn", "bew", "war", "ceb", "tet"})
REGIONAL_WEIGHT = 2.0
FAST_EXIT_CLD2 = 0.9       # fast exit: CLD2 and fastText agree, CLD2 with at least this share
FAST_EXIT_FASTTEXT = 0.5   # ... and fastText with at least this probability
IN_PLAY_SCORE = 0.1        # a language with this share in any ballot is "in play"
DISCRIMINATE_FROM = 0.15
PARAGRAPH_CLD2_SCORE = 0.9       # paragraph quick check: CLD2's share for the page language (group)
PARAGRAPH_FASTTEXT_SCORE = 0.5   # ... and fastText's   # group share from which the discriminator runs

TOKEN_CACHE_SIZE = 200_000   # tokens whose feature keys are kept (cleared when full)

_URL_RE = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+")
_LETTER_RE = re.compile(r"[^\W\d_]")


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


class MalayDiscriminator:
    """P(Malay | text is Indonesian or Malay): a linear model over ``features.features``.

    ``raw_probability`` is the logistic model's output; the answer is Malay when it exceeds
    ``ms_threshold``; ``calibrated`` maps it to the probability of the label being Malay.
    """

    def __init__(self, weights: dict[str, float], bias: float, calibration: IsotonicMap | None = None,
                 ms_threshold: float = 0.5):
        self.ms_threshold = ms_threshold
        self._token_keys: dict[str, list[str]] = {}
        self.weights = weights
        self.bias = bias
        self.calibration = calibration

    @classmethod
    def load(cls, path: Path = DISCRIMINATOR_FILE) -> MalayDiscriminator:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
        cal = data.get("calibration")
        return cls(data["weights"], data["bias"], IsotonicMap(cal["x"], cal["y"]) if cal else None,
                   data.get("ms_threshold", 0.5))

    def margin(self, text: str) -> float:
        """bias + w . features(text), computed without building the feature dict (same value)."""
        keys: list[str] = []
        cache = self._token_keys
        words = tokens(text)
        lexical = sum(self.weights.get(k, 0.0) * v for k, v in lexical_features(words).items())
        for token in words:
            token_keys_ = cache.get(token)
            if token_keys_ is None:
                if len(cache) >= TOKEN_CACHE_SIZE:
                    cache.clear()
                token_keys_ = cache[token] = token_keys(token)
            keys.extend(token_keys_)
        if not keys:
            return self.bias + lexical
        counts = Counter(keys)
        damped = list(map(math.log1p, counts.values()))
        norm = math.sqrt(sum(map(operator.mul, damped, damped)))
        dot = sum(map(operator.mul, map(self.weights.get, counts, repeat(0.0)), damped))
        return self.bias + lexical + dot / norm

    def raw_probability(self, text: str) -> float:
        z = self.margin(text)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def calibrated(self, raw: float) -> float:
        return self.calibration(raw) if self.calibration else raw


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


@dataclass
class Identification:
    code: str
    confidence: float
    reliable: bool
    alternatives: list[tuple[str, float]]
    guess: str                           # best language even when ``code`` is ``und``
    letters: int

    def as_record(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "confidence": round(self.confidence, 4),
            "reliable": self.reliable,
            "alternatives": [{"code": c, "score": round(s, 4)} for c, s in self.alternatives],
        }


class LanguageIdentifier:
    def __init__(self, *, min_chars: int, min_confidence: float, reliable_confidence: float,
                 max_chars: int, discriminator: MalayDiscriminator | None = None,
                 calibration: Calibration | None = None):
        self.min_chars = min_chars
        self.min_confidence = min_confidence
        self.reliable_confidence = reliable_confidence
        self.max_chars = max_chars
        self.cld2 = Cld2Detector()
        self.fasttext = FastTextDetector()
        self.cld3 = Cld3Detector()
        self.py3langid = Py3LangidDetector()
        self.discriminator = discriminator
        self.calibration = calibration

    @classmethod
    def with_shipped_models(cls, **kwargs: Any) -> LanguageIdentifier:
        return cls(discriminator=MalayDiscriminator.load(), calibration=Calibration.load(), **kwargs)

    # --- the vote ---------------------------------------------------------------------------------

    def prepare(self, text: str) -> str:
        text = CONTROL_RE.sub(" ", _URL_RE.sub(" ", text[: self.max_chars * 2]))
        return " ".join(text.split())[: self.max_chars]

    def vote(self, text: str) -> Vote:
        text = self.prepare(text)
        letters = len(_LETTER_RE.findall(text))
        if letters < self.min_chars:
            return Vote({}, UNDETERMINED, 0.0, letters)
        ballots = [self.cld2.scores(text), self.fasttext.scores(text)]
        names = ["cld2", "fasttext"]
        tops = [max(b, key=b.get) if b else None for b in ballots]
        fast_exit = (tops[0] is not None and tops[0] == tops[1] and not _indonesian_area(tops[0])
                     and ballots[0][tops[0]] >= FAST_EXIT_CLD2 and ballots[1][tops[1]] >= FAST_EXIT_FASTTEXT)
        if not fast_exit:
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
        group = scores.get("id", 0.0) + scores.get("ms", 0.0)
        others = [c for c in scores if c not in MALAY_GROUP]
        best_other = max(others, key=scores.get) if others else None
        ms_probability = None
        if group >= DISCRIMINATE_FROM and self.discriminator is not None:
            raw = self.discriminator.raw_probability(text)
            is_malay = raw > self.discriminator.ms_threshold
            ms_probability = self.discriminator.calibrated(raw)
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
        return Vote(scores, top, top_share, letters, ms_probability, names)

    # --- calibrated answer ------------------------------------------------------------------------

    def confidence_of(self, vote: Vote) -> float:
        if vote.top == UNDETERMINED:
            return 0.0
        base = self.calibration(vote.top_share, vote.letters) if self.calibration else vote.top_share
        if vote.top in MALAY_GROUP and vote.ms_probability is not None:
            base *= vote.ms_probability if vote.top == "ms" else 1.0 - vote.ms_probability
        return max(0.0, min(1.0, base))

    def identify(self, text: str) -> Identification:
        vote = self.vote(text)
        confidence = self.confidence_of(vote)
        ranked = sorted(vote.scores.items(), key=lambda kv: -kv[1])[:3]
        code = vote.top if confidence >= self.min_confidence else UNDETERMINED
        return Identification(code=code, confidence=confidence,
                              reliable=code != UNDETERMINED and confidence >= self.reliable_confidence,
                              alternatives=ranked, guess=vote.top, letters=vote.letters)

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
                                      alternatives=[(page_code, 1.0)], guess=page_code, letters=letters)
        return self.identify(text)
