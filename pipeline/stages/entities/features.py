"""Token features for the CRF tagger (``crf.py``): the word, its shape and affixes, its neighbours,
how the word is usually written, and what the gazetteer knows about the span it sits in."""

from __future__ import annotations

import functools
import re
import unicodedata

import numpy as np

from pipeline.stages.entities.gazetteer import Gazetteer
from pipeline.stages.entities.linear_chain import ChainWeights

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
            if entry is None or entry.rules_only:
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
                 extended: bool = False, names: dict[str, list[str]] | None = None,
                 known: frozenset[str] | None = None):
        self.gaz = gaz
        # the attributes of the model this extractor feeds (``items``); None: all of them
        self.known = known
        self._full_pieces: dict[str, tuple] = {}
        self._known_pieces: dict[str, tuple] = {}
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
        # BOS, EOS, the cluster attributes before the first and after the last word (all, and the known ones)
        self._edges = self._edge_attrs(None)
        self._known_edges = self._edge_attrs(known)

    def _edge_attrs(self, known: frozenset[str] | None) -> tuple:
        def one(attr: str) -> str | bytes | None:
            if known is None:
                return attr
            return attr.encode() if attr in known else None

        return (one("BOS"), one("EOS"), tuple(one(before + "^") for _, before, _ in self._cluster_names),
                tuple(one(after + "$") for _, _, after in self._cluster_names))

    def _own_attrs(self, tok: str, low: str) -> list[str]:
        """``token_attrs`` plus the extended features of the token alone."""
        attrs = self.token_attrs(tok, low)
        if self.extended:
            if tok.isupper() and len(tok) > 1:
                attrs.append("allcaps")
            if _DIGIT.search(tok):
                attrs.append("digit")
            if self.names and tok[:1].isupper():
                kind = self.names.get(low)
                if kind:
                    attrs.append("nm=" + kind)
        return attrs

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
        """Every attribute of every token (what training writes)."""
        return self._sentence(tokens, None)

    def items(self, tokens: list[str]) -> list[list[str | bytes]]:
        """The attributes the model knows (``known``), in the order of ``sentence``: what the tagger
        needs (CRFsuite skips attributes missing from its model, so the tags are the same), built from
        per-token pieces cached across sentences and documents. The cached pieces are UTF-8 bytes (what
        CRFsuite reads; python-crfsuite takes str or bytes), the rest str."""
        return self._sentence(tokens, self.known)

    def _pieces(self, tok: str, known: frozenset[str] | None, keep_it: bool = True) -> tuple:
        """The strings token ``tok`` contributes to its own attributes and to those of its neighbours (only
        those in ``known`` unless it is None), computed once per distinct token (bounded: cleared when full;
        not kept when ``keep_it`` is false)."""
        cache = self._full_pieces if known is None else self._known_pieces
        low = tok.lower()
        shp = shape(tok)
        cap = tok[:1].isupper()

        def keep(*attrs: str) -> tuple:
            return attrs if known is None else tuple(a.encode() for a in attrs if a in known)

        def one(attr: str | None) -> str | bytes | None:
            if attr is None or known is None:
                return attr
            return attr.encode() if attr in known else None

        own = keep(*self._own_attrs(tok, low))
        cl = self.clusters.get(low, self._no_cluster) if self.clusters else ()
        names = self._cluster_names
        zf = self.word_freq.get(low, 0)
        kind = self.names.get(low) if self.names and cap else None
        first = (f"first|zf={zf}", f"first|czf={zf}", "first|lc" if low in self.lowercase_words else "first|nolc") \
            if cap else (f"first|zf={zf}",)
        pieces = (own, low, _fold(tok), cap, "C" if cap else ("p" if not tok[:1].isalnum() else "l"),
                  tuple(one(names[j][0] + c) for j, c in enumerate(cl)),  # 5: cluster here
                  tuple(one(names[j][1] + c) for j, c in enumerate(cl)),  # 6: as the previous word
                  tuple(one(names[j][2] + c) for j, c in enumerate(cl)),  # 7: as the next word
                  keep("-1w=" + low, "-1sh=" + shp), keep("-2w=" + low, "-2sh=" + shp),  # 8, 9
                  keep("+1w=" + low, "+1sh=" + shp), keep("+2w=" + low, "+2sh=" + shp),  # 10, 11
                  one(f"-1zf={zf}"), one(f"+1zf={zf}"),  # 12, 13
                  one("-1nm=" + kind) if kind else None, one("+1nm=" + kind) if kind else None,  # 14, 15
                  one(f"mid|czf={zf}") if cap else None, keep(*first),  # 16, 17
                  tok[:1].isalnum())  # 18
        if keep_it:
            if len(cache) >= TOKEN_CACHE_SIZE:
                cache.clear()
            cache[tok] = pieces
        return pieces

    def _sentence(self, tokens: list[str], known: frozenset[str] | None) -> list[list[str]]:
        n = len(tokens)
        cache = self._full_pieces if known is None else self._known_pieces
        get = cache.get
        ps = [get(t) or self._pieces(t, known) for t in tokens]
        lows = [p[1] for p in ps]
        gaz = gazetteer_tags(tokens, [p[2] for p in ps], self.gaz)
        caps = ["^", *[p[4] for p in ps], "$"]
        edges = self._edges if known is None else self._known_edges
        bos, eos, cl_first, cl_last = edges
        clusters = bool(self.clusters)
        extended = self.extended
        names = bool(self.names)
        first = next((k for k, p in enumerate(ps) if p[18]), 0) if extended else 0
        feats = []
        for i in range(n):
            p = ps[i]
            low = lows[i]
            attrs = list(p[0])
            if clusters:
                here = p[5]
                before = ps[i - 1][6] if i else cl_first
                after = ps[i + 1][7] if i < n - 1 else cl_last
                for j in range(len(here)):
                    for a in (here[j], before[j], after[j]):
                        if a is not None:
                            attrs.append(a)
            if i == 0:
                if bos is not None:
                    attrs.append(bos)
            else:
                attrs += ps[i - 1][8]
                a = "-1w|w=" + lows[i - 1] + "|" + low
                if known is None or a in known:
                    attrs.append(a)
                if gaz[i - 1]:
                    a = "-1gz=" + gaz[i - 1]
                    if known is None or a in known:
                        attrs.append(a)
                if i > 1:
                    attrs += ps[i - 2][9]
            if i == n - 1:
                if eos is not None:
                    attrs.append(eos)
            else:
                attrs += ps[i + 1][10]
                a = "w|+1w=" + low + "|" + lows[i + 1]
                if known is None or a in known:
                    attrs.append(a)
                if gaz[i + 1]:
                    a = "+1gz=" + gaz[i + 1]
                    if known is None or a in known:
                        attrs.append(a)
                if i < n - 2:
                    attrs += ps[i + 2][11]
            g = gaz[i]
            if g:
                for a in ("gz=" + g, "gzk=" + g[2:]):
                    if known is None or a in known:
                        attrs.append(a)
            a = "cp=" + caps[i] + caps[i + 1] + caps[i + 2]
            if known is None or a in known:
                attrs.append(a)
            if extended:
                # what ``_extend`` adds, from the cached pieces
                if i == first:
                    attrs += p[17]
                if i > first and p[3] and p[16] is not None:
                    attrs.append(p[16])
                if i and ps[i - 1][12] is not None:
                    attrs.append(ps[i - 1][12])
                if i < n - 1 and ps[i + 1][13] is not None:
                    attrs.append(ps[i + 1][13])
                if names:
                    if i and ps[i - 1][14] is not None:
                        attrs.append(ps[i - 1][14])
                    if i < n - 1 and ps[i + 1][15] is not None:
                        attrs.append(ps[i + 1][15])
            feats.append(attrs)
        return feats

    def sentence_reference(self, tokens: list[str]) -> list[list[str]]:
        """``sentence`` written out attribute by attribute (the definition; tests check ``sentence``
        against it)."""
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
            attrs = self._own_attrs(tokens[i], low)
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


