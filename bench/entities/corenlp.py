"""Stanford CoreNLP's pre-trained CRF NER models against ours (issue 19): English gold sets, German pages.

    scripts/corenlp-fetch   # once: CoreNLP 4.5.10 and its models into .cache/corenlp/libs (Maven)
    nice -n 19 .venv/bin/python -m bench.entities.corenlp [--part english,german] [--models 3class,4class,7class] \
        [--runs 3] [--docs 60] [--show 100]

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
CPU seconds of this process plus the Java process's (``/proc/PID/stat``), alternating runs. Stage rows: the
whole entities stage with CoreNLP in place of the language's tagger (a bench-only adapter).
German (no gold here): the German news pages of the trafilatura extraction set through the stage as configured
and with CoreNLP's German model; entity counts, speed, and the first entities of each page for a hand-check.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from bench.entities.multi import documents, f1, in_context, score_stage
from pipeline import config
from pipeline.stages.entities import EntityTagger, crf
from pipeline.stages.entities.rules import Mention
from pipeline.stages.entities.tokens import tokenize
from training import entities_data as data
from training import entities_multi as multi
from training.corenlp_teacher import ENGLISH_MODELS, CoreNlpCrf, installed, io_spans

ROOT = Path(__file__).resolve().parents[2]
ENGLISH_SETS = ("gum.en", "uner-ewt.en")
PER_PAGE = 5  # entities per page in the German hand-check list
GERMAN_PAGE = re.compile(r"<html[^>]*\blang=[\"']?de", re.IGNORECASE)
GERMAN_NEWS_HOSTS = {  # German-language news outlets among the trafilatura set's hosts
    "www.sueddeutsche.de", "www.spiegel.de", "www.faz.net", "taz.de", "www.deutschlandfunk.de", "www.welt.de",
    "www.hessenschau.de", "www.tag24.de", "www.stern.de", "www.express.de", "www.ln-online.de", "www.nzz.ch",
    "www.mopo.de", "www.nachrichten.at", "telebasel.ch", "www.tagblatt.ch", "www.watson.ch", "wien.orf.at",
    "www.zeit.de", "www.ndr.de", "www.mz-web.de", "www.rundschau-online.de", "www.focus.de", "www.mdr.de",
    "www.handelsblatt.com", "www.tagesschau.de", "www.neues-deutschland.de", "www.fr.de", "www.tagesspiegel.de",
    "www.furche.at", "www.cicero.de", "www.tagesanzeiger.ch", "www.freitag.de", "www.heise.de", "correctiv.org",
    "netzpolitik.org", "futurezone.at", "www.swr.de", "www.zdf.de",
}


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
    """CoreNLP as the stage's tagger for a language (a bench-only adapter: what a ``corenlp:`` tagger would give)."""

    statistical = True

    def __init__(self, teacher: CoreNlpCrf, common_words: frozenset[str]):
        self.teacher, self.common_words = teacher, common_words
        self.name = f"corenlp:{teacher.name}"

    def tag(self, text: str, lang: str | None = None) -> list[Mention]:
        return [Mention(a, b, text[a:b], label, "", {}, "model") for a, b, label in tag_document(self.teacher, text)]


def stage_with(settings, lang: str, teacher: CoreNlpCrf) -> EntityTagger:
    """The stage as configured, its tagger for ``lang`` replaced by CoreNLP (``common_words`` kept)."""
    stage = EntityTagger(settings.stages.entities)
    spec = stage.registry.spec_for(lang)
    adapter = CoreNlpInStage(teacher, stage.registry.tagger_for(lang).common_words)
    stage.registry._loaded[spec] = adapter  # bench only: no such spec in the registry
    return stage


