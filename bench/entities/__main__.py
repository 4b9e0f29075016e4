"""P/R/F1 per label on the shared NER dev splits (exact span match), docs/s, RSS and model size.

    .venv/bin/python -m bench.entities [--eval-dir ../shared/eval] [--runs 3] [--docs 200] [--part id,multi,ru]

Part ``multi`` (``bench/entities/multi.py``): the ner-multi dev sets (English, Danish, Portuguese,
Croatian, Serbian, Slovak, Swedish, Chinese) before (issue 19's configuration: rules for every
language but id/ms) and after, with per-kind error counts, cross-language scores and docs/s.

Scores per dev set:
* model-only: the committed CRF on the gold tokens, asked for the news domain (``idner-news-2k``, what
  the stage runs), and for NERGrit also for its own domain (its annotation conventions);
* stage: the whole entities stage as configured for Indonesian (model + gazetteer/rule layer +
  consistency) on the sentence text (tokens joined by spaces), spans compared by character offsets;
  and the same without the gazetteer places the stage tags where the gold has no entity at all
  (idner-news-2k leaves "serangan Israel" untagged by convention, and misses some places; the stage
  tags every country and known city as LOC on purpose).
Throughput: the stage on ~3 KB documents made of dev sentences (one worker, one process, CPU time), median
of --runs runs; RSS of this process after the runs; model size on disk.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

from bench.entities.multi import documents
from pipeline import config
from pipeline.stages.entities import EntityTagger, crf
from training import entities_data as data

ROOT = Path(__file__).resolve().parents[2]
# NERP's dev split is lower-cased text; the stage gets cased text, so it is not scored here.
DATASETS = ("idner-news-2k", "nergrit")
PLACE_IDS = {"iso3166", "geonames", "iso3166-2"}
# the configuration before issue 19: a model for Indonesian and Malay, gazetteer + rules for the rest
BEFORE_TAGGERS = {"id": "crf:id-news-crf", "ms": "crf:id-news-crf"}


def detokenise(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return " ".join(tokens), offsets


def char_spans(tags: list[str], offsets: list[tuple[int, int]]) -> set[tuple[int, int, str]]:
    return {(offsets[s][0], offsets[e - 1][1], label) for s, e, label in data.spans(tags)}


def table(title: str, score: data.Score) -> str:
    rows = [f"  {title}", "    label      P      R     F1  gold"]
    for label in (*data.LABELS, None):
        p, r, f, n = score.prf(label)
        rows.append(f"    {label or 'micro':5s}  {p:.3f}  {r:.3f}  {f:.3f}  {n:4d}")
    return "\n".join(rows)


def score_model(tagger: crf.CrfTagger, sents: list[data.Sentence]) -> data.Score:
    score = data.Score.empty()
    for s in sents:
        score.add(data.spans(s.tags), data.spans(tagger.tag_tokens(s.tokens)))
    return score


def score_stage(stage: EntityTagger, sents: list[data.Sentence]) -> tuple[data.Score, data.Score]:
    """The stage's score, and the same without the gazetteer places (countries, cities, provinces) it
    tags where the set has no entity at all: idner-news-2k leaves "serangan Israel", "penduduk
    Indonesia" untagged by convention and misses places ("Gubernur DKI Jakarta", "Bandara Sepinggan
    Balikpapan"); the stage tags every such mention as LOC on purpose."""
    score, aligned = data.Score.empty(), data.Score.empty()
    for s in sents:
        text, offsets = detokenise(s.tokens)
        entities, _, _ = stage.tag(text, "id")
        gold = char_spans(s.tags, offsets)
        predicted = {(e["start"], e["end"], e["label"]) for e in entities}
        score.add(gold, predicted)
        untagged_places = {(e["start"], e["end"], e["label"]) for e in entities
                           if PLACE_IDS & set(e["ids"]) and not any(a < e["end"] and e["start"] < b for a, b, _ in gold)}
        aligned.add(gold, predicted - untagged_places)
    return score, aligned


