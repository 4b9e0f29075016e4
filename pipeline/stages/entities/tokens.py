"""Tokens with character offsets, and sentences, as the NER model saw them in training."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words keep inner hyphens, apostrophes, dots and ampersands ("Nagorno-Karabakh", "U.S.", "O'Neil",
# "AT&T"); every other non-space character is a token of its own.
TOKEN = re.compile(r"\w+(?:[-'’.&]\w+)*|[^\w\s]", re.UNICODE)
SENTENCE_END = {".", "!", "?"}
FULL_WIDTH_END = {"。", "！", "？"}  # end a sentence whatever follows
# scripts written without spaces (CJK ideographs, kana, Thai...): one token per character in ``tokenize_chars``
UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CHAR_TOKEN = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
                        r"|[^\W\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
                        r"|[^\w\s]", re.UNICODE)
MAX_SENTENCE_TOKENS = 120


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def tokenize_chars(text: str) -> list[Token]:
    """Tokens for a character-level model: each CJK/Thai character alone, runs of other letters and digits
    as one token, every other non-space character alone."""
    return [Token(m.group(), m.start(), m.end()) for m in CHAR_TOKEN.finditer(text)]


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
        if tok.text in FULL_WIDTH_END or tok.text in SENTENCE_END and (nxt is None or nxt.text[:1].isupper() or not nxt.text[:1].isalnum()) \
                or len(current) >= MAX_SENTENCE_TOKENS:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out
