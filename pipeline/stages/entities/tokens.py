"""Tokens with character offsets, and sentences, as the NER model saw them in training."""

from __future__ import annotations

import re
from typing import NamedTuple

# Words keep inner hyphens, apostrophes, dots and ampersands ("Nagorno-Karabakh", "O'Neil", "AT&T");
# abbreviations keep their full stop, as the Universal Dependencies treebanks the models learnt from write
# them: letters with full stops ("U.S.", "D.C."), an initial before a capitalised word ("J. McDermott"),
# titles and company suffixes ("Mr.", "Inc."; not "St.": the multilingual model, which never saw German,
# then misses "St. Gallen", which it finds as "St" and a full stop); every other non-space character is a
# token of its own.
TOKEN = re.compile(r"(?:[^\W\d_]\.){2,}"
                   r"|[A-Z]\.(?=\s+[A-Z])"
                   r"|\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|Gen|Sen|Rep|Gov|Lt|Col|Capt|Sgt|Rev|Inc|Corp|Co|Ltd|Bros|Mt|Ft)\.(?!\w)"
                   r"|\w+(?:[-'’.&]\w+)*|[^\w\s]", re.UNICODE)
SENTENCE_END = {".", "!", "?"}
FULL_WIDTH_END = {"。", "！", "？"}  # end a sentence whatever follows
# scripts written without spaces (CJK ideographs, kana, Thai...): one token per character in ``tokenize_chars``
UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CHAR_TOKEN = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
                        r"|[^\W\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
                        r"|[^\w\s]", re.UNICODE)
MAX_SENTENCE_TOKENS = 120


class Token(NamedTuple):
    text: str
    start: int
    end: int


_new = tuple.__new__  # Token(...) without the keyword handling: tokens are made by the thousand per document


def tokenize(text: str) -> list[Token]:
    return [_new(Token, (m.group(), m.start(), m.end())) for m in TOKEN.finditer(text)]


def tokenize_chars(text: str) -> list[Token]:
    """Tokens for a character-level model: each CJK/Thai character alone, runs of other letters and digits
    as one token, every other non-space character alone."""
    return [_new(Token, (m.group(), m.start(), m.end())) for m in CHAR_TOKEN.finditer(text)]


def split_at_ends(text: str, tokens: list[Token], ends_after) -> list[list[Token]]:
    """Tokens cut into pieces: at every line break between two tokens, and after token ``i`` when
    ``ends_after(i, piece)`` says so (``piece``: the piece so far, token ``i`` last)."""
    out: list[list[Token]] = []
    current: list[Token] = []
    find = text.find
    for i, tok in enumerate(tokens):
        if current and find("\n", current[-1].end, tok.start) >= 0:
            out.append(current)
            current = []
        current.append(tok)
        if ends_after(i, current):
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def sentences(text: str, tokens: list[Token] | None = None) -> list[list[Token]]:
    """Tokens split into sentences: at line breaks, after . ! ? and every MAX_SENTENCE_TOKENS tokens."""
    tokens = tokenize(text) if tokens is None else tokens
    last = len(tokens) - 1

    def ends_after(i: int, current: list[Token]) -> bool:
        word = tokens[i].text
        if word in FULL_WIDTH_END or len(current) >= MAX_SENTENCE_TOKENS:
            return True
        if word in SENTENCE_END:
            nxt = tokens[i + 1].text[:1] if i < last else None
            return nxt is None or nxt.isupper() or not nxt.isalnum()
        return False

    return split_at_ends(text, tokens, ends_after)

