"""Language codes: what the detectors say, mapped to ISO 639-1 where one exists, else ISO 639-3.

CLD2 still uses withdrawn codes (``jw`` for Javanese, ``iw`` for Hebrew, ``in`` for Indonesian) and
script-only pseudo languages (``xx-Latn``); fastText and py3langid use 639-1 where it exists and
639-3 otherwise, which is already the convention of the record.
"""

from __future__ import annotations

from functools import lru_cache

UNDETERMINED = "und"

_RENAMES = {
    "jw": "jv",        # CLD2's Javanese
    "iw": "he",
    "in": "id",
    "ji": "yi",
    "zh-Hant": "zh",
    "sr-ME": "sr",
    "sh": "sr",        # fastText's Serbo-Croatian: written Serbian far more often than Croatian/Bosnian
    "zsm": "ms",       # Standard Malay (639-3) is Malay
    "ind": "id",
    "fil": "tl",       # CLD3's Filipino
    "zxx": UNDETERMINED,  # py3langid: "no linguistic content"
}

#: Indonesian and Malay: one language group the generic detectors barely tell apart.
MALAY_GROUP = ("id", "ms")


@lru_cache(maxsize=4096)
def normalise_code(code: str) -> str:
    """The record's code for a detector's label; ``und`` for labels that are not a language."""
    if code in ("un", "xxx", "") or code.startswith(("xx-", "zz")):
        return UNDETERMINED
    if code.endswith("-Latn"):   # CLD3's romanised Greek, Hindi, Japanese, Russian, Chinese
        code = code[:-5]
    return _RENAMES.get(code, code)
