"""The duplicate index: what the pipeline has seen, shared by all dedup workers.

Both backends follow the same steps for each record, in order, and so give the same verdicts:

1. Exact: look up the record's exact hash. If it names a live record with the same id, this is a
   redelivery: return that record's stored verdict. If it names another live record, the verdict
   is ``exact_duplicate`` of it (exact duplicates are not indexed further).
2. Near: otherwise the record gets the next sequence number; each LSH band key names at most one
   earlier record (the first with that band value); among the live ones, the one whose signature
   agrees most (ties: the earliest) makes the record a ``near_duplicate`` when the agreement
   reaches the threshold.
3. The record is stored: a fixed-size slot (id, fetch day, verdict, signature), its exact hash,
   and every band key not yet taken by a live record.

A record is live while its fetch day is within ``horizon_days`` of the newest fetch day seen
(0 = forever). ``RedisIndex`` runs the steps for a whole batch inside one Lua script, atomically:
concurrent workers can never both be first, and a restarted worker answers at once.

Redis layout under the key prefix ``ns``; everything is packed binary, because per-key and
per-entry overheads would otherwise outweigh the data (about 300 bytes per indexed record):

- ``ns:meta``: sequence counter, newest day, oldest live chunk, sweep cursor; the index's epoch
  (a random id set when the index is new) and, after a reset, when it was noticed
- ``ns:r:<chunk>``: a string of ``2**14`` fixed-size slots, one per sequence number
- ``ns:i:<chunk>``: record ids that are not 32 hex characters (stored verbatim)
- ``ns:cd``: the newest fetch day in each chunk (a chunk past the horizon is deleted whole)
- ``ns:e:<bucket>``: a string of 12-byte entries, 8 bytes of exact hash + 4-byte sequence number
- ``ns:b:<bucket>``: a string of 8-byte entries, 4 bytes of band key + 4-byte sequence number

Buckets are sized for ``capacity`` records (about 96 entries each); more records only make them
longer to scan, there is no cliff.

An index knows when it lost its memory (Redis restarted without its data, or flushed): each
worker remembers the epoch it saw, and finds another (or none) at its next batch. From then on,
for ``horizon_days``, a record that is not found in the index is ``index_reset``, not ``unique``:
the records it might duplicate are gone. A duplicate found is still reported as one.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.records import TemporaryFailure, id_key
from pipeline.stages.dedup.fingerprint import Fingerprint, estimate_jaccard, matches, min_matches

UNIQUE = "unique"
EXACT = "exact_duplicate"
NEAR = "near_duplicate"
INDEX_RESET = "index_reset"  # not found, in an index that lost what it held within the horizon
_STATUS = {1: UNIQUE, 2: EXACT, 3: NEAR}
_CODE = {v: k for k, v in _STATUS.items()}

CHUNK_BITS = 14
SLOT_HEADER = 25  # id key 16, day 2, flags 1, duplicate-of sequence 4, matches 2; then the signature
BUCKET_FILL = 96  # entries per bucket string at capacity
EXACT_FIELD = 8  # bytes of the exact hash kept after the bucket is chosen
BAND_FIELD = 4  # bytes of a band key kept after the bucket is chosen


@dataclass(frozen=True)
class IndexParams:
    num_perm: int
    threshold: float
    horizon_days: int
    capacity: int
    bands: int

    @property
    def min_matches(self) -> int:
        return min_matches(self.threshold, self.num_perm)

    @property
    def signature_bytes(self) -> int:
        return self.num_perm // 4

    @property
    def slot_size(self) -> int:
        return SLOT_HEADER + self.signature_bytes

    @property
    def exact_buckets(self) -> int:
        return 1 << max(4, math.ceil(math.log2(max(1, self.capacity) / BUCKET_FILL)))

    @property
    def band_buckets(self) -> int:
        return 1 << max(4, math.ceil(math.log2(max(1, self.capacity * self.bands) / BUCKET_FILL)))


@dataclass(frozen=True)
class Entry:
    """One record to check: its id, its fingerprint and its fetch day (days since 1970-01-01)."""

    id: str
    fp: Fingerprint
    day: int


def _split(key: bytes, buckets: int, field_bytes: int) -> tuple[int, bytes]:
    return int.from_bytes(key[:4], "little") % buckets, key[-field_bytes:]


def verdict(status: str, duplicate_of: str | None, match_count: int, num_perm: int) -> dict[str, Any]:
    if status in (UNIQUE, INDEX_RESET):
        return {"status": status, "duplicate_of": None, "similarity": None}
    if status == EXACT:
        return {"status": EXACT, "duplicate_of": duplicate_of, "similarity": 1.0}
    return {"status": NEAR, "duplicate_of": duplicate_of,
            "similarity": round(estimate_jaccard(match_count, num_perm), 4)}


@dataclass
class _Slot:
    id: str
    day: int
    status: str
    duplicate_of: int
    matches: int
    signature: bytes


class MemoryIndex:
    """The same index in this process's memory (``pipeline enrich``, tests, benchmarks)."""

    def __init__(self, params: IndexParams):
        self.params = params
        self.seq = 0
        self.max_day = 0
        self.slots: dict[int, _Slot] = {}
        self.exact: dict[tuple[int, bytes], int] = {}
        self.bands: dict[tuple[int, bytes], int] = {}

    def _live(self, seq: int | None) -> _Slot | None:
        if seq is None:
            return None
        slot = self.slots.get(seq)
        if slot is None:
            return None
        if self.params.horizon_days and slot.day < self.max_day - self.params.horizon_days:
            return None
        return slot

    def check_and_add_many(self, entries: list[Entry]) -> list[dict[str, Any]]:
        return [self._check_and_add(e) for e in entries]

    def _check_and_add(self, entry: Entry) -> dict[str, Any]:
        p = self.params
        self.max_day = max(self.max_day, entry.day)
        exact_key = _split(entry.fp.exact, p.exact_buckets, EXACT_FIELD)
        first_seq = self.exact.get(exact_key)
        first = self._live(first_seq)
        if first is not None:
            if first.id == entry.id:
                dup = self.slots.get(first.duplicate_of)
                return verdict(first.status, dup.id if dup else None, first.matches, p.num_perm)
            return verdict(EXACT, first.id, p.num_perm, p.num_perm)
        self.seq += 1
        seq = self.seq
        band_keys = [_split(b, p.band_buckets, BAND_FIELD) for b in entry.fp.bands]
        best_seq, best_matches = 0, -1
        for key in band_keys:
            cand_seq = self.bands.get(key)
            cand = self._live(cand_seq)
            if cand is None:
                continue
            m = matches(entry.fp.signature, cand.signature)
            if m > best_matches or m == best_matches and cand_seq < best_seq:
                best_seq, best_matches = cand_seq, m
        if best_seq and best_matches >= p.min_matches:
            status, dup_seq, dup_matches = NEAR, best_seq, best_matches
        else:
            status, dup_seq, dup_matches = UNIQUE, 0, 0
        self.slots[seq] = _Slot(entry.id, entry.day, status, dup_seq, dup_matches, entry.fp.signature)
        self.exact[exact_key] = seq
        for key in band_keys:
            if self._live(self.bands.get(key)) is None:
                self.bands[key] = seq
        dup = self.slots.get(dup_seq)
        return verdict(status, dup.id if dup else None, dup_matches, p.num_perm)

    def size(self) -> int:
        return sum(1 for seq in self.slots if self._live(seq) is not None)

    def close(self) -> None:
        pass


