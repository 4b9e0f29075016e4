"""Token features for the CRF tagger (``crf.py``): the word, its shape and affixes, its neighbours,
how the word is usually written, and what the gazetteer knows about the span it sits in."""

from __future__ import annotations

import re
import unicodedata

from pipeline.stages.entities.gazetteer import Gazetteer

MAX_GAZ_TOKENS = 5
TOKEN_CACHE_SIZE = 100_000  # distinct tokens whose own attributes are kept per extractor
_DIGIT = re.compile(r"\d")
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
                 word_freq: dict[str, int] | None = None, clusters: dict[str, int] | None = None,
                 extended: bool = False, names: dict[str, list[str]] | None = None):
        self.gaz = gaz
        # lower-case given names and family names of many countries (meta "names", from Faker's lists):
        # word -> "f" (given name), "l" (family name) or "fl"
        self.names: dict[str, str] = {}
        for kind, words in (names or {}).items():
            for w in words:
                self.names[w] = self.names.get(w, "") + kind[:1]
        # extended (models of feature version 2: English, multilingual): sentence-initial position of the first
        # word (after opening quotes and brackets) joined with its frequency ("The", "Die" at the start of a
        # sentence are frequent words, not names), all-caps, digits, the frequency of the neighbours
        self.extended = extended
        self._token_cache: dict[str, list[str]] = {}
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

    def _cached_attrs(self, tok: str, low: str) -> list[str]:
        """``token_attrs`` plus the extended features of the token alone, computed once per distinct token (a
        worker sees the same words over and over; bounded: cleared when full)."""
        cached = self._token_cache.get(tok)
        if cached is None:
            cached = self.token_attrs(tok, low)
            if self.extended:
                if tok.isupper() and len(tok) > 1:
                    cached.append("allcaps")
                if _DIGIT.search(tok):
                    cached.append("digit")
                if self.names and tok[:1].isupper():
                    kind = self.names.get(low)
                    if kind:
                        cached.append("nm=" + kind)
            if len(self._token_cache) >= TOKEN_CACHE_SIZE:
                self._token_cache.clear()
            self._token_cache[tok] = cached
        return list(cached)

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
        first = next((k for k, t in enumerate(tokens) if t[:1].isalnum()), 0) if self.extended else 0
        feats = []
        for i in range(n):
            low = lows[i]
            attrs = self._cached_attrs(tokens[i], low)
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
            if self.extended:
                self._extend(attrs, tokens, lows, i, first)
            feats.append(attrs)
        return feats

    def _extend(self, attrs: list[str], tokens: list[str], lows: list[str], i: int, first: int) -> None:
        tok = tokens[i]
        zf = self.word_freq.get(lows[i], 0)
        if i == first:
            attrs.append(f"first|zf={zf}")
            if tok[:1].isupper():
                attrs.append(f"first|czf={zf}")
                attrs.append("first|lc" if lows[i] in self.lowercase_words else "first|nolc")
        if i > first and tok[:1].isupper():
            attrs.append(f"mid|czf={zf}")
        if i:
            attrs.append(f"-1zf={self.word_freq.get(lows[i - 1], 0)}")
        if i < len(tokens) - 1:
            attrs.append(f"+1zf={self.word_freq.get(lows[i + 1], 0)}")
        if self.names:
            if i and tokens[i - 1][:1].isupper() and lows[i - 1] in self.names:
                attrs.append("-1nm=" + self.names[lows[i - 1]])
            if i < len(tokens) - 1 and tokens[i + 1][:1].isupper() and lows[i + 1] in self.names:
                attrs.append("+1nm=" + self.names[lows[i + 1]])


def _char_type(ch: str) -> str:
    if ch.isdigit():
        return "D"
    if ch.isalpha():
        return "L" if ch.isascii() or ch[:1].isupper() or ch[:1].islower() else "H"
    return "P"


class CharFeatureExtractor:
    """Attribute lists for a character-level model (Chinese: one token per character, ``tokens.tokenize_chars``):
    the character and its neighbours up to two either side, character bigrams and a trigram, the kind of
    character, the caseless gazetteer's longest name at each position (countries, big cities), and whether
    the character is a common family name (meta "surnames")."""

    def __init__(self, names: dict | None = None, surnames: list[str] | None = None):
        from pipeline.stages.entities import caseless

        self.gaz = caseless.load()
        self.lowercase_words: frozenset[str] = frozenset()
        self.surnames = frozenset(surnames or ())
        self.max_len = max(self.gaz.lengths, default=0)

    def _gaz_tags(self, toks: list[str]) -> list[str]:
        n = len(toks)
        tags = [""] * n
        i = 0
        while i < n:
            size = 0
            for k in range(min(n - i, self.max_len), 1, -1):
                entry = self.gaz.names.get("".join(toks[i:i + k]))
                if entry is not None:
                    size = k
                    tags[i] = f"B-{entry.label}"
                    for j in range(i + 1, i + k):
                        tags[j] = f"I-{entry.label}"
                    break
            i += size or 1
        return tags

    def sentence(self, tokens: list[str]) -> list[list[str]]:
        n = len(tokens)
        toks = [t.lower() for t in tokens]
        pad = ["^2", "^1", *toks, "$1", "$2"]
        kinds = [_char_type(t[:1]) for t in tokens]
        gaz = self._gaz_tags(tokens)
        feats = []
        for i in range(n):
            c = i + 2
            attrs = ["c=" + pad[c], "-1c=" + pad[c - 1], "+1c=" + pad[c + 1], "-2c=" + pad[c - 2], "+2c=" + pad[c + 2],
                     "-1c|c=" + pad[c - 1] + pad[c], "c|+1c=" + pad[c] + pad[c + 1],
                     "-1c|+1c=" + pad[c - 1] + pad[c + 1], "-2c|-1c=" + pad[c - 2] + pad[c - 1],
                     "+1c|+2c=" + pad[c + 1] + pad[c + 2], "-1c|c|+1c=" + pad[c - 1] + pad[c] + pad[c + 1],
                     "k=" + kinds[i], "kk=" + (kinds[i - 1] if i else "^") + kinds[i] + (kinds[i + 1] if i < n - 1 else "$")]
            if len(tokens[i]) > 1:
                attrs.append("sh=" + shape(tokens[i]))
            if gaz[i]:
                attrs.append("gz=" + gaz[i])
            if i and gaz[i - 1]:
                attrs.append("-1gz=" + gaz[i - 1])
            if i < n - 1 and gaz[i + 1]:
                attrs.append("+1gz=" + gaz[i + 1])
            if tokens[i] in self.surnames:
                attrs.append("sn")
                if i == 0 or kinds[i - 1] != "H":
                    attrs.append("sn|start")
            if i == 0:
                attrs.append("BOS")
            if i == n - 1:
                attrs.append("EOS")
            feats.append(attrs)
        return feats
