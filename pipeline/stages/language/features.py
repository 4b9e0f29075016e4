"""Features of the Indonesian/Malay discriminator (shared by training and inference).

Lower-cased letter tokens; each token gives a word feature ``w:token`` and the character 3- to
5-grams of `` token `` (with boundary spaces: prefixes and suffixes such as ``" ter"``, ``"kan "``,
``"iti "`` are the morphology that tells the two standards apart). The counts are divided by the
square root of the total count, so long and short texts are on one scale. Two more features (not
normalised) carry word-frequency evidence from wordfreq's Indonesian and Malay lists.

The features are *additive over tokens* on purpose: the model's margin for a text is
``bias + sum_t W(t) / sqrt(sum_t K(t)) + lexical``, where ``W(t)`` (the summed weights of token
``t``'s keys), ``K(t)`` (its number of keys) and its lexical log ratio depend on the token alone.
Inference caches them per token (``identifier.MalayDiscriminator``) and never builds a feature
vector: a sentence costs one dictionary look-up per word. (Damped log1p counts with an L2 norm
score the same in cross-validation, see bench/language/README.md, but cannot be cached this way.)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

TOKEN_RE = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
MAX_TOKENS = 200          # enough evidence for one segment; keeps long texts cheap
MAX_TOKEN_CHARS = 24      # longer "words" are URLs, hashes or glued text: word feature only
LEXICAL_SCALE = 10.0      # lex:sum is the summed log ratio / this


def tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text.lower())[:MAX_TOKENS]


FLOOR = 1e-7   # frequency given to a word missing from one of the two lists


@lru_cache(maxsize=1)
def _frequency_lists() -> tuple[dict[str, float], dict[str, float]]:
    import wordfreq

    return wordfreq.get_frequency_dict("id", "small"), wordfreq.get_frequency_dict("ms", "small")


def lexical_ratio(word: str) -> float | None:
    """log f_ms(word) - log f_id(word) from wordfreq's lists (Wikipedia, subtitles, news, web; real
    Malay, unlike the lingua "Malay" file); None when the word is in neither list."""
    indonesian, malay = _frequency_lists()
    f_id = indonesian.get(word, 0.0)
    f_ms = malay.get(word, 0.0)
    if not (f_id or f_ms):
        return None
    return math.log(max(f_ms, FLOOR)) - math.log(max(f_id, FLOOR))


def lexical_features(words: list[str]) -> dict[str, float]:
    """Malay-vs-Indonesian word evidence: the summed (scaled) and mean log ratio over the words
    found in either list."""
    total = 0.0
    found = 0
    for word in words:
        ratio = lexical_ratio(word)
        if ratio is not None:
            total += ratio
            found += 1
    if not found:
        return {}
    return {"lex:sum": total / LEXICAL_SCALE, "lex:mean": total / found}


def token_keys(token: str) -> list[str]:
    """The feature keys one occurrence of ``token`` adds (word feature and character n-grams)."""
    keys = ["w:" + token]
    if len(token) <= MAX_TOKEN_CHARS:
        padded = f" {token} "
        n_chars = len(padded)
        for n in (3, 4, 5):
            keys.extend(padded[i:i + n] for i in range(n_chars - n + 1))
    return keys


def features_of_tokens(words: list[str]) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for token in words:
        counts.update(token_keys(token))
    if not counts:
        return {}
    norm = math.sqrt(sum(counts.values()))
    out = {key: value / norm for key, value in counts.items()}
    out.update(lexical_features(words))
    return out


def features(text: str) -> dict[str, float]:
    return features_of_tokens(tokens(text))


#: a sentence ends at . ! or ? after a word of two or more letters (not an initial such as "A. Q."),
#: before white space and an upper-case letter, a digit or an opening quote/bracket
SENTENCE_END_RE = re.compile(r"(?<=[^\W\d_]{2}[.!?])\s+(?=[^\W\d_a-z]|[0-9\"“«(])")
MIN_SEGMENT_TOKENS = 3    # shorter lines/sentences (titles, menu items, captions) carry little evidence


def segments(text: str) -> list[tuple[str, list[str]]]:
    """(text, tokens) of each segment of ``text`` (a line, or a sentence of a line) that has at
    least ``MIN_SEGMENT_TOKENS`` tokens. The discriminator decides a page from the evidence of its
    segments (``identifier.DocumentModel``)."""
    out: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        for sentence in SENTENCE_END_RE.split(line):
            words = tokens(sentence)
            if len(words) >= MIN_SEGMENT_TOKENS:
                out.append((sentence, words))
    return out


def segment_tokens(text: str) -> list[list[str]]:
    """The tokens of each of ``segments(text)``."""
    return [words for _, words in segments(text)]