# ARGV: the meta key, an epoch for an index that has none, the time (Unix seconds). Returns the
# index's epoch and when a reset was noticed ("" if never).
_EPOCH_SCRIPT = """
local epoch = redis.call('HGET', ARGV[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', ARGV[1], 'epoch', epoch, 'epoch_since', ARGV[3])
end
return {epoch, redis.call('HGET', ARGV[1], 'reset_at') or ''}
"""


class RedisIndex:
    """The index in Redis, shared by every dedup worker, updated by one Lua script per batch."""

    def __init__(self, url: str, namespace: str, params: IndexParams):
        import redis

        self.namespace = namespace
        self.params = params
        self.client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5,
                                           health_check_interval=30)
        script = (Path(__file__).parent / "check_and_add.lua").read_text(encoding="utf-8")
        self._script = self.client.register_script(script)
        self._epoch_script = self.client.register_script(_EPOCH_SCRIPT)
        self.epoch: str | None = None  # the index's epoch as this worker last saw it
        self.reset_at = 0.0  # when the index was found to have lost its memory (0: never)
        self.resets_seen = 0  # resets this worker noticed
        self._entry_head = struct.Struct(f"<16sHBI{EXACT_FIELD}sBH")

    def _pack(self, entry: Entry) -> bytes:
        p = self.params
        key, custom = id_key(entry.id)
        bucket, field = _split(entry.fp.exact, p.exact_buckets, EXACT_FIELD)
        parts = [self._entry_head.pack(key, entry.day, 1 if custom else 0, bucket, field, len(entry.fp.bands),
                                       len(entry.fp.signature))]
        for band in entry.fp.bands:
            b_bucket, b_field = _split(band, p.band_buckets, BAND_FIELD)
            parts.append(struct.pack(f"<I{BAND_FIELD}s", b_bucket, b_field))
        parts.append(entry.fp.signature)
        if custom:
            raw = entry.id.encode("utf-8", "surrogatepass")
            parts.append(struct.pack("<H", len(raw)) + raw)
        return b"".join(parts)

    def check_and_add_many(self, entries: list[Entry]) -> list[dict[str, Any]]:
        import redis

        if not entries:
            return []
        p = self.params
        args = [self.namespace, p.num_perm, p.min_matches, p.horizon_days, CHUNK_BITS, p.slot_size,
                p.exact_buckets, p.band_buckets, max(1, p.capacity)] + [self._pack(e) for e in entries]
        import time
        import uuid

        now = time.time()
        try:
            pipe = self.client.pipeline(transaction=False)
            self._epoch_script(keys=[], args=[f"{self.namespace}:meta", uuid.uuid4().hex, f"{now:.3f}"], client=pipe)
            self._script(keys=[], args=args, client=pipe)
            (epoch, reset_at), raw = pipe.execute()
            self._check_epoch(epoch.decode() if isinstance(epoch, bytes) else str(epoch), reset_at, now)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TemporaryFailure(f"dedup index unreachable: {exc}") from exc
        except (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError) as exc:
            # full (maxmemory with noeviction) or a read-only replica: nothing was written (a script
            # that may write is refused before it starts); retried until the operator frees memory
            raise TemporaryFailure(f"dedup index refuses writes: {exc}") from exc
        horizon_s = p.horizon_days * 86400 if p.horizon_days else math.inf
        after_reset = bool(self.reset_at) and now - self.reset_at < horizon_s
        out = []
        for i in range(len(entries)):
            code, ref, match_count = raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]
            status = _STATUS[int(code)]
            if status == UNIQUE and after_reset:
                status = INDEX_RESET
            out.append(verdict(status, _ref_to_id(ref), int(match_count), p.num_perm))
        return out

    def _check_epoch(self, epoch: str, reset_at: bytes | str, now: float) -> None:
        """Compare the index's epoch with the one this worker saw last: another one means the
        index lost its memory since (the first worker to notice records when)."""
        import logging

        if self.epoch is not None and epoch != self.epoch:
            self.resets_seen += 1
            meta = f"{self.namespace}:meta"
            if not reset_at:  # the first worker to notice records when
                self.client.hset(meta, mapping={"reset_at": f"{now:.3f}", "reset_from": self.epoch})
                reset_at = f"{now:.3f}"
            logging.getLogger("pipeline.dedup").error(
                "the dedup index lost its memory (epoch %s, now %s: restarted without its data, or flushed); "
                "records not found in it are 'index_reset', not 'unique', for the next %s days",
                self.epoch, epoch, self.params.horizon_days or "all")
        self.epoch = epoch
        self.reset_at = float(reset_at) if reset_at else 0.0

    def size(self) -> int:
        """Records indexed (sequence numbers handed out; expired ones included until swept)."""
        return int(self.client.hget(f"{self.namespace}:meta", "seq") or 0)

    def stored_epoch(self) -> str | None:
        value = self.client.hget(f"{self.namespace}:meta", "epoch")
        return value.decode() if value is not None else None

    def mark_reset(self, lost_epoch: str) -> None:
        """Record that the index lost its memory (found by whoever knew its epoch before): from
        now on, within the horizon, records not found are ``index_reset``."""
        import time
        import uuid

        now = f"{time.time():.3f}"
        self.client.hset(f"{self.namespace}:meta", mapping={
            "epoch": uuid.uuid4().hex, "epoch_since": now, "reset_at": now, "reset_from": lost_epoch})

    def memory_bytes(self) -> int:
        """Bytes Redis uses for this namespace's keys (MEMORY USAGE, sampled exactly)."""
        total = 0
        for key in self.client.scan_iter(match=f"{self.namespace}:*", count=5000):
            total += int(self.client.memory_usage(key, samples=0) or 0)
        return total

    def clear(self) -> None:
        for key in self.client.scan_iter(match=f"{self.namespace}:*", count=5000):
            self.client.delete(key)

    def close(self) -> None:
        self.client.close()


def _ref_to_id(ref: bytes | str | None) -> str | None:
    if not ref:
        return None
    if isinstance(ref, str):
        ref = ref.encode("latin-1")
    kind, body = ref[:1], ref[1:]
    if kind == b"h":
        return body.hex()
    if kind == b"c":
        return body.decode("utf-8", "surrogatepass")
    return None  # the record it pointed to has expired


def open_index(store: str, namespace: str, params: IndexParams):
    if store == "memory":
        return MemoryIndex(params)
    if store.startswith(("redis://", "rediss://", "unix://")):
        return RedisIndex(store, namespace, params)
    if store == "embedded":
        raise ValueError("stages.dedup.store = \"embedded\" names the index server that `pipeline run` starts for "
                         "its own workers; a dedup worker started alone needs a redis:// URL "
                         "(PIPELINE__STAGES__DEDUP__STORE)")
    raise ValueError(f"unknown dedup store {store!r}: use 'memory' or a redis:// URL")
