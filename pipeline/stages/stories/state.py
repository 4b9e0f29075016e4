"""Where the stories live: in memory (one process) or in Redis (shared by every stories worker).

Both keep the same things and follow the same steps, so they give the same answers:

- a version, moved by every commit: a decision is committed only if the version it was made at is
  still the current one (optimistic concurrency: else the worker reads again and decides again),
  so the decisions form one sequence whatever worker makes which;
- the number of articles counted and, per hashed term id, how many of them contain it (document
  frequencies for the idf). Redis does not count them term by term: every commit appends the term
  ids it counts to a log (one binary string per version), and each worker keeps its own copy of
  the counters, brought to the version it reads by the log entries it has not applied yet (a few
  microseconds in numpy, against a thousand BITFIELD counters per article). Every
  ``SNAPSHOT_EVERY`` versions a worker saves its counters as a snapshot and the log before it
  (but for ``LOG_MARGIN`` entries) is dropped: a worker that starts, or fell further behind,
  loads the snapshot and applies the log after it;
- each story, encoded by the model (centroid, summary), under its id;
- an inverted index: per term id, the stories that have it among their heaviest terms, each
  scored by the version that last changed it; only the ``posting_size`` most recent are kept;
- the stories with dates by their last article's time: after each commit the oldest stories last
  seen more than ``expire_seconds`` before the newest article are deleted (a few per commit);
- the answer given to each article, kept ``answer_seconds`` (wall clock), for redeliveries.

Redis keys under the prefix ``ns``: ``ns:meta`` (hash: format, v, docs, newest, dfbase: the version
before the log's first entry, dfsnap: the snapshot's version), ``ns:dflog`` (list: the term ids
each version counted, little-endian uint32), ``ns:dfsnap`` (the counters at version dfsnap),
``ns:s:<story>``, ``ns:p:<term>`` (sorted sets), ``ns:live`` (sorted set), ``ns:a:<article>``.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections import deque
from dataclasses import dataclass
from itertools import chain
from typing import Protocol

import numpy as np
import orjson

from pipeline.records import TemporaryFailure

EXPIRE_PER_COMMIT = 8  # stories deleted at most per commit (the oldest first)
FORMAT = "3"  # of the Redis state (1: counters in a BITFIELD string, stories as one JSON line; 2: the
#              stand-in's entity words hashed apart from the text's words)
SNAPSHOT_EVERY = 8192  # versions between snapshots of the document frequencies in Redis
LOG_MARGIN = 1024  # log entries kept before the snapshot (a worker that far behind needs no snapshot)
DF_ARRAY_BITS = 24  # the memory state counts term ids below 2**24 in an array of 4-byte counters (a dict above)
_NO_COUNTS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class View:
    """What the state held for one article at one version: the answer it was given already (then
    nothing else is read), the articles counted, the newest article's time, the document frequency
    of each of its terms (aligned with the terms asked for; empty when the answer or the original's
    story was found), and its original's story when it is a near duplicate."""

    answer: dict | None
    version: int
    docs: int
    newest: float | None
    df: np.ndarray
    original: bytes | None


@dataclass(frozen=True)
class Change:
    """One decision to commit: the article's answer, its story as it now is, the term ids the
    story is now indexed under (``index_add``, all of them) and no longer (``index_remove``), the
    term ids whose document frequency grows (empty: the article is not counted), the newest
    article's time, and how long things are kept."""

    article_id: str
    answer: bytes
    story_id: str
    story: bytes
    last_seen: float | None
    index_add: list[int]
    index_remove: list[int]
    df_terms: np.ndarray  # distinct term ids
    newest: float | None
    posting_size: int
    expire_seconds: float
    answer_seconds: int


