"""Which line of a rendered-text page is its headline: a logistic model over candidate lines.

The candidates and their features come from ``text_page.title_candidates`` (the lines before the
body and its first line: length, capitals, punctuation, dates, bylines, distance to the body, the
words they share with the article's first lines and with the URL, the line model's probability,
the rule's score, ...). The model scores each candidate; the best one is the headline when its
probability reaches the model's threshold, else the page has none the model trusts and the rule
decides. Trained by ``python -m training.clean_title`` (scikit-learn, training only); the stage
reads the weights with numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MODEL_PATH = Path(__file__).with_name("title_model.json")
FORMAT = "news-pipeline/title-model/1"


class TitleModel:
    def __init__(self, features: list[str], mean: list[float], scale: list[float], coef: list[float],
                 intercept: float, threshold: float, meta: dict | None = None):
        self.features = list(features)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self.threshold = float(threshold)
        self.meta = meta or {}

    def probabilities(self, rows: list[list[float]]) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        x = (np.asarray(rows, dtype=np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept)))

    def choose(self, candidates: list[int], rows: list[list[float]]) -> int | None:
        """The index of the headline among ``candidates`` (None: no candidate reaches the threshold)."""
        probs = self.probabilities(rows)
        if not len(probs):
            return None
        best = int(np.argmax(probs))
        return candidates[best] if probs[best] >= self.threshold else None

    def to_json(self) -> dict:
        return {"format": FORMAT, "features": self.features, "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(), "intercept": self.intercept,
                "threshold": self.threshold, "meta": self.meta}

    def save(self, path: Path = MODEL_PATH) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = MODEL_PATH, features: tuple[str, ...] | None = None) -> TitleModel:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a title model ({data.get('format')!r})")
        if features is not None and tuple(data["features"]) != tuple(features):
            raise ValueError(f"{path}: trained on other features than the stage computes; retrain it "
                             "(python -m training.clean_title)")
        return cls(data["features"], data["mean"], data["scale"], data["coef"], data["intercept"],
                   data["threshold"], data.get("meta"))
