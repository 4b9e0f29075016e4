"""Stanford CoreNLP's pre-trained CRF NER models against ours (issue 19), on the English gold sets.

    scripts/corenlp-fetch   # once: CoreNLP 4.5.10 and its models into .cache/corenlp/libs (Maven)
    nice -n 19 .venv/bin/python -m bench.entities.corenlp [--models 3class,4class,7class] [--runs 3] [--docs 60]

CoreNLP is GPL-3.0-or-later and runs here as a separate Java process (never imported, never vendored):
one long-lived ``edu.stanford.nlp.ie.crf.CRFClassifier -readStdin`` per model, fed one line of
whitespace-separated tokens per request (``WhitespaceTokenizer``: the tokens are ours, so each tag belongs
to a known token and the character offsets are exact) and read back as ``token<TAB>tag`` lines. Start-up
(loading a 17-32 MB model, ~3-5 s) is outside every figure.

Scores: model-only on the gold tokens of GUM dev and UNER-EWT dev (PERSON/ORGANIZATION/LOCATION ->
PER/ORG/LOC; MISC, MONEY, DATE ... -> O; CoreNLP's tags are IO, so an entity is a run of one label), with
the bench's own ``Score`` (exact spans), next to ``crf:en-news-crf`` on the same sentences.
Speed: ~3 KB documents of EWT dev sentences, tokenised by the stage's tokenizer; CoreNLP gets each
document's tokens on one line (it splits sentences itself); ``crf:en-news-crf`` gets the document text.
CPU seconds of this process plus the Java process's (``/proc/PID/stat``), alternating runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from bench.entities.multi import documents, f1, score_stage
from pipeline import config
from pipeline.stages.entities import EntityTagger, crf
from pipeline.stages.entities.rules import Mention
from pipeline.stages.entities.tokens import tokenize
from training import entities_data as data
from training import entities_multi as multi
from training.corenlp_teacher import CoreNlpCrf, installed, io_spans

ROOT = Path(__file__).resolve().parents[2]
ENGLISH_SETS = ("gum.en", "uner-ewt.en")


def score_corenlp(tagger: CoreNlpCrf, sents: list[data.Sentence]) -> data.Score:
    score = data.Score.empty()
    for s in sents:
        score.add(data.spans(s.tags), io_spans(tagger.tag_tokens(s.tokens)))
    return score


def tag_document(tagger: CoreNlpCrf, text: str) -> list[tuple[int, int, str]]:
    """Character spans of a document through CoreNLP: our tokens, one line."""
    toks = tokenize(text)
    labels = tagger.tag_tokens([t.text for t in toks])
    return [(toks[a].start, toks[b - 1].end, label) for a, b, label in sorted(io_spans(labels))]


class CoreNlpInStage:
    """CoreNLP as the stage's English tagger (a bench-only adapter: what a ``corenlp:`` tagger would give)."""

    statistical = True

    def __init__(self, teacher: CoreNlpCrf, common_words: frozenset[str]):
        self.teacher, self.common_words = teacher, common_words
        self.name = f"corenlp:{teacher.name}"

    def tag(self, text: str, lang: str | None = None) -> list[Mention]:
        return [Mention(a, b, text[a:b], label, "", {}, "model") for a, b, label in tag_document(self.teacher, text)]


def stage_with(settings, tagger) -> EntityTagger:
    """The stage as configured, its English tagger replaced by ``tagger``."""
    stage = EntityTagger(settings.stages.entities)
    stage.registry._loaded[stage.registry.spec_for("en")] = tagger  # bench only: no such spec in the registry
    return stage


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    ap.add_argument("--models", default="3class,4class,7class")
    ap.add_argument("--runs", type=int, default=3, help="alternating speed runs")
    ap.add_argument("--docs", type=int, default=60, help="~3 KB documents per speed run")
    args = ap.parse_args(argv)
    if not installed():
        print("no CoreNLP jars in .cache/corenlp/libs: run scripts/corenlp-fetch", file=sys.stderr)
        return 2
    ours = crf.load("en-news-crf")
    sets = {name: multi.load_set(args.eval_dir, name, "dev") for name in ENGLISH_SETS}
    print("model-only micro F1 (P/R), exact spans, on the gold tokens")
    for name, sents in sets.items():
        print(f"  {name:12s} {'crf:en-news-crf':24s} {f1(multi.score_model(ours, sents))}")
    taggers = {}
    for key in args.models.split(","):
        t0 = time.perf_counter()
        taggers[key] = CoreNlpCrf(key)
        started = time.perf_counter() - t0
        for name, sents in sets.items():
            score = score_corenlp(taggers[key], sents)
            per = " ".join(f"{lab} {score.prf(lab)[2]:.3f}" for lab in data.LABELS)
            print(f"  {name:12s} {'corenlp:' + key:24s} {f1(score)}  {per}")
        print(f"  (corenlp:{key} started in {started:.1f} s wall)")

    settings = config.load(ROOT / "config" / "pipeline.toml", env={})
    stages = {"crf:en-news-crf": EntityTagger(settings.stages.entities)}
    first = next(iter(taggers))
    stages[f"corenlp:{first}"] = stage_with(settings, CoreNlpInStage(taggers[first], ours.extractor.lowercase_words))
    print("\nstage (tagger + gazetteer/rules + combine + canonical) on the sentence text, exact character spans")
    for name, sents in sets.items():
        for label, stage in stages.items():
            score, errors = score_stage(stage, sents, "en")
            print(f"  {name:12s} {label:24s} {f1(score)}\n    errors: {errors.line()}")

    docs = documents(sets["uner-ewt.en"], "en")
    docs = (docs * (args.docs // len(docs) + 1))[: args.docs]
    n_tokens = sum(len(tokenize(d)) for d in docs)
    print(f"\nspeed: {len(docs)} docs of {sum(map(len, docs)) / len(docs) / 1000:.1f} KB ({n_tokens} tokens), "
          "CPU of this process + the Java process, alternating runs")
    for doc in docs[:10]:  # warm-up (JIT)
        for t in taggers.values():
            tag_document(t, doc)
        ours.tag(doc, lang="en")
    rates: dict[str, list[float]] = {"crf:en-news-crf": [], **{f"corenlp:{k}": [] for k in taggers}}
    for _ in range(args.runs):
        t0 = time.process_time()
        for doc in docs:
            ours.tag(doc, lang="en")
        rates["crf:en-news-crf"].append(len(docs) / (time.process_time() - t0))
        for key, t in taggers.items():
            t0, j0 = time.process_time(), t.cpu_seconds()
            for doc in docs:
                tag_document(t, doc)
            rates[f"corenlp:{key}"].append(len(docs) / (time.process_time() - t0 + t.cpu_seconds() - j0))
        for label, stage in stages.items():
            j0 = taggers[first].cpu_seconds() if label.startswith("corenlp") else 0.0
            t0 = time.process_time()
            for doc in docs:
                stage.tag(doc, "en")
            java = taggers[first].cpu_seconds() - j0 if label.startswith("corenlp") else 0.0
            rates.setdefault(f"stage with {label}", []).append(len(docs) / (time.process_time() - t0 + java))
    for name, r in rates.items():
        print(f"  {name:32s} {statistics.median(r):7.1f} docs/s (runs {', '.join(f'{x:.1f}' for x in r)})")
    print(f"  load average {os.getloadavg()[0]:.1f}")
    for t in taggers.values():
        t.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
