"""Features of the Indonesian/Malay discriminator (shared by training and inference).

Lower-cased letter tokens; each token gives a word feature ``w:token`` and the character 3- to
5-grams of `` token `` (with boundary spaces: prefixes and suffixes such as ``" ter"``, ``"kan "``,
``"iti "`` are the morphology that tells the two standards apart). Counts are damped with log1p and
the vector is L2-normalised, so long and short texts are on one scale. Two more features (not
normalised) carry word-frequency evidence from wordfreq's Indonesian and Malay lists.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

TOKEN_RE = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
MAX_TOKENS = 200          # enough evidence; keeps long pages cheap
MAX_TOKEN_CHARS = 24      # longer "words" are URLs, hashes or glued text: word feature only


def tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text.lower())[:MAX_TOKENS]


FLOOR = 1e-7   # frequency given to a word missing from one of the two lists


@lru_cache(maxsize=1)
def _frequency_lists() -> tuple[dict[str, float], dict[str, float]]:
    import wordfreq

    return wordfreq.get_frequency_dict("id", "small"), wordfreq.get_frequency_dict("ms", "small")


def lexical_features(words: list[str]) -> dict[str, float]:
    """Malay-vs-Indonesian word evidence from wordfreq's frequency lists (Wikipedia, subtitles,
    news, web; real Malay, unlike the lingua "Malay" file): the summed and mean log ratio
    log f_ms(w) - log f_id(w) over the words found in either list."""
    indonesian, malay = _frequency_lists()
    total = 0.0
    found = 0
    for word in words:
        f_id = indonesian.get(word, 0.0)
        f_ms = malay.get(word, 0.0)
        if f_id or f_ms:
            total += math.log(max(f_ms, FLOOR)) - math.log(max(f_id, FLOOR))
            found += 1
    if not found:
        return {}
    return {"lex:sum": total / 10.0, "lex:mean": total / found}


def token_keys(token: str) -> list[str]:
    """The feature keys one occurrence of ``token`` adds (word feature and character n-grams)."""
    keys = ["w:" + token]
    if len(token) <= MAX_TOKEN_CHARS:
        padded = f" {token} "
        n_chars = len(padded)
        for n in (3, 4, 5):
            keys.extend(padded[i:i + n] for i in range(n_chars - n + 1))
    return keys


def features(text: str) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for token, count in Counter(tokens(text)).items():
        counts["w:" + token] += count
        if len(token) > MAX_TOKEN_CHARS:
            continue
        padded = f" {token} "
        n_chars = len(padded)
        for n in (3, 4, 5):
            for i in range(n_chars - n + 1):
                counts[padded[i:i + n]] += count
    if not counts:
        return {}
    damped = {key: math.log1p(value) for key, value in counts.items()}
    norm = math.sqrt(sum(v * v for v in damped.values()))
    out = {key: v / norm for key, v in damped.items()}
    out.update(lexical_features(tokens(text)))
    return out
