"""Article versions: the same URL fetched again with other main text is a new version.

News articles change after publication. For every record with a URL (its ``canonical_url``, else
its ``url``) the dedup stage asks this index what it knew of that URL, and gives the record a
``version``:

- ``first``: the URL was not seen before (within the horizon); ``number`` 1;
- ``unchanged``: the same main text as the newest version (``previous_id``), a refetch;
  ``number`` stays;
- ``changed``: other text: ``number`` + 1, ``previous_id``, and what changed: ``title_changed``,
  ``paragraphs_added``, ``paragraphs_removed``, ``paragraphs_edited`` (paragraphs are compared
  by their hashes, in order, with difflib's matching after the common head and tail are set
  aside).

The index keeps, per URL, the newest version: its id, number, a hash of its text and of its
title, its paragraphs' hashes, and the version before it (so a record delivered again gets the
same answer as the first time). In Redis (shared by every dedup worker; one Lua call per record
makes the read and the write one step, whatever worker asks) or in memory (``pipeline enrich``).
Entries expire after the dedup horizon.
"""

from __future__ import annotations

import difflib
import hashlib
from array import array
from typing import Any

import orjson
import xxhash

# Compare-and-set: KEYS[1] the URL's key; ARGV: the state written last as the caller read it
# (its write number ``s``, 0 for none), the new state (JSON), the horizon in seconds. 1 if written.
_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
local s = 0
if cur then s = cjson.decode(cur)['s'] or 0 end
if s ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
# The same for many URLs at once: KEYS the URLs' keys; ARGV: the horizon, then per key its write
# number as read and its new state. Returns the positions (1-based) of the keys not written.
_SCRIPT_MANY = """
local failed = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  local s = 0
  if cur then s = cjson.decode(cur)['s'] or 0 end
  if s == tonumber(ARGV[2 * i]) then
    redis.call('SET', key, ARGV[2 * i + 1], 'EX', ARGV[1])
  else
    failed[#failed + 1] = i
  end
end
return failed
"""
KNOWN = 32  # the newest ids of a URL whose answers are kept (a record delivered again gets its own)


_JSON_SAFE = (1 << 53) - 1  # hashes stay exact integers in JSON readers that use doubles (Lua's cjson)


def _hash(text: str) -> int:
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass")) & _JSON_SAFE


def state_of(record: dict[str, Any]) -> dict[str, Any]:
    """What a later version is compared with: the hash of each paragraph (whitespace runs count as
    one space), of their sequence (the text), and of the title."""
    text = record.get("text") or ""
    hashes = [_hash(" ".join(words)) for line in text.split("\n") if (words := line.split())]
    return {"id": record["id"], "h": xxhash.xxh3_64_intdigest(array("q", hashes).tobytes()) & _JSON_SAFE,
            "t": _hash(record.get("title") or ""), "p": hashes}


def _changes(before: list, after: list) -> tuple[int, int, int]:
    """Paragraphs added, removed and edited from ``before`` to ``after`` (lists of hashes)."""
    head = 0
    while head < min(len(before), len(after)) and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < min(len(before), len(after)) - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    old, new = before[head:len(before) - tail], after[head:len(after) - tail]
    added = removed = edited = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "insert":
            added += j2 - j1
        elif op == "delete":
            removed += i2 - i1
        elif op == "replace":
            edited += min(i2 - i1, j2 - j1)
            added += max(0, (j2 - j1) - (i2 - i1))
            removed += max(0, (i2 - i1) - (j2 - j1))
    return added, removed, edited


