"""Word clusters learned from the NER training text, a CRF feature (``features.py``).

Each word seen ``min_count`` times is described by its positive PMI with the most frequent words
around it (two words either side), reduced by truncated SVD and clustered by k-means: words used
alike ("Selasa"/"Rabu", "Menteri"/"Gubernur", "di"/"ke") share a cluster id, so the CRF generalises
from one to the other. Learnt at training time (``training/entities.py --clusters N``, scikit-learn), stored in
the model's ``meta.json.gz``; deterministic (fixed seeds, one thread).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np


def learn(sentences: Iterable[list[str]], n_clusters: int = 256, min_count: int = 3, n_contexts: int = 3000,
          dim: int = 64, window: int = 2, seed: int = 0) -> dict[str, int]:
    from scipy.sparse import coo_matrix
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD

    sents = [[t.lower() for t in s] for s in sentences]
    counts = Counter(w for s in sents for w in s)
    words = sorted(w for w, c in counts.items() if c >= min_count)
    contexts = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n_contexts]]
    wi = {w: i for i, w in enumerate(words)}
    ci = {w: i for i, w in enumerate(contexts)}
    pairs: Counter = Counter()
    for s in sents:
        for i, w in enumerate(s):
            row = wi.get(w)
            if row is None:
                continue
            for k in range(max(0, i - window), min(len(s), i + window + 1)):
                col = ci.get(s[k])
                if k != i and col is not None:
                    # side-aware contexts: the word before and the word after are different evidence
                    pairs[row, col + (0 if k < i else len(contexts))] += 1
    rows, cols = zip(*pairs, strict=True)
    vals = np.array([pairs[p] for p in pairs], dtype=np.float64)
    m = coo_matrix((vals, (rows, cols)), shape=(len(words), 2 * len(contexts))).tocsr()
    total = m.sum()
    row_sum = np.asarray(m.sum(axis=1)).ravel()
    col_sum = np.asarray(m.sum(axis=0)).ravel()
    m = m.tocoo()
    pmi = np.log(m.data * total / (row_sum[m.row] * col_sum[m.col]))
    keep = pmi > 0
    ppmi = coo_matrix((pmi[keep], (m.row[keep], m.col[keep])), shape=m.shape).tocsr()
    vec = TruncatedSVD(n_components=dim, random_state=seed).fit_transform(ppmi)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True) + 1e-9
    labels = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(vec)
    return {w: int(c) for w, c in zip(words, labels, strict=True)}
