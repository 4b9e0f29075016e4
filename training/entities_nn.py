"""A small convolutional NER tagger run in numpy, ensembled with the CRF (``crf.py``).

The network (trained in torch by ``entities_nn_train.py``; torch is never imported here):

* per token: a word embedding (lower case, training vocabulary), a character CNN over the word as
  written (width 3, max-pooled), embeddings of its shape, of the gazetteer's match around it and of the
  CRF's word cluster (when the CRF has clusters), and a few indicator features (wordfreq bucket,
  usually-lower-case word, capitalised, all capitals, digits, first in sentence);
* three 1-D convolutions of width 3 over the sentence (dilations 1, 2, 1; ReLU, residual), i.e. every
  tag sees four tokens either side;
* per domain a linear layer to IOB2 scores: the base domain (idner-news-2k) uses the shared layer, the
  other training sets add their own on top ("frustratingly easy" domain adaptation, as the CRF does).

Weights live in ``nn.npz`` next to the CRF in the model directory, vocabularies in ``nn.json.gz``.
At tagging time the network's tag probabilities are averaged with the CRF's marginals and decoded
with Viterbi under IOB2 constraints (no I-X after anything but B-X/I-X).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from pipeline.stages.entities.features import FeatureExtractor, _fold, gazetteer_tags, shape

TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
TAG_INDEX = {t: i for i, t in enumerate(TAGS)}
MAX_CHARS = 20
N_DENSE = 15  # wordfreq bucket one-hot (10), lc, cap, all caps, digit, first token
DILATIONS = (1, 2, 1)
SEP = max(DILATIONS)  # zero rows between sentences when a document's sentences are run together
UNK, PAD = 1, 0


def dense_features(tokens: list[str], lows: list[str], extractor: FeatureExtractor) -> np.ndarray:
    out = np.zeros((len(tokens), N_DENSE), dtype=np.float32)
    if not tokens:
        return out
    rows = np.arange(len(tokens))
    freq, lower = extractor.word_freq, extractor.lowercase_words
    out[rows, [min(9, max(0, freq.get(low, 0))) for low in lows]] = 1.0
    out[:, 10] = [low in lower for low in lows]
    out[:, 11] = [tok[:1].isupper() for tok in tokens]
    out[:, 12] = [tok.isupper() and len(tok) > 1 for tok in tokens]
    out[:, 13] = [not tok.isalpha() and any(ch.isdigit() for ch in tok) for tok in tokens]
    out[0, 14] = 1.0
    return out


class Vocab:
    """Token -> ids of the network's inputs (shared by training and tagging)."""

    def __init__(self, vocab: dict):
        self.words = {w: i for i, w in enumerate(vocab["words"])}
        self.chars = {c: i for i, c in enumerate(vocab["chars"])}
        self.shapes = {s: i for i, s in enumerate(vocab["shapes"])}
        self.gaz = {g: i for i, g in enumerate(vocab["gaz"])}
        self.n_clusters = vocab.get("clusters", 0)  # 0: the network has no cluster input

    def char_ids(self, word: str) -> list[int]:
        chars = self.chars
        return [chars.get(c, UNK) for c in word[:MAX_CHARS]]

    def encode(self, tokens: list[str], extractor: FeatureExtractor) -> dict[str, np.ndarray]:
        lows = [t.lower() for t in tokens]
        gaz = gazetteer_tags(tokens, [_fold(t) for t in tokens], extractor.gaz)
        enc = {
            "words": np.array([self.words.get(w, UNK) for w in lows], dtype=np.int64),
            "shapes": np.array([self.shapes.get(shape(t), UNK) for t in tokens], dtype=np.int64),
            "gaz": np.array([self.gaz.get(g, UNK) if g else PAD for g in gaz], dtype=np.int64),
            "dense": dense_features(tokens, lows, extractor),
        }
        if self.n_clusters:  # the CRF's word clusters (first granularity): 0 pad, 1 no cluster, 2 + id
            known = extractor.clusters
            enc["clusters"] = np.array([int(known[w][0]) + 2 if w in known else UNK for w in lows], dtype=np.int64)
        return enc


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: int) -> np.ndarray:
    """'same' 1-D convolution of width 3 over rows of x (n, c_in); w is (3 * c_in, c_out)."""
    n = x.shape[0]
    pad = np.zeros((dilation, x.shape[1]), dtype=x.dtype)
    xp = np.concatenate([pad, x, pad])
    stacked = np.concatenate([xp[0:n], xp[dilation:dilation + n], xp[2 * dilation:2 * dilation + n]], axis=1)
    return stacked @ w + b


