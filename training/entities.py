"""Train the Indonesian NER model committed under ``models/``.

    .venv/bin/python -m training.entities            # writes models/id-news-crf/

Data recipe: see :mod:`pipeline.stages.entities.data` (idner-news-2k + NERGrit + NERP train splits from
``../shared/eval``, labels mapped to PER/ORG/LOC, NERP truecased). The dev splits are never read here.
Word clusters (``clusters.py``, scikit-learn) are learnt from the same training text first. CRFsuite's
L-BFGS and the seeded k-means are deterministic: the same data and parameters give the same model. It
runs on one thread (about 2.5 minutes here; set OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import pycrfsuite

from pipeline.stages.entities import gazetteer
from pipeline.stages.entities.crf import DEFAULT_MODEL, MODELS_DIR, augment, build_extractor
from training import entities_clusters as clusters
from training import entities_data as data

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = ROOT.parent / "shared" / "eval"
DATASETS = ("idner-news-2k", "nergrit", "nerp")
VERSION = 1


def training_sentences(eval_dir: Path, datasets: tuple[str, ...], table: dict[str, str]) -> list[data.Sentence]:
    rows = []
    for name in datasets:
        sents = data.load(eval_dir, name, "train")
        if name in data.LOWERCASED_SETS:
            sents = list(data.truecase(sents, table))
        rows += sents
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    ap.add_argument("--out", type=Path, default=MODELS_DIR / DEFAULT_MODEL)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--default-domain", default="idner-news-2k")
    ap.add_argument("--c1", type=float, default=0.2, help="L1 penalty (sparser, smaller model)")
    ap.add_argument("--c2", type=float, default=1.0, help="L2 penalty")
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--min-freq", type=float, default=2, help="drop features seen fewer times")
    ap.add_argument("--clusters", default="64,256,1024", help="word clusters learnt from the training text: the "
                    "numbers of clusters, comma-separated for several granularities (empty: none)")
    args = ap.parse_args(argv)

    datasets = tuple(args.datasets.split(","))
    cased = [s for name in datasets if name not in data.LOWERCASED_SETS
             for s in data.load(args.eval_dir, name, "train")]
    table = data.casing_table(cased)
    meta = {
        "version": VERSION,
        "kind": "crfsuite linear-chain CRF, IOB2 over PER/ORG/LOC, domain-augmented features",
        "datasets": {name: f"ner-{name}.train.jsonl.gz" for name in datasets},
        "label_maps": {name: data.LABEL_MAPS[name] for name in datasets},
        "domains": list(datasets),
        "default_domain": args.default_domain,
        "base_domain": args.default_domain,
        "params": {"c1": args.c1, "c2": args.c2, "max_iterations": args.iterations,
                   "feature.minfreq": args.min_freq},
        "command": "python -m training.entities " + " ".join(argv if argv is not None else sys.argv[1:]),
        "lowercase_words": sorted(w for w, form in table.items() if form.islower()),
        "word_freq": {"package": "wordfreq", "lang": "id", "wordlist": "small"},
    }
    sents = training_sentences(args.eval_dir, datasets, table)
    # the base domain's convention for "Name (SHORT)": the stage keeps the tagger's span whole where it is one
    meta["short_form_labels"] = data.short_form_labels(s for s in sents if s.source == args.default_domain)
    # the words that begin places' names in every set's annotation ("Kabupaten Rembang"): the stage joins them
    meta["place_heads"] = data.place_heads(sents)
    if args.clusters:
        sizes = [int(x) for x in args.clusters.split(",")]
        learnt = [clusters.learn([s.tokens for s in sents], n_clusters=k) for k in sizes]
        meta["clusters"] = {w: [c[w] for c in learnt] if len(learnt) > 1 else learnt[0][w] for w in learnt[0]}
    extractor = build_extractor(meta, gazetteer.load())
    trainer = pycrfsuite.Trainer(verbose=False)
    for sent in sents:
        trainer.append(augment(extractor.sentence(sent.tokens), sent.source, args.default_domain), sent.tags)
    trainer.set_params({"c1": args.c1, "c2": args.c2, "max_iterations": args.iterations,
                        "feature.possible_transitions": True, "feature.minfreq": args.min_freq})
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    trainer.train(str(args.out / "model.crfsuite"))
    meta["sentences"] = {name: sum(1 for s in sents if s.source == name) for name in datasets}
    meta["train_seconds"] = round(time.time() - t0)
    with gzip.GzipFile(args.out / "meta.json.gz", "wb", mtime=0) as fh:
        fh.write(json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({size / 1e6:.1f} MB) from {len(sents)} sentences in {meta['train_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
