"""Train the English and the multilingual NER models (CRFs over the extended features of ``features.py``).

    OMP_NUM_THREADS=1 .venv/bin/python -m training.entities_multi en --teacher corenlp:3class
                         # models/en-news-crf/: GUM train + the ECB+ sentences as Stanford CoreNLP's 3-class
                         # model tags them (distillation; Java, scripts/corenlp-fetch, training/corenlp_teacher.py)
    OMP_NUM_THREADS=1 .venv/bin/python -m training.entities_multi en --teacher corenlp:3class \\
        --dev-sets uner-ewt.en --cv 5      # a variant that also learns UNER-EWT dev, judged by 5-fold CV over its
                                           # documents (model-only and stage scores of the held-out folds); not
                                           # shipped (bench/entities/README.md: GUM dev falls more than EWT gains)
    OMP_NUM_THREADS=1 .venv/bin/python -m training.entities_multi en --self-train /tmp/en-teacher
                         # an older recipe: GUM train + ECB+ sentences the teacher, the GUM-only model,
                         # tags confidently (see bench/entities/README.md for the teacher)
    OMP_NUM_THREADS=1 .venv/bin/python -m training.entities_multi multi   # models/multi-crf/ (GUM + UNER train)
    OMP_NUM_THREADS=1 .venv/bin/python -m training.entities_multi multi --leave-out pt --out /tmp/m-pt \\
        --score                                   # cross-language: trained without pt, scored on pt dev

Data (``../shared/eval/ner-multi``, see its README): GUM English train (silver spans from gold types),
Universal NER train splits of da, pt, hr, sr, sk, sv. Chinese (word-segmented in UNER; the stage sees
unsegmented text) is not in the multilingual model. Dev splits are only read for ``--score``, by
``bench.entities``, and as training data of the ``--dev-sets`` variants whose held-out figure ``--cv``
gives; the model choices in the README were made on GUM dev, cross-language (leave-one-language-out)
scores and that CV, never on UNER-EWT dev as a whole (English cross-set) or a language's own dev.

Features (``FeatureExtractor(extended=True)``): word, shape, affixes, neighbours, capitalisation
pattern, gazetteer matches, the word's frequency in the record's language (wordfreq; for the
multilingual model the language of each sentence at training time and of each record at tagging
time), and the first word of a sentence joined with its frequency, so "The", "Die", "Det" at the start
of a sentence are frequent words and not names. The multilingual model has no lexical casing table
and no word clusters (both are language-specific). L1 (c1) and ``feature.minfreq`` keep the files small.
CRFsuite's L-BFGS is deterministic: the same data and parameters give the same model.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pycrfsuite

from pipeline.stages.entities import gazetteer
from pipeline.stages.entities.crf import (
    CHARS,
    MODELS_DIR,
    RECORD_LANGUAGE,
    CrfTagger,
    augment,
    build_extractor,
    spans,
)
from pipeline.stages.entities.tokens import tokenize_chars
from training import entities_clusters as clusters
from training import entities_data as data
from training.corenlp_teacher import SILVER

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = ROOT.parent / "shared" / "eval"
MULTI_DIR = "ner-multi"
VERSION = 1
FEATURES_VERSION = 2
SELF_TRAINED = "self-trained"  # the set name of self-labelled sentences (``--self-train``)
FOLD_SEED = 19  # shuffles the documents of ``--dev-sets`` before they are dealt into ``--cv`` folds

ENGLISH_TRAIN = ("gum.en",)
MULTI_TRAIN = ("gum.en", "uner-ddt.da", "uner-bosque.pt", "uner-set.hr", "uner-set.sr", "uner-snk.sk",
               "uner-talbanken.sv")
PRESETS = {
    "en": {"name": "en-news-crf", "sets": ENGLISH_TRAIN, "lang": "en", "clusters": "64,256", "casing": True,
           "unlabelled": True,
           "c1": 0.1, "c2": 0.5, "iterations": 200, "min_freq": 1},
    "multi": {"name": "multi-crf", "sets": MULTI_TRAIN, "lang": RECORD_LANGUAGE, "clusters": "", "casing": False,
              "unlabelled": False,
              "c1": 0.3, "c2": 0.5, "iterations": 100, "min_freq": 2, "max_per_set": None},
    "zh": {"name": "zh-char-crf", "sets": ("uner-gsdsimp.zh",), "lang": "zh", "clusters": "", "casing": False,
           "unlabelled": False, "c1": 0.05, "c2": 0.05, "iterations": 200, "min_freq": 1, "tokens": CHARS},
}


def to_chars(sent: data.Sentence) -> data.Sentence:
    """A word-segmented sentence as the character-level model sees it: each CJK character a token (runs of
    Latin letters and digits stay whole), B- on a word's first piece, I- on the rest."""
    tokens, tags = [], []
    for tok, tag in zip(sent.tokens, sent.tags, strict=True):
        pieces = [t.text for t in tokenize_chars(tok)] or [tok]
        tokens += pieces
        tags += [tag] + ["O" if tag == "O" else "I-" + tag[2:]] * (len(pieces) - 1)
    return data.Sentence(sent.id, tokens, tags, sent.source)


