"""Where the stories live: in memory (one process) or in Redis (shared by every stories worker).

Both keep the same things and follow the same steps, so they give the same answers:

- a version, moved by every commit: a decision is committed only if the version it was made at is
  still the current one (optimistic concurrency: else the worker reads again and decides again),
  so the decisions form one sequence whatever worker makes which;
- the number of articles counted and, per hashed term id, how many of them contain it (document
  frequencies for the idf; in Redis one string of 4-byte counters, read and added to with
  BITFIELD);
- each story, encoded by the model (centroid, summary), under its id;
- an inverted index: per term id, the stories that have it among their heaviest terms, each
  scored by the version that last changed it; only the ``posting_size`` most recent are kept;
- the stories with dates by their last article's time: after each commit the oldest stories last
  seen more than ``expire_seconds`` before the newest article are deleted (a few per commit);
- the answer given to each article, kept ``answer_seconds`` (wall clock), for redeliveries.

Redis keys under the prefix ``ns``: ``ns:meta`` (hash: v, docs, newest), ``ns:df`` (counters),
``ns:s:<story>``, ``ns:p:<term>`` (sorted sets), ``ns:live`` (sorted set), ``ns:a:<article>``.
"""

from __future__ import annotations

import heapq
import time
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import orjson

from pipeline.records import TemporaryFailure

EXPIRE_PER_COMMIT = 8  # stories deleted at most per commit (the oldest first)
DF_ARRAY_BITS = 24  # the memory state counts term ids below 2**24 in an array of 4-byte counters (a dict above)
BITFIELD_CHUNK = 500  # counters read or added per BITFIELD call inside a script


@dataclass(frozen=True)
class View:
    """What the state held for one article at one version: the answer it was given already (then
    nothing else is read), the articles counted, the newest article's time, the document frequency
    of each of its terms, and its original's story when it is a near duplicate."""

    answer: dict | None
    version: int
    docs: int
    newest: float | None
    df: dict[int, int]
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
    df_terms: list[int]
    newest: float | None
    posting_size: int
    expire_seconds: float
    answer_seconds: int


class StoryState(Protocol):
    """The shared state of the stories stage (see the module's docstring)."""

    def begin(self, article_id: str, terms: list[int], duplicate_of: str | None) -> View:
        """The state as it stands for this article (one consistent read)."""

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
    return orjson.loads(raw)["p"]


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

    def begin(self, article_id: str, terms: list[int], duplicate_of: str | None) -> View:
        answer = self._answer(article_id)
        if answer is not None:
            return View(orjson.loads(answer), self.version, self.docs, self.newest, {}, None)
        original = None
        if duplicate_of:
            raw = self._answer(duplicate_of)
            if raw is not None:
                original = self.stories.get(orjson.loads(raw)["id"])
        df = {} if original is not None else self.df.of(terms)
        return View(None, self.version, self.docs, self.newest, df, original)

    def candidates(self, query: list[int], limit: int) -> tuple[int, list[bytes]]:
        score: dict[str, int] = {}
        seq: dict[str, int] = {}
        for rank, term in enumerate(query):
            for story_id, story_seq in self.postings.get(term, {}).items():
                score[story_id] = score.get(story_id, 0) + len(query) - rank
                seq[story_id] = story_seq
        best = sorted(score, key=lambda s: (-score[s], -seq[s]))[:limit]
        return self.version, [self.stories[s] for s in best if s in self.stories]

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
            posting[sid] = self.version
            extra = len(posting) - change.posting_size
            if extra == 1:  # the usual case: one story more than kept
                del posting[min(posting.items(), key=_posting_order)[0]]
            elif extra > 1:
                for story_id, _ in sorted(posting.items(), key=_posting_order)[:extra]:
                    del posting[story_id]
        for term in change.index_remove:
            self.postings.get(term, {}).pop(sid, None)
        if change.df_terms:
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


def _posting_order(kv: tuple[str, int]) -> tuple[int, bytes]:
    return kv[1], kv[0].encode()


class _Counts:
    """Document frequencies of term ids: 4-byte counters in an array for ids below
    ``2**DF_ARRAY_BITS`` (grown as ids come), a dict for larger ids."""

    def __init__(self) -> None:
        self.small = array("I")
        self.large: dict[int, int] = {}

    def of(self, terms: list[int]) -> dict[int, int]:
        small, n, large = self.small, len(self.small), self.large
        if not terms or max(terms) < n:
            return {t: small[t] for t in terms}
        return {t: small[t] if t < n else large.get(t, 0) for t in terms}

    def get(self, term: int, default: int = 0) -> int:
        if term < len(self.small):
            return self.small[term]
        return self.large.get(term, default)

    def add(self, terms: list[int]) -> None:
        small, cap = self.small, 1 << DF_ARRAY_BITS
        top = max(terms)
        if len(small) <= top and len(small) < cap:  # grown to cover every id below the cap it meets
            small.frombytes(bytes(4 * (min(max(1 << top.bit_length(), 1 << 16), cap) - len(small))))
        n = len(small)
        if top < n:  # the usual case (a count cannot reach 2**32 in one process's lifetime)
            for t in terms:
                small[t] += 1
            return
        for t in terms:
            if t < n:
                small[t] += 1
            else:
                self.large[t] = self.large.get(t, 0) + 1


