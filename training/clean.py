"""Train the rendered-text line classifier (``line_model.json``).

    .venv/bin/python -m training.clean                     # both sets -> line_model.json
    .venv/bin/python -m training.clean --sets trafilatura --out /tmp/m.json

Data recipe (third-party sets in ``../shared/eval``, see its README):

* pages: ``textmode/textmode-aeb.jsonl.gz`` (181 news articles) and
  ``textmode/textmode-trafilatura.jsonl.gz`` (990 web pages), the visible text of each page, one
  block per line, as the seeds look;
* labels, AEB: a line is article text when at least half of its word 4-grams occur in the gold
  body (lines of fewer than four words: when their words occur, in order, in the gold body);
* labels, trafilatura set: a line holding one of the page's ``with`` snippets is article text, a
  line holding a ``without`` snippet is not (gold, weight 30). The other lines of these pages carry
  *silver* labels (weight 1): whether the line occurs in what trafilatura extracts from the page's
  original HTML (``extraction-trafilatura.jsonl.gz``): that is a third-party extractor's output,
  not the gold, and it covers menus and footers that the snippets do not mention;
* training: two small neural networks (see ``line_model``; one hidden layer, fitted with
  scikit-learn's ``MLPClassifier``, Adam, fixed seeds, one thread: the same data give the same
  model); each pass averages the logits of five networks fitted from seeds 0-4 (stored as one
  network with their hidden units side by side), so the model does not hang on one seed; pass 2
  learns from out-of-fold pass-1 probabilities (3 folds by page), so it sees the kind of
  probabilities it gets on new pages; lines are weighted by 1 + log(1 + words) so that
  long paragraphs count more, as in both metrics, and each set gets the same total weight.
  scikit-learn is needed for training only (``pip install -e '.[train]'``); the stage reads the
  exported weights with numpy.

Honest scores: ``python -m bench.clean --mode text`` scores each set with a classifier trained on
the other set only. The packaged model is trained on both sets, so scores of the packaged model on
these sets are training scores (``--protocol packaged`` shows them, labelled as such).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.stages.clean.line_model import (
    MODEL_PATH,
    LineClassifier,
    PageLines,
    Perceptron,
    base_features,
    stack_features,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL_DIR = ROOT.parent / "shared" / "eval"
CACHE_DIR = ROOT / "out" / "cache"
SETS = ("aeb", "trafilatura")
FOLDS = 3
HIDDEN_UNITS = 32
EPOCHS = 15
SEED = 0
ENSEMBLE = 5  # networks per pass, from seeds SEED .. SEED + ENSEMBLE - 1
THRESHOLD = 0.5
GOLD_WEIGHT = 30.0
SILVER_WEIGHT = 1.0

_TOKENS = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")


@dataclass
class TrainingPage:
    set: str
    id: str
    lines: PageLines
    labels: np.ndarray   # 1 article, 0 not, -1 unknown
    weights: np.ndarray  # per line


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def read_rows(path: Path) -> list[dict]:
    """The rows of a gzipped JSON-lines file of the shared data."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def aeb_labels(lines: PageLines, gold: str) -> np.ndarray:
    gold_tokens = _TOKENS.findall(gold)
    grams = {tuple(gold_tokens[i:i + 4]) for i in range(len(gold_tokens) - 3)}
    short = set()
    for size in (1, 2, 3):
        short.update(tuple(gold_tokens[i:i + size]) for i in range(len(gold_tokens) - size + 1))
    labels = np.zeros(len(lines.texts))
    for i, text in enumerate(lines.texts):
        tokens = _TOKENS.findall(text)
        if not tokens:
            continue
        if len(tokens) < 4:
            labels[i] = tuple(tokens) in short
        else:
            found = sum(tuple(tokens[j:j + 4]) in grams for j in range(len(tokens) - 3))
            labels[i] = found / (len(tokens) - 3) >= 0.5
    return labels