class StoryState(Protocol):
    """The shared state of the stories stage (see the module's docstring)."""

    def begin(self, article_id: str, terms: np.ndarray, duplicate_of: str | None) -> View:
        """The state as it stands for this article (one consistent read); ``terms``: its term ids."""

    def candidates(self, query: list[int], limit: int) -> tuple[int, list[bytes]]:
        """The current version and the encoded stories indexed under the most of ``query``'s terms
        (weighted by their rank: the first counts most; ties: the most recently changed), at most
        ``limit``, best first."""

    def commit(self, version: int, change: Change) -> bool:
        """Apply ``change`` if the version is still ``version``; False (nothing written) if not."""

    def close(self) -> None:
        """Let go of connections."""


def _expire_before(change: Change) -> float | None:
    return None if change.newest is None else change.newest - change.expire_seconds


def _story_terms(raw: bytes) -> list[int]:
    """The terms a stored story is indexed under (its first line is JSON: see ``model.Story``)."""
    return orjson.loads(raw[:raw.index(b"\n")])["p"]


class MemoryStoryState:
    """The state in this process's memory (``pipeline enrich``, tests, benchmarks)."""

    def __init__(self) -> None:
        self.version = 0
        self.docs = 0
        self.newest: float | None = None
        self.df = _Counts()
        self.stories: dict[str, bytes] = {}
        self.postings: dict[int, dict[str, int]] = {}
        self.live: dict[str, float] = {}
        #: (last seen, id as bytes, id) of the stories in ``live``, oldest first; entries whose time is no
        #: longer the story's (it was seen again, or deleted) are skipped when they come up
        self._live_heap: list[tuple[float, bytes, str]] = []
        self.answers: dict[str, tuple[float, bytes]] = {}
        self._answer_expiry: deque[tuple[float, str]] = deque()

    def _answer(self, article_id: str) -> bytes | None:
        kept = self.answers.get(article_id)
        return kept[1] if kept is not None and kept[0] > time.time() else None

    def begin(self, article_id: str, terms: np.ndarray, duplicate_of: str | None) -> View:
        answer = self._answer(article_id)
        if answer is not None:
            return View(orjson.loads(answer), self.version, self.docs, self.newest, _NO_COUNTS, None)
        original = None
        if duplicate_of:
            raw = self._answer(duplicate_of)
            if raw is not None:
                original = self.stories.get(orjson.loads(raw)["id"])
        df = _NO_COUNTS if original is not None else self.df.of(terms)
        return View(None, self.version, self.docs, self.newest, df, original)

    def candidates(self, query: list[int], limit: int) -> tuple[int, list[bytes]]:
        found = [(len(query) - rank, posting) for rank, term in enumerate(query)
                 if (posting := self.postings.get(term))]
        if not found or limit <= 0:
            return self.version, []
        # a story's version (the one that last changed it) is its own: stories are told apart by it
        versions = np.fromiter(chain.from_iterable(p.values() for _, p in found), dtype=np.int64)
        weights = np.repeat([w for w, _ in found], [len(p) for _, p in found])
        distinct, first, where = np.unique(versions, return_index=True, return_inverse=True)
        score = np.bincount(where, weights=weights)
        best = np.lexsort((distinct, score))[::-1][:limit]  # most (rank-weighted) query terms, then most recent
        ids = list(chain.from_iterable(p for _, p in found))
        return self.version, [self.stories[s] for s in (ids[i] for i in first[best].tolist()) if s in self.stories]

    def commit(self, version: int, change: Change) -> bool:
        if version != self.version:
            return False
        self.version += 1
        now = time.time()
        self.answers[change.article_id] = (now + change.answer_seconds, _compact(change.answer))
        self._answer_expiry.append((now + change.answer_seconds, change.article_id))
        while self._answer_expiry and self._answer_expiry[0][0] <= now:
            _, article_id = self._answer_expiry.popleft()
            if article_id in self.answers and self.answers[article_id][0] <= now:
                del self.answers[article_id]
        sid = change.story_id
        self.stories[sid] = _compact(change.story)
        if change.last_seen is not None and self.live.get(sid) != change.last_seen:
            self.live[sid] = change.last_seen
            heapq.heappush(self._live_heap, (change.last_seen, sid.encode(), sid))
        for term in change.index_add:
            posting = self.postings.setdefault(term, {})
            posting.pop(sid, None)  # a posting's stories stay in the order of their versions, the oldest first
            posting[sid] = self.version
            while len(posting) > change.posting_size:  # the oldest go (a story's version is its own)
                del posting[next(iter(posting))]
        for term in change.index_remove:
            self.postings.get(term, {}).pop(sid, None)
        if len(change.df_terms):
            self.df.add(change.df_terms)
            self.docs += 1
        self.newest = change.newest
        expire_before = _expire_before(change)
        if expire_before is not None:
            old = self._oldest_before(expire_before, EXPIRE_PER_COMMIT)
            for story_id in old:
                raw = self.stories.pop(story_id, None)
                for term in _story_terms(raw) if raw is not None else []:
                    self.postings.get(term, {}).pop(story_id, None)
                del self.live[story_id]
        return True

    def _oldest_before(self, before: float, limit: int) -> list[str]:
        """The ids of the (at most ``limit``) stories of ``live`` last seen longest before ``before``
        (ties: the smaller id as bytes), taken off the heap."""
        heap, live, out = self._live_heap, self.live, []
        while heap and len(out) < limit and heap[0][0] < before:
            last, _, story_id = heapq.heappop(heap)
            if live.get(story_id) == last and story_id not in out:
                out.append(story_id)
        if len(heap) > 2 * len(live) + 1024:  # drop the entries of stories seen again since
            self._live_heap = [e for e in heap if live.get(e[2]) == e[0]]
            heapq.heapify(self._live_heap)
        return out

    def close(self) -> None:
        pass


