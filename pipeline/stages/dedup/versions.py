"""Article versions: the same URL fetched again with other main text is a new version.

News articles change after publication. For every record with a URL (its ``canonical_url``, else
its ``url``) the dedup stage asks this index what it knew of that URL, and gives the record a
``version``:

- ``first``: the URL was not seen before (within the horizon); ``number`` 1;
- ``unchanged``: the same main text as the newest version (``previous_id``), a refetch;
  ``number`` stays;
- ``changed``: other text: ``number`` + 1, ``previous_id``, and what changed: ``title_changed``,
  ``paragraphs_added``, ``paragraphs_removed``, ``paragraphs_edited`` (paragraphs are compared
  by their hashes, in order, with difflib's matching).

The index keeps, per URL, the newest version: its id, number, a hash of its text and of its
title, its paragraphs' hashes, and the version before it (so a record delivered again gets the
same answer as the first time). In Redis (shared by every dedup worker; one Lua call per record
makes the read and the write one step, whatever worker asks) or in memory (``pipeline enrich``).
Entries expire after the dedup horizon.
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

import orjson

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
KNOWN = 32  # the newest ids of a URL whose answers are kept (a record delivered again gets its own)


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def state_of(record: dict[str, Any]) -> dict[str, Any]:
    text = record.get("text") or ""
    paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
    return {"id": record["id"], "h": _hash(" ".join(text.split())), "t": _hash(record.get("title") or ""),
            "p": [_hash(p) for p in paragraphs]}


def verdict(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """The version of ``new`` given the newest version ``old`` before it (None: the first)."""
    if old is None:
        return {"number": 1, "previous_id": None, "status": "first"}
    number = int(old.get("n") or 1)
    if old["h"] == new["h"]:
        return {"number": number, "previous_id": old["id"], "status": "unchanged"}
    before = old.get("p") or []  # cjson writes an empty list as {}
    after = new["p"]
    added = removed = edited = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=list(before), b=after, autojunk=False).get_opcodes():
        if op == "insert":
            added += j2 - j1
        elif op == "delete":
            removed += i2 - i1
        elif op == "replace":
            edited += min(i2 - i1, j2 - j1)
            added += max(0, (j2 - j1) - (i2 - i1))
            removed += max(0, (i2 - i1) - (j2 - j1))
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

    def version(self, record: dict[str, Any]) -> dict[str, Any] | None:
        url = url_key(record)
        if url is None:
            return None
        new = state_of(record)
        key = self._key(url)
        for _ in range(20):
            raw = self._read(key)
            stored = orjson.loads(raw) if raw else None
            known = dict(stored.get("known") or {}) if stored else {}
            if new["id"] in known:  # this record delivered again: the answer it had
                return known[new["id"]]
            newest = stored.get("newest") if stored else None
            answer = verdict(new, newest)
            known[new["id"]] = answer
            while len(known) > KNOWN:
                known.pop(next(iter(known)))
            if answer["status"] != "unchanged":
                newest = {**new, "n": answer["number"]}
            seen = stored["s"] if stored else 0
            if self._write(key, seen, orjson.dumps({"s": seen + 1, "newest": newest, "known": known})):
                return answer
        raise RuntimeError(f"versions of {url}: the entry kept changing under 20 tries")

    def close(self) -> None:
        pass
