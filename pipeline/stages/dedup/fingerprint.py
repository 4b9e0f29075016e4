"""Fingerprints of a text: an exact hash of its normalised form and a MinHash signature with LSH bands.

Every worker computes the same fingerprint for the same text (fixed seeds, no per-process
randomness), which is what lets several dedup workers share one index.
"""

from __future__ import annotations

import re
import struct
import unicodedata
from dataclasses import dataclass

import xxhash

_WORD = re.compile(r"\w+", re.UNICODE)


def normalise(text: str) -> str:
    """Unicode NFKC, case folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True)
class Fingerprint:
    exact: str  # 128-bit xxh3 of the normalised text, hex
    words: int
    signature: tuple[int, ...]  # MinHash values (uint32), empty when the text is too short
    bands: tuple[str, ...]  # one key per LSH band: "<band index>:<hash of its rows>"

    def packed_signature(self) -> bytes:
        return struct.pack(f"<{len(self.signature)}I", *self.signature)


class Fingerprinter:
    def __init__(self, num_perm: int, bands: int, shingle_words: int, min_words: int, seed: int):
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        self.num_perm = num_perm
        self.bands = bands
        self.rows = num_perm // bands
        self.shingle_words = shingle_words
        self.min_words = min_words
        self.seed = seed

    def shingles(self, words: list[str]) -> list[str]:
        n = self.shingle_words
        if len(words) <= n:
            return [" ".join(words)]
        return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]

    def fingerprint(self, text: str) -> Fingerprint:
        from rensa import RMinHash

        norm = normalise(text)
        exact = xxhash.xxh3_128_hexdigest(norm.encode("utf-8"))
        words = _WORD.findall(norm)
        if len(words) < self.min_words:
            return Fingerprint(exact, len(words), (), ())
        minhash = RMinHash(num_perm=self.num_perm, seed=self.seed)
        minhash.update(self.shingles(words))
        signature = tuple(minhash.digest())
        bands = []
        for b in range(self.bands):
            rows = signature[b * self.rows:(b + 1) * self.rows]
            bands.append(f"{b}:{xxhash.xxh3_64_hexdigest(struct.pack(f'<{self.rows}I', *rows))}")
        return Fingerprint(exact, len(words), signature, tuple(bands))


def similarity(a: tuple[int, ...] | bytes, b: tuple[int, ...] | bytes) -> float:
    """MinHash estimate of the Jaccard similarity of two signatures."""
    if isinstance(a, bytes):
        a = struct.unpack(f"<{len(a) // 4}I", a)
    if isinstance(b, bytes):
        b = struct.unpack(f"<{len(b) // 4}I", b)
    if not a or len(a) != len(b):
        return 0.0
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)