def _compact(raw: bytes) -> bytes:
    """A copy of exactly its size: orjson's output keeps its whole growing buffer (about 32 KB
    allocated for a 6 KB story), which would be most of the memory of each story kept."""
    return bytes(memoryview(raw))


class _Counts:
    """Document frequencies of term ids: 4-byte counters in an array for ids below
    ``2**DF_ARRAY_BITS`` (grown as ids come), a dict for larger ids."""

    def __init__(self) -> None:
        self.small = np.zeros(1 << 16, dtype=np.uint32)
        self.large: dict[int, int] = {}

    def of(self, terms: np.ndarray) -> np.ndarray:
        terms = np.asarray(terms, dtype=np.int64)
        n = len(self.small)
        if not len(terms) or terms.max() < n:
            return self.small[terms].astype(np.int64)
        out = self.small[np.minimum(terms, n - 1)].astype(np.int64)
        for i in np.flatnonzero(terms >= n).tolist():
            out[i] = self.large.get(int(terms[i]), 0)
        return out

    def encode(self) -> bytes:
        """The counters as bytes: how many small ones (8 bytes), them (4 bytes each), then the large
        ones as JSON pairs."""
        return b"".join((len(self.small).to_bytes(8, "little"), self.small.astype("<u4").tobytes(),
                         orjson.dumps(sorted(self.large.items()))))

    @classmethod
    def decode(cls, raw: bytes) -> _Counts:
        counts = cls()
        n = int.from_bytes(raw[:8], "little")
        counts.small = np.frombuffer(raw, dtype="<u4", count=n, offset=8).astype(np.uint32)
        counts.large = {int(t): int(c) for t, c in orjson.loads(raw[8 + 4 * n:])}
        return counts

    def add(self, terms: np.ndarray) -> None:
        """Count one more document holding each of ``terms`` (distinct ids)."""
        ids = np.asarray(terms, dtype=np.int64)
        top, cap = int(ids.max()), 1 << DF_ARRAY_BITS
        if len(self.small) <= top and len(self.small) < cap:  # grown to cover every id below the cap it meets
            grown = np.zeros(min(1 << top.bit_length(), cap), dtype=np.uint32)
            grown[:len(self.small)] = self.small
            self.small = grown
        n = len(self.small)
        if top < n:  # the usual case (a count cannot reach 2**32 in one process's lifetime)
            self.small[ids] += np.uint32(1)
            return
        self.small[ids[ids < n]] += np.uint32(1)
        for t in ids[ids >= n].tolist():
            self.large[t] = self.large.get(t, 0) + 1