# ARGV: prefix, article id, its original's id ('' if none), its term ids (one argument: decimal
# numbers separated by spaces, far cheaper for the client to send than one argument each). Returns the answer
# given to the article already (or nil), the version, the articles counted, the newest time ('' if
# none), the original's story (or nil), then the document frequency of each term (none when the
# answer or the original's story was found).
_BEGIN = """
local ns = ARGV[1]
local m = redis.call('HMGET', ns .. ':meta', 'v', 'docs', 'newest')
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
local args = {}
for term in string.gmatch(ARGV[4], '%d+') do
  args[#args + 1] = 'GET'; args[#args + 1] = 'u32'; args[#args + 1] = '#' .. term
  if #args == 3 * {CHUNK} then
    for _, count in ipairs(redis.call('BITFIELD', ns .. ':df', unpack(args))) do out[#out + 1] = count end
    args = {}
  end
end
if #args > 0 then
  for _, count in ipairs(redis.call('BITFIELD', ns .. ':df', unpack(args))) do out[#out + 1] = count end
end
return out
""".replace("{CHUNK}", str(BITFIELD_CHUNK))

# ARGV: prefix, limit, then the query's term ids, first the heaviest. Returns the version, then
# the encoded stories indexed under the most query terms (rank-weighted; ties: most recent).
_CANDIDATES = """
local ns = ARGV[1]
local limit = tonumber(ARGV[2])
local n = #ARGV - 2
local score, seq, order = {}, {}, {}
for i = 3, #ARGV do
  local members = redis.call('ZRANGE', ns .. ':p:' .. ARGV[i], 0, -1, 'WITHSCORES')
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
# number of index terms to add, number to remove, then those term ids, then the document frequency
# terms (one argument, separated by spaces). 1 if committed, 0 if the version moved (nothing written).
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
local i = 15
for _ = 1, tonumber(ARGV[13]) do
  local key = ns .. ':p:' .. ARGV[i]
  redis.call('ZADD', key, v, sid)
  local extra = redis.call('ZCARD', key) - size
  if extra > 0 then redis.call('ZREMRANGEBYRANK', key, 0, extra - 1) end
  i = i + 1
end
for _ = 1, tonumber(ARGV[14]) do
  redis.call('ZREM', ns .. ':p:' .. ARGV[i], sid)
  i = i + 1
end
local args = {'OVERFLOW', 'SAT'}
for term in string.gmatch(ARGV[i] or '', '%d+') do
  args[#args + 1] = 'INCRBY'; args[#args + 1] = 'u32'; args[#args + 1] = '#' .. term; args[#args + 1] = 1
  if #args == 2 + 4 * {CHUNK} then
    redis.call('BITFIELD', ns .. ':df', unpack(args))
    args = {'OVERFLOW', 'SAT'}
  end
end
if #args > 2 then redis.call('BITFIELD', ns .. ':df', unpack(args)) end
if ARGV[12] == '1' then redis.call('HINCRBY', meta, 'docs', 1) end
if ARGV[9] ~= '' then redis.call('HSET', meta, 'newest', ARGV[9]) end
if ARGV[10] ~= '' then
  local old = redis.call('ZRANGEBYSCORE', ns .. ':live', '-inf', '(' .. ARGV[10], 'LIMIT', 0, {EXPIRE})
  for _, id in ipairs(old) do
    local story = redis.call('GET', ns .. ':s:' .. id)
    if story then
      for _, term in ipairs(cjson.decode(story)['p']) do
        redis.call('ZREM', ns .. ':p:' .. string.format('%d', term), id)
      end
    end
    redis.call('DEL', ns .. ':s:' .. id)
    redis.call('ZREM', ns .. ':live', id)
  end
end
redis.call('HSET', meta, 'v', v)
return 1
""".replace("{CHUNK}", str(BITFIELD_CHUNK)).replace("{EXPIRE}", str(EXPIRE_PER_COMMIT))


def _number(value: float | None) -> str:
    """A float as Redis reads it back exactly ('' for none)."""
    return "" if value is None else repr(float(value))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStoryState:
    """The state in Redis, shared by every stories worker: one script reads, one commits."""

    def __init__(self, client, prefix: str = "news-pipeline:stories"):
        self.client = client
        self.prefix = prefix
        self._begin = client.register_script(_BEGIN)
        self._candidates = client.register_script(_CANDIDATES)
        self._commit = client.register_script(_COMMIT)

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

    def begin(self, article_id: str, terms: list[int], duplicate_of: str | None) -> View:
        got = self._call(self._begin, [self.prefix, article_id, duplicate_of or "", " ".join(map(str, terms))])
        answer, version, docs, newest, original = got[:5]
        newest_s = _text(newest)
        return View(
            answer=orjson.loads(answer) if answer is not None else None, version=int(version), docs=int(docs),
            newest=float(newest_s) if newest_s else None,
            df=dict(zip(terms, map(int, got[5:]), strict=True)) if len(got) > 5 else {},
            original=original)

    def candidates(self, query: list[int], limit: int) -> tuple[int, list[bytes]]:
        got = self._call(self._candidates, [self.prefix, limit, *query])
        return int(got[0]), list(got[1:])

    def commit(self, version: int, change: Change) -> bool:
        args = [self.prefix, version, change.article_id, change.answer, change.answer_seconds, change.story_id,
                change.story, _number(change.last_seen), _number(change.newest), _number(_expire_before(change)),
                change.posting_size, 1 if change.df_terms else 0, len(change.index_add), len(change.index_remove),
                *change.index_add, *change.index_remove, " ".join(map(str, change.df_terms))]
        return bool(self._call(self._commit, args))

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
