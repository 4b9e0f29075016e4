"""Train the stories stage's join decision (``pipeline/stages/stories/join_model.json``).

    .venv/bin/python -m training.stories [--eval-dir ../shared/eval] [--out path.json]

Needs scikit-learn (``pip install -e '.[train]'``); the stage itself reads the weights in plain
Python. Deterministic: fixed arrival orders (seeds 1-5), lbfgs, no randomness in the fit.

Data recipe: the ECB+ dev articles (``stories-ecbplus-dev.jsonl.gz``, only id, title and text reach
the model) arrive one by one in 5 orders; the stream is *teacher-forced*: every article is
compared, exactly as at run time (same state, same retrieval of candidate stories, same features),
with the open candidate stories, one row of ``JOIN_FEATURES`` per candidate, labelled 1 when the
candidate is the article's gold story; then the article joins its gold story if it was among the
candidates, else it starts one. A logistic regression (standardised features, C = ``C``) is fitted
on all rows; the probability needed to join is the one of ``PROBABILITIES`` that gives the best
mean BCubed F1 over the 5 orders when the model itself decides on the same articles' stream.
The weights are stored unstandardised (the stage computes w . x + b on the raw features).

Honest score: ``cross_validate`` (``python -m training.stories --cv``) does all of this on the
topics of 4 folds out of 5 (GroupKFold over topics) and scores the stream of the held-out topics'
articles; the packaged model is trained on every topic, so its score on the dev set is a training
score.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import orjson

from pipeline.stages.stories.model import (
    JOIN_FEATURES,
    JOIN_MODEL_FILE,
    Features,
    JoinModel,
    StoryAssigner,
    StoryOptions,
)
from pipeline.stages.stories.state import MemoryStoryState
from training.stories_data import SEEDS, Doc, arrival_order, bcubed, load_docs

C = 1.0
PROBABILITIES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
#: the options the join model is trained and run with (everything else: StoryOptions' defaults)
TRAIN_OPTIONS = {"idf_prior": 10.0, "entity_tokens": False}  # the shipped model: whole entity names


def default_eval_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "shared" / "eval"


class _Teacher(StoryAssigner):
    """Decides with the gold stories and records every candidate's features and label."""

    def __init__(self, options: StoryOptions, gold: dict[str, str]):
        super().__init__(dataclasses.replace(options, join_model=""), MemoryStoryState())
        self.gold = gold
        self.rows: list[list[float]] = []
        self.labels: list[int] = []

    def decide(self, article, features, df, docs, scored):
        rows = self.join_features(features, df, docs, scored)
        mine = self.gold[article.id]
        chosen = None
        for (story, sim), x in zip(scored, rows, strict=True):
            same = self.gold[story.id] == mine
            self.rows.append(x)
            self.labels.append(int(same))
            if same and chosen is None:
                chosen = (story, sim)
        if chosen is not None:
            return chosen
        return None, max((sim for _, sim in scored), default=None)


class _Learned(StoryAssigner):
    """Decides with a join model held in memory (not read from a file)."""

    def __init__(self, options: StoryOptions, model: JoinModel):
        super().__init__(options, MemoryStoryState())
        self._model = model

    @property
    def join_model(self) -> JoinModel:
        return self._model


def options_for_training() -> StoryOptions:
    return dataclasses.replace(StoryOptions(), **TRAIN_OPTIONS)


def features_of(docs: list[Doc], options: StoryOptions) -> list[Features]:
    assigner = StoryAssigner(options, MemoryStoryState())
    return [assigner.features(d.article) for d in docs]


def collect(docs: list[Doc], feats: list[Features], options: StoryOptions, seeds=SEEDS):
    """Rows and labels of the teacher-forced streams of ``docs``, one per order."""
    gold = {d.article.id: d.story for d in docs}
    rows, labels = [], []
    for seed in seeds:
        teacher = _Teacher(options, gold)
        for i in arrival_order(len(docs), seed):
            teacher.assign(docs[i].article, feats[i])
        rows += teacher.rows
        labels += teacher.labels
    return rows, labels