# ARGV: prefix, article id, its original's id ('' if none), the version this worker's counters are
# at. Returns the answer given to the article already (or nil), the version, the articles counted,
# the newest time ('' if none), the original's story (or nil); then (not when the answer or the
# original's story was found) the snapshot's version, and 'log' followed by the log entries from
# the worker's version to the current one, or 'snapshot' when the log does not hold them (trimmed;
# or the worker is ahead: the state was emptied).
_BEGIN = """
local ns = ARGV[1]
local m = redis.call('HMGET', ns .. ':meta', 'v', 'docs', 'newest', 'dfbase', 'format', 'dfsnap')
if m[1] and m[5] ~= '{FORMAT}' then
  return redis.error_reply('the stories state under ' .. ns .. ' was written by an older version (format ' ..
    tostring(m[5] or 1) .. '): delete its keys or choose another stages.stories.namespace')
end
local head = {m[1] or '0', m[2] or '0', m[3] or ''}
local answer = redis.call('GET', ns .. ':a:' .. ARGV[2])
if answer then return {answer, head[1], head[2], head[3], false} end
local original = false
if ARGV[3] ~= '' then
  local given = redis.call('GET', ns .. ':a:' .. ARGV[3])
  if given then original = redis.call('GET', ns .. ':s:' .. cjson.decode(given)['id']) end
end
local out = {false, head[1], head[2], head[3], original}
if original then return out end
local known, v, base = tonumber(ARGV[4]), tonumber(head[1]), tonumber(m[4] or '0')
out[#out + 1] = m[6] or '0'
if known < base or known > v then out[#out + 1] = 'snapshot'; return out end
out[#out + 1] = 'log'
if known < v then
  for _, entry in ipairs(redis.call('LRANGE', ns .. ':dflog', known - base, v - base - 1)) do
    out[#out + 1] = entry
  end
end
return out
""".replace("{FORMAT}", FORMAT)

# ARGV: prefix. Returns the snapshot's version and the counters then ('' with version 0: none yet).
_SNAPSHOT = """
local ns = ARGV[1]
local v = redis.call('HGET', ns .. ':meta', 'dfsnap') or '0'
return {v, redis.call('GET', ns .. ':dfsnap') or ''}
"""

# ARGV: prefix, the snapshot's version, the counters, the log entries to keep before the snapshot.
# Saves them if no later snapshot is saved and drops the older log entries. 1 if saved.
_SAVE = """
local ns = ARGV[1]
local meta = ns .. ':meta'
local version = tonumber(ARGV[2])
if tonumber(redis.call('HGET', meta, 'dfsnap') or '0') >= version then return 0 end
redis.call('SET', ns .. ':dfsnap', ARGV[3])
redis.call('HSET', meta, 'dfsnap', version)
local base = tonumber(redis.call('HGET', meta, 'dfbase') or '0')
local keep_from = version - tonumber(ARGV[4])
if keep_from > base then
  redis.call('LTRIM', ns .. ':dflog', keep_from - base, -1)
  redis.call('HSET', meta, 'dfbase', keep_from)
end
return 1
"""

