"""The Russian rows of the entities bench: the stage with ``slovnet:ner_news_v1`` (as configured for ``ru``)
against the same stage with ``crf:multi-crf`` (what Russian got before), on real Russian text of the
shared sets. There is no Russian gold here (ner-multi has no Russian files): this part measures speed
and memory, says how much the two taggers agree, and with ``--show N`` prints the first N entities of the
stage on the Russian pages with their context, for a hand-check.

Russian text in ``../shared/eval``: the 300 Russian sentences of ``langid-lingua`` (Leipzig corpora: news
and web), and the pages of the extraction sets written in Cyrillic (their main text: the gold text of
the AEB pages, trafilatura's extraction of the others). Documents of ~3 KB are made of their paragraphs.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import statistics
import time
from pathlib import Path

from bench.entities.multi import in_context
from pipeline.stages.entities import EntityTagger

CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
SLOVNET = "slovnet:ner_news_v1"
BEFORE = "crf:multi-crf"


def rss_mb() -> float:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss / 1e6


def russian_texts(eval_dir: Path, min_cyrillic: int = 500) -> list[tuple[str, str]]:
    """(source, text) of every Russian text of the shared sets: the trafilatura set's pages (one news page),
    the lingua sentences, the AEB set's pages."""
    out: list[tuple[str, str]] = []
    for name in ("extraction-trafilatura", "langid-lingua", "extraction-aeb"):
        with gzip.open(eval_dir / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if name == "langid-lingua":
                    if row["lang"] == "ru" and row["kind"] == "sentences":
                        out.append(("lingua", row["text"]))
                    continue
                if len(CYRILLIC.findall(row["html"])) < min_cyrillic:
                    continue
                text = row.get("gold_text")
                if text is None:
                    import trafilatura

                    text = trafilatura.extract(row["html"], url=row["url"]) or ""
                if len(CYRILLIC.findall(text)) >= min_cyrillic // 5:
                    out.append((row["url"], text))
    return out


def documents(texts: list[str], size: int = 3000) -> list[str]:
    """~``size``-character documents of whole paragraphs (a longer paragraph is a document of its own)."""
    docs, current, length = [], [], 0
    for text in texts:
        for para in (p.strip() for p in text.split("\n")):
            if not para:
                continue
            current.append(para)
            length += len(para) + 2
            if length >= size:
                docs.append("\n\n".join(current))
                current, length = [], 0
    if current:
        docs.append("\n\n".join(current))
    return docs


def spans(entities: list[dict]) -> set[tuple[int, int, str]]:
    return {(e["start"], e["end"], e["label"]) for e in entities}


def run(eval_dir: Path, settings, runs: int, n_docs: int, show: int = 0) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # as in a stage worker: numpy's BLAS on one thread
    texts = russian_texts(eval_dir)
    if not texts:
        print("\nrussian rows: no Russian text in", eval_dir)
        return
    docs = documents([t for _, t in texts])
    pages = sorted({s for s, _ in texts if s != "lingua"})
    print(f"\nrussian rows ({len(texts)} texts: {sum(s == 'lingua' for s, _ in texts)} lingua sentences, "
          f"pages {', '.join(pages)}; {len(docs)} documents, {sum(map(len, docs)) / len(docs) / 1000:.1f} KB each)")

    cfg = settings.stages.entities
    crf_taggers = {**cfg.taggers, "ru": BEFORE}
    rss0 = rss_mb()
    before = EntityTagger(dataclasses.replace(cfg, taggers=crf_taggers))
    for doc in docs:
        before.tag(doc, "ru")
    rss1 = rss_mb()
    after = EntityTagger(dataclasses.replace(cfg, taggers={**cfg.taggers, "ru": SLOVNET}))
    if after.registry.fallbacks:
        print(f"  {SLOVNET} did not load: {after.registry.fallbacks}")
        return
    for doc in docs:
        after.tag(doc, "ru")
    rss2 = rss_mb()

    agree = found_b = found_a = 0
    labels = {"PER": [0, 0], "LOC": [0, 0], "ORG": [0, 0]}
    for doc in docs:
        b, a = spans(before.tag(doc, "ru")[0]), spans(after.tag(doc, "ru")[0])
        agree += len(a & b)
        found_b += len(b)
        found_a += len(a)
        for s in a:
            labels[s[2]][1] += 1
        for s in b:
            labels[s[2]][0] += 1
    per_label = ", ".join(f"{lab} {n_b} -> {n_a}" for lab, (n_b, n_a) in labels.items())
    print(f"  entities on the {len(docs)} documents: {BEFORE} stage {found_b}, {SLOVNET} stage {found_a} "
          f"({per_label}); same span and label in both: {agree}")

    sample = (docs * (n_docs // len(docs) + 1))[:n_docs]
    rates: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(runs):  # alternating, same process, same documents
        for name, tagger in (("before", before), ("after", after)):
            t0 = time.process_time()  # CPU time: the machine may be shared
            for doc in sample:
                tagger.tag(doc, "ru")
            rates[name].append(len(sample) / (time.process_time() - t0))
    b, a = statistics.median(rates["before"]), statistics.median(rates["after"])
    print(f"  throughput (whole stage, {len(sample)} docs a run, CPU time, median of {runs} alternating runs): "
          f"{BEFORE} {b:.1f} docs/s, {after.registry.tagger_for('ru').name} {a:.1f} docs/s (x{a / b:.2f}); "
          f"runs before {', '.join(f'{r:.1f}' for r in rates['before'])}; after "
          f"{', '.join(f'{r:.1f}' for r in rates['after'])}")
    print(f"  memory: RSS {rss0:.0f} MB before either stage, {rss1:.0f} MB with the {BEFORE} stage loaded and run, "
          f"{rss2:.0f} MB with the slovnet stage too: slovnet adds {rss2 - rss1:.0f} MB")

    if show:
        print(f"\n  first {show} entities of the stage ({SLOVNET}) on the Russian texts, in order, with context:")
        n = 0
        for source, text in texts:
            for e in after.tag(text, "ru")[0]:
                if n >= show:
                    return
                n += 1
                print(in_context(n, e, text, source[:40], width=32))