def snippet_labels(lines: PageLines, must: list[str], must_not: list[str],
                   silver: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Gold labels from the snippets where they apply, silver from trafilatura's output elsewhere."""
    must = [_collapse(s) for s in must if s.strip()]
    must_not = [_collapse(s) for s in must_not if s.strip()]
    silver_text = _collapse(silver or "")
    silver_lines = {_collapse(s) for s in (silver or "").split("\n")}
    labels = np.full(len(lines.texts), -1.0)
    weights = np.zeros(len(lines.texts))
    for i, text in enumerate(lines.texts):
        line = _collapse(text)
        pos = any(s in line or (len(line) >= 20 and line in s) for s in must)
        neg = any(s in line for s in must_not)
        if pos != neg:
            labels[i], weights[i] = float(pos), GOLD_WEIGHT
        elif not pos:
            in_silver = line in silver_lines or (len(line.split()) >= 4 and line in silver_text)
            labels[i], weights[i] = float(in_silver), SILVER_WEIGHT
    return labels, weights


def _silver_outputs(eval_dir: Path) -> dict[str, str]:
    """trafilatura's extraction of every page of the trafilatura set's HTML (cached under out/)."""
    path = eval_dir / "extraction-trafilatura.jsonl.gz"
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime}".encode()).hexdigest()[:12]
    cache = CACHE_DIR / f"silver-trafilatura-{key}.pkl"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    import trafilatura

    print("silver labels: running trafilatura on the trafilatura set's HTML (once, cached) ...",
          file=sys.stderr, flush=True)
    out = {}
    for row in read_rows(path):
        out[str(row["id"])] = trafilatura.extract(row["html"], include_comments=False, include_tables=True,
                                                  include_formatting=False) or ""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(out))
    return out


def load_training_pages(eval_dir: Path, sets: list[str] | tuple[str, ...] = SETS) -> list[TrainingPage]:
    pages = []
    if "aeb" in sets:
        for row in read_rows(eval_dir / "textmode" / "textmode-aeb.jsonl.gz"):
            lines = PageLines.split(row["text"])
            if not lines.texts:
                continue
            labels = aeb_labels(lines, row["gold_text"])
            pages.append(TrainingPage("aeb", str(row["id"]), lines, labels, np.full(len(labels), GOLD_WEIGHT)))
    if "trafilatura" in sets:
        silver = _silver_outputs(eval_dir)
        for row in read_rows(eval_dir / "textmode" / "textmode-trafilatura.jsonl.gz"):
            lines = PageLines.split(row["text"])
            if not lines.texts:
                continue
            labels, weights = snippet_labels(lines, row["with"], row["without"], silver.get(str(row["id"])))
            pages.append(TrainingPage("trafilatura", str(row["id"]), lines, labels, weights))
    return pages


def _fit_one(x: np.ndarray, y: np.ndarray, w: np.ndarray, mean: np.ndarray, scale: np.ndarray, hidden: int,
             epochs: int, seed: int) -> Perceptron:
    import warnings

    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise SystemExit("training the line classifier needs scikit-learn: "
                         ".venv/bin/pip install -e '.[train]'") from None

    net = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3, batch_size=min(512, len(x)), learning_rate_init=2e-3,
                        max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, random_state=seed)
    with warnings.catch_warnings(), threadpool_limits(1):  # one core: the machine is shared
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of epochs, on purpose
        net.fit((x - mean) / scale, y, sample_weight=w / w.mean())
    return Perceptron(mean, scale, net.coefs_[0], net.intercepts_[0], net.coefs_[1][:, 0],
                      float(net.intercepts_[1][0]))


def fit_perceptron(x: np.ndarray, y: np.ndarray, w: np.ndarray, hidden: int = HIDDEN_UNITS,
                   epochs: int = EPOCHS, ensemble: int = ENSEMBLE) -> Perceptron:
    """One hidden layer of ReLU units, Adam, weighted samples, fixed seeds and epochs.

    ``ensemble`` networks are fitted from consecutive seeds and their logits averaged. On 181 pages
    one network's score on the other set moves by 4.5 points with the seed alone (0.816-0.862); the
    average does not depend on one draw. Averaging logits of networks that share the standardisation
    is itself one network with all their hidden units side by side (output weights divided by their
    number), so the stage runs it like any other."""
    mean = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    scale[scale < 1e-9] = 1.0
    nets = [_fit_one(x, y, w, mean, scale, hidden, epochs, SEED + k) for k in range(ensemble)]
    return Perceptron(mean, scale, np.hstack([n.w1 for n in nets]), np.concatenate([n.b1 for n in nets]),
                      np.concatenate([n.w2 for n in nets]) / len(nets), float(np.mean([n.b2 for n in nets])))