# ARGV: prefix, limit, the query's term ids, first the heaviest (one argument, separated by spaces). Returns the version, then
# the encoded stories indexed under the most query terms (rank-weighted; ties: most recent).
_CANDIDATES = """
local ns = ARGV[1]
local limit = tonumber(ARGV[2])
local query = {}
for term in string.gmatch(ARGV[3], '%d+') do query[#query + 1] = term end
local n = #query
local score, seq, order = {}, {}, {}
for i = 3, n + 2 do
  local members = redis.call('ZRANGE', ns .. ':p:' .. query[i - 2], 0, -1, 'WITHSCORES')
  for j = 1, #members, 2 do
    local id = members[j]
    if not score[id] then
      score[id] = 0; seq[id] = tonumber(members[j + 1]); order[#order + 1] = id
    end
    score[id] = score[id] + n - (i - 3)
  end
end
table.sort(order, function(a, b)
  if score[a] ~= score[b] then return score[a] > score[b] end
  return seq[a] > seq[b]
end)
local out = {redis.call('HGET', ns .. ':meta', 'v') or '0'}
for i = 1, math.min(limit, #order) do
  local story = redis.call('GET', ns .. ':s:' .. order[i])
  if story then out[#out + 1] = story end
end
return out
"""

# ARGV: prefix, version read, article id, answer, answer seconds, story id, story, last seen ('' if
# none), newest ('' if none), expire before ('' if none), posting size, count the article (0/1),
# the term ids to index the story under, those to remove it from (each one argument, separated by
# spaces), then the log entry (the counted term ids as little-endian uint32; '' if none). 1 if committed, 0 if the version moved
# (nothing written).
_COMMIT = """
local ns = ARGV[1]
local meta = ns .. ':meta'
if (redis.call('HGET', meta, 'v') or '0') ~= ARGV[2] then return 0 end
local v = tonumber(ARGV[2]) + 1
local sid = ARGV[6]
redis.call('SET', ns .. ':a:' .. ARGV[3], ARGV[4], 'EX', ARGV[5])
redis.call('SET', ns .. ':s:' .. sid, ARGV[7])
if ARGV[8] ~= '' then redis.call('ZADD', ns .. ':live', ARGV[8], sid) end
local size = tonumber(ARGV[11])
for term in string.gmatch(ARGV[13], '%d+') do
  local key = ns .. ':p:' .. term
  redis.call('ZADD', key, v, sid)
  local extra = redis.call('ZCARD', key) - size
  if extra > 0 then redis.call('ZREMRANGEBYRANK', key, 0, extra - 1) end
end
for term in string.gmatch(ARGV[14], '%d+') do
  redis.call('ZREM', ns .. ':p:' .. term, sid)
end
redis.call('RPUSH', ns .. ':dflog', ARGV[15])
if ARGV[12] == '1' then redis.call('HINCRBY', meta, 'docs', 1) end
if ARGV[9] ~= '' then redis.call('HSET', meta, 'newest', ARGV[9]) end
if ARGV[10] ~= '' then
  local old = redis.call('ZRANGEBYSCORE', ns .. ':live', '-inf', '(' .. ARGV[10], 'LIMIT', 0, {EXPIRE})
  for _, id in ipairs(old) do
    local story = redis.call('GET', ns .. ':s:' .. id)
    if story then
      for _, term in ipairs(cjson.decode(string.sub(story, 1, string.find(story, '\\n', 1, true) - 1))['p']) do
        redis.call('ZREM', ns .. ':p:' .. string.format('%d', term), id)
      end
    end
    redis.call('DEL', ns .. ':s:' .. id)
    redis.call('ZREM', ns .. ':live', id)
  end
end
redis.call('HSET', meta, 'v', v, 'format', '{FORMAT}')
return 1
""".replace("{EXPIRE}", str(EXPIRE_PER_COMMIT)).replace("{FORMAT}", FORMAT)


