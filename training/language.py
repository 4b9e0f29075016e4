"""Train the Indonesian/Malay discriminator and fit the confidence calibration.

    .venv/bin/python -m training.language [--eval-dir ../shared/eval]

Needs scikit-learn (``pip install -e '.[train]'``); the stage itself does not. Deterministic: fixed
split seed, fixed fold order, lbfgs solver, one thread.

Data recipe (see ``language_data.py``; nothing of the lingua *report* half is used here):

* Discriminator training text: the lingua *fit* half's Indonesian and Malay items (sentences,
  word pairs, single words; label = the file's label) plus every sentence of the Indonesian NER
  train files (idner-news-2k, NERGrit, NERP; detokenised; label Indonesian, down-weighted by
  ``ner_weight`` so the two labels stay balanced). The NER sentences keep real Indonesian news
  Indonesian: trained on the lingua texts alone, the model learns the lingua "Malay" file's web
  style and calls one Indonesian news sentence in seven Malay.
* Discriminator calibration: isotonic regression of the lingua fit items' out-of-fold scores
  (so P(Malay) is calibrated for the benchmark's half-and-half mix). The answer is Malay only when
  the raw score is above ``ms_threshold``: where the calibrated P(Malay) passes 0.5, or higher if
  needed to keep ``MIN_NER_RECALL`` of the NER sentences and ``MIN_ID_RECALL`` of the lingua fit
  Indonesian sentences (out of fold) Indonesian; Indonesian feeds must not turn Malay.
* NusaX Indonesian (``language_data.nusax_samples``, the 600 Indonesian sentences: reviews, tweets,
  colloquial one-liners with "gue", "banget", "deh") are Indonesian training text too, weighted
  ``NUSAX_WEIGHT``: trained on the lingua and NER text alone, the model calls one colloquial
  Indonesian sentence in twelve Malay. The weight was chosen by 5-fold cross-validation grouped by
  NusaX row (bench/language/README.md); the bench's NusaX figures use a discriminator trained
  without the held-out fold (``exclude_nusax_fold``).
* Hyper-parameters (C, ner_weight) by 5-fold cross-validation on that training text: the pair with
  the best Malay recall on the lingua fit sentences at its threshold (ties: Indonesian recall).
* Document model (``identifier.DocumentModel``): the segments (``features.segment_tokens``) of every
  training sentence get out-of-fold margins (the fold models of the chosen setting); synthetic
  documents are packed from them, one language per document, like ``language_data.build_documents``:
  the lingua fit Indonesian and Malay sentences (``DOC_PACKINGS`` seeded shuffles at each size of
  ``DOC_SIZES`` characters) and the NER train sentences (one shuffle per size). A logistic
  regression of "Malay" on the token-weighted mean and the maximum of a document's segment margins,
  one per bucket of segment counts (``DOC_SEGMENT_BUCKETS``); in each, the Malay threshold is 0.5,
  or higher if needed to keep ``MIN_NER_DOC_RECALL`` of the NER documents Indonesian.
* Vote calibration: the identifier (without calibration) on every lingua fit item, isotonic
  regression of "the top language (Indonesian and Malay merged) is right" on the vote share, one
  map per text-length bucket (letters).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
from pathlib import Path

from pipeline.stages.language.features import features, features_of_tokens, segment_tokens
from pipeline.stages.language.identifier import (
    CALIBRATION_FILE,
    DISCRIMINATOR_FILE,
    Calibration,
    DocumentModel,
    IsotonicMap,
    LanguageIdentifier,
)
from training.language_data import (
    default_eval_dir,
    lingua_samples,
    ner_sentences,
    nusax_samples,
    split_lingua,
)

LENGTH_EDGES = [8, 16, 32, 64, 128, 256]
C_GRID = (10.0, 30.0, 100.0)
NER_WEIGHT_GRID = (0.03, 0.1)
FOLDS = 5
NUSAX_WEIGHT = 1.0                  # weight of a NusaX Indonesian sentence (a lingua item weighs 1)
MIN_NER_RECALL = 0.97
MIN_ID_RECALL = 0.95
PRUNE_BELOW = 1e-4
DOC_SIZES = (150, 300, 500, 1000)   # synthetic documents: at least this many characters
DOC_PACKINGS = 30                   # seeded shuffles of the lingua fit sentences per size
MIN_NER_DOC_RECALL = 0.995
DOC_SEGMENT_BUCKETS = (2, 4)        # one document model for 2-3 segments, one for 4 or more


def _isotonic(xs, ys, weights=None) -> IsotonicMap:
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    reg = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    reg.fit(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), sample_weight=weights)
    return IsotonicMap(list(reg.X_thresholds_), list(reg.y_thresholds_))


def train_discriminator(eval_dir: Path, log, exclude_nusax_fold: int | None = None,
                        settings: tuple[float, float] | None = None, document: bool = True) -> dict:
    """The discriminator's model (the JSON written to ``DISCRIMINATOR_FILE``). ``exclude_nusax_fold``:
    train without that NusaX fold (cross-validation); ``settings``: (C, ner_weight) instead of the
    grid search; ``document=False``: no document model (the answer keeps none)."""
    import numpy as np
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    fit, _ = split_lingua(lingua_samples(eval_dir))
    lingua = [s for s in fit if s.lang in ("id", "ms")]
    ner = ner_sentences(eval_dir, "train")
    nusax = [s.text for s in nusax_samples(eval_dir) if s.lang == "id" and s.fold != exclude_nusax_fold]
    texts = [s.text for s in lingua] + ner + nusax
    labels = np.array([s.lang == "ms" for s in lingua] + [False] * (len(ner) + len(nusax)))
    is_lingua = np.array([True] * len(lingua) + [False] * (len(ner) + len(nusax)))
    is_ner = np.array([False] * len(lingua) + [True] * len(ner) + [False] * len(nusax))
    is_sentence = np.array([s.kind == "sentences" for s in lingua] + [False] * (len(ner) + len(nusax)))
    vectorizer = DictVectorizer()
    matrix = vectorizer.fit_transform([features(t) for t in texts])
    log(f"discriminator: {len(lingua)} lingua fit items, {len(ner)} NER sentences, {len(nusax)} NusaX "
        f"Indonesian sentences, {matrix.shape[1]} features")
    folds = np.arange(len(texts)) % FOLDS

    def weights_for(ner_weight: float):
        return np.where(is_lingua, 1.0, np.where(is_ner, ner_weight, NUSAX_WEIGHT))

    def out_of_fold(c: float, ner_weight: float, segment_margins: list | None = None):
        """Out-of-fold P(Malay) of every training text; with ``segment_margins`` (a list to fill),
        also the out-of-fold margins of each text's segments."""
        oof = np.zeros(len(texts))
        for k in range(FOLDS):
            train = folds != k
            model = LogisticRegression(C=c, max_iter=5000)
            model.fit(matrix[train], labels[train], sample_weight=weights_for(ner_weight)[train])
            oof[~train] = model.predict_proba(matrix[~train])[:, 1]
            if segment_margins is not None:
                for i in np.flatnonzero(~train):
                    segments = segment_tokens(texts[i])
                    segment_margins[i] = list(zip(
                        (float(m) for m in model.decision_function(vectorizer.transform(
                            [features_of_tokens(s) for s in segments]))),
                        (len(s) for s in segments), strict=True)) if segments else []
        return oof

    best = None
    for c, ner_weight in [settings] if settings else [(c, w) for c in C_GRID for w in NER_WEIGHT_GRID]:
        oof = out_of_fold(c, ner_weight)
        cal = _isotonic(oof[is_lingua], labels[is_lingua])
        # the Malay threshold on the raw score: where the calibrated P(Malay) passes 0.5, or higher
        # if needed to keep MIN_NER_RECALL of the NER sentences (out of fold) Indonesian
        half = min((x for x, y in zip(cal.xs, cal.ys, strict=True) if y > 0.5), default=1.0)
        threshold = max(half, float(np.quantile(oof[is_ner], MIN_NER_RECALL)),
                        float(np.quantile(oof[is_sentence & ~labels], MIN_ID_RECALL)))
        decided = oof > threshold
        sent = is_sentence
        id_recall = float(np.mean(~decided[sent & ~labels]))
        ms_recall = float(np.mean(decided[sent & labels]))
        ner_recall = float(np.mean(~decided[is_ner]))
        log(f"  C={c:g} ner_weight={ner_weight:g} Malay above {threshold:.3f}: fit-sentence id "
            f"{id_recall:.3f} ms {ms_recall:.3f}, NER id {ner_recall:.3f} (out of fold)")
        if best is None or (ms_recall, id_recall) > best[0]:
            best = ((ms_recall, id_recall), c, ner_weight, cal, threshold)
    if best is None:
        raise SystemExit("no setting keeps the NER sentences Indonesian; widen the grid")
    _, c, ner_weight, cal, threshold = best
    documents = None
    if document:
        segment_margins: list = [None] * len(texts)
        out_of_fold(c, ner_weight, segment_margins)
        documents = fit_document_model(
            [(s.text, m, s.lang == "ms") for m, s in zip(segment_margins, lingua, strict=False)
             if s.kind == "sentences"],
            list(zip(ner, segment_margins[len(lingua):len(lingua) + len(ner)], strict=True)), log)
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit(matrix, labels, sample_weight=weights_for(ner_weight))
    names = vectorizer.get_feature_names_out()
    weights = {str(n): round(float(w), 5) for n, w in zip(names, model.coef_[0], strict=True)
               if abs(w) >= PRUNE_BELOW}
    log(f"chosen C={c:g} ner_weight={ner_weight:g}; {len(weights)} weights kept")
    return {"bias": float(model.intercept_[0]), "weights": weights, "calibration": cal.as_dict(),
            "ms_threshold": round(threshold, 6), "document": documents.as_list() if documents else None,
            "trained": {"C": c, "ner_weight": ner_weight, "lingua_items": len(lingua),
                        "ner_sentences": len(ner), "nusax_sentences": len(nusax), "nusax_weight": NUSAX_WEIGHT,
                        "split_seed": "evaldata.SEED"}}