def chinese_surnames() -> list[str]:
    """One-character family names of Faker's zh_CN and zh_TW lists (MIT licence)."""
    out: set[str] = set()
    for loc in ("zh_CN", "zh_TW"):
        import importlib

        provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        out |= {n for n in provider.__dict__.get("last_names", ()) if isinstance(n, str) and len(n) == 1}
    return sorted(out)


def lang_of(set_name: str) -> str:
    return set_name.rsplit(".", 1)[-1]


def load_set(eval_dir: Path, set_name: str, split: str) -> list[data.Sentence]:
    """Sentences of ``<set_name>.<split>.jsonl.gz`` in ner-multi (tags are IOB2 PER/ORG/LOC already);
    ``source`` is the set name ("uner-bosque.pt")."""
    path = Path(eval_dir) / MULTI_DIR / f"{set_name}.{split}.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [data.Sentence(r["id"], list(r["tokens"]), list(r["tags"]), set_name) for r in rows]


def dev_sets(eval_dir: Path) -> list[str]:
    return sorted(p.name[: -len(".dev.jsonl.gz")] for p in (Path(eval_dir) / MULTI_DIR).glob("*.dev.jsonl.gz"))


def names_lists() -> dict[str, list[str]]:
    """Given and family names of every locale of Faker (MIT licence; its lists come from census and
    public name statistics), lower-cased, in scripts with capital letters: a CRF feature."""
    import importlib
    import pkgutil

    import faker.providers.person as person

    first: set[str] = set()
    last: set[str] = set()
    for mod in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{mod.name}").Provider
        for attr, bucket in (("first_names", first), ("first_names_male", first), ("first_names_female", first),
                             ("last_names", last)):
            value = provider.__dict__.get(attr) if attr in provider.__dict__ else getattr(provider, attr, ())
            if not isinstance(value, list | tuple | dict | set | frozenset):
                continue  # a property (computed lists): skipped
            for name in value:
                if isinstance(name, str) and name[:1].isupper() and name.replace("-", "").isalpha() \
                        and " " not in name and len(name) >= 2:
                    bucket.add(name.lower())
    return {"first": sorted(first), "last": sorted(last)}


def english_documents(eval_dir: Path) -> list[list[list[str]]]:
    """The ECB+ English news articles (CC BY 3.0, ``stories-ecbplus-dev``), each as tokenised sentences (no
    labels are read)."""
    from pipeline.stages.entities.tokens import sentences

    path = Path(eval_dir) / "stories-ecbplus-dev.jsonl.gz"
    if not path.exists():
        return []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [[[t.text for t in s] for s in sentences(json.loads(line).get("text") or "")] for line in fh]


def unlabelled_english(eval_dir: Path) -> list[list[str]]:
    """Sentences of the ECB+ English news articles: more text for the casing table and the word clusters of
    the English model."""
    return [sent for doc in english_documents(eval_dir) for sent in doc]