def _number(value: float | None) -> str:
    """A float as Redis reads it back exactly ('' for none)."""
    return "" if value is None else repr(float(value))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStoryState:
    """The state in Redis, shared by every stories worker: one script reads, one commits; this
    worker's copy of the document frequencies follows the log (see the module's docstring)."""

    def __init__(self, client, prefix: str = "news-pipeline:stories", snapshot_every: int = SNAPSHOT_EVERY,
                 log_margin: int = LOG_MARGIN):
        self.client = client
        self.prefix = prefix
        self.snapshot_every, self.log_margin = snapshot_every, log_margin
        self._begin = client.register_script(_BEGIN)
        self._candidates = client.register_script(_CANDIDATES)
        self._commit = client.register_script(_COMMIT)
        self._snapshot = client.register_script(_SNAPSHOT)
        self._save = client.register_script(_SAVE)
        self.df = _Counts()
        self.df_version = 0  # the version the counters are at
        self.snapshot_version = 0  # of the last snapshot seen
        self.snapshots_loaded = 0
        self.snapshots_saved = 0

    def _call(self, script, args: list):
        import redis

        try:
            return script(keys=[], args=args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TemporaryFailure(f"stories state unreachable: {exc}") from exc
        except (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError) as exc:
            # full (maxmemory with noeviction) or a read-only replica: a script that may write is
            # refused before it starts, so nothing was written
            raise TemporaryFailure(f"stories state refuses writes: {exc}") from exc
        except redis.ResponseError as exc:
            if "older version" in str(exc):
                raise RuntimeError(str(exc).split("user_script")[0].strip(" :")) from None
            raise

    def begin(self, article_id: str, terms: np.ndarray, duplicate_of: str | None) -> View:
        for _ in range(3):
            got = self._call(self._begin, [self.prefix, article_id, duplicate_of or "", self.df_version])
            answer, version, docs, newest, original = got[:5]
            newest_s = _text(newest)
            view = View(answer=orjson.loads(answer) if answer is not None else None, version=int(version),
                        docs=int(docs), newest=float(newest_s) if newest_s else None, df=_NO_COUNTS,
                        original=original)
            if len(got) == 5:  # answered already, or a near duplicate: no counters needed
                return view
            self.snapshot_version = int(got[5])
            if got[6] == b"snapshot":
                self._load_snapshot()
                continue
            for entry in got[7:]:
                if entry:
                    self.df.add(np.frombuffer(entry, dtype="<u4"))
            self.df_version = view.version
            return dataclasses.replace(view, df=self.df.of(terms))
        raise TemporaryFailure("stories state: the document frequencies' snapshot kept moving")

    def _load_snapshot(self) -> None:
        version, raw = self._call(self._snapshot, [self.prefix])
        self.df = _Counts.decode(raw) if raw else _Counts()
        self.df_version = int(version)
        self.snapshots_loaded += 1

    def candidates(self, query: list[int], limit: int) -> tuple[int, list[bytes]]:
        got = self._call(self._candidates, [self.prefix, limit, " ".join(map(str, query))])
        return int(got[0]), list(got[1:])

    def commit(self, version: int, change: Change) -> bool:
        counted = np.asarray(change.df_terms, dtype="<u4")
        args = [self.prefix, version, change.article_id, change.answer, change.answer_seconds, change.story_id,
                change.story, _number(change.last_seen), _number(change.newest), _number(_expire_before(change)),
                change.posting_size, 1 if len(counted) else 0, " ".join(map(str, change.index_add)),
                " ".join(map(str, change.index_remove)), counted.tobytes()]
        if not self._call(self._commit, args):
            return False
        if self.df_version == version:  # the counters were at the version decided on: this commit's entry is next
            if len(counted):
                self.df.add(counted)
            self.df_version = version + 1
            if self.df_version - self.snapshot_version >= self.snapshot_every:
                if self._call(self._save, [self.prefix, self.df_version, self.df.encode(), self.log_margin]):
                    self.snapshots_saved += 1
                self.snapshot_version = self.df_version
        return True

    def memory_bytes(self) -> int:
        """Bytes Redis uses for this prefix's keys (MEMORY USAGE)."""
        return sum(int(self.client.memory_usage(key, samples=0) or 0)
                   for key in self.client.scan_iter(match=f"{self.prefix}:*", count=5000))

    def clear(self) -> None:
        """Delete every key under the prefix."""
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=5000):
            self.client.delete(key)

    def close(self) -> None:
        self.client.close()
