"""The duplicate index: which texts the pipeline has seen, shared by all dedup workers.

Both backends give the same verdicts for the same sequence of records:

1. a record id seen before gets its earlier verdict (a redelivery is never its own duplicate);
2. a known exact hash makes the record an ``exact_duplicate`` of the first record with that text;
3. otherwise the LSH bands give candidates, the MinHash signatures their similarity, and the most
   similar earlier record at or above the threshold makes it a ``near_duplicate``;
4. the record is then indexed (exact hash, bands, signature) unless it was an exact duplicate.

``MemoryIndex`` lives in one process (``pipeline enrich``, tests). ``RedisIndex`` runs the same
steps as one Lua script, atomically, so concurrent workers cannot both claim to be first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from pipeline.stages.base import TemporaryFailure
from pipeline.stages.dedup.fingerprint import Fingerprint, similarity

UNIQUE = "unique"
EXACT = "exact_duplicate"
NEAR = "near_duplicate"


def _verdict(status: str, duplicate_of: str | None, sim: float | None) -> dict[str, Any]:
    return {"status": status, "duplicate_of": duplicate_of,
            "similarity": None if sim is None else round(sim, 4)}


class MemoryIndex:
    def __init__(self, threshold: float):
        self.threshold = threshold
        self.verdicts: dict[str, dict[str, Any]] = {}
        self.exact: dict[str, str] = {}
        self.signatures: dict[str, tuple[int, ...]] = {}
        self.seq: dict[str, int] = {}
        self.bands: dict[str, list[str]] = {}

    def check_and_add(self, record_id: str, fp: Fingerprint) -> dict[str, Any]:
        if record_id in self.verdicts:
            return self.verdicts[record_id]
        first = self.exact.get(fp.exact)
        if first is not None and first != record_id:
            verdict = _verdict(EXACT, first, 1.0)
        else:
            self.exact[fp.exact] = record_id
            best_id, best_sim, best_seq = None, -1.0, 0
            candidates = {c for band in fp.bands for c in self.bands.get(band, ())}
            for cand in candidates:
                sim = similarity(fp.signature, self.signatures[cand])
                seq = self.seq[cand]
                if sim > best_sim or sim == best_sim and seq < best_seq:
                    best_id, best_sim, best_seq = cand, sim, seq
            if best_id is not None and best_sim >= self.threshold:
                verdict = _verdict(NEAR, best_id, best_sim)
            else:
                verdict = _verdict(UNIQUE, None, None)
            if fp.signature:
                self.seq[record_id] = len(self.seq) + 1
                self.signatures[record_id] = fp.signature
                for band in fp.bands:
                    self.bands.setdefault(band, []).append(record_id)
        self.verdicts[record_id] = verdict
        return verdict

    def size(self) -> int:
        return len(self.verdicts)

    def close(self) -> None:
        pass


class RedisIndex:
    def __init__(self, url: str, namespace: str, threshold: float):
        import redis

        self.namespace = namespace
        self.threshold = threshold
        self.client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5,
                                           health_check_interval=30)
        script = (Path(__file__).parent / "check_and_add.lua").read_text(encoding="utf-8")
        self._script = self.client.register_script(script)

    def check_and_add(self, record_id: str, fp: Fingerprint) -> dict[str, Any]:
        import redis

        try:
            raw = self._script(keys=[], args=[self.namespace, record_id, fp.exact, repr(self.threshold),
                                              fp.packed_signature(), *fp.bands])
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TemporaryFailure(f"dedup index unreachable: {exc}") from exc
        return orjson.loads(raw)

    def size(self) -> int:
        return int(self.client.hlen(f"{self.namespace}:verdict"))

    def clear(self) -> None:
        """Delete every key of this namespace (tests and `--fresh` runs)."""
        cursor = 0
        while True:
            cursor, keys = self.client.scan(cursor, match=f"{self.namespace}:*", count=1000)
            if keys:
                self.client.delete(*keys)
            if cursor == 0:
                break

    def close(self) -> None:
        self.client.close()


def open_index(store: str, namespace: str, threshold: float):
    if store == "memory":
        return MemoryIndex(threshold)
    if store.startswith(("redis://", "rediss://", "unix://")):
        return RedisIndex(store, namespace, threshold)
    raise ValueError(f"unknown dedup store {store!r}: use 'memory' or a redis:// URL")