def pack_documents(items: list, min_chars: int, seed: int) -> list[list[tuple[float, int]]]:
    """Greedy packing of shuffled (text, segments) items into documents of at least ``min_chars``
    characters (one sentence per line); a document's value is its segments' (margin, tokens)."""
    rng = random.Random(seed)
    items = list(items)
    rng.shuffle(items)
    docs: list[list[tuple[float, int]]] = []
    chars = 0
    segments: list[tuple[float, int]] = []
    for text, text_segments in items:
        chars += len(text) + 1
        segments.extend(text_segments)
        if chars - 1 >= min_chars:
            if len(segments) >= 2:
                docs.append(segments)
            chars, segments = 0, []
    return docs


def fit_document_model(lingua: list[tuple[str, list, bool]], ner: list[tuple[str, list]], log) -> DocumentModel:
    """``lingua``: (text, out-of-fold segment (margin, tokens) pairs, is Malay) of the lingua fit
    sentences; ``ner``: (text, segments) of the NER train sentences (Indonesian)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    docs: list[tuple[list[tuple[float, int]], bool, bool]] = []   # (segments, is Malay, is NER)
    for is_malay in (False, True):
        items = [(text, segments) for text, segments, malay in lingua if malay == is_malay]
        for size in DOC_SIZES:
            for packing in range(DOC_PACKINGS):
                docs.extend((d, is_malay, False) for d in pack_documents(items, size, packing * 1000 + size))
    for size in DOC_SIZES:
        docs.extend((d, False, True) for d in pack_documents(ner, size, size))

    def row(segments: list[tuple[float, int]]) -> list[float]:
        tokens = sum(n for _, n in segments)
        return [sum(m * n for m, n in segments) / tokens, max(m for m, _ in segments)]

    buckets = []
    for i, start in enumerate(DOC_SEGMENT_BUCKETS):
        end = DOC_SEGMENT_BUCKETS[i + 1] if i + 1 < len(DOC_SEGMENT_BUCKETS) else None
        chosen = [d for d in docs if len(d[0]) >= start and (end is None or len(d[0]) < end)]
        x = np.array([row(d) for d, _, _ in chosen])
        y = np.array([malay for _, malay, _ in chosen])
        is_ner = np.array([ner_doc for _, _, ner_doc in chosen])
        model = LogisticRegression(C=100.0, max_iter=1000).fit(x, y)
        probability = model.predict_proba(x)[:, 1]
        threshold = max(0.5, float(np.quantile(probability[is_ner], MIN_NER_DOC_RECALL)))
        decided = probability > threshold
        lingua_ids = ~y & ~is_ner
        log(f"document model, {start}{'+' if end is None else f'-{end - 1}'} segments: "
            f"{int((~is_ner).sum())} lingua + {int(is_ner.sum())} NER synthetic documents; Malay above "
            f"{threshold:.3f}: lingua id {np.mean(~decided[lingua_ids]):.3f} ms {np.mean(decided[y]):.3f}, "
            f"NER id {np.mean(~decided[is_ner]):.4f}")
        buckets.append({"min_segments": start, "mean_weight": round(float(model.coef_[0][0]), 6),
                        "max_weight": round(float(model.coef_[0][1]), 6),
                        "bias": round(float(model.intercept_[0]), 6), "threshold": round(threshold, 6)})
    return DocumentModel(buckets)


def fit_calibration(eval_dir: Path, identifier: LanguageIdentifier, log) -> dict:
    fit, _ = split_lingua(lingua_samples(eval_dir))
    merged = {"ms": "id"}
    per_bucket: list[tuple[list[float], list[float]]] = [([], []) for _ in range(len(LENGTH_EDGES) + 1)]
    for sample in fit:
        vote = identifier.vote(sample.text)
        if vote.top == "und":
            continue
        right = merged.get(vote.top, vote.top) == merged.get(sample.lang, sample.lang)
        xs, ys = per_bucket[Calibration.bucket_of(vote.letters, LENGTH_EDGES)]
        xs.append(vote.top_share)
        ys.append(1.0 if right else 0.0)
    maps = []
    for i, (xs, ys) in enumerate(per_bucket):
        if len(xs) < 20:  # too little data in this bucket: borrow the neighbour's map
            maps.append(None)
            continue
        maps.append(_isotonic(xs, ys))
        log(f"  length bucket {i}: {len(xs)} items, accuracy {sum(ys) / len(ys):.3f}")
    for i in range(len(maps)):
        if maps[i] is None:
            maps[i] = next(m for m in maps[i:] + maps[::-1] if m is not None)
    return {"edges": LENGTH_EDGES, "maps": [m.as_dict() for m in maps],
            "fitted_on": "lingua fit half (evaldata.split_lingua), Indonesian and Malay merged"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=default_eval_dir())
    parser.add_argument("--skip-discriminator", action="store_true",
                        help="refit only the vote calibration, keeping the shipped discriminator")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    DISCRIMINATOR_FILE.parent.mkdir(parents=True, exist_ok=True)
    if not args.skip_discriminator:
        model = train_discriminator(args.eval_dir, log)
        with gzip.GzipFile(DISCRIMINATOR_FILE, "wb", mtime=0) as handle:
            handle.write(json.dumps(model, sort_keys=True, separators=(",", ":")).encode("utf-8"))
        log(f"wrote {DISCRIMINATOR_FILE} ({DISCRIMINATOR_FILE.stat().st_size} bytes)")
    from pipeline.stages.language.identifier import MalayDiscriminator

    identifier = LanguageIdentifier(min_chars=1, min_confidence=0.0, reliable_confidence=1.0,
                                    max_chars=10000, discriminator=MalayDiscriminator.load())
    calibration = fit_calibration(args.eval_dir, identifier, log)
    CALIBRATION_FILE.write_text(json.dumps(calibration, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {CALIBRATION_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