def fit(rows: list[list[float]], labels: list[int]) -> tuple[tuple[float, ...], float]:
    """Logistic regression on standardised features; the weights and bias for the raw features."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(rows, dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=C, solver="lbfgs", max_iter=2000)
    model.fit((x - mean) / scale, np.asarray(labels))
    w = model.coef_[0] / scale
    b = float(model.intercept_[0] - (w * mean).sum())
    return tuple(float(v) for v in w), b


def run_stream(docs: list[Doc], feats: list[Features], options: StoryOptions, model: JoinModel, seed: int
               ) -> dict[str, str]:
    assigner = _Learned(options, model)
    return {docs[i].article.id: assigner.assign(docs[i].article, feats[i])["id"]
            for i in arrival_order(len(docs), seed)}


def mean_score(docs, feats, options, model, seeds=SEEDS) -> tuple[float, float, float]:
    gold = {d.article.id: d.story for d in docs}
    scores = [bcubed(run_stream(docs, feats, options, model, seed), gold) for seed in seeds]
    return tuple(statistics.mean(s[k] for s in scores) for k in range(3))  # type: ignore[return-value]


def train(docs: list[Doc], feats: list[Features], options: StoryOptions, log=print) -> JoinModel:
    """The join model of ``docs``: fitted on their teacher-forced streams, the probability chosen on
    their own streams."""
    rows, labels = collect(docs, feats, options)
    weights, bias = fit(rows, labels)
    best = None
    for p in PROBABILITIES:
        model = JoinModel(weights, bias, p)
        score = mean_score(docs, feats, options, model)
        log(f"    probability {p}: P {score[0]:.4f} R {score[1]:.4f} F1 {score[2]:.4f}")
        if best is None or score[2] > best[0][2]:
            best = (score, model)
    log(f"  {len(rows)} rows ({sum(labels)} joins); probability {best[1].probability}, train F1 {best[0][2]:.4f}")
    return best[1]


def cross_validate(docs: list[Doc], options: StoryOptions, folds: int = 5, log=print):
    """GroupKFold over topics: train on the other topics, score the held-out topics' stream (mean of
    the 5 orders). Returns the per-fold (P, R, F1) and their mean."""
    from sklearn.model_selection import GroupKFold

    feats = features_of(docs, options)
    held = []
    for k, (tr, te) in enumerate(GroupKFold(n_splits=folds).split(docs, groups=[d.topic for d in docs])):
        train_docs, test_docs = [docs[j] for j in tr], [docs[j] for j in te]
        model = train(train_docs, [feats[j] for j in tr], options, log=lambda *_: None)
        score = mean_score(test_docs, [feats[j] for j in te], options, model)
        held.append(score)
        log(f"  fold {k + 1}: topics {sorted({d.topic for d in test_docs})}; probability {model.probability}; "
            f"held-out P {score[0]:.4f} R {score[1]:.4f} F1 {score[2]:.4f}")
    mean = tuple(statistics.mean(s[k] for s in held) for k in range(3))
    log(f"CV mean over {folds} folds (held-out topics' streams, {len(SEEDS)} orders): "
        f"P {mean[0]:.4f} R {mean[1]:.4f} F1 {mean[2]:.4f}")
    return held, mean


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.stories", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=default_eval_dir())
    parser.add_argument("--out", type=Path, default=JOIN_MODEL_FILE)
    parser.add_argument("--cv", action="store_true", help="print the cross-validated score first")
    args = parser.parse_args(argv)
    docs = load_docs(args.eval_dir)
    options = options_for_training()
    if args.cv:
        cross_validate(docs, options)
    model = train(docs, features_of(docs, options), options)
    args.out.write_bytes(orjson.dumps({
        "features": list(JOIN_FEATURES), "weights": [round(w, 6) for w in model.weights],
        "bias": round(model.bias, 6), "probability": model.probability,
        "trained_on": f"{len(docs)} ECB+ dev articles, {len(SEEDS)} teacher-forced orders",
        "options": TRAIN_OPTIONS, "C": C}, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
