"""The two extraction metrics of the evaluation sets, written for this project from their definitions.

AEB (scrapinghub article-extraction-benchmark)
    Each document's gold text and extracted text become multisets of word 4-grams ("shingles").
    Per document, true positives are the shingles in both (counted with multiplicity), false
    positives those only extracted, false negatives those only in the gold; the three are
    normalised to sum to 1. Precision and recall are averaged over documents (a document with no
    shingles extracted is left out of the precision average, one with an empty gold text out of the
    recall average), and F1 is the harmonic mean of the two averages.

trafilatura set (trafilatura's evaluation data)
    Each page lists snippets that must be extracted (``with``) and snippets that must not be
    (``without``). After collapsing whitespace, a ``with`` snippet found in the output is a true
    positive (else a false negative), a ``without`` snippet found is a false positive. Counts are
    summed over the set; F1 = 2tp / (2tp + fp + fn).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_WORDS = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")


def shingles(text: str, size: int = 4) -> Counter:
    words = _WORDS.findall(text or "")
    if len(words) < size:
        return Counter([tuple(words)]) if words else Counter()
    return Counter(tuple(words[i:i + size]) for i in range(len(words) - size + 1))


@dataclass
class ShingleScore:
    """Per-document normalised true positive / false positive / false negative shares."""

    tp: float
    fp: float
    fn: float

    @classmethod
    def of(cls, gold: str, extracted: str) -> ShingleScore:
        want, got = shingles(gold), shingles(extracted)
        tp = sum((want & got).values())
        fp = sum((got - want).values())
        fn = sum((want - got).values())
        total = tp + fp + fn
        if total == 0:
            return cls(0.0, 0.0, 0.0)
        return cls(tp / total, fp / total, fn / total)

    @property
    def precision(self) -> float | None:
        """None when nothing was extracted (the document is left out of the precision average)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """None when the gold text is empty (left out of the recall average)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


def aeb_scores(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """``pairs`` of (gold text, extracted text) -> macro precision, recall and their F1."""
    scores = [ShingleScore.of(gold, out) for gold, out in pairs]
    precisions = [s.precision for s in scores if s.precision is not None]
    recalls = [s.recall for s in scores if s.recall is not None]
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


@dataclass
class SnippetCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    missed: list[str] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)

    def add(self, must: list[str], must_not: list[str], extracted: str) -> None:
        out = collapse(extracted)
        for snippet in must:
            if collapse(snippet) in out:
                self.tp += 1
            else:
                self.fn += 1
                self.missed.append(snippet)
        for snippet in must_not:
            if collapse(snippet) in out:
                self.fp += 1
                self.leaked.append(snippet)
            else:
                self.tn += 1

    def scores(self) -> dict[str, float]:
        tp, fp, fn = self.tp, self.fp, self.fn
        return {"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
                "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0, "tp": tp, "fp": fp, "fn": fn}


def snippet_scores(rows: list[dict], outputs: list[str]) -> dict[str, float]:
    counts = SnippetCounts()
    for row, out in zip(rows, outputs, strict=True):
        counts.add(row["with"], row["without"], out)
    return counts.scores()


def score_set(kind: str, rows: list[dict], outputs: list[str]) -> dict[str, float]:
    if kind == "aeb":
        return aeb_scores([(row["gold_text"], out) for row, out in zip(rows, outputs, strict=True)])
    return snippet_scores(rows, outputs)
