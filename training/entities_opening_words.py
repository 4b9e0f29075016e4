"""Words that are also the one-word names of places, per language: what a capital at a sentence's start turns
into a false place ("Para" is the Portuguese "for" and the state of Pará; "Medan", the Swedish "while" and
the Indonesian city; "Både", "Nice", "Reading").

    .venv/bin/python -m training.entities_opening_words     # writes pipeline/stages/entities/lexicons/opening_words.json

For each language with text here, a one-word place of the gazetteer is kept when the language's sentences
write it in lower case inside a sentence (not as the first word) at least ``MIN_LOWER`` times and more than
twice as often as capitalised there (lingua's Malay sentences write a few country names in lower case, once
or twice each). The
text: the training splits of ner-multi (GUM English; UNER da, pt, hr, sr, sk, sv), the Indonesian NER
training sets, and the fit half of lingua's sentences (24 languages; the half the language stage trains on).
No labels are read. The stage drops such a place only where it opens a sentence and its tagger left it out
(``combine.py``). Deterministic (sorted output).
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from pipeline.stages.entities import gazetteer
from pipeline.stages.entities.tokens import sentences
from training import entities_data as data
from training import entities_multi as multi
from training import language_data

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "pipeline" / "stages" / "entities" / "lexicons" / "opening_words.json"
MULTI_SETS = (*multi.MULTI_TRAIN,)
MIN_LOWER = 3
INDONESIAN_SETS = ("idner-news-2k", "nergrit")  # NERP is lower-cased: no case to read


def texts(eval_dir: Path) -> dict[str, list[list[str]]]:
    """Language -> its tokenised sentences."""
    out: dict[str, list[list[str]]] = defaultdict(list)
    for name in MULTI_SETS:
        out[multi.lang_of(name)] += [s.tokens for s in multi.load_set(eval_dir, name, "train")]
    for name in INDONESIAN_SETS:
        out["id"] += [s.tokens for s in data.load(eval_dir, name, "train")]
    fit, _ = language_data.split_lingua(language_data.lingua_samples(eval_dir))
    for sample in fit:
        if sample.kind == "sentences":
            out[sample.lang] += [[t.text for t in sent] for sent in sentences(sample.text)]
    return out


def opening_words(sents: list[list[str]], places: set[str]) -> list[str]:
    lower, capital = Counter(), Counter()
    for toks in sents:
        for tok in toks[1:]:
            if tok.islower():
                lower[tok] += 1
            elif tok.istitle():
                capital[tok.lower()] += 1
    return sorted(w for w, n in lower.items() if n >= MIN_LOWER and n > 2 * capital[w]
                  and gazetteer.fold(w) in places)


def main(argv: list[str] | None = None) -> int:
    eval_dir = Path(argv[0]) if argv else language_data.default_eval_dir()
    gaz = gazetteer.load()
    places = {key for key, entry in gaz.names.items() if entry.label == "LOC" and " " not in key}
    table = {lang: words for lang, sents in sorted(texts(eval_dir).items())
             if (words := opening_words(sents, places))}
    OUT.write_text(json.dumps(table, ensure_ascii=False, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: " + ", ".join(f"{lang} {len(words)}" for lang, words in table.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
