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

Redis answers a batch of articles in a few round trips (``read_many``, then ``step``: commit what
was decided, find the next articles' candidates; ``StoryAssigner.assign_many`` decides in between,
in order, in the worker): the candidates are ranked by Redis itself (ZUNIONSTORE of the query's
postings, see ``POSTING_OFFSET``) and their stories read with one MGET; no script sorts or copies
stories.

Redis keys under the prefix ``ns``: ``ns:meta`` (hash: format, v, docs, newest, dfbase: the version
before the log's first entry, dfsnap: the snapshot's version), ``ns:dflog`` (list: the term ids
each version counted, little-endian uint32), ``ns:dfsnap`` (the counters at version dfsnap),
``ns:s:<story>``, ``ns:p:<term>`` (sorted sets scored ``POSTING_OFFSET`` + version), ``ns:live`` (sorted set),
``ns:a:<article>``, ``ns:top`` (a script's scratch, deleted before it ends).
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
FORMAT = "5"  # of the Redis state (1: counters in a BITFIELD string, stories as one JSON line; 2: the
#              stand-in's entity words hashed apart from the text's words; 3: postings scored by the version
#              alone; 4: a story without the years its members' texts mention most, ``ty``)
#: a posting scores a story ``POSTING_OFFSET + version``: ZUNIONSTORE over the query's postings weighted by
#: rank then sums to ``(POSTING_OFFSET + version) * rank weights``, which orders by the rank weights first and
#: the version second, exactly in doubles while the weights' sum is below 2**9 (``MAX_QUERY_TERMS``) and
#: versions below 2**35
POSTING_OFFSET = 1 << 44
MAX_QUERY_TERMS = 31
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
    #: what the decision read beside the article's own answer and counts: the query looked up in the
    #: inverted index and the story of its original (a near duplicate); a commit of several changes
    #: stops before one whose reads a story deleted earlier in it changed (see ``RedisStoryState.step``)
    query: list[int] = dataclasses.field(default_factory=list)
    original: str = ""


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

    def subtract(self, terms: np.ndarray) -> None:
        """Undo ``add(terms)``."""
        ids = np.asarray(terms, dtype=np.int64)
        n = len(self.small)
        self.small[ids[ids < n]] -= np.uint32(1)
        for t in ids[ids >= n].tolist():
            self.large[t] -= 1
            if not self.large[t]:
                del self.large[t]

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


# Lua the reading scripts share. _LUA_META: the state's head (``m``: version, articles counted, newest
# time, the log's first version, format, the snapshot's version), a state of another format refused.
# _LUA_LOG_TAIL: appends to ``out`` 'log' and the log entries from the worker's version ``known`` to
# the current ``v``, or 'snapshot' when the log does not hold them (trimmed below ``base``; or the
# worker is ahead: the state was emptied), and returns ``out``.
_LUA_META = """
local m = redis.call('HMGET', pre .. 'meta', 'v', 'docs', 'newest', 'dfbase', 'format', 'dfsnap')
if m[1] and m[5] ~= '{FORMAT}' then
  return redis.error_reply('the stories state under ' .. ARGV[1] .. ' was written by an older version (format ' ..
    tostring(m[5] or 1) .. '): delete its keys or choose another stages.stories.namespace')
end
""".strip().replace("{FORMAT}", FORMAT)
_LUA_LOG_TAIL = """
if known < base or known > v then out[#out + 1] = 'snapshot'; return out end
out[#out + 1] = 'log'
if known < v then
  for _, entry in ipairs(redis.call('LRANGE', pre .. 'dflog', known - base, v - base - 1)) do
    out[#out + 1] = entry
  end
end
return out
""".strip()

# ARGV: prefix, article id, its original's id ('' if none), the version this worker's counters are
# at. Returns the answer given to the article already (or nil), the version, the articles counted,
# the newest time ('' if none), the original's story (or nil); then (not when the answer or the
# original's story was found) the snapshot's version, and 'log' followed by the log entries from
# the worker's version to the current one, or 'snapshot' when the log does not hold them (trimmed;
# or the worker is ahead: the state was emptied).
_BEGIN = """
local pre = ARGV[1] .. ':'
{HEAD}
local head = {m[1] or '0', m[2] or '0', m[3] or ''}
local answer = redis.call('GET', pre .. 'a:' .. ARGV[2])
if answer then return {answer, head[1], head[2], head[3], false} end
local original = false
if ARGV[3] ~= '' then
  local given = redis.call('GET', pre .. 'a:' .. ARGV[3])
  if given then original = redis.call('GET', pre .. 's:' .. cjson.decode(given)['id']) end
end
local out = {false, head[1], head[2], head[3], original}
if original then return out end
local known, v, base = tonumber(ARGV[4]), tonumber(head[1]), tonumber(m[4] or '0')
out[#out + 1] = m[6] or '0'
{LOG_TAIL}
""".replace("{HEAD}", _LUA_META).replace("{LOG_TAIL}", _LUA_LOG_TAIL)

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

# The stories of the inverted index best matching a query (a space-separated string of term ids,
# the heaviest first): ZUNIONSTORE of the query terms' postings weighted by rank (see POSTING_OFFSET),
# the ``limit`` best ids (most rank-weighted terms, then the most recent).
_TOP = """
local function top(pre, query, limit)
  local args, n = {'ZUNIONSTORE', pre .. 'top', 0}, 0
  for term in string.gmatch(query, '%d+') do n = n + 1; args[n + 3] = pre .. 'p:' .. term end
  if n == 0 or limit <= 0 then return {} end
  args[3] = n
  args[n + 4] = 'WEIGHTS'
  for r = 1, n do args[n + 4 + r] = n - r + 1 end
  redis.call(unpack(args))  -- (replaces the scratch of the query before: deleted once, by the caller)
  return redis.call('ZREVRANGE', pre .. 'top', 0, limit - 1)
end
"""

# ARGV: prefix, limit, the query's term ids, first the heaviest (one argument, separated by spaces). Returns the
# version, then the encoded stories indexed under the most query terms (rank-weighted; ties: most recent).
_CANDIDATES = _TOP + """
local pre = ARGV[1] .. ':'
local out = {redis.call('HGET', pre .. 'meta', 'v') or '0'}
for _, id in ipairs(top(pre, ARGV[3], tonumber(ARGV[2]))) do
  local story = redis.call('GET', pre .. 's:' .. id)
  if story then out[#out + 1] = story end
end
redis.call('DEL', pre .. 'top')
return out
"""

# Reads for a batch of articles. ARGV: prefix, the version this worker's counters are at, how many
# articles, their ids, then their originals' ids ('' if none). Returns the version, the articles
# counted, the newest time ('' if none), the snapshot's version, then per article its answer (or nil),
# then per article {its original's story id, that story (or nil)} (or nil: no original, or it has no
# answer), then 'log' and the log entries from the worker's version to the current one, or 'snapshot'
# (see _BEGIN).
_READ = """
local pre = ARGV[1] .. ':'
{HEAD}
local n = tonumber(ARGV[3])
local answers, originals, keys = {}, {}, {}
for i = 1, n do keys[i] = pre .. 'a:' .. ARGV[3 + i] end
for i = 1, n, 1000 do  -- one MGET per thousand answers, not a GET each
  local got = redis.call('MGET', unpack(keys, i, math.min(i + 999, n)))
  for k = 1, #got do answers[i + k - 1] = got[k] end
end
for i = 1, n do
  originals[i] = false
  local dup = ARGV[3 + n + i]
  if dup ~= '' then
    local given = redis.call('GET', pre .. 'a:' .. dup)
    if given then
      local sid = cjson.decode(given)['id']
      originals[i] = {sid, redis.call('GET', pre .. 's:' .. sid)}
    end
  end
end
local out = {m[1] or '0', m[2] or '0', m[3] or '', m[6] or '0', answers, originals}
local known, v, base = tonumber(ARGV[2]), tonumber(m[1] or '0'), tonumber(m[4] or '0')
{LOG_TAIL}
""".replace("{HEAD}", _LUA_META).replace("{LOG_TAIL}", _LUA_LOG_TAIL)

# Commits changes decided one after the other, then finds the candidates of the next articles.
# ARGV: prefix, the version read, how many changes, posting size, answer seconds, candidates per
# query, then per change 12 fields: article id, answer, story id, story, last seen ('' if none), newest
# ('' if none), expire before ('' if none), term ids to index the story under, term ids to remove it
# from, the log entry (the counted term ids as little-endian uint32; '' if the article is not
# counted), the query it looked up (term ids), its original's story id ('' if none); then the queries
# of the next articles. Nothing is written if the version moved (returns {-1}). The changes are
# applied in order, each as one commit of its own (its version, then the oldest stories deleted);
# once a commit deleted stories, a later change whose query meets a deleted story's index terms, or
# that reads or writes a deleted story, is not applied, nor any after it (it was decided on a state
# that no longer is). Returns the changes applied, the version, the term ids whose postings lost a
# deleted story (one string), the deleted stories' ids (a list), then, when every change was
# applied, per query the ids of its candidates (see _TOP).
_STEP = _TOP + """
local pre = ARGV[1] .. ':'
local meta = pre .. 'meta'
local m = redis.call('HMGET', meta, 'v', 'format')
if m[1] and m[2] ~= '{FORMAT}' then
  return redis.error_reply('the stories state under ' .. ARGV[1] .. ' was written by an older version (format ' ..
    tostring(m[2] or 1) .. '): delete its keys or choose another stages.stories.namespace')
end
if (m[1] or '0') ~= ARGV[2] then return {-1} end
local v = tonumber(ARGV[2])
local changes, size, seconds, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local live = pre .. 'live'
local min_live = nil  -- at most the oldest story's last time in live (nil: not read yet)
local function oldest()
  local o = redis.call('ZRANGE', live, 0, 0, 'WITHSCORES')
  return o[2] and tonumber(o[2]) or math.huge
end
local gone_terms, gone_ids, gone, gone_list = {}, {}, false, {}
local log, docs, newest, done = {}, 0, nil, 0
for c = 0, changes - 1 do
  local a = 7 + 12 * c
  local sid = ARGV[a + 2]
  if gone then
    local hit = gone_ids[sid] or (ARGV[a + 11] ~= '' and gone_ids[ARGV[a + 11]])
    if not hit then
      for term in string.gmatch(ARGV[a + 10], '%d+') do
        if gone_terms[term] then hit = true; break end
      end
    end
    if hit then break end
  end
  v = v + 1
  redis.call('SET', pre .. 'a:' .. ARGV[a], ARGV[a + 1], 'EX', seconds)
  redis.call('SET', pre .. 's:' .. sid, ARGV[a + 3])
  if ARGV[a + 4] ~= '' then
    redis.call('ZADD', live, ARGV[a + 4], sid)
    if min_live then min_live = math.min(min_live, tonumber(ARGV[a + 4])) end
  end
  local score = string.format('%d', {OFFSET} + v)  -- (as text once, not once per posting)
  for term in string.gmatch(ARGV[a + 7], '%d+') do
    local key = pre .. 'p:' .. term
    if redis.call('ZADD', key, score, sid) == 1 then redis.call('ZREMRANGEBYRANK', key, 0, -size - 1) end
  end
  for term in string.gmatch(ARGV[a + 8], '%d+') do
    redis.call('ZREM', pre .. 'p:' .. term, sid)
  end
  log[#log + 1] = ARGV[a + 9]
  if ARGV[a + 9] ~= '' then docs = docs + 1 end
  if ARGV[a + 5] ~= '' then newest = ARGV[a + 5] end
  if ARGV[a + 6] ~= '' then
    if not min_live then min_live = oldest() end
    if tonumber(ARGV[a + 6]) > min_live then
      local old = redis.call('ZRANGEBYSCORE', live, '-inf', '(' .. ARGV[a + 6], 'LIMIT', 0, {EXPIRE})
      for _, id in ipairs(old) do
        local story = redis.call('GET', pre .. 's:' .. id)
        if story then
          for _, t in ipairs(cjson.decode(string.sub(story, 1, string.find(story, '\\n', 1, true) - 1))['p']) do
            local term = string.format('%d', t)
            redis.call('ZREM', pre .. 'p:' .. term, id)
            gone_terms[term] = true
          end
        end
        redis.call('DEL', pre .. 's:' .. id)
        redis.call('ZREM', live, id)
        gone_ids[id] = true
        gone_list[#gone_list + 1] = id
        gone = true
      end
      min_live = oldest()
    end
  end
  done = c + 1
end
if done > 0 then
  for i = 1, #log, 1000 do
    redis.call('RPUSH', pre .. 'dflog', unpack(log, i, math.min(i + 999, #log)))
  end
  if docs > 0 then redis.call('HINCRBY', meta, 'docs', docs) end
  if newest then redis.call('HSET', meta, 'newest', newest) end
  redis.call('HSET', meta, 'v', v, 'format', '{FORMAT}')
end
local terms = {}
for term in pairs(gone_terms) do terms[#terms + 1] = term end
local out = {done, tostring(v), table.concat(terms, ' '), gone_list}
if done < changes then return out end
for q = 7 + 12 * changes, #ARGV do
  out[#out + 1] = top(pre, ARGV[q], limit)
end
redis.call('DEL', pre .. 'top')
return out
""".replace("{EXPIRE}", str(EXPIRE_PER_COMMIT)).replace("{FORMAT}", FORMAT).replace("{OFFSET}", str(POSTING_OFFSET))


@dataclass(frozen=True)
class BatchRead:
    """The state for a batch of articles at one version (``RedisStoryState.read_many``): per article
    its answer (JSON, or None) and its original's story id and encoded story (None: no original with
    an answer; the story None: deleted)."""

    version: int
    docs: int
    newest: float | None
    answers: list[bytes | None]
    originals: list[tuple[str, bytes | None] | None]


@dataclass(frozen=True)
class Step:
    """What ``RedisStoryState.step`` did: how many changes it applied (-1: none, the version had
    moved), the version then, the term ids and story ids of the stories its commits deleted, and the
    ids of each query's candidates (best first; empty unless every change was applied)."""

    applied: int
    version: int
    gone_terms: list[int]
    gone_ids: list[str]
    candidates: list[list[str]]


def _terms(terms) -> str:
    """Term ids as one argument of a script (separated by spaces)."""
    return " ".join(map(str, terms))


def _query(query: list[int]) -> str:
    """A query's term ids as one argument of a script (see ``POSTING_OFFSET`` for its limit)."""
    if len(query) > MAX_QUERY_TERMS:
        raise ValueError(f"the Redis stories state looks up at most {MAX_QUERY_TERMS} query terms "
                         f"(stages.stories.options.query_terms), not {len(query)}")
    return _terms(query)


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
        self._read = client.register_script(_READ)
        self._step = client.register_script(_STEP)
        self._snapshot = client.register_script(_SNAPSHOT)
        self._save = client.register_script(_SAVE)
        self.df = _Counts()
        self.df_version = 0  # the version the counters are at
        self.snapshot_version = 0  # of the last snapshot seen
        self.snapshots_loaded = 0
        self.snapshots_saved = 0

    def _call(self, script, args: list):
        """Runs ``script`` (or any call taking ``keys`` and ``args``)."""
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
            if not self._follow_log(got[5], got[6:]):
                continue
            self.df_version = view.version
            return dataclasses.replace(view, df=self.df.of(terms))
        raise TemporaryFailure("stories state: the document frequencies' snapshot kept moving")

    def _follow_log(self, snapshot_version, tail: list) -> bool:
        """Bring this worker's counters forward by a read's log tail (``_LUA_LOG_TAIL``: 'log' and
        the entries, or 'snapshot'); False when the snapshot was loaded instead (read again)."""
        self.snapshot_version = int(snapshot_version)
        if tail[0] == b"snapshot":
            self._load_snapshot()
            return False
        for entry in tail[1:]:
            if entry:
                self.df.add(np.frombuffer(entry, dtype="<u4"))
        return True

    def _load_snapshot(self) -> None:
        version, raw = self._call(self._snapshot, [self.prefix])
        self.df = _Counts.decode(raw) if raw else _Counts()
        self.df_version = int(version)
        self.snapshots_loaded += 1

    def candidates(self, query: list[int], limit: int) -> tuple[int, list[bytes]]:
        got = self._call(self._candidates, [self.prefix, limit, _query(query)])
        return int(got[0]), list(got[1:])

    def commit(self, version: int, change: Change) -> bool:
        counted = np.asarray(change.df_terms, dtype="<u4")
        if self.step(version, [change], [], 0).applied != 1:
            return False
        if self.df_version == version:  # the counters were at the version decided on: this commit's entry is next
            if len(counted):
                self.df.add(counted)
            self.df_version = version + 1
            self.save_snapshot_if_due()
        return True

    # --- batches: decisions for several articles per round trip (``StoryAssigner.assign_many``) ---

    def read_many(self, article_ids: list[str], duplicates: list[str | None]) -> BatchRead:
        """What the state holds for a batch of articles, at one version: their answers, their originals'
        stories; this worker's counters brought to that version (they must count nothing ahead)."""
        for _ in range(3):
            got = self._call(self._read, [self.prefix, self.df_version, len(article_ids), *article_ids,
                                          *(d or "" for d in duplicates)])
            version, docs, newest, snapshot, answers, originals = got[:6]
            if not self._follow_log(snapshot, got[6:]):
                continue
            self.df_version = int(version)
            newest_s = _text(newest)
            return BatchRead(int(version), int(docs), float(newest_s) if newest_s else None, answers,
                             [None if o is None else (_text(o[0]), o[1]) for o in originals])
        raise TemporaryFailure("stories state: the document frequencies' snapshot kept moving")

    def step(self, version: int, changes: list[Change], queries: list[list[int]], limit: int) -> Step:
        """Commit ``changes`` (decided one after the other from ``version``) and find the candidates of
        ``queries`` after them (see ``_STEP``). The counters of this worker are not touched but for
        their version: the caller counted the applied changes' terms ahead (``df.add``)."""
        args: list = [self.prefix, version, len(changes), changes[0].posting_size if changes else 0,
                      changes[0].answer_seconds if changes else 0, limit]
        for c in changes:
            args += [c.article_id, c.answer, c.story_id, c.story, _number(c.last_seen), _number(c.newest),
                     _number(_expire_before(c)), _terms(c.index_add), _terms(c.index_remove),
                     np.asarray(c.df_terms, dtype="<u4").tobytes(), _terms(c.query), c.original]
        args += [_query(q) for q in queries]
        got = self._call(self._step, args)
        applied = int(got[0])
        if applied < 0:
            return Step(-1, version, [], [], [])
        found = [[_text(i) for i in ids] for ids in got[4:]]
        gone_terms = [int(t) for t in _text(got[2]).split()]
        return Step(applied, int(got[1]), gone_terms, [_text(i) for i in got[3]], found)

    def counted_ahead(self, version: int) -> None:
        """The counters (this worker counted the terms of its applied changes ahead) are at ``version``."""
        self.df_version = version

    def stories(self, story_ids: list[str]) -> list[bytes | None]:
        """The encoded stories of these ids (None: none), in one read."""
        if not story_ids:
            return []
        return self._call(lambda keys, args: self.client.mget(args), [f"{self.prefix}:s:{sid}" for sid in story_ids])

    def save_snapshot_if_due(self) -> None:
        """Save the counters as a snapshot when ``snapshot_every`` versions passed since the last
        (they must count nothing ahead of ``df_version``)."""
        if self.df_version - self.snapshot_version >= self.snapshot_every:
            if self._call(self._save, [self.prefix, self.df_version, self.df.encode(), self.log_margin]):
                self.snapshots_saved += 1
            self.snapshot_version = self.df_version

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
