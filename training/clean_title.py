"""Train the rendered-text headline model (``pipeline/stages/clean/title_model.json``).

    .venv/bin/python -m training.clean_title            # CV, cross-set score, then write the model
    .venv/bin/python -m training.clean_title --no-write # the scores only

Data recipe (third-party sets in ``../shared/eval``, see its README): the trafilatura set's 990
pages, each as rendered text (``textmode/textmode-trafilatura.jsonl.gz``) and as HTML
(``extraction-trafilatura.jsonl.gz``). The set has no gold titles, so the labels are *silver*: the
headline the stage's own HTML path reads from the page's markup (``metadata.page_metadata``: 0.978
exact on the AEB pages' gold titles, bench/clean/README.md). A candidate line
(``text_page.title_candidates``) is the headline when it equals that title (case, spacing and
punctuation aside); pages where no candidate does are left out.

Model: logistic regression over the candidates' features (scikit-learn, L2; standardised
features). ``C`` and the threshold under which the rule picks the headline instead are chosen by
5-fold cross-validation grouped by page on the trafilatura pages (page accuracy: the chosen line is
the silver headline). The AEB pages' gold titles (bench/clean/metadata_gold.jsonl) never choose
anything: they give the cross-set score (``python -m bench.clean --metadata --mode text``). Deterministic
(the solver is; no sampling).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from pipeline.stages.clean import title_model
from pipeline.stages.clean.metadata import page_metadata, parse_html
from pipeline.stages.clean.text_page import TITLE_FEATURES, read_page, title_candidates
from training.clean import DEFAULT_EVAL_DIR, read_rows

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
THRESHOLDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def key(text: str | None) -> str:
    return re.sub(r"\W+", "", (text or "").casefold())


def silver_pages(eval_path: Path) -> list[dict]:
    """Pages of the trafilatura set with their rendered text and the headline of their HTML."""
    html = {row["id"]: row for row in read_rows(eval_path / "extraction-trafilatura.jsonl.gz")}
    pages = []
    for row in read_rows(eval_path / "textmode" / "textmode-trafilatura.jsonl.gz"):
        source = html.get(row["id"])
        if not source or not row.get("text"):
            continue
        tree = parse_html(source["html"])
        title = page_metadata(tree, row.get("url")).title if tree is not None else None
        if title:
            pages.append({"id": row["id"], "url": row.get("url"), "text": row["text"], "title": title})
    return pages


def examples(pages: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Candidate rows, labels and page numbers of the pages whose headline is a candidate."""
    rows, labels, groups, kept = [], [], [], []
    for page in pages:
        reading = read_page(page["text"])
        if reading is None:
            continue
        candidates, feats = title_candidates(reading.texts, reading.words, reading.boilerplate,
                                             reading.body_start, reading.probs, page.get("url"))
        want = key(page["title"])
        hits = [key(reading.texts[i]) == want for i in candidates]
        if not any(hits):
            continue
        rule = next((j for j, f in enumerate(feats) if f[TITLE_FEATURES.index("rule_best")] == 1.0), None)
        kept.append({"id": page["id"], "hits": hits, "rule": rule, "n": len(candidates)})
        rows.extend(feats)
        labels.extend(hits)
        groups.extend([len(kept) - 1] * len(candidates))
    return np.asarray(rows, dtype=np.float64), np.asarray(labels, dtype=bool), np.asarray(groups), kept


def fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit((x - mean) / scale, y)
    return mean, scale, model.coef_[0], float(model.intercept_[0])


def page_accuracy(probs: np.ndarray, groups: np.ndarray, pages: list[dict], page_ids, threshold: float) -> float:
    """Share of pages whose chosen line is the headline: the model's best candidate when it
    reaches ``threshold``, else the rule's."""
    right = 0
    for g in page_ids:
        mask = groups == g
        p = probs[mask]
        best = int(np.argmax(p))
        pick = best if p[best] >= threshold else pages[g]["rule"]
        right += bool(pick is not None and pages[g]["hits"][pick])
    return right / max(1, len(page_ids))


def cross_validate(x, y, groups, pages) -> tuple[float, float, dict]:
    from sklearn.model_selection import GroupKFold

    folds = list(GroupKFold(n_splits=5).split(x, y, groups))
    table = {}
    for c in C_GRID:
        probs = np.zeros(len(y))
        for train, test in folds:
            mean, scale, coef, intercept = fit(x[train], y[train], c)
            probs[test] = 1.0 / (1.0 + np.exp(-(((x[test] - mean) / scale) @ coef + intercept)))
        for t in THRESHOLDS:
            table[(c, t)] = page_accuracy(probs, groups, pages, range(len(pages)), t)
    (c, t), _ = max(table.items(), key=lambda kv: (kv[1], -kv[0][1], -abs(np.log(kv[0][0]))))
    return c, t, table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.clean_title", description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    ap.add_argument("--out", type=Path, default=title_model.MODEL_PATH)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    path = args.eval_dir
    pages = silver_pages(path)
    x, y, groups, kept = examples(pages)
    print(f"trafilatura set: {len(pages)} pages with an HTML headline, {len(kept)} with it among the "
          f"candidates; {len(y)} candidates, {int(y.sum())} headlines", flush=True)
    c, threshold, table = cross_validate(x, y, groups, kept)
    rule_acc = page_accuracy(np.full(len(y), -1.0), groups, kept, range(len(kept)), 0.0)
    print(f"5-fold CV by page, page accuracy (silver): rule {rule_acc:.3f}; model, best C={c:g} "
          f"threshold={threshold:g}: {table[(c, threshold)]:.3f}")
    for cc in C_GRID:
        print(f"  C={cc:<5g} " + " ".join(f"t{t:g}={table[(cc, t)]:.3f}" for t in THRESHOLDS))
    mean, scale, coef, intercept = fit(x, y, c)
    model = title_model.TitleModel(list(TITLE_FEATURES), mean.tolist(), scale.tolist(), coef.tolist(), intercept,
                                   threshold, {"C": c, "trained_on": "trafilatura set, silver headlines from HTML",
                                               "pages": len(kept), "candidates": int(len(y))})
    print("cross-set score (the AEB pages' gold titles): python -m bench.clean --metadata --mode text")
    for name, w in sorted(zip(TITLE_FEATURES, coef, strict=True), key=lambda kv: -abs(kv[1])):
        print(f"  {name:18s} {w:+.3f}")
    if not args.no_write:
        model.save(args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
