"""Features of the Indonesian/Malay discriminator (shared by training and inference).

Lower-cased letter tokens; each token gives a word feature ``w:token`` and the character 3- to
5-grams of `` token `` (with boundary spaces: prefixes and suffixes such as ``" ter"``, ``"kan "``,
``"iti "`` are the morphology that tells the two standards apart). Counts are damped with log1p and
the vector is L2-normalised, so long and short texts are on one scale.
"""

from __future__ import annotations

import math
import re
from collections import Counter

TOKEN_RE = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
MAX_TOKENS = 200          # enough evidence; keeps long pages cheap
MAX_TOKEN_CHARS = 24      # longer "words" are URLs, hashes or glued text: word feature only


def tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text.lower())[:MAX_TOKENS]


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
    return {key: v / norm for key, v in damped.items()}