def rss_mb() -> float:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--docs", type=int, default=200, help="3 KB documents per throughput run")
    ap.add_argument("--part", default="id,multi,ru",
                    help="id: the Indonesian sets; multi: the ner-multi sets; ru: Russian text (speed, memory)")
    ap.add_argument("--show", type=int, default=0, help="ru: print the first N entities on the Russian texts")
    ap.add_argument("--limit", type=int, help="multi: at most this many sentences per dev set (a quick look)")
    args = ap.parse_args(argv)
    parts = set(args.part.split(","))
    if not (args.eval_dir / "ner-idner-news-2k.dev.jsonl.gz").exists():
        print(f"no NER dev data in {args.eval_dir}", file=sys.stderr)
        return 2

    settings = config.load(ROOT / "config" / "pipeline.toml", env={})
    if "ru" in parts:  # first: it measures the memory the Slovnet tagger adds to a process
        from bench.entities import russian

        russian.run(args.eval_dir, settings, args.runs, args.docs, args.show)
        if not parts & {"id", "multi"}:
            return 0
    stage = EntityTagger(settings.stages.entities)
    if "multi" in parts:
        from bench.entities import multi

        before = EntityTagger(dataclasses.replace(settings.stages.entities, taggers=dict(BEFORE_TAGGERS),
                                                  default_tagger="rules"))
        multi.run(args.eval_dir, before, stage, args.runs, args.docs, args.limit)
    if "id" not in parts:
        return 0
    spec = stage.registry.spec_for("id")
    model = stage.registry.tagger_for("id").model
    print(f"entities bench: tagger for id = {spec} ({model.name}); scores are exact span match")
    dev = {name: data.load(args.eval_dir, name, "dev") for name in DATASETS}
    for name in DATASETS:
        sents = dev[name]
        print(f"\n{name} dev ({len(sents)} sentences)")
        print(table(f"model-only, domain {model.domain} (what the stage runs)", score_model(model, sents)))
        if name != model.domain and name in model.meta["domains"]:
            own = crf.CrfTagger(model.model_dir, name)
            print(table(f"model-only, domain {name} (the set's own conventions)", score_model(own, sents)))
        full, aligned = score_stage(stage, sents)
        print(table("stage as configured for id (model + gazetteer/rules + consistency)", full))
        print(table("stage, not counting gazetteer places tagged where the set has no entity", aligned))

    docs = documents(dev["idner-news-2k"] + dev["nergrit"], "id")
    docs = (docs * (args.docs // max(1, len(docs)) + 1))[: args.docs]
    mean_kb = sum(len(d) for d in docs) / len(docs) / 1000
    rules_only = EntityTagger(dataclasses.replace(settings.stages.entities, taggers={}, default_tagger="rules"))
    rates: dict[str, list[float]] = {"stage": [], "rules": []}
    for _ in range(args.runs):
        for name, tagger in (("stage", stage), ("rules", rules_only)):
            t0 = time.process_time()  # CPU time: the machine may be shared
            for doc in docs:
                tagger.tag(doc, "id")
            rates[name].append(len(docs) / (time.process_time() - t0))
    size = sum(p.stat().st_size for p in model.model_dir.iterdir())
    stage_rate, rules_rate = statistics.median(rates["stage"]), statistics.median(rates["rules"])
    print(f"\nthroughput: {stage_rate:.1f} docs/s (median of {args.runs} runs of {len(docs)} docs, "
          f"{mean_kb:.1f} KB each, one process, CPU time; runs: {', '.join(f'{r:.1f}' for r in rates['stage'])})")
    print(f"baseline, same runs: gazetteer+rules only (no model) {rules_rate:.1f} docs/s; "
          f"the model costs {100 * (1 - stage_rate / rules_rate):.0f}% of that")
    print(f"memory: {rss_mb():.0f} MB RSS (this process, stage loaded and run)")
    print(f"model size: {size / 1e6:.1f} MB on disk ({model.model_dir.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
