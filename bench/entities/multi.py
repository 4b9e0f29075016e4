"""The multilingual rows of the entities bench: every dev set of ``../shared/eval/ner-multi`` through the
stage before (the configuration of issue 19: gazetteer + rules for every language but Indonesian/Malay)
and after (as configured now), with per-kind error counts, the model-only score of the tagger the stage
picks for the language, the stored cross-language (leave-one-language-out) scores, and docs/s.

Cross-set where possible: the English model is trained on GUM only, so UNER-EWT dev is a set it never
saw (a different source, genre and annotation scheme); GUM dev is the same source. The multilingual
model is trained on the UNER train splits of da/pt/hr/sr/sk/sv and on GUM; the stored
leave-one-language-out rows (``bench/entities/cross_language.jsonl``, written by
``training.entities_multi --leave-out X --score``) say what it does on a language it never saw, which
is what German and Russian get.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from pipeline.stages.entities import EntityTagger
from pipeline.stages.entities.crf import CrfTagger, word_freq_table
from training import entities_data as data
from training import entities_multi as multi

HERE = Path(__file__).parent
CROSS_LANGUAGE = HERE / "cross_language.jsonl"
UNSPACED = {"zh", "ja", "th"}
FUNCTION_WORD_ZIPF = 5  # frequency bucket (log10 f + 9) of words such as "The", "In", "Die", "Det"


def text_of(tokens: list[str], lang: str) -> tuple[str, list[tuple[int, int]]]:
    """The sentence as text (tokens joined by spaces; Chinese without) and each token's offsets."""
    joiner = "" if lang in UNSPACED else " "
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + len(joiner)
    return joiner.join(tokens), offsets


@dataclasses.dataclass
class Errors:
    """Per-kind error counts (each wrong or missed span counted once, by its first matching kind)."""

    counts: Counter = dataclasses.field(default_factory=Counter)

    def add(self, text: str, gold: set, predicted: set, lang: str) -> None:
        freq = word_freq_table(lang)
        for s, e, label in predicted - gold:
            overlapping = [g for g in gold if g[0] < e and s < g[1]]
            if not overlapping:
                words = text[s:e].split()
                if label == "PER" and len(words) == 1 and freq.get(words[0].lower(), 0) >= FUNCTION_WORD_ZIPF:
                    self.counts["false PER on a function word"] += 1
                else:
                    self.counts[f"spurious {label}"] += 1
            elif any((g[0], g[1]) == (s, e) for g in overlapping):
                self.counts["wrong label (span right)"] += 1
            elif any(g[2] == label for g in overlapping):
                self.counts["span boundary (label right)"] += 1
            else:
                self.counts["boundary and label wrong"] += 1
        for s, e, label in gold - predicted:
            if not any(p[0] < e and s < p[1] for p in predicted):
                self.counts[f"missed {label}"] += 1

    def line(self) -> str:
        order = ["false PER on a function word", "spurious PER", "spurious ORG", "spurious LOC", "missed PER",
                 "missed ORG", "missed LOC", "span boundary (label right)", "wrong label (span right)",
                 "boundary and label wrong"]
        return ", ".join(f"{k} {self.counts[k]}" for k in order if self.counts[k])


def score_stage(stage: EntityTagger, sents: list[data.Sentence], lang: str) -> tuple[data.Score, Errors]:
    score, errors = data.Score.empty(), Errors()
    for s in sents:
        text, offsets = text_of(s.tokens, lang)
        entities, _, _ = stage.tag(text, lang)
        gold = {(offsets[a][0], offsets[b - 1][1], label) for a, b, label in data.spans(s.tags)}
        predicted = {(e["start"], e["end"], e["label"]) for e in entities}
        score.add(gold, predicted)
        errors.add(text, gold, predicted, lang)
    return score, errors


def documents(sents: list[data.Sentence], lang: str, size: int = 3000) -> list[str]:
    docs, current, length = [], [], 0
    for s in sents:
        line = text_of(s.tokens, lang)[0]
        current.append(line)
        length += len(line) + 2
        if length >= size:
            docs.append("\n\n".join(current))
            current, length = [], 0
    return docs


