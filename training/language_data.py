"""The labelled data the language stage is fitted and scored on, and how it is split.

``langid-lingua.jsonl.gz`` (lingua-py test data, Apache-2.0; sentences from the Leipzig corpora):
24 languages x (300 sentences, 100 word pairs, 100 single words). It is split once, by a fixed seed,
into a *fit* part (everything we train or calibrate uses only this) and a *report* part (the
benchmark's held-out figures): each (language, kind) group is shuffled with ``random.Random(SEED)``
in sorted group order and halved. Fit word pairs and single words that occur inside a report sentence
are dropped from the fit part, so no report text leaks into training.

The Indonesian NER sets (idner-news-2k, NERGrit, NERP; MIT / Apache-2.0) give real Indonesian news
and Wikipedia sentences: their train files are Indonesian training text, their dev files an extra
held-out check that real Indonesian stays Indonesian.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SEED = 20240604
LINGUA_FILE = "langid-lingua.jsonl.gz"
NER_SETS = ("ner-idner-news-2k", "ner-nergrit", "ner-nerp")
KINDS = ("sentences", "word-pairs", "single-words")


@dataclass(frozen=True)
class Sample:
    text: str
    lang: str
    kind: str


def default_eval_dir() -> Path:
    """``../shared/eval`` next to the repository."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "eval"


def read_jsonl(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def lingua_samples(eval_dir: Path) -> list[Sample]:
    return [Sample(row["text"], row["lang"], row["kind"]) for row in read_jsonl(eval_dir / LINGUA_FILE)]


def split_lingua(samples: list[Sample], seed: int = SEED) -> tuple[list[Sample], list[Sample]]:
    """(fit, report): each (language, kind) group halved after a seeded shuffle."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.lang, sample.kind), []).append(sample)
    rng = random.Random(seed)
    fit: list[Sample] = []
    report: list[Sample] = []
    for key in sorted(groups):
        group = list(groups[key])
        rng.shuffle(group)
        half = len(group) // 2
        fit.extend(group[:half])
        report.extend(group[half:])
    report_sentences = "\n".join(s.text.lower() for s in report if s.kind == "sentences")
    fit = [s for s in fit if s.kind == "sentences" or s.text.lower() not in report_sentences]
    return fit, report


def detokenise(tokens: list[str]) -> str:
    """NER token lists back into ordinary running text."""
    text = " ".join(tokens)
    text = re.sub(r" ([.,;:!?%)\]}])", r"\1", text)
    return re.sub(r"([(\[{]) ", r"\1", text)


def ner_sentences(eval_dir: Path, split: str) -> list[str]:
    """Indonesian sentences of the NER sets' ``train`` or ``dev`` files."""
    out: list[str] = []
    for name in NER_SETS:
        path = eval_dir / f"{name}.{split}.jsonl.gz"
        out.extend(detokenise(row["tokens"]) for row in read_jsonl(path))
    return out


def build_documents(samples: list[Sample], min_chars: int = 500, seed: int = SEED) -> list[Sample]:
    """Documents of at least ``min_chars``: sentences of ONE language, one per line (paragraph).

    Per language, the sentences are shuffled (seeded) and packed greedily in that order; a last
    document that stays under ``min_chars`` is dropped.
    """
    by_lang: dict[str, list[str]] = {}
    for sample in samples:
        if sample.kind == "sentences":
            by_lang.setdefault(sample.lang, []).append(sample.text)
    rng = random.Random(seed)
    docs: list[Sample] = []
    for lang in sorted(by_lang):
        texts = list(by_lang[lang])
        rng.shuffle(texts)
        current: list[str] = []
        for text in texts:
            current.append(text)
            if sum(len(t) + 1 for t in current) - 1 >= min_chars:
                docs.append(Sample("\n".join(current), lang, "documents"))
                current = []
    return docs


NUSAX_FILE = "langid-nusax.train-valid.jsonl.gz"
NUSAX_FOLDS = 5


@dataclass(frozen=True)
class NusaxSample:
    text: str
    lang: str
    row: str      # parallel sentence id: the same id in all 12 languages is one sentence translated
    fold: int     # cross-validation fold of its row (``nusax_samples``)


def nusax_samples(eval_dir: Path, folds: int = NUSAX_FOLDS, seed: int = SEED) -> list[NusaxSample]:
    """NusaX train+valid (12 languages of Indonesia, 600 parallel sentences each), each sentence with
    the fold of its parallel row: rows are shuffled with the seed and dealt round-robin, so all
    translations of one sentence are in the same fold (no leakage through shared names and loanwords)."""
    rows = list(read_jsonl(eval_dir / NUSAX_FILE))
    ids = sorted({row["row"] for row in rows})
    random.Random(seed).shuffle(ids)
    fold_of = {row_id: i % folds for i, row_id in enumerate(ids)}
    return [NusaxSample(row["text"], row["lang"], row["row"], fold_of[row["row"]]) for row in rows]
