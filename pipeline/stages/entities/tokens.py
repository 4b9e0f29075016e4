"""Tokens with character offsets, and sentences, as the NER model saw them in training."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words keep inner hyphens, apostrophes, dots and ampersands ("Nagorno-Karabakh", "U.S.", "O'Neil",
# "AT&T"); every other non-space character is a token of its own.
TOKEN = re.compile(r"\w+(?:[-'’.&]\w+)*|[^\w\s]", re.UNICODE)
SENTENCE_END = {".", "!", "?"}
MAX_SENTENCE_TOKENS = 120


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def sentences(text: str, tokens: list[Token] | None = None) -> list[list[Token]]:
    """Tokens split into sentences: at line breaks, after . ! ? and every MAX_SENTENCE_TOKENS tokens."""
    tokens = tokenize(text) if tokens is None else tokens
    out: list[list[Token]] = []
    current: list[Token] = []
    for i, tok in enumerate(tokens):
        if current and "\n" in text[current[-1].end:tok.start]:
            out.append(current)
            current = []
        current.append(tok)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok.text in SENTENCE_END and (nxt is None or nxt.text[:1].isupper() or not nxt.text[:1].isalnum()) \
                or len(current) >= MAX_SENTENCE_TOKENS:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out
