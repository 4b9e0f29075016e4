"""Token features for the CRF tagger (``crf.py``): the word, its shape and affixes, its neighbours,
how the word is usually written, and what the gazetteer knows about the span it sits in."""

from __future__ import annotations

import unicodedata

from pipeline.stages.entities.gazetteer import Gazetteer

MAX_GAZ_TOKENS = 5
_SHAPE_MAP: dict[str, str] = {}  # word -> shape, bounded (a worker runs for days)


def _char_class(ch: str) -> str:
    if ch.isupper():
        return "X"
    if ch.islower():
        return "x"
    if ch.isdigit():
        return "d"
    return ch


def shape(word: str) -> str:
    """Compressed shape: "Jakarta" -> "Xx", "PBB" -> "X", "29/10" -> "d/d", "al-Douri" -> "x-Xx"."""
    cached = _SHAPE_MAP.get(word)
    if cached is not None:
        return cached
    out = []
    for ch in word:
        c = _char_class(ch)
        if not out or out[-1] != c:
            out.append(c)
    result = "".join(out)
    if len(_SHAPE_MAP) < 200_000:
        _SHAPE_MAP[word] = result
    return result


def _fold(word: str) -> str:
    if word.isascii():
        return word.lower()
    text = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower().replace("’", "'")


def gazetteer_tags(tokens: list[str], folded: list[str], gaz: Gazetteer) -> list[str]:
    """Per token "B-<kind>"/"I-<kind>" of the longest gazetteer match starting on a capitalised word."""
    n = len(tokens)
    tags = [""] * n
    names = gaz.names
    i = 0
    while i < n:
        tok = tokens[i]
        if not tok[:1].isupper():
            i += 1
            continue
        longest = gaz.first_words.get(folded[i].replace("-", " ").split(" ")[0], 0)
        matched = 0
        for size in range(min(MAX_GAZ_TOKENS, longest, n - i), 0, -1):
            key = " ".join(folded[i:i + size]).replace("-", " ").replace(" ' ", "'")
            entry = names.get(key)
            if entry is None:
                continue
            if len(key) <= 3 and not tok.isupper():
                continue
            kind = f"{entry.label}.{entry.kind or 'other'}"
            tags[i] = "B-" + kind
            for k in range(i + 1, i + size):
                tags[k] = "I-" + kind
            matched = size
            break
        i += matched or 1
    return tags


class FeatureExtractor:
    """Turns a tokenised sentence into CRFsuite attribute lists."""

    def __init__(self, gaz: Gazetteer, lowercase_words: frozenset[str] = frozenset(),
                 word_freq: dict[str, int] | None = None, clusters: dict[str, int] | None = None):
        self.gaz = gaz
        # lower-case word -> cluster id(s) learnt from the training text (``training/entities_clusters.py``), one per
        # granularity (an int for one); empty: no cluster features
        self.clusters = {w: tuple(str(x) for x in (c if isinstance(c, list) else [c]))
                         for w, c in (clusters or {}).items()}
        self._no_cluster = ("u",) * len(next(iter(self.clusters.values()), ()))
        # attribute names per granularity: the word's cluster, the previous and the next word's (the first
        # granularity keeps the plain names)
        self._cluster_names = [(f"cl{g}=", f"-1cl{g}=", f"+1cl{g}=")
                               for g in ["", *map(str, range(1, len(self._no_cluster)))]]
        # lower-case word -> Zipf frequency bucket in general Indonesian text (0: unknown)
        self.word_freq = word_freq or {}
        # words written in lower case most of the time inside sentences ("Dalam" is usually "dalam")
        self.lowercase_words = lowercase_words

    def token_attrs(self, tok: str, low: str) -> list[str]:
        shp = shape(tok)
        attrs = ["w=" + low, "sh=" + shp, "p2=" + low[:2], "p3=" + low[:3], "s2=" + low[-2:], "s3=" + low[-3:],
                 "s4=" + low[-4:]]
        if low in self.lowercase_words:
            attrs.append("lc")
        zf = self.word_freq.get(low, 0)
        attrs.append(f"zf={zf}")
        if tok[:1].isupper():
            attrs.append("cap")
            attrs.append(f"czf={zf}")
        if len(tok) == 1:
            attrs.append("len1")
        return attrs

    def sentence(self, tokens: list[str]) -> list[list[str]]:
        n = len(tokens)
        lows = [t.lower() for t in tokens]
        folded = [_fold(t) for t in tokens]
        shapes = [shape(t) for t in tokens]
        gaz = gazetteer_tags(tokens, folded, self.gaz)
        caps = ["C" if t[:1].isupper() else ("p" if not t[:1].isalnum() else "l") for t in tokens]
        caps = ["^", *caps, "$"]
        cl = [self.clusters.get(w, self._no_cluster) for w in lows] if self.clusters else None
        feats = []
        for i in range(n):
            low = lows[i]
            attrs = self.token_attrs(tokens[i], low)
            if cl is not None:
                for j, (here, before, after) in enumerate(self._cluster_names):
                    attrs.append(here + cl[i][j])
                    attrs.append(before + (cl[i - 1][j] if i else "^"))
                    attrs.append(after + (cl[i + 1][j] if i < n - 1 else "$"))
            if i == 0:
                attrs.append("BOS")
            else:
                attrs += ["-1w=" + lows[i - 1], "-1sh=" + shapes[i - 1], "-1w|w=" + lows[i - 1] + "|" + low]
                if gaz[i - 1]:
                    attrs.append("-1gz=" + gaz[i - 1])
                if i > 1:
                    attrs += ["-2w=" + lows[i - 2], "-2sh=" + shapes[i - 2]]
            if i == n - 1:
                attrs.append("EOS")
            else:
                attrs += ["+1w=" + lows[i + 1], "+1sh=" + shapes[i + 1], "w|+1w=" + low + "|" + lows[i + 1]]
                if gaz[i + 1]:
                    attrs.append("+1gz=" + gaz[i + 1])
                if i < n - 2:
                    attrs += ["+2w=" + lows[i + 2], "+2sh=" + shapes[i + 2]]
            if gaz[i]:
                attrs += ["gz=" + gaz[i], "gzk=" + gaz[i][2:]]
            attrs.append("cp=" + caps[i] + caps[i + 1] + caps[i + 2])
            feats.append(attrs)
        return feats