def self_labelled(tagger: CrfTagger, texts: list[list[str]], lang: str, min_prob: float) -> list[data.Sentence]:
    """Self-training data: the sentences of unlabelled text ``tagger`` tags with at least one entity and whose
    best tag sequence has probability >= ``min_prob`` (CRFsuite's sequence probability), with those tags.
    Sentences of fewer than 4 or more than 60 tokens are skipped (headlines, run-ons)."""
    out = []
    for i, toks in enumerate(texts):
        if not 4 <= len(toks) <= 60:
            continue
        tags = tagger.tag_tokens(toks, lang)
        if all(t == "O" for t in tags):
            continue
        # CRFsuite's probability is of the items last set; tag_tokens may not go through CRFsuite (the numpy path)
        tagger.tagger.set(tagger._items(toks, lang))
        if tagger.tagger.probability(tags) >= min_prob:
            out.append(data.Sentence(f"self-{i}", toks, tags, f"{SELF_TRAINED}.{lang}"))
    return out


def train(sents: list[data.Sentence], out: Path, *, lang: str, clusters_spec: str, casing: bool, c1: float,
          c2: float, iterations: int, min_freq: float, command: str, extra_meta: dict | None = None,
          unlabelled: list[list[str]] | None = None, names: bool = True, by_language: str = "",
          domain_of: dict[str, str] | None = None) -> dict:
    """Train a CRF on ``sents`` into ``out`` (model.crfsuite + meta.json.gz); returns the meta. ``unlabelled``:
    more sentences (tokens) for the casing table and the clusters. ``by_language``: features are also emitted
    prefixed by each sentence's language ("frustratingly easy" domain adaptation) and the model tags as
    that language (e.g. "en": English with what the other languages teach about names in general).
    ``domain_of``: set name -> a domain whose sentences get their features twice, once prefixed by it, so
    what is particular to that set's annotation can go to the prefixed weights; the model tags in the base
    domain, with the shared weights only."""
    extra_text = [data.Sentence("", toks, ["O"] * len(toks), "unlabelled") for toks in unlabelled or []]
    # the text of the casing table and the clusters (self-trained sentences are already in ``unlabelled``)
    text = [*(s for s in sents if not s.source.startswith((SELF_TRAINED, SILVER))), *extra_text]
    table = data.casing_table(text) if casing else {}
    chars = (extra_meta or {}).get("tokens") == CHARS
    if chars:
        sents = [to_chars(s) for s in sents]
    meta = {
        "version": VERSION,
        "features_version": FEATURES_VERSION,
        "kind": "crfsuite linear-chain CRF, IOB2 over PER/ORG/LOC, extended features",
        "datasets": sorted({s.source for s in sents}),
        "domains": sorted({lang_of(s.source) for s in sents}) if by_language else
        sorted({"news", *(domain_of or {}).values()}),
        "default_domain": by_language or "news",
        "base_domain": "none" if by_language else "news",
        "params": {"c1": c1, "c2": c2, "max_iterations": iterations, "feature.minfreq": min_freq},
        "command": command,
        "lowercase_words": sorted(w for w, form in table.items() if form.islower()),
        "word_freq": {"package": "wordfreq", "lang": lang, "wordlist": "small"},
        **(extra_meta or {}),
    }
    if chars:
        meta["surnames"] = chinese_surnames()
    elif names:
        meta["names"] = names_lists()
    if clusters_spec:
        sizes = [int(x) for x in clusters_spec.split(",")]
        learnt = [clusters.learn([s.tokens for s in text], n_clusters=k) for k in sizes]
        meta["clusters"] = {w: [c[w] for c in learnt] if len(learnt) > 1 else learnt[0][w] for w in learnt[0]}
    gaz = gazetteer.load()
    extractors: dict[str, object] = {}
    trainer = pycrfsuite.Trainer(verbose=False)
    for sent in sents:
        code = lang_of(sent.source)
        extractor = extractors.get(code)
        if extractor is None:
            extractor = extractors[code] = build_extractor(meta, gaz, code)
        feats = extractor.sentence(sent.tokens)
        if by_language:
            feats = augment(feats, code, "none")
        elif domain_of and sent.source in domain_of:
            feats = augment(feats, domain_of[sent.source], "news")
        trainer.append(feats, sent.tags)
    trainer.set_params({"c1": c1, "c2": c2, "max_iterations": iterations,
                        "feature.possible_transitions": True, "feature.minfreq": min_freq})
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    trainer.train(str(out / "model.crfsuite"))
    meta["sentences"] = {name: sum(1 for s in sents if s.source == name) for name in meta["datasets"]}
    meta["train_seconds"] = round(time.time() - t0)
    meta["iterations_run"] = len(trainer.logparser.iterations)  # < max_iterations: L-BFGS converged
    meta["features"] = trainer.logparser.featgen_num_features
    with gzip.GzipFile(out / "meta.json.gz", "wb", mtime=0) as fh:
        fh.write(json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return meta


def document_of(sentence_id: str) -> str:
    """The document of a UD sentence id: "en_ewt:email-enronsent29_01-0003" -> "en_ewt:email-enronsent29_01"."""
    return sentence_id.rsplit("-", 1)[0]


def document_folds(sents: list[data.Sentence], folds: int) -> list[int]:
    """Each sentence's fold: the documents, sorted and shuffled with ``FOLD_SEED``, dealt round-robin, so a
    document's sentences (which repeat its names) are never on both sides."""
    docs = sorted({document_of(s.id) for s in sents})
    random.Random(FOLD_SEED).shuffle(docs)
    fold_of = {doc: i % folds for i, doc in enumerate(docs)}
    return [fold_of[document_of(s.id)] for s in sents]


def pooled(scores: list[data.Score]) -> data.Score:
    total = data.Score.empty()
    for score in scores:
        total.tp.update(score.tp)
        total.fp.update(score.fp)
        total.fn.update(score.fn)
    return total


_CV: dict = {}  # what the fold processes read (set before they fork)


def _cv_fold(k: int) -> tuple[int, data.Score, data.Score, int]:
    """Train without fold ``k`` of the dev sentences and score that fold: model-only and through the stage."""
    from bench.entities.multi import score_stage
    from pipeline import config
    from pipeline.stages.entities import EntityTagger

    job = _CV
    held = [s for s, f in zip(job["dev"], job["folds"], strict=True) if f == k]
    kept = [s for s, f in zip(job["dev"], job["folds"], strict=True) if f != k]
    out = Path(job["tmp"]) / f"fold-{k}"
    meta = job["fit"](job["base"] + kept * job["weight"], out)
    model = score_model(CrfTagger(out), held)
    settings = config.load(ROOT / "config" / "pipeline.toml", env={}).stages.entities
    lang = job["lang"]
    stage = EntityTagger(dataclasses.replace(settings, taggers={**settings.taggers, lang: f"crf:{out}"}))
    stage_score, _ = score_stage(stage, held, lang)
    return k, model, stage_score, meta["train_seconds"]


def cross_validate(base: list[data.Sentence], dev: list[data.Sentence], *, folds: int, weight: int, jobs: int,
                   lang: str, fit) -> None:
    """``folds``-fold CV over the documents of ``dev``: each fold's model learns ``base`` and the other folds'
    sentences (``weight`` times each), and is scored on its fold, model-only (gold tokens) and through the
    stage (the sentence text, the stage's gazetteer, rules and combining). Prints each fold and the pooled
    (micro) scores."""
    with tempfile.TemporaryDirectory(prefix="entities-cv-") as tmp:
        _CV.update(dev=dev, folds=document_folds(dev, folds), base=base, weight=weight, fit=fit, tmp=tmp, lang=lang)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
            results = sorted(pool.map(_cv_fold, range(folds)))
    for k, model, stage, seconds in results:
        print(f"  fold {k}: model-only F1 {model.prf()[2]:.3f}, stage F1 {stage.prf()[2]:.3f} "
              f"({model.prf()[3]} entities; trained in {seconds} s)", flush=True)
    for what, score in (("model-only", pooled([r[1] for r in results])), ("stage", pooled([r[2] for r in results]))):
        p, r, f, n = score.prf()
        per = {lab: round(score.prf(lab)[2], 3) for lab in data.LABELS}
        print(f"CV {folds} folds over the documents of the dev sets, weight {weight}, {what}: "
              f"P {p:.3f} R {r:.3f} F1 {f:.3f} (n={n}) {per}", flush=True)


def score_model(tagger: CrfTagger, sents: list[data.Sentence]) -> data.Score:
    """Model-only exact-span score on gold tokens, each sentence in its set's language."""
    score = data.Score.empty()
    if tagger.meta.get("tokens") == CHARS:
        sents = [to_chars(s) for s in sents]
    for s in sents:
        score.add(spans(s.tags), spans(tagger.tag_tokens(s.tokens, lang_of(s.source))))
    return score


def model_args(argv: list[str]) -> list[str]:
    """The arguments that shape the model (where it is written and whether it is scored do not)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--out", "--results", "--eval-dir"):
            skip = True
            continue
        if arg == "--score" or arg.startswith(("--out=", "--results=", "--eval-dir=")):
            continue
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset", choices=sorted(PRESETS))
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    ap.add_argument("--out", type=Path, help="model directory (default: models/<preset's name>)")
    ap.add_argument("--sets", help="training sets, comma-separated (default: the preset's)")
    ap.add_argument("--leave-out", default="", help="languages whose training sets are left out, comma-separated")
    ap.add_argument("--clusters", help="word clusters (numbers of clusters, comma-separated; empty: none)")
    ap.add_argument("--c1", type=float)
    ap.add_argument("--c2", type=float)
    ap.add_argument("--iterations", type=int)
    ap.add_argument("--min-freq", type=float)
    ap.add_argument("--max-per-set", type=int, help="at most this many sentences of each training set (the "
                    "first ones; default: the preset's)")
    ap.add_argument("--by-language", default="", help="language-augmented features; the model tags as this "
                    "language (use with --sets of several languages)")
    ap.add_argument("--no-names", action="store_true", help="without the given/family name lists")
    ap.add_argument("--no-unlabelled", action="store_true", help="English: without the ECB+ text")
    ap.add_argument("--self-train", type=Path, metavar="MODEL_DIR", help="English: also train on the ECB+ "
                    "sentences this model tags confidently (self-training; the ECB+ text only, no labels read)")
    ap.add_argument("--self-min-prob", type=float, default=0.9, help="--self-train: the least sequence probability")
    ap.add_argument("--teacher", metavar="corenlp:MODEL", help="English: also train on the ECB+ sentences (4-60 "
                    "tokens) as Stanford CoreNLP's CRF MODEL (3class, 4class, 7class) tags them (distillation; "
                    "scripts/corenlp-fetch installs it; Java runs it)")
    ap.add_argument("--teacher-entities-only", action="store_true", help="--teacher: only the sentences it tags "
                    "an entity in")
    ap.add_argument("--words", action="store_true", help="zh: also the word each character is in, by rjieba "
                    "(its place in the word, the word's part of speech, the word)")
    ap.add_argument("--dev-sets", default="", help="also train on these sets' dev splits, comma-separated (English: "
                    "uner-ewt.en, the only English annotated as UNER annotates); bench.entities then scores them "
                    "in-set, so --cv gives their held-out figure")
    ap.add_argument("--dev-domain", default="", help="--dev-sets: their sentences' features also prefixed by this "
                    "domain (the model tags with the shared features only)")
    ap.add_argument("--dev-weight", type=int, default=1, help="--dev-sets: each of their sentences this many times")
    ap.add_argument("--cv", type=int, default=0, metavar="N", help="--dev-sets: instead of writing the model, N "
                    "models each without one fold of the dev sentences (folds are documents), scored on it")
    ap.add_argument("--jobs", type=int, default=2, help="--cv: folds trained at once")
    ap.add_argument("--score", action="store_true", help="then score the model on every dev set (model-only)")
    ap.add_argument("--results", type=Path, help="append the --score results to this JSONL file")
    args = ap.parse_args(argv)

    if args.teacher:
        from training import corenlp_teacher

        teacher = args.teacher.partition(":")
        if teacher[0] != "corenlp" or teacher[2] not in corenlp_teacher.ENGLISH_MODELS:
            print(f"--teacher: corenlp:<{'|'.join(corenlp_teacher.ENGLISH_MODELS)}> (the text is English), "
                  f"not {args.teacher!r}", file=sys.stderr)
            return 2
        if not corenlp_teacher.installed():
            print("--teacher: no CoreNLP jars in .cache/corenlp/libs (run scripts/corenlp-fetch)", file=sys.stderr)
            return 2
    preset = PRESETS[args.preset]
    sets = tuple(args.sets.split(",")) if args.sets else preset["sets"]
    left_out = {x for x in args.leave_out.split(",") if x}
    sets = tuple(s for s in sets if lang_of(s) not in left_out)
    out = args.out or MODELS_DIR / preset["name"]
    params = {k: getattr(args, k) if getattr(args, k) is not None else preset[k]
              for k in ("clusters", "c1", "c2", "iterations", "min_freq")}
    cap = args.max_per_set if args.max_per_set is not None else preset.get("max_per_set")
    sents = [s for name in sets  # the language a --by-language model tags as keeps all its sentences
             for s in load_set(args.eval_dir, name, "train")[:None if lang_of(name) == args.by_language else cap]]
    if args.self_train:
        extra = self_labelled(CrfTagger(args.self_train), unlabelled_english(args.eval_dir), preset["lang"], args.self_min_prob)
        print(f"self-training: {len(extra)} sentences tagged by {args.self_train.name}", flush=True)
        sents += extra
    if args.teacher:
        extra = corenlp_teacher.silver(teacher[2], english_documents(args.eval_dir), preset["lang"],
                                       with_entities_only=args.teacher_entities_only)
        print(f"distillation: {len(extra)} sentences tagged by CoreNLP {teacher[2]}", flush=True)
        sents += extra
    dev_sets = [name for name in args.dev_sets.split(",") if name]
    dev = [s for name in dev_sets for s in load_set(args.eval_dir, name, "dev")]
    command = "python -m training.entities_multi " + " ".join(model_args(argv if argv is not None else sys.argv[1:]))
    unlabelled = unlabelled_english(args.eval_dir) if preset["unlabelled"] and not args.no_unlabelled else None

    def fit(train_sents: list[data.Sentence], where: Path) -> dict:
        return train(train_sents, where, lang=preset["lang"], clusters_spec=params["clusters"], casing=preset["casing"],
                     c1=params["c1"], c2=params["c2"], iterations=params["iterations"], min_freq=params["min_freq"],
                     command=command, extra_meta={"default_language": "en",
                                                  **({"tokens": preset["tokens"]} if "tokens" in preset else {}),
                                                  **({"words": "rjieba"} if args.words else {})},
                     unlabelled=unlabelled, names=not args.no_names, by_language=args.by_language,
                     domain_of=dict.fromkeys(dev_sets, args.dev_domain) if args.dev_domain else None)

    if args.cv:
        if not dev:
            print("--cv: name the sets whose dev splits are folded (--dev-sets)", file=sys.stderr)
            return 2
        cross_validate(sents, dev, folds=args.cv, weight=args.dev_weight, jobs=args.jobs,
                       lang=preset["lang"], fit=fit)
        return 0
    sents += dev * args.dev_weight
    sets += tuple(f"{name}:dev" for name in dev_sets)
    meta = fit(sents, out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {out} ({size / 1e6:.1f} MB) from {len(sents)} sentences of {', '.join(sets)} "
          f"in {meta['train_seconds']} s", flush=True)
    if args.score:
        tagger = CrfTagger(out)
        for name in dev_sets(args.eval_dir):
            if "tokens" in preset and lang_of(name) != preset["lang"]:
                continue  # a character-level model scores its own language only
            score = score_model(tagger, load_set(args.eval_dir, name, "dev"))
            p, r, f, n = score.prf()
            per = {lab: round(score.prf(lab)[2], 3) for lab in data.LABELS}
            seen = "held-out language" if lang_of(name) in left_out else (
                "trained on its train split" if name in sets else
                "trained on it (--dev-sets)" if f"{name}:dev" in sets else "unseen set")
            print(f"  {name:24s} P {p:.3f} R {r:.3f} F1 {f:.3f} (n={n}) {per} [{seen}]", flush=True)
            if args.results:
                with args.results.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"preset": args.preset, "left_out": sorted(left_out), "set": name,
                                         "params": {**params, "max_per_set": cap}, "p": p, "r": r, "f1": f, "n": n, "per_label": per,
                                         "status": seen}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