class ConvTagger:
    """Inference of the network in numpy; ``probs`` gives (n, len(TAGS)) tag probabilities per sentence."""

    def __init__(self, model_dir: Path, extractor: FeatureExtractor):
        with gzip.open(Path(model_dir) / "nn.json.gz", "rt", encoding="utf-8") as fh:
            self.meta = json.load(fh)
        self.vocab = Vocab(self.meta["vocab"])
        with np.load(Path(model_dir) / "nn.npz") as z:
            self.w = {k: z[k].astype(np.float32) for k in z.files}
        self.extractor = extractor
        self.domains = self.meta["domains"]
        self._word_cache: dict[str, np.ndarray] = {}

    def _char_vec(self, word: str) -> np.ndarray:
        vec = self._word_cache.get(word)
        if vec is not None:
            return vec
        ids = self.vocab.char_ids(word)
        ids = ids + [PAD] * max(0, 3 - len(ids))
        emb = self.w["char_emb"][ids]  # (L, ce)
        n = len(ids) - 2
        stacked = np.concatenate([emb[0:n], emb[1:n + 1], emb[2:n + 2]], axis=1)
        vec = np.maximum(stacked @ self.w["char_conv_w"] + self.w["char_conv_b"], 0.0).max(axis=0)
        if len(self._word_cache) < 100_000:
            self._word_cache[word] = vec
        return vec

    def token_inputs(self, tokens: list[str]) -> np.ndarray:
        enc = self.vocab.encode(tokens, self.extractor)
        w = self.w
        parts = [w["word_emb"][enc["words"]], np.stack([self._char_vec(t) for t in tokens]),
                 w["shape_emb"][enc["shapes"]], w["gaz_emb"][enc["gaz"]], enc["dense"]]
        if self.vocab.n_clusters:
            parts.append(w["cluster_emb"][enc["clusters"]])
        return np.concatenate(parts, axis=1)

    def logits_many(self, sentences: list[list[str]], domain: str) -> list[np.ndarray]:
        """Tag scores of several sentences at once (run together, SEP zero rows between them)."""
        parts, bounds, pos = [], [], 0
        for tokens in sentences:
            parts.append(self.token_inputs(tokens))
            parts.append(np.zeros((SEP, parts[-1].shape[1]), dtype=np.float32))
            bounds.append((pos, pos + len(tokens)))
            pos += len(tokens) + SEP
        x = np.concatenate(parts)
        mask = np.zeros((x.shape[0], 1), dtype=np.float32)
        for a, b in bounds:
            mask[a:b] = 1.0
        w = self.w
        h = (x @ w["proj_w"] + w["proj_b"]) * mask
        for k, d in enumerate(DILATIONS):
            h = h + np.maximum(_conv(h, w[f"conv{k}_w"], w[f"conv{k}_b"], d), 0.0) * mask
        scores = h @ w["out_w"] + w["out_b"]
        if domain != self.meta["base_domain"]:
            scores = scores + h @ w[f"out_{domain}_w"] + w[f"out_{domain}_b"]
        return [scores[a:b] for a, b in bounds]

    def probs_many(self, sentences: list[list[str]], domain: str) -> list[np.ndarray]:
        out = []
        for s in self.logits_many(sentences, domain):
            e = np.exp(s - s.max(axis=1, keepdims=True))
            out.append(e / e.sum(axis=1, keepdims=True))
        return out


def _allowed() -> np.ndarray:
    ok = np.ones((len(TAGS), len(TAGS)), dtype=bool)  # [prev, cur]
    for j, cur in enumerate(TAGS):
        if cur.startswith("I-"):
            for i, prev in enumerate(TAGS):
                ok[i, j] = prev[2:] == cur[2:]
    return ok


_ALLOWED = _allowed()
_TRANSITION = np.where(_ALLOWED, 0.0, -1e9)
_START = np.array([-1e9 if t.startswith("I-") else 0.0 for t in TAGS])


def viterbi(probs: np.ndarray) -> list[str]:
    """Best IOB2-valid tag sequence under per-token probabilities (n, len(TAGS))."""
    n = probs.shape[0]
    if n == 0:
        return []
    best_each = probs.argmax(axis=1)
    if not _ALLOWED[best_each[:-1], best_each[1:]].all() or _START[best_each[0]] < 0:
        return _viterbi(probs, n)
    return [TAGS[i] for i in best_each]  # the unconstrained best is valid: it is the answer


def _viterbi(probs: np.ndarray, n: int) -> list[str]:
    logp = np.log(probs + 1e-9)
    score = logp[0] + _START
    back = np.zeros((n, len(TAGS)), dtype=np.int64)
    for t in range(1, n):
        cand = score[:, None] + _TRANSITION
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0) + logp[t]
    best = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        best.append(int(back[t, best[-1]]))
    return [TAGS[i] for i in reversed(best)]


class EnsembleTagger:
    """The CRF and this network together (research; the shipped stage runs the CRF alone): per
    token, ``crf_weight`` times the CRF's marginal probabilities plus the rest times the network's,
    decoded with :func:`viterbi`. Built on a ``CrfTagger`` whose model folder has ``nn.npz``."""

    def __init__(self, crf_tagger):
        self.crf = crf_tagger
        self.nn = ConvTagger(crf_tagger.model_dir, crf_tagger.extractor)
        self.crf_weight = float(self.nn.meta.get("crf_weight", 0.5))
        self._labels = [TAG_INDEX[label] for label in crf_tagger.tagger.labels()]

    def crf_marginals(self, words: list[str]) -> np.ndarray:
        """(n, len(TAGS)) marginal probabilities of the CRF for one sentence."""
        tagger = self.crf.tagger
        tagger.set(self.crf._items(words))
        out = np.zeros((len(words), len(TAGS)))
        for label, j in zip(tagger.labels(), self._labels, strict=True):
            out[:, j] = [tagger.marginal(label, t) for t in range(len(words))]
        return out

    def tag_many(self, sents: list[list[str]]) -> list[list[str]]:
        """IOB2 tags for several tokenised sentences (the network runs over them at once)."""
        if self.crf_weight >= 1.0:
            return self.crf.tag_many(sents)
        nonempty = [w for w in sents if w]
        nn_probs = iter(self.nn.probs_many(nonempty, self.crf.domain) if nonempty else [])
        out = []
        for words in sents:
            if not words:
                out.append([])
                continue
            probs = (1.0 - self.crf_weight) * next(nn_probs)
            if self.crf_weight > 0:
                probs = probs + self.crf_weight * self.crf_marginals(words)
            out.append(viterbi(probs))
        return out

    def tag_tokens(self, words: list[str]) -> list[str]:
        return self.tag_many([words])[0]
