"""Train the regional-language classifier (``pipeline/stages/language/regional.py``).

    .venv/bin/python -m training.language_regional [--eval-dir ../shared/eval]

Needs scikit-learn (``pip install -e '.[train]'``) for the calibration layer; the stage only numpy.
Deterministic: fixed seeds and fold order, lbfgs, one thread; a byte-identical model file.

Data (labels: ``idms`` = Indonesian or Malay, ``other`` = outside the area, or the regional code):

* NusaX train+valid (``language_data.nusax_samples``): 600 parallel sentences in each of id (idms),
  en (other) and jv, su, ace, ban, bjn, bug, mad, min, nij, bbc. Folds by parallel row.
* lingua *fit* half (never its report half): Indonesian and Malay sentences and word pairs (idms), the
  other 22 languages' sentences (other).
* the Indonesian NER train sentences (idms, weight ``NER_WEIGHT``): real news and Wikipedia, so that
  Indonesian news does not drift to a regional language.

Recipe: every item has a fold (NusaX by parallel row, the rest round-robin). For each fold, Naive
Bayes (additive smoothing ``ALPHA``, keys seen fewer than ``MIN_COUNT`` times pruned, centred,
quantised exactly as shipped) is fitted on the other folds and scores the fold: out-of-fold scores for
every item. The calibration layer (multinomial logistic regression, ``MIX_C``) is fitted on those.
The shipped model is Naive Bayes on everything plus the layer on all out-of-fold scores;
``bench.language`` rebuilds the fold models (``cross_validate``) to score the whole stage on held-out
NusaX rows, each with a layer fitted on the other folds' out-of-fold scores only.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.stages.language.features import token_keys, tokens
from pipeline.stages.language.regional import IDMS, MODEL_FILE, OTHER, RegionalModel
from training.language_data import (
    NUSAX_FOLDS,
    default_eval_dir,
    lingua_samples,
    ner_sentences,
    nusax_samples,
    split_lingua,
)

ALPHA = 0.1            # Naive Bayes additive smoothing
MIN_COUNT = 2          # keys seen (weighted) fewer times are dropped
MIX_C = 10.0           # calibration layer regularisation
NER_WEIGHT = 0.2
REGIONAL_CODES = ("jv", "su", "ace", "ban", "bjn", "bug", "mad", "min", "nij", "bbc")
CLASSES = (IDMS, OTHER, *REGIONAL_CODES)
AREA = ("id", "ms", *REGIONAL_CODES)


def label_of(lang: str) -> str:
    return IDMS if lang in ("id", "ms") else lang if lang in REGIONAL_CODES else OTHER


@dataclass
class Item:
    text: str
    label: str
    source: str      # nusax | lingua | ner
    fold: int
    weight: float = 1.0


def training_items(eval_dir: Path) -> list[Item]:
    items = [Item(s.text, label_of(s.lang), "nusax", s.fold) for s in nusax_samples(eval_dir)]
    fit, _ = split_lingua(lingua_samples(eval_dir))
    lingua = [s for s in fit if s.kind == "sentences" or (s.lang in ("id", "ms") and s.kind == "word-pairs")]
    items += [Item(s.text, label_of(s.lang), "lingua", i % NUSAX_FOLDS) for i, s in enumerate(lingua)]
    items += [Item(t, IDMS, "ner", i % NUSAX_FOLDS, NER_WEIGHT)
              for i, t in enumerate(ner_sentences(eval_dir, "train"))]
    return items


def count_matrix(texts: list[str]):
    """(key counts, items x vocabulary; the vocabulary: key of each column)."""
    from scipy.sparse import csr_matrix

    vocabulary: dict[str, int] = {}
    cache: dict[str, list[int]] = {}
    indptr, indices, data = [0], [], []
    for text in texts:
        counts: Counter[int] = Counter()
        for token in tokens(text):
            columns = cache.get(token)
            if columns is None:
                columns = cache[token] = [vocabulary.setdefault(k, len(vocabulary)) for k in token_keys(token)]
            counts.update(columns)
        for column, n in sorted(counts.items()):
            indices.append(column)
            data.append(float(n))
        indptr.append(len(indices))
    matrix = csr_matrix((np.array(data), np.array(indices, dtype=np.int64), np.array(indptr)),
                        shape=(len(texts), len(vocabulary)))
    return matrix, list(vocabulary)


@dataclass
class NaiveBayes:
    classes: list[str]
    columns: np.ndarray      # kept columns of the count matrix
    keys: list[str]          # their feature keys
    weights: np.ndarray      # int8, kept x classes (centred log-probabilities / scale)
    scale: float

    def scores(self, counts) -> np.ndarray:
        """What ``RegionalModel`` computes before its layer, for rows of ``count_matrix``."""
        keys = np.asarray(counts.sum(axis=1)).ravel()
        dense = self.weights.astype(np.float64) * self.scale
        return np.asarray(counts[:, self.columns] @ dense) / np.sqrt(np.maximum(keys, 1.0))[:, None]


def fit_naive_bayes(counts, vocabulary: list[str], labels: np.ndarray, weights: np.ndarray,
                    classes: list[str]) -> NaiveBayes:
    from scipy.sparse import csr_matrix

    onehot = csr_matrix((weights, (np.array([classes.index(label) for label in labels]), np.arange(len(labels)))),
                        shape=(len(classes), len(labels)))
    per_class = np.asarray((onehot @ counts).todense())        # classes x buckets
    kept = np.flatnonzero(per_class.sum(axis=0) >= MIN_COUNT)
    table = per_class[:, kept]
    logp = np.log(table + ALPHA) - np.log(table.sum(axis=1, keepdims=True) + ALPHA * len(kept))
    centred = (logp - logp.mean(axis=0, keepdims=True)).T    # kept x classes
    scale = float(np.abs(centred).max()) / 127.0
    quantised = np.round(centred / scale).astype(np.int8)
    informative = np.flatnonzero(np.abs(quantised).max(axis=1) > 0)
    columns = kept[informative]
    return NaiveBayes(classes, columns, [vocabulary[c] for c in columns], quantised[informative], scale)


def fit_mix(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, classes: list[str]):
    """(mix, bias): the calibration layer, a multinomial logistic regression on Naive Bayes scores."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=MIX_C, max_iter=2000)
    model.fit(scores, labels, sample_weight=weights)
    order = [list(model.classes_).index(c) for c in classes]
    return model.coef_[order], model.intercept_[order]