def verdict(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """The version of ``new`` given the newest version ``old`` before it (None: the first)."""
    if old is None:
        return {"number": 1, "previous_id": None, "status": "first"}
    number = int(old.get("n") or 1)
    if old["h"] == new["h"]:
        return {"number": number, "previous_id": old["id"], "status": "unchanged"}
    added, removed, edited = _changes(list(old.get("p") or []), new["p"])  # cjson writes [] as {}
    return {"number": number + 1, "previous_id": old["id"], "status": "changed",
            "title_changed": old.get("t") != new["t"], "paragraphs_added": added,
            "paragraphs_removed": removed, "paragraphs_edited": edited}


def url_key(record: dict[str, Any]) -> str | None:
    url = record.get("canonical_url") or record.get("url")
    return url if isinstance(url, str) and url else None


class VersionIndex:
    """Per URL, the newest version and the answers given to its newest records. ``client``: a
    redis client (None: in memory). Read, decide, then write only if nobody wrote in between
    (compare-and-set on a write number), else read again: several workers see one sequence."""

    def __init__(self, client=None, namespace: str = "news-pipeline", horizon_s: int = 30 * 86400):
        self.client = client
        self.namespace = namespace
        self.horizon_s = int(horizon_s)
        self._memory: dict[str, bytes] = {}
        self._script = client.register_script(_SCRIPT) if client is not None else None
        self._script_many = client.register_script(_SCRIPT_MANY) if client is not None else None

    def _key(self, url: str) -> str:
        return f"{self.namespace}:version:{hashlib.blake2b(url.encode(), digest_size=16).hexdigest()}"

    def _read(self, key: str) -> bytes | None:
        return self.client.get(key) if self.client is not None else self._memory.get(key)

    def _write(self, key: str, seen: int, state: bytes) -> bool:
        if self._script is not None:
            return bool(self._script(keys=[key], args=[seen, state, self.horizon_s]))
        current = self._memory.get(key)
        if (orjson.loads(current)["s"] if current else 0) != seen:
            return False
        self._memory[key] = state
        return True

    @staticmethod
    def _step(stored: dict[str, Any] | None, new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The answer for ``new`` given the URL's entry ``stored``, and the entry to write (None:
        nothing to write, the record was answered before)."""
        known = dict(stored.get("known") or {}) if stored else {}
        if new["id"] in known:  # this record delivered again: the answer it had
            return known[new["id"]], None
        newest = stored.get("newest") if stored else None
        answer = verdict(new, newest)
        known[new["id"]] = answer
        while len(known) > KNOWN:
            known.pop(next(iter(known)))
        if answer["status"] != "unchanged":
            newest = {**new, "n": answer["number"]}
        return answer, {"s": (stored["s"] if stored else 0) + 1, "newest": newest, "known": known}

    def version(self, record: dict[str, Any]) -> dict[str, Any] | None:
        url = url_key(record)
        if url is None:
            return None
        new = state_of(record)
        key = self._key(url)
        for _ in range(20):
            raw = self._read(key)
            stored = orjson.loads(raw) if raw else None
            answer, entry = self._step(stored, new)
            if entry is None or self._write(key, entry["s"] - 1, orjson.dumps(entry)):
                return answer
        raise RuntimeError(f"versions of {url}: the entry kept changing under 20 tries")

    def version_many(self, records: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """:meth:`version` of each record, in order, with one read and one compare-and-set for the
        whole batch in Redis (the records of a URL whose entry another worker changed meanwhile
        are asked again one by one, in order)."""
        if self.client is None:
            return [self.version(r) for r in records]
        answers: list[dict[str, Any] | None] = [None] * len(records)
        by_key: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for i, record in enumerate(records):
            url = url_key(record)
            if url is not None:
                by_key.setdefault(self._key(url), []).append((i, state_of(record)))
        if not by_key:
            return answers
        keys = list(by_key)
        read = self.client.mget(keys)
        writes: list[tuple[str, int, bytes]] = []
        for key, raw in zip(keys, read, strict=True):
            stored = orjson.loads(raw) if raw else None
            seen = stored["s"] if stored else 0
            for i, new in by_key[key]:
                answers[i], entry = self._step(stored, new)
                stored = entry or stored
            if stored is not None and stored["s"] != seen:
                writes.append((key, seen, orjson.dumps(stored)))
        if writes:
            args: list = [self.horizon_s]
            for _, seen, state in writes:
                args += [seen, state]
            for position in self._script_many(keys=[k for k, _, _ in writes], args=args):
                key = writes[int(position) - 1][0]
                for i, _ in by_key[key]:  # the entry moved under us: ask again, one by one
                    answers[i] = self.version(records[i])
        return answers

    def close(self) -> None:
        pass