def throughput(taggers: dict[str, EntityTagger], docs: list[str], lang: str, runs: int) -> dict[str, float]:
    rates: dict[str, list[float]] = {name: [] for name in taggers}
    for _ in range(runs):
        for name, tagger in taggers.items():
            t0 = time.process_time()  # CPU time: the machine may be shared
            for doc in docs:
                tagger.tag(doc, lang)
            rates[name].append(len(docs) / (time.process_time() - t0))
    return {name: statistics.median(r) for name, r in rates.items()}


def in_context(n: int, entity: dict, text: str, where: str, width: int = 30) -> str:
    """One line of a hand-check list: the entity's number, label, source and text, with the words
    around it, and where the text came from."""
    left = text[max(0, entity["start"] - 40):entity["start"]].replace("\n", " ")
    right = text[entity["end"]:entity["end"] + 25].replace("\n", " ")
    return (f"  {n:3d} {entity['label']} {entity['source']:11s} {entity['text']!r:{width}s} "
            f"<- ...{left}[{entity['text']}]{right}... ({where})")


def f1(score: data.Score) -> str:
    p, r, f, n = score.prf()
    return f"{f:.3f} (P {p:.3f} R {r:.3f})"


def run(eval_dir: Path, before: EntityTagger, after: EntityTagger, runs: int, n_docs: int,
        limit: int | None = None) -> None:
    names = multi.dev_sets(eval_dir)
    print("\nmultilingual rows (ner-multi dev sets; the stage gets the sentence text and the set's language)")
    print("  set                       lang  tagger after                  before F1               after F1"
          "                model-only F1")
    details = []
    doc_sents: dict[str, list[data.Sentence]] = {}
    for name in names:
        lang = multi.lang_of(name)
        sents = multi.load_set(eval_dir, name, "dev")[:limit]
        doc_sents.setdefault(lang, []).extend(sents)
        b_score, b_err = score_stage(before, sents, lang)
        a_score, a_err = score_stage(after, sents, lang)
        tagger = after.registry.tagger_for(lang)
        model = getattr(tagger, "model", None)
        model_only = f1(multi.score_model(model, sents)) if isinstance(model, CrfTagger) else "-"
        print(f"  {name:25s} {lang:4s}  {tagger.name:28s}  {f1(b_score):22s}  {f1(a_score):22s}  {model_only}")
        per = " ".join(f"{lab} {a_score.prf(lab)[2]:.3f}" for lab in data.LABELS)
        details.append(f"  {name}: after per label {per}\n    errors before: {b_err.line()}\n"
                       f"    errors after:  {a_err.line()}")
    print("\nper-kind errors (exact-span errors by kind; a function word: a one-word PER whose word has "
          f"frequency bucket >= {FUNCTION_WORD_ZIPF} in wordfreq)")
    print("\n".join(details))

    if CROSS_LANGUAGE.exists():
        rows = [json.loads(line) for line in CROSS_LANGUAGE.read_text(encoding="utf-8").splitlines() if line]
        held = [r for r in rows if r["status"] == "held-out language"]
        if held:
            print("\ncross-language, stored (training.entities_multi multi --leave-out X --score): model-only F1 of "
                  "the multilingual model trained without language X, on X's dev set")
            for r in held:
                cap = r["params"].get("max_per_set")
                print(f"  without {','.join(r['left_out']):6s} {r['set']:25s} F1 {r['f1']:.3f} "
                      f"(P {r['p']:.3f} R {r['r']:.3f}) {r['per_label']} "
                      f"[{f'first {cap} sentences of each set' if cap else 'all training sentences'}]")

    print(f"\nthroughput per language (docs of ~3 KB made of dev sentences, CPU time, median of {runs} runs, one process)")
    for lang in ("en", "pt", "zh"):
        docs = documents(doc_sents.get(lang, []), lang)
        if not docs:
            continue
        docs = (docs * (n_docs // len(docs) + 1))[:n_docs]
        rates = throughput({"before": before, "after": after}, docs, lang, runs)
        print(f"  {lang}: before {rates['before']:.1f} docs/s, after {rates['after']:.1f} docs/s "
              f"({after.registry.tagger_for(lang).name})")
