"""A CRFsuite linear-chain model's weights, read from its file, and Viterbi decoding in numpy.

CRFsuite scores a label sequence as the sum of the state weights of each token's attributes for its label
and of the transition weights between neighbouring labels, and tags a sentence with the best-scoring
sequence (Viterbi; ties go to the lowest label id). ``ChainWeights`` holds those weights as arrays, so a
tagger can add a token's attribute weights once per distinct token and decode every sentence of a
document in one pass (``viterbi``), without handing CRFsuite one attribute string at a time. The
decoding follows CRFsuite's arithmetic step for step (previous score plus transition, the maximum, then
the state score), so it gives CRFsuite's tags for the same state scores.

Model file layout (CRFsuite's ``crf1d`` model, little-endian): a 48-byte header (magic ``lCRF``, size,
type ``FOMC``, version, feature/label/attribute counts, then the offsets of the features, the label and
attribute dictionaries and their feature references); the features chunk ``FEAT`` (size, count, then
20 bytes per feature: type 0 = state (attribute id, label id) or 1 = transition (label id, label id),
and a float64 weight); the dictionaries are CQDB chunks whose backward array gives each id's string.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_FEATURE = np.dtype([("type", "<u4"), ("src", "<u4"), ("dst", "<u4"), ("weight", "<f8")])
STATE, TRANSITION = 0, 1


def cqdb_strings(buf: bytes, offset: int, expected: int) -> list[str]:
    """The strings of a CQDB chunk at ``offset``, in id order (its backward array: id -> record)."""
    if buf[offset:offset + 4] != b"CQDB":
        raise ValueError("not a CQDB chunk")
    bwd_size, bwd_offset = struct.unpack_from("<II", buf, offset + 16)
    strings = []
    for record in struct.unpack_from(f"<{bwd_size}I", buf, offset + bwd_offset):
        if record:  # record: id, key size (with the NUL), key
            size = struct.unpack_from("<I", buf, offset + record + 4)[0]
            start = offset + record + 8
            strings.append(buf[start:start + size - 1].decode("utf-8"))
    if len(strings) != expected:
        raise ValueError(f"{len(strings)} strings read, the header says {expected}")
    return strings


@dataclass(frozen=True, eq=False)
class ChainWeights:
    """``labels`` in id order; ``attributes``: attribute -> row of ``state`` (labels wide; the last row is all
    zeros, for padding); ``transitions[i, j]``: the weight of label j after label i. Compared and hashed by
    identity (one per model file)."""

    labels: tuple[str, ...]
    attributes: dict[str, int]
    state: np.ndarray
    transitions: np.ndarray

    @property
    def zero_row(self) -> int:
        return len(self.state) - 1

    def rows(self, attrs) -> list[int]:
        """The rows of the attributes the model knows, in order (str or UTF-8 bytes; None skipped)."""
        get = self.attributes.get
        out = []
        for a in attrs:
            if a is None:
                continue
            row = get(a.decode() if isinstance(a, bytes) else a)
            if row is not None:
                out.append(row)
        return out

    def score(self, attrs) -> np.ndarray:
        """The summed state weights of ``attrs`` (a repeated attribute counts each time, as in CRFsuite)."""
        rows = self.rows(attrs)
        if not rows:
            return np.zeros(len(self.labels))
        return self.state[rows].sum(axis=0)


def read_weights(path: Path) -> ChainWeights:
    """The weights of the CRFsuite model file at ``path`` (ValueError naming the file if it is not one, or
    is damaged)."""
    buf = Path(path).read_bytes()
    if buf[:4] != b"lCRF" or buf[8:12] != b"FOMC":
        raise ValueError(f"{path} is not a CRFsuite linear-chain model")
    try:
        num_labels, num_attrs, off_features, off_labels, off_attrs = struct.unpack_from("<IIIII", buf, 20)
        labels = tuple(cqdb_strings(buf, off_labels, num_labels))
        attributes = {a: i for i, a in enumerate(cqdb_strings(buf, off_attrs, num_attrs))}
        if buf[off_features:off_features + 4] != b"FEAT":
            raise ValueError("no features chunk")
        count = struct.unpack_from("<I", buf, off_features + 8)[0]
        feats = np.frombuffer(buf, dtype=_FEATURE, count=count, offset=off_features + 12)
        state = np.zeros((num_attrs + 1, num_labels))
        st = feats[feats["type"] == STATE]
        np.add.at(state, (st["src"].astype(np.int64), st["dst"].astype(np.int64)), st["weight"])
        transitions = np.zeros((num_labels, num_labels))
        tr = feats[feats["type"] == TRANSITION]
        np.add.at(transitions, (tr["src"].astype(np.int64), tr["dst"].astype(np.int64)), tr["weight"])
        if len(st) + len(tr) != count:
            raise ValueError("features of an unknown type")
    except (ValueError, struct.error, IndexError) as exc:  # a UnicodeDecodeError is a ValueError
        raise ValueError(f"{path}: damaged CRFsuite model ({exc})") from None
    return ChainWeights(labels, attributes, state, transitions)


def viterbi(scores: np.ndarray, lengths: list[int], transitions: np.ndarray) -> list[np.ndarray]:
    """The best label ids of each sentence. ``scores``: the state scores of every token, the sentences one
    after the other (``lengths``); all sentences are decoded together, longest first."""
    if not lengths:
        return []
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    order = sorted(range(len(lengths)), key=lambda s: -lengths[s])
    lens = np.array([lengths[s] for s in order], dtype=np.int64)
    first = starts[order]
    longest = int(lens[0])
    active = np.searchsorted(-lens, -np.arange(longest), side="left")  # at t: the sentences longer than t
    n_labels = transitions.shape[0]
    # the scores by sentence (longest first) and position, so that a step reads one slice
    padded = np.zeros((len(order), longest, n_labels))
    sentence_of = np.repeat(np.arange(len(order)), lens)
    within = np.arange(len(sentence_of)) - np.repeat(np.cumsum(lens) - lens, lens)
    padded[sentence_of, within] = scores[np.repeat(first, lens) + within]
    ending_at: dict[int, list[int]] = {}
    for s, n in enumerate(lens.tolist()):
        ending_at.setdefault(n - 1, []).append(s)
    best = padded[:, 0].copy()  # (sentences, labels): the best score of a path ending in each label
    final = np.empty_like(best)
    back = np.zeros((longest, len(order), n_labels), dtype=np.int64)
    if 0 in ending_at:
        final[ending_at[0]] = best[ending_at[0]]
    for t in range(1, longest):
        k = int(active[t])
        cand = best[:k, :, None] + transitions  # [s, i, j]: previous label i, this label j
        back[t, :k] = cand.argmax(axis=1)  # the first maximum, as CRFsuite's strict comparison keeps
        best = cand.max(axis=1) + padded[:k, t]  # the maximum itself: the value at the argmax
        if t in ending_at:
            final[ending_at[t]] = best[ending_at[t]]
    ends = lens - 1
    last = final.argmax(axis=1)
    paths = np.zeros((len(order), longest), dtype=np.int64)
    paths[:int(active[longest - 1]), longest - 1] = last[:int(active[longest - 1])]
    for t in range(longest - 2, -1, -1):
        k = int(active[t])
        paths[:k, t] = np.where(ends[:k] == t, last[:k], back[t + 1, np.arange(k), paths[:k, t + 1]])
    out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(lengths)
    for pos, s in enumerate(order):
        out[s] = paths[pos, :lens[pos]]
    return out