def _stack(pages: list[TrainingPage], feats: list[np.ndarray]):
    x = np.vstack(feats)
    y = np.concatenate([p.labels for p in pages])
    w = np.concatenate([p.weights * (1.0 + np.log1p([len(t.split()) for t in p.lines.texts])) for p in pages])
    known = y >= 0
    return x[known], y[known], w[known], known


def _balance(pages: list[TrainingPage]) -> None:
    """Give each set the same total weight, so 181 AEB pages count as much as 990 others."""
    totals = {}
    for p in pages:
        totals[p.set] = totals.get(p.set, 0.0) + float(p.weights[p.labels >= 0].sum())
    if len(totals) < 2:
        return
    target = sum(totals.values()) / len(totals)
    for p in pages:
        p.weights = p.weights * (target / totals[p.set])


def train_classifier(pages: list[TrainingPage], threshold: float = THRESHOLD) -> LineClassifier:
    _balance(pages)
    base = [base_features(p.lines) for p in pages]
    x, y, w, _ = _stack(pages, base)
    first = fit_perceptron(x, y, w)
    # out-of-fold pass-1 probabilities for pass 2 (folds by page, fixed assignment)
    fold_of = np.array([int(hashlib.md5(p.id.encode()).hexdigest(), 16) % FOLDS for p in pages])
    p1_oof: list[np.ndarray | None] = [None] * len(pages)
    for fold in range(FOLDS):
        train_idx = [i for i in range(len(pages)) if fold_of[i] != fold]
        xf, yf, wf, _ = _stack([pages[i] for i in train_idx], [base[i] for i in train_idx])
        model = fit_perceptron(xf, yf, wf)
        for i in range(len(pages)):
            if fold_of[i] == fold:
                p1_oof[i] = model.predict(base[i])
    second_x = [np.column_stack([b, stack_features(p1)]) for b, p1 in zip(base, p1_oof, strict=True)]
    x2, y2, w2, _ = _stack(pages, second_x)
    second = fit_perceptron(x2, y2, w2)
    meta = {"sets": sorted({p.set for p in pages}), "pages": len(pages), "lines": int(len(y2)),
            "hidden_units": HIDDEN_UNITS, "ensemble": ENSEMBLE, "epochs": EPOCHS, "seed": SEED,
            "stack_folds": FOLDS}
    return LineClassifier(first, second, threshold, meta)


def page_fold(page_set: str, page_id: str, folds: int) -> int:
    """The cross-validation fold of a page (fixed: a hash of its set and id)."""
    return int(hashlib.md5(f"cv:{page_set}:{page_id}".encode()).hexdigest(), 16) % folds


def cross_validation_classifiers(eval_dir: Path, folds: int = 5) -> dict[tuple[str, str], LineClassifier]:
    """For every page of both sets, a classifier trained on the pages of the other folds."""
    pages = load_training_pages(eval_dir, SETS)
    out: dict[tuple[str, str], LineClassifier] = {}
    for fold in range(folds):
        print(f"cv: training fold {fold + 1}/{folds} ...", file=sys.stderr, flush=True)
        held_out = [p for p in pages if page_fold(p.set, p.id, folds) == fold]
        model = train_classifier([p for p in pages if page_fold(p.set, p.id, folds) != fold])
        for p in held_out:
            out[(p.set, p.id)] = model
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m training.clean", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    args = ap.parse_args(argv)
    pages = load_training_pages(args.eval_dir, args.sets)
    model = train_classifier(pages)
    args.out.write_text("")  # fail early on an unwritable path
    model.save(args.out)
    labelled = sum(int((p.labels >= 0).sum()) for p in pages)
    print(f"trained on {len(pages)} pages ({', '.join(args.sets)}), {labelled:,} labelled lines -> {args.out}")


if __name__ == "__main__":
    main()