def german_texts(eval_dir: Path) -> list[tuple[str, str]]:
    """(url, main text) of the German news pages of the trafilatura extraction set (``<html lang="de...">``
    on a news outlet's host; trafilatura's extraction), in the set's order."""
    import trafilatura

    out = []
    with gzip.open(eval_dir / "extraction-trafilatura.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if urlparse(row["url"]).netloc in GERMAN_NEWS_HOSTS and GERMAN_PAGE.search(row["html"][:5000]):
                text = trafilatura.extract(row["html"], url=row["url"]) or ""
                if len(text) >= 500:
                    out.append((row["url"], text))
    return out


def german(eval_dir: Path, settings, runs: int, show: int) -> None:
    """The stage as configured (``crf:multi-crf`` + the German lexicon), the same without the lexicon, and
    with CoreNLP's German model in place of the tagger (the reference: its output is never checked by the
    lexicon): entity counts, agreement with the reference (same span and label; P = share of the stage's
    entities CoreNLP also gives, R = share of CoreNLP's the stage gives), docs/s, hand-check lists."""
    from bench.entities.russian import documents as paragraph_documents
    from bench.entities.russian import spans

    texts = german_texts(eval_dir)
    docs = paragraph_documents([t for _, t in texts])
    teacher = CoreNlpCrf("german", heap="2g")
    configured = EntityTagger(settings.stages.entities)
    bare = EntityTagger(settings.stages.entities)
    bare.lexicons = {}
    reference = stage_with(settings, "de", teacher)
    stages = {"without lexicon": bare, "configured": configured, "corenlp:german": reference}
    print(f"\ngerman: {len(texts)} news pages of the trafilatura set, {len(docs)} documents of "
          f"{sum(map(len, docs)) / len(docs) / 1000:.1f} KB; the stage with {configured.registry.tagger_for('de').name}, "
          f"without and with the lexicon ({', '.join(configured.lexicons) or 'none shipped'}), and with corenlp:german")
    tagged = {name: [spans(stage.tag(doc, "de")[0]) for doc in docs] for name, stage in stages.items()}
    ref = tagged["corenlp:german"]
    for name in ("without lexicon", "configured"):
        same = sum(len(a & b) for a, b in zip(tagged[name], ref, strict=True))
        n, n_ref = sum(map(len, tagged[name])), sum(map(len, ref))
        p, r = same / max(n, 1), same / max(n_ref, 1)
        print(f"  {name:16s} {n:5d} entities; agreement with corenlp:german ({n_ref}): P {p:.3f} R {r:.3f} "
              f"F1 {2 * p * r / (p + r) if p + r else 0.0:.3f}")
    for doc in docs[:5]:  # warm-up (JIT)
        reference.tag(doc, "de")
    rates: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(runs):
        for name, stage in stages.items():
            j0 = teacher.cpu_seconds()
            t0 = time.process_time()
            for doc in docs:
                stage.tag(doc, "de")
            java = teacher.cpu_seconds() - j0 if stage is reference else 0.0
            rates[name].append(len(docs) / (time.process_time() - t0 + java))
    for name, r in rates.items():
        print(f"  stage {name:16s} {statistics.median(r):7.1f} docs/s (runs {', '.join(f'{x:.1f}' for x in r)})")
    print(f"  Java process RSS {java_rss_mb(teacher):.0f} MB; load average {os.getloadavg()[0]:.1f}")
    for name, stage in stages.items():
        print(f"\n  hand-check list, stage {name}: the first {PER_PAGE} entities of each page, in order, "
              f"{show} in all")
        n = 0
        for url, text in texts:
            for e in stage.tag(text, "de")[0][:PER_PAGE]:
                if n >= show:
                    break
                n += 1
                print(in_context(n, e, text, urlparse(url).netloc))
    teacher.close()


def java_rss_mb(teacher: CoreNlpCrf) -> float:
    for line in Path(f"/proc/{teacher.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1000
    return 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    ap.add_argument("--models", default="3class,4class,7class")
    ap.add_argument("--runs", type=int, default=3, help="alternating speed runs")
    ap.add_argument("--docs", type=int, default=60, help="~3 KB documents per speed run")
    ap.add_argument("--part", default="english", help="english, german or both (comma-separated)")
    ap.add_argument("--show", type=int, default=100, help="german: print the first N entities for a hand-check")
    args = ap.parse_args(argv)
    if not set(args.part.split(",")) <= {"english", "german"}:
        ap.error(f"--part: english, german or both, not {args.part!r}")
    if not set(args.models.split(",")) <= set(ENGLISH_MODELS):
        ap.error(f"--models: some of 3class, 4class, 7class, not {args.models!r}")
    if not installed():
        print("no CoreNLP jars in .cache/corenlp/libs: run scripts/corenlp-fetch", file=sys.stderr)
        return 2
    settings = config.load(ROOT / "config" / "pipeline.toml", env={})
    if "german" in args.part.split(","):
        german(args.eval_dir, settings, args.runs, args.show)
    if "english" not in args.part.split(","):
        return 0
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

    stages = {"crf:en-news-crf": EntityTagger(settings.stages.entities)}
    first = next(iter(taggers))
    stages[f"corenlp:{first}"] = stage_with(settings, "en", taggers[first])
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
    print(f"  load average {os.getloadavg()[0]:.1f}; Java process RSS "
          + ", ".join(f"{k} {java_rss_mb(t):.0f} MB" for k, t in taggers.items()))
    for t in taggers.values():
        t.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
