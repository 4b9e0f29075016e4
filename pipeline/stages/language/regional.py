"""Regional languages of Indonesia: a small classifier that names them.

The generic detectors know Javanese and Sundanese (and fastText a little Minangkabau), and read the
other languages of Indonesia (Acehnese, Balinese, Banjarese, Buginese, Madurese, Toba Batak, Ngaju,
Minangkabau) as Indonesian, Malay, Javanese, Tagalog or English. ``RegionalModel``, trained here
(``training/language_regional.py``) on NusaX, lingua and Indonesian NER sentences, gives a calibrated
distribution over the classes ``idms`` (Indonesian or Malay: the discriminator splits them),
``other`` (any language outside the area) and the regional languages (``jv``, ``su``, else ISO
639-3 codes).

Two layers:

1. Naive Bayes over the discriminator's keys (``features.token_keys``: the word and the character 3-
   to 5-grams of `` token ``): per key, the class log-probabilities centred over the classes
   (``weights``; rare and uninformative keys pruned; int8 in the file). A text's scores are their sum
   over its keys divided by the square root of its key count, so per-token sums are cached and a text
   costs one dictionary look-up per word and one small matrix sum.
2. A multinomial logistic layer (``mix``, ``bias``) from those scores to class probabilities, fitted
   on out-of-fold scores: it calibrates the probabilities (Naive Bayes alone is over-confident) and
   sets the class priors.

Only numpy is needed at run time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from pipeline.stages.language.features import token_keys, tokens

MODEL_FILE = Path(__file__).resolve().parent / "models" / "regional.npz"
IDMS = "idms"
OTHER = "other"
TOKEN_CACHE_SIZE = 200_000


class RegionalModel:
    """P(class | text) over ``classes`` (``idms``, ``other`` and the regional languages)."""

    def __init__(self, classes: list[str], rows: dict[int, int], weights: np.ndarray,
                 mix: np.ndarray, bias: np.ndarray):
        self.classes = list(classes)
        self.index = {c: i for i, c in enumerate(self.classes)}
        self.rows = rows                     # feature key -> row of ``weights``
        self.mix = np.asarray(mix, dtype=np.float64)      # classes x classes
        self.bias = np.asarray(bias, dtype=np.float64)
        # the layer is linear, so it is folded into the per-key weights (``weights``: keys x classes):
        # logits = bias + sum_t (W(t) mix^T) / sqrt(K)
        self._mixed = (np.asarray(weights, dtype=np.float64) @ self.mix.T).astype(np.float32)
        self._bias = self.bias.tolist()
        self._prewarm_words = 0
        k = len(self.classes)
        self._cache_rows: dict[str, int] = {}
        # per token: its summed mixed weights and, in the last column, its number of keys
        self._cache = np.zeros((1024, k + 1), dtype=np.float64)

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> RegionalModel:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            keys = data["keys"].tobytes().decode("utf-8").split("\n")
            weights = data["weights"].astype(np.float32) * np.float32(meta["scale"])
            mix, bias = data["mix"], data["bias"]
        rows = {key: i for i, key in enumerate(keys)}
        return cls(meta["classes"], rows, weights, mix, bias)

    def prewarm(self, words_per_language: int) -> None:
        """Cache the per-token sums of the most frequent Indonesian and Malay words (wordfreq), as
        the discriminator does, so a fresh worker runs at its steady speed."""
        import wordfreq

        self._prewarm_words = words_per_language
        words = [w for language in ("id", "ms") for w in wordfreq.top_n_list(language, words_per_language)]
        for word in dict.fromkeys(words):
            if word not in self._cache_rows and len(self._cache_rows) < TOKEN_CACHE_SIZE // 2:
                self._row_of(word)

    def clear_cache(self) -> None:
        """Back to the state after loading (and ``prewarm``)."""
        self._cache_rows.clear()
        if self._prewarm_words:
            self.prewarm(self._prewarm_words)

    def _row_of(self, token: str) -> int:
        cache = self._cache_rows
        row = len(cache)
        if row >= len(self._cache):
            self._cache = np.concatenate([self._cache, np.zeros_like(self._cache)])
        keys = token_keys(token)
        get = self.rows.get
        found = [r for r in map(get, keys) if r is not None]
        self._cache[row, :-1] = self._mixed[found].sum(axis=0) if found else 0.0
        self._cache[row, -1] = len(keys)
        cache[token] = row
        return row

    def logits_of_tokens(self, words: list[str]) -> list[float]:
        """bias + mix @ (summed centred log-probabilities / sqrt(key count))."""
        if not words:
            return list(self._bias)
        cache = self._cache_rows
        if len(cache) + len(words) > TOKEN_CACHE_SIZE:
            cache.clear()
        rows = [cache.get(w) for w in words]
        if None in rows:
            rows = [r if r is not None else self._row_of(w) for r, w in zip(rows, words, strict=True)]
        summed = self._cache.take(rows, axis=0).sum(axis=0).tolist()
        norm = 1.0 / math.sqrt(max(summed.pop(), 1.0))
        return [b + v * norm for b, v in zip(self._bias, summed, strict=True)]

    def probabilities_of_tokens(self, words: list[str]) -> dict[str, float]:
        z = self.logits_of_tokens(words)
        top = max(z)
        exps = [math.exp(v - top) for v in z]
        total = sum(exps)
        return {c: e / total for c, e in zip(self.classes, exps, strict=True)}

    def probabilities(self, text: str) -> dict[str, float]:
        return self.probabilities_of_tokens(tokens(text))
