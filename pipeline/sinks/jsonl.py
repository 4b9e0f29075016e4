"""JSONL sink: one record per line, each record id at most once, safe with several writers.

Writers take an exclusive ``flock`` on the file, first read what other writers appended since
their last look (so they know every id in the file), append only unseen records in one
``write`` call, ``fsync``, and release. A line cut short by a crash is truncated away on the next
write (its record was not acknowledged, so it comes again).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import orjson


class JsonlSink:
    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.name = f"jsonl:{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._ids: set[str] = set()
        self._pos = 0  # bytes of the file already read into _ids

    def _catch_up(self) -> None:
        """Read lines appended since the last look (by any writer); drop a torn last line."""
        size = os.fstat(self._fd).st_size
        if size <= self._pos:
            return
        chunk = os.pread(self._fd, size - self._pos, self._pos)
        end = chunk.rfind(b"\n") + 1
        for line in chunk[:end].splitlines():
            if not line.strip():
                continue
            try:
                self._ids.add(orjson.loads(line)["id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # not ours to judge; keep the line
        if end < len(chunk):  # a writer died mid-line: we hold the lock, nobody is writing now
            os.ftruncate(self._fd, self._pos + end)
        self._pos += end

    def write(self, records: list[dict[str, Any]]) -> int:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._catch_up()
            lines: list[bytes] = []
            new_ids: set[str] = set()
            for record in records:
                if record["id"] in self._ids or record["id"] in new_ids:
                    continue
                new_ids.add(record["id"])
                lines.append(orjson.dumps(record) + b"\n")
            if lines:
                data = b"".join(lines)
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                os.fsync(self._fd)
                self._pos += len(data)
                self._ids.update(new_ids)
            return len(lines)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __contains__(self, record_id: str) -> bool:
        return record_id in self._ids

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
