"""Language stage: the language of the cleaned text, calibrated, with mixed-language spans.

Output on the record::

    "lang": {"code": "id", "confidence": 0.97, "reliable": true,
             "alternatives": [{"code": "id", "score": 0.9}, {"code": "ms", "score": 0.08}, ...],
             "spans": [{"start": 0, "end": 14, "code": "id", "confidence": 0.98},
                       {"start": 14, "end": 15, "code": "en", "confidence": 0.99}]}

* ``code``: ISO 639-1 where one exists, else ISO 639-3; ``und`` when the text has fewer than
  ``min_chars`` letters or the confidence is below ``min_confidence``.
* ``confidence``: the probability that ``code`` (or, for ``und``, the best guess, which is
  ``alternatives[0]``) is right; calibrated on held-apart labelled data (see ``identifier.py``).
* ``reliable``: ``confidence >= reliable_confidence``.
* ``alternatives``: the top three languages of the detectors' vote with their vote shares (the
  Indonesian/Malay share split by the discriminator): a ranking, not calibrated probabilities.
* ``spans``: paragraph ranges (the cleaned text has one paragraph per line; ``start`` inclusive,
  ``end`` exclusive, 0-based line numbers) with their language. One span covers a one-language page.
  A paragraph gets a language of its own only when it has at least ``span_min_chars`` letters, is
  identified with at least ``span_min_confidence`` (an Indonesian or Malay paragraph in a page of
  another language: is surely one of the two) and is not Indonesian/Malay inside an
  Indonesian/Malay page (that distinction needs more text than a paragraph); other paragraphs
  (short lines, blank lines) belong to the page language. Empty when the page is ``und``.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import LanguageSettings
from pipeline.stage_metrics import CountBy
from pipeline.stages.base import Context, Stage
from pipeline.stages.language.codes import MALAY_GROUP, UNDETERMINED
from pipeline.stages.language.identifier import LanguageIdentifier

__all__ = ["LanguageStage", "UNDETERMINED"]


def _same_language(a: str, b: str) -> bool:
    return a == b or (a in MALAY_GROUP and b in MALAY_GROUP)


class LanguageStage(Stage):
    name = "language"
    parallel_safe = True
    record_metrics = (CountBy("language_records", "Records by detected language code.", "lang", "lang.code"),)

    def __init__(self, settings: LanguageSettings):
        super().__init__()
        self.settings = settings
        self.identifier = LanguageIdentifier.with_shipped_models(
            min_chars=settings.min_chars, min_confidence=settings.min_confidence,
            reliable_confidence=settings.reliable_confidence, max_chars=settings.max_chars,
            short_text_words=settings.short_text_words,
            short_text_max_confidence=settings.short_text_max_confidence,
            cache_words=settings.cache_words)

    def identify(self, text: str) -> dict[str, Any]:
        """``lang`` for a text (without spans)."""
        return self.identifier.identify(text).as_record()

    def spans(self, text: str, page_code: str) -> list[dict[str, Any]]:
        if page_code == UNDETERMINED:
            return []
        settings = self.settings
        labels: list[tuple[str, float] | None] = []
        for line in text.split("\n"):
            if len(line) < settings.span_min_chars:
                labels.append(None)
                continue
            guess = self.identifier.paragraph(line, page_code)
            # an Indonesian/Malay paragraph in a page of another language is a span when it is surely
            # one of the two, even if which one is less sure (its code is the better of the two)
            sure = (guess.group_confidence if guess.guess in MALAY_GROUP and page_code not in MALAY_GROUP
                    else guess.confidence)
            if (guess.guess != UNDETERMINED and guess.letters >= settings.span_min_chars
                    and sure >= settings.span_min_confidence):
                if _same_language(guess.guess, page_code):
                    labels.append((page_code, guess.confidence))
                else:
                    labels.append((guess.guess, guess.confidence))
            else:
                labels.append(None)
        spans: list[dict[str, Any]] = []
        confidences: list[list[float]] = []
        for i, label in enumerate(labels):
            code, confidence = label if label else (spans[-1]["code"] if spans else page_code, None)
            if not spans or spans[-1]["code"] != code:
                spans.append({"start": i, "end": i + 1, "code": code})
                confidences.append([])
            spans[-1]["end"] = i + 1
            if confidence is not None:
                confidences[-1].append(confidence)
        for span, values in zip(spans, confidences, strict=True):
            span["confidence"] = round(sum(values) / len(values), 4) if values else None
        return spans

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        text = record.get("text") or ""
        lang = self.identify(text)
        lang["spans"] = self.spans(text, lang["code"])
        record["lang"] = lang
        self.stats.extra[f"lang_{lang['code']}"] += 1
        if len({span["code"] for span in lang["spans"]}) > 1:
            self.stats.extra["mixed_pages"] += 1
        return record