def to_regional(nb: NaiveBayes, mix: np.ndarray, bias: np.ndarray) -> RegionalModel:
    rows = {key: i for i, key in enumerate(nb.keys)}
    return RegionalModel(nb.classes, rows, nb.weights.astype(np.float32) * np.float32(nb.scale), mix, bias)


@dataclass
class CrossValidation:
    items: list[Item]
    classes: list[str]
    counts: object
    vocabulary: list[str]
    labels: np.ndarray
    weights: np.ndarray
    folds: np.ndarray
    oof: np.ndarray                 # out-of-fold Naive Bayes scores, items x classes

    def fold_model(self, k: int, nb: NaiveBayes | None = None) -> RegionalModel:
        """The model for held-out fold ``k``: Naive Bayes without fold k, layer on the other folds'
        out-of-fold scores."""
        train = self.folds != k
        nb = nb or fit_naive_bayes(self.counts[train], self.vocabulary, self.labels[train], self.weights[train],
                                   self.classes)
        mix, bias = fit_mix(self.oof[train], self.labels[train], self.weights[train], self.classes)
        return to_regional(nb, mix, bias)


def cross_validate(items: list[Item], log, folds: int = NUSAX_FOLDS) -> CrossValidation:
    classes = list(CLASSES)
    counts, vocabulary = count_matrix([it.text for it in items])
    labels = np.array([it.label for it in items])
    weights = np.array([it.weight for it in items])
    fold = np.array([it.fold for it in items])
    oof = np.zeros((len(items), len(classes)))
    for k in range(folds):
        train = fold != k
        nb = fit_naive_bayes(counts[train], vocabulary, labels[train], weights[train], classes)
        oof[~train] = nb.scores(counts[~train])
        log(f"  fold {k}: Naive Bayes on {int(train.sum())} items, {len(nb.keys)} keys kept")
    return CrossValidation(items, classes, counts, vocabulary, labels, weights, fold, oof)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=default_eval_dir())
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", flush=True)

    items = training_items(args.eval_dir)
    log(f"{len(items)} items: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(it.label for it in items).items())))
    cv = cross_validate(items, log)
    sources = np.array([it.source for it in items])
    mix, bias = fit_mix(cv.oof, cv.labels, cv.weights, cv.classes)
    logits = cv.oof @ mix.T + bias
    predicted = np.array(cv.classes)[logits.argmax(axis=1)]
    for source in ("nusax", "lingua", "ner"):
        mask = sources == source
        log(f"out of fold, {source}: accuracy {np.mean(predicted[mask] == cv.labels[mask]):.4f}")
    nb = fit_naive_bayes(cv.counts, cv.vocabulary, cv.labels, cv.weights, cv.classes)
    save(nb, mix, bias, log)
    return 0


def save(nb: NaiveBayes, mix: np.ndarray, bias: np.ndarray, log, path: Path = MODEL_FILE) -> None:
    """An .npz written byte for byte the same from the same model (fixed zip dates)."""
    import io
    import zipfile

    meta = {"classes": nb.classes, "scale": nb.scale, "alpha": ALPHA,
            "min_count": MIN_COUNT, "mix_c": MIX_C, "ner_weight": NER_WEIGHT,
            "trained": "python -m training.language_regional"}
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), "keys": np.frombuffer("\n".join(nb.keys).encode("utf-8"), dtype=np.uint8),
              "weights": nb.weights,
              "mix": np.asarray(mix, dtype=np.float64), "bias": np.asarray(bias, dtype=np.float64)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)
    log(f"wrote {path}: {len(nb.keys):,} keys, {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    raise SystemExit(main())
