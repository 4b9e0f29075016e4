"""The Indonesian NER training and scoring data: loading, label mapping, truecasing, span scoring.

Data recipe (what ``training/entities.py`` trains on; files live in ``../shared/eval``, see its README):

* ``ner-idner-news-2k.train`` (news, PER/ORG/LOC), ``ner-nergrit.train`` (Wikipedia-like,
  PERSON/ORGANISATION/PLACE -> PER/ORG/LOC) and ``ner-nerp.train`` (news, all lower case,
  PPL/IND/PLC -> PER/ORG/LOC; EVT and FNB are not kept: they become O).
* NERP is lower-cased. Feeding it as is teaches a case-aware tagger that lower-case words are names,
  so it is *truecased* first (:func:`truecase`): each word takes the casing it most often has inside
  sentences of the two cased sets, names missing there take Title case (entity words) and the first
  word of a sentence is capitalised.
* The ``dev`` splits are only used for scoring (``bench.entities``); sentences that also occur in the
  withheld test splits were removed upstream.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.stages.entities.crf import spans  # noqa: F401 - the scoring here and in bench/entities uses it

LABELS = ("PER", "ORG", "LOC")
LABEL_MAPS = {
    "idner-news-2k": {"PER": "PER", "ORG": "ORG", "LOC": "LOC"},
    "nergrit": {"PERSON": "PER", "ORGANISATION": "ORG", "PLACE": "LOC"},
    "nerp": {"PPL": "PER", "IND": "ORG", "PLC": "LOC"},
}
LOWERCASED_SETS = {"nerp"}


@dataclass
class Sentence:
    id: str
    tokens: list[str]
    tags: list[str]  # IOB2 over PER/ORG/LOC
    source: str


def map_tags(tags: list[str], mapping: dict[str, str]) -> list[str]:
    """IOB2 tags with labels renamed; labels missing from ``mapping`` become O (and repairs I- after O)."""
    out = []
    for tag in tags:
        if tag == "O":
            out.append("O")
            continue
        prefix, label = tag.split("-", 1)
        new = mapping.get(label)
        if new is None:
            out.append("O")
        elif prefix == "I" and (not out or out[-1] == "O" or out[-1][2:] != new):
            out.append("B-" + new)
        else:
            out.append(prefix + "-" + new)
    return out


MIN_SHORT_FORMS = 10


def short_form_labels(sentences: Iterable[Sentence]) -> list[str]:
    """The labels whose names the annotation writes with their short form in brackets inside the span
    ("Mahkamah Konstitusi (MK)" one ORG, as idner-news-2k does) rather than apart (UNER, NERGrit; and
    idner-news-2k's own people: "Joko Widodo (Jokowi)" is two): per label, the convention of most such names
    in ``sentences``, once they hold at least ``MIN_SHORT_FORMS`` inside spans in all."""
    votes: dict[str, Counter] = defaultdict(Counter)
    for s in sentences:
        for a, b, label in spans(s.tags):
            if b - a >= 2 and s.tokens[b - 1].endswith(")") and "(" in " ".join(s.tokens[a + 1:b]):
                votes[label]["inside"] += 1
            elif " ".join(s.tokens[b:b + 3]).startswith("(") and ")" in " ".join(s.tokens[b:b + 3]):
                votes[label]["apart"] += 1
    if sum(v["inside"] for v in votes.values()) < MIN_SHORT_FORMS:
        return []
    return sorted(label for label, v in votes.items() if v["inside"] > v["apart"])


MIN_PLACE_HEADS, PLACE_HEAD_SHARE = 10, 0.8


def place_heads(sentences: Iterable[Sentence]) -> list[str]:
    """Capitalised words that, followed by a capitalised word, begin a place's span in the annotation at least
    ``MIN_PLACE_HEADS`` times and in ``PLACE_HEAD_SHARE`` of their uses: "Desa", "Kabupaten", "Pulau" (the
    village, regency, island is part of the name: "Kabupaten Rembang")."""
    votes: dict[str, Counter] = defaultdict(Counter)
    for s in sentences:
        toks, tags = s.tokens, s.tags
        for i in range(len(toks) - 1):
            if toks[i][:1].isupper() and toks[i].isalpha() and toks[i + 1][:1].isupper() and toks[i + 1][:1].isalpha():
                votes[toks[i]][tags[i] == "B-LOC"] += 1
    return sorted(w for w, c in votes.items()
                  if c[True] >= MIN_PLACE_HEADS and c[True] >= PLACE_HEAD_SHARE * (c[True] + c[False]))


def load(eval_dir: Path, dataset: str, split: str) -> list[Sentence]:
    path = Path(eval_dir) / f"ner-{dataset}.{split}.jsonl.gz"
    mapping = LABEL_MAPS[dataset]
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [Sentence(r["id"], list(r["tokens"]), map_tags(r["tags"], mapping), dataset) for r in rows]


def casing_table(sentences: Iterable[Sentence]) -> dict[str, str]:
    """Lower-case word -> its most frequent surface form, counted inside sentences (not first words)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for sent in sentences:
        for tok in sent.tokens[1:]:
            counts[tok.lower()][tok] += 1
    return {low: forms.most_common(1)[0][0] for low, forms in counts.items()}


def truecase(sentences: Iterable[Sentence], table: dict[str, str]) -> Iterator[Sentence]:
    for sent in sentences:
        tokens = []
        for i, (tok, tag) in enumerate(zip(sent.tokens, sent.tags, strict=True)):
            form = table.get(tok)
            if form is None:
                form = tok[:1].upper() + tok[1:] if tag != "O" and tok[:1].isalpha() else tok
            if i == 0:
                form = form[:1].upper() + form[1:]
            tokens.append(form)
        yield Sentence(sent.id, tokens, sent.tags, sent.source)


@dataclass
class Score:
    tp: Counter
    fp: Counter
    fn: Counter

    @classmethod
    def empty(cls) -> Score:
        return cls(Counter(), Counter(), Counter())

    def add(self, gold: set, predicted: set) -> None:
        for span in predicted & gold:
            self.tp[span[-1]] += 1
        for span in predicted - gold:
            self.fp[span[-1]] += 1
        for span in gold - predicted:
            self.fn[span[-1]] += 1

    def prf(self, label: str | None = None) -> tuple[float, float, float, int]:
        if label is None:
            tp, fp, fn = sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values())
        else:
            tp, fp, fn = self.tp[label], self.fp[label], self.fn[label]
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f, tp + fn