@functools.lru_cache(maxsize=8)
def word_bigram_rows(weights: ChainWeights) -> dict[str, tuple[int, int]]:
    """A model's word bigrams, "low|low" -> (row as "-1w|w=" at the second word, row as "w|+1w=" at the
    first), read once per model (every language's scorer of the multilingual model shares them)."""
    zero = weights.zero_row
    rows: dict[str, list[int]] = {}
    for attr, row in weights.attributes.items():
        if attr.startswith("-1w|w="):
            rows.setdefault(attr[6:], [zero, zero])[0] = row
        elif attr.startswith("w|+1w="):
            rows.setdefault(attr[6:], [zero, zero])[1] = row
    return {k: (a, b) for k, (a, b) in rows.items()}


class ChainScorer:
    """The state scores a linear-chain model (``linear_chain.ChainWeights``) gives the tokens of sentences:
    for each token and label, the sum of the weights of the attributes ``FeatureExtractor.items`` lists for
    the token. A token has the same attributes wherever it stands, and gives its neighbours the same ones
    ("-1w=", its clusters as the previous word, ...): their weights are summed once per distinct token
    (seven vectors, ``_vectors``, bounded) and shifted into place for the whole document at once. Only the
    attributes of two or three tokens together (word bigrams, the gazetteer's tags around a token, the
    capitalisation of three tokens) are looked up position by position. ``tests/stages/
    test_entities_chain.py`` checks the tags against CRFsuite's."""

    CACHE_SIZE = 50_000  # distinct tokens whose vectors are kept (7 x labels float64: 392 bytes with 7 labels)
    CAPS = {"^": 0, "C": 1, "p": 2, "l": 3, "$": 4}

    def __init__(self, extractor: FeatureExtractor, weights: ChainWeights) -> None:
        self.extractor = extractor
        self.weights = weights
        self._index: dict[str, int] = {}
        self._facts: list[tuple] = []  # per token: lower case, folded, capitalisation class, starts alphanumeric
        self._vectors = np.zeros((1024, 7, len(weights.labels)))
        zero = weights.zero_row
        get = weights.attributes.get
        self._bigrams = word_bigram_rows(weights)
        # gazetteer tag -> rows of "gz=", "gzk=" (here), "+1gz=" (the token before), "-1gz=" (the token after)
        self._gaz: dict[str, tuple[int, int, int, int]] = {}
        # capitalisation classes of the token before, this one and the one after -> row of "cp=..."
        caps = sorted(self.CAPS, key=self.CAPS.get)
        self._cp = np.array([get("cp=" + a + b + c, zero) for a in caps for b in caps for c in caps], dtype=np.int64)
        self.clusters, self.extended = bool(extractor.clusters), extractor.extended
        bos, eos, cl_first, cl_last = extractor._edge_attrs(None)
        self._bos = weights.score([bos, *(cl_first if self.clusters else ())])
        self._eos = weights.score([eos, *(cl_last if self.clusters else ())])

    def _gaz_rows(self, tag: str) -> tuple[int, int, int, int]:
        rows = self._gaz.get(tag)
        if rows is None:
            get, zero = self.weights.attributes.get, self.weights.zero_row
            rows = self._gaz[tag] = (get("gz=" + tag, zero), get("gzk=" + tag[2:], zero),
                                     get("+1gz=" + tag, zero), get("-1gz=" + tag, zero))
        return rows

    def _add(self, tokens: list[str]) -> None:
        """Vectors for new tokens: their own attributes, as the word before, two before, after, two after, as
        the first word of a sentence, as a capitalised word after the first."""
        ext, weights = self.extractor, self.weights
        get, zero = weights.attributes.get, weights.zero_row
        clusters, extended = self.clusters, self.extended
        rows: list[int] = []
        for tok in tokens:
            p = ext._pieces(tok, None, keep_it=False)  # every attribute, as strings
            self._index[tok] = len(self._facts)
            self._facts.append((p[1], p[2], p[4], p[18]))
            for group in (p[0] + (p[5] if clusters else ()),
                          p[8] + (p[6] if clusters else ()) + ((p[12], p[14]) if extended else ()),
                          p[9],
                          p[10] + (p[7] if clusters else ()) + ((p[13], p[15]) if extended else ()),
                          p[11],
                          p[17] if extended else (),
                          (p[16],) if extended else ()):
                rows.append(zero)  # a group is never empty (reduceat); the zero row adds nothing
                rows += [row for row in map(get, group) if row is not None]  # None and unknown: no row
        # each group starts at its zero row, the only place the zero row is written
        bounds = np.flatnonzero(np.array(rows, dtype=np.int64) == zero)
        sums = np.add.reduceat(weights.state[rows], bounds, axis=0).reshape(len(tokens), 7, -1)
        first = len(self._facts) - len(tokens)
        while len(self._vectors) < len(self._facts):
            self._vectors = np.concatenate([self._vectors, np.zeros_like(self._vectors)])
        self._vectors[first:first + len(tokens)] = sums

    def scores(self, sents: list[list[str]]) -> np.ndarray:
        """(tokens of all sentences, labels): each token's state score for every label."""
        total = sum(len(s) for s in sents)
        index = self._index
        if len(index) + total > self.CACHE_SIZE:
            index.clear()
            self._facts.clear()
        new = {t for s in sents for t in s if t not in index}
        if new:
            self._add(list(new))
        ids = [index[t] for s in sents for t in s]
        idx = np.array(ids, dtype=np.int64)
        vecs = self._vectors[idx]  # (tokens, 7, labels)
        lengths = np.array([len(s) for s in sents], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        within = np.arange(total) - np.repeat(starts, lengths)
        left = np.repeat(lengths, lengths) - within - 1  # tokens after this one in its sentence
        out = vecs[:, 0].copy()
        out[1:] += vecs[:-1, 1] * (within[1:] >= 1)[:, None]
        out[2:] += vecs[:-2, 2] * (within[2:] >= 2)[:, None]
        out[:-1] += vecs[1:, 3] * (left[:-1] >= 1)[:, None]
        out[:-2] += vecs[2:, 4] * (left[:-2] >= 2)[:, None]
        out[within == 0] += self._bos
        out[left == 0] += self._eos
        facts = [self._facts[i] for i in ids]
        caps_of = self.CAPS
        code = np.array([caps_of[f[2]] for f in facts], dtype=np.int64)
        before = np.where(within == 0, 0, np.roll(code, 1))
        after = np.where(left == 0, 4, np.roll(code, -1))
        pos: list[int] = []
        rows: list[int] = []
        bigram, gaz_rows, gaz_of = self._bigrams.get, self._gaz_rows, self.extractor.gaz
        lows = [f[0] for f in facts]
        firsts: list[int] = []
        base = 0
        for s in sents:
            n = len(s)
            end = base + n
            for i in range(base, end - 1):
                pair = bigram(lows[i] + "|" + lows[i + 1])
                if pair is not None:
                    pos += (i + 1, i)
                    rows += pair
            for i, g in enumerate(gazetteer_tags(s, [f[1] for f in facts[base:end]], gaz_of)):
                if g:
                    here, kind, as_next, as_previous = gaz_rows(g)
                    pos += (base + i, base + i)
                    rows += (here, kind)
                    if i:
                        pos.append(base + i - 1)
                        rows.append(as_next)
                    if i < n - 1:
                        pos.append(base + i + 1)
                        rows.append(as_previous)
            if self.extended:
                firsts.append(next((k for k in range(base, end) if facts[k][3]), base))
            base = end
        pos.extend(range(total))
        rows.extend(self._cp[before * 25 + code * 5 + after].tolist())
        np.add.at(out, np.array(pos, dtype=np.int64), self.weights.state[np.array(rows, dtype=np.int64)])
        if self.extended:
            first = np.array(firsts, dtype=np.int64)
            out[first] += vecs[first, 5]
            out += vecs[:, 6] * (within > np.repeat(first - starts, lengths))[:, None]
        return out


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

    def __init__(self, names: dict | None = None, surnames: list[str] | None = None,
                 known: frozenset[str] | None = None, words: bool = False):
        from pipeline.stages.entities import caseless

        self.gaz = caseless.load()
        # words: the word each character belongs to, by rjieba (jieba's dictionary and HMM, in Rust): the
        # character's place in it, the word's part of speech (jieba's: nr person, ns place, nt organisation...),
        # and the word itself (meta "words": "rjieba")
        self.words = words
        if words:
            import rjieba

            self._tag_words = rjieba.tag
        self.lowercase_words: frozenset[str] = frozenset()
        self.surnames = frozenset(surnames or ())
        self.max_len = max(self.gaz.lengths, default=0)
        # the attributes of the model this extractor feeds (``items``); None: all of them
        self.known = known
        # pieces of ``items``, cached across sentences (bounded: cleared when full)
        self._tok_pieces: dict[str, tuple] = {}
        self._uni_pieces: dict[str, tuple] = {}
        self._bi_pieces: dict[str, tuple] = {}
        self._kk_pieces: dict[str, bytes | None] = {}
        self._word_pieces: dict[tuple, tuple] = {}
        self._known_consts = tuple(self._known(a) for a in ("BOS", "EOS", "sn", "sn|start")) if known is not None else ()

    def _gaz_tags(self, toks: list[str]) -> list[str]:
        n = len(toks)
        tags = [""] * n
        names = self.gaz.names
        starts = self.gaz.prefixes  # the first two characters of every name: most positions start none
        i = 0
        while i < n - 1:
            size = 0
            tok = toks[i]
            if (tok if len(tok) >= 2 else tok + toks[i + 1])[:2] in starts:
                for k in range(min(n - i, self.max_len), 1, -1):
                    entry = names.get("".join(toks[i:i + k]))
                    if entry is not None:
                        size = k
                        tags[i] = f"B-{entry.label}"
                        for j in range(i + 1, i + k):
                            tags[j] = f"I-{entry.label}"
                        break
            i += size or 1
        return tags

    def items(self, tokens: list[str]) -> list[list[str | bytes]]:
        """The attributes of ``sentence`` the model knows (``known``), in the same order (CRFsuite skips the
        others, so the tags are the same), from pieces cached per character and per character pair (UTF-8
        bytes, what CRFsuite reads; the rest str)."""
        known = self.known
        if known is None:
            return self.sentence(tokens)  # type: ignore[return-value]
        n = len(tokens)
        tok_cache, uni_cache, bi_cache = self._tok_pieces, self._uni_pieces, self._bi_pieces
        if len(tok_cache) >= TOKEN_CACHE_SIZE or len(uni_cache) >= TOKEN_CACHE_SIZE \
                or len(bi_cache) >= TOKEN_CACHE_SIZE:
            tok_cache.clear()
            uni_cache.clear()
            bi_cache.clear()
        ts = [tok_cache.get(t) or self._tok_piece(t) for t in tokens]
        pad = ["^2", "^1", *[t[0] for t in ts], "$1", "$2"]
        uni = [uni_cache.get(x) or self._uni_piece(x) for x in pad]
        bi = []
        for j in range(n + 3):
            pair = pad[j] + pad[j + 1]
            b = bi_cache.get(pair)
            bi.append(b or self._bi_piece(pair))
        kinds = [t[1] for t in ts]
        gaz = self._gaz_tags(tokens)
        words = self._known_words(tokens) if self.words else None
        kk_cache = self._kk_pieces
        bos, eos, sn, sn_start = self._known_consts
        feats = []
        for i in range(n):
            c = i + 2
            attrs = [a for a in (uni[c][0], uni[c - 1][1], uni[c + 1][2], uni[c - 2][3], uni[c + 2][4], bi[c - 1][0],
                                 bi[c][1]) if a is not None]
            a = "-1c|+1c=" + pad[c - 1] + pad[c + 1]
            if a in known:
                attrs.append(a)
            for a in (bi[c - 2][2], bi[c + 1][3]):
                if a is not None:
                    attrs.append(a)
            a = "-1c|c|+1c=" + pad[c - 1] + pad[c] + pad[c + 1]
            if a in known:
                attrs.append(a)
            t = ts[i]
            if t[2] is not None:  # k=
                attrs.append(t[2])
            kk = (kinds[i - 1] if i else "^") + kinds[i] + (kinds[i + 1] if i < n - 1 else "$")
            a = kk_cache.get(kk, 0)
            if a == 0:
                a = kk_cache[kk] = ("kk=" + kk).encode() if "kk=" + kk in known else None
            if a is not None:
                attrs.append(a)
            if t[3] is not None:  # sh=
                attrs.append(t[3])
            for a in (("gz=" + gaz[i]) if gaz[i] else None, ("-1gz=" + gaz[i - 1]) if i and gaz[i - 1] else None,
                      ("+1gz=" + gaz[i + 1]) if i < n - 1 and gaz[i + 1] else None):
                if a is not None and a in known:
                    attrs.append(a)
            if t[4]:  # a family name
                if sn is not None:
                    attrs.append(sn)
                if sn_start is not None and (i == 0 or kinds[i - 1] != "H"):
                    attrs.append(sn_start)
            if i == 0 and bos is not None:
                attrs.append(bos)
            if i == n - 1 and eos is not None:
                attrs.append(eos)
            if words is not None:
                attrs += words[i]
            feats.append(attrs)
        return feats

    def _known(self, attr: str) -> bytes | None:
        return attr.encode() if attr in self.known else None  # type: ignore[operator]

    def _word_keys(self, tokens: list[str]) -> list[tuple[str, str, str]]:
        """Per token, the word rjieba puts it in: (its place in it: B, M, E, or S when the word is this token;
        the word's part of speech; the word if of two to four characters, else "")."""
        text = "".join(tokens)
        tagged = self._tag_words(text)
        if not tagged:
            return [("S", "x", "")] * len(tokens)
        if len(text) == len(tokens):  # one character per token (Chinese text): the words' characters in turn
            out: list[tuple[str, str, str]] = []
            for word, tag in tagged:
                n = len(word)
                whole = word if 2 <= n <= 4 else ""
                if n == 1:
                    out.append(("S", tag, whole))
                else:
                    out.append(("B", tag, whole))
                    out += [("M", tag, whole)] * (n - 2)
                    out.append(("E", tag, whole))
            return out
        starts, ends, tags, words = [], [], [], []
        at = 0
        for word, tag in tagged:
            starts.append(at)
            at += len(word)
            ends.append(at)
            tags.append(tag)
            words.append(word if 2 <= len(word) <= 4 else "")
        out = []
        w, pos, last = 0, 0, len(ends) - 1
        for tok in tokens:
            while w < last and ends[w] <= pos:
                w += 1
            end = pos + len(tok)
            place = ("S" if ends[w] <= end else "B") if starts[w] >= pos else ("E" if ends[w] <= end else "M")
            out.append((place, tags[w], words[w]))
            pos = end
        return out

    @staticmethod
    def _word_attrs(key: tuple[str, str, str]) -> list[str]:
        place, tag, word = key
        attrs = ["wt|wp=" + tag + "|" + place]
        if word:
            attrs.append("ww=" + word)
        return attrs

    def _known_words(self, tokens: list[str]) -> list[tuple]:
        """Per token, the attributes of ``_word_attrs`` that the model knows, as bytes, from a cache by
        (place, part of speech, word)."""
        keys = self._word_keys(tokens)
        cache = self._word_pieces
        if len(cache) >= TOKEN_CACHE_SIZE:
            cache.clear()
        out = []
        for key in keys:
            found = cache.get(key)
            if found is None:
                found = cache[key] = self._keep(*self._word_attrs(key))
            out.append(found)
        return out

    def _keep(self, *attrs: str) -> tuple:
        return tuple(a.encode() for a in attrs if a in self.known)  # type: ignore[operator]

    def _tok_piece(self, tok: str) -> tuple:
        """(lower case, kind, k=, sh=, family name?) of a token."""
        kind = _char_type(tok[:1])
        piece = (tok.lower(), kind, self._known("k=" + kind), self._known("sh=" + shape(tok)) if len(tok) > 1 else None,
                 tok in self.surnames)
        self._tok_pieces[tok] = piece
        return piece

    def _uni_piece(self, x: str) -> tuple:
        """The character (or padding) as c=, -1c=, +1c=, -2c=, +2c=."""
        piece = tuple(self._known(prefix + x) for prefix in ("c=", "-1c=", "+1c=", "-2c=", "+2c="))
        self._uni_pieces[x] = piece
        return piece

    def _bi_piece(self, pair: str) -> tuple:
        """Two adjacent characters as -1c|c=, c|+1c=, -2c|-1c=, +1c|+2c=."""
        piece = tuple(self._known(prefix + pair) for prefix in ("-1c|c=", "c|+1c=", "-2c|-1c=", "+1c|+2c="))
        self._bi_pieces[pair] = piece
        return piece

    def sentence(self, tokens: list[str]) -> list[list[str]]:
        n = len(tokens)
        toks = [t.lower() for t in tokens]
        pad = ["^2", "^1", *toks, "$1", "$2"]
        kinds = [_char_type(t[:1]) for t in tokens]
        gaz = self._gaz_tags(tokens)
        words = self._word_keys(tokens) if self.words else None
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
            if words is not None:
                attrs += self._word_attrs(words[i])
            feats.append(attrs)
        return feats
