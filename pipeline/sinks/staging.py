"""Part files per partition for the file sinks, written exactly once per record id.

Each partition a sink worker holds has one open *part file* (JSON lines, ``*.part``). Records are
appended to it in one ``write`` + ``fsync`` per batch. When the file is big or old enough it is
*finished* (the file sink turns it into its final form: renamed ``.jsonl``, or Parquet files) — but
only once the consumer has committed every offset the file holds, so a message redelivered after a
crash of the sink can only meet the part file it is already in.

A record can also come again as a *new message*: an upstream worker that crashed before its commit
processes its batch again, or a crawler sends a page twice. So each partition also keeps an *id
log* (``_ids/p<partition>.ids``: 16 bytes per record written, appended and fsynced with each
batch); the newest ``id_window`` ids of it are held in memory, and a record whose id is there is not
written again. (An id older than the window, meeting itself again, would be written twice; the
window is sized for upstream restarts of minutes, not days. PostgreSQL has no such limit.)

A worker that takes over a partition (after a crash or a rebalance) continues that partition's
part file: it reads the ids in it, truncates a line cut short by the crash, and appends. An
exclusive ``flock`` keeps two processes from writing one part file.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.records import TemporaryFailure, id_key
from pipeline.sinks.base import FileSink

PART_SUFFIX = ".part"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IdLog:
    """The ids written for one partition: an append-only file of 16-byte keys, and its newest
    ``window`` keys in memory.

    The window is full from the start: what the file does not fill is taken by placeholder keys
    (17 bytes, so never equal to a 16-byte id key), which the first ids written push out. The
    memory a partition takes is reached when it opens and stays there however long the sink runs
    (a window that filled up as records came would grow for hours: 100,000 ids a partition at 50
    records/s over 4 partitions take 2.2 hours)."""

    KEY = 16

    def __init__(self, path: Path, window: int):
        self.path = path
        self.window = window
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(self.fd).st_size
        size -= size % self.KEY  # a key cut short by a crash is ignored (its batch comes again)
        start = max(0, size - window * self.KEY)
        data = os.pread(self.fd, size - start, start)
        held = [data[i:i + self.KEY] for i in range(0, len(data), self.KEY)]
        placeholders = (b"\x00" + n.to_bytes(self.KEY, "big") for n in range(max(0, window - len(held))))
        self.order: deque[bytes] = deque(placeholders)
        self.keys: set[bytes] = set(self.order)
        self._remember(held)

    def _remember(self, keys: list[bytes]) -> None:
        for key in keys:
            if key not in self.keys:
                self.keys.add(key)
                self.order.append(key)
        while len(self.order) > self.window:
            self.keys.discard(self.order.popleft())

    def __contains__(self, key: bytes) -> bool:
        return key in self.keys

    def add(self, keys: list[bytes]) -> None:
        if not keys:
            return
        size = os.fstat(self.fd).st_size
        if size % self.KEY:
            os.ftruncate(self.fd, size - size % self.KEY)
        data = b"".join(keys)
        written = 0
        while written < len(data):
            written += os.write(self.fd, data[written:])
        os.fsync(self.fd)
        self._remember(keys)
        if size + len(data) > 4 * self.window * self.KEY:
            self._compact()

    def _compact(self) -> None:
        """Keep only the window's worth of keys on disk."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(key for key in self.order if len(key) == self.KEY))  # no placeholders
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDWR | os.O_APPEND)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class PartFile:
    """The open part file of one partition."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise TemporaryFailure(f"{path.name} is held by another sink process") from None
        self.ids: set[str] = set()
        self.records = 0
        self.size = 0
        self.opened = time.monotonic()
        self._recover()

    def _recover(self) -> None:
        data = os.pread(self.fd, os.fstat(self.fd).st_size, 0)
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line cut short by a crash: its record was not acknowledged
            os.ftruncate(self.fd, end)
            os.fsync(self.fd)
        for line in data[:end].splitlines():
            try:
                self.ids.add(orjson.loads(line)["id"])
                self.records += 1
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
        self.size = end

    def append(self, records: list[dict[str, Any]]) -> set[str]:
        """Append the records (the caller has dropped those written before); skip ids already here.
        Return the ids appended. All or nothing: a failed write (a full disk) is cut back to the
        last complete record before the error is raised, so a retry never follows half a line."""
        lines, new = [], set()
        for record in records:
            rid = record["id"]
            if rid in self.ids or rid in new:
                continue
            new.add(rid)
            lines.append(orjson.dumps(record) + b"\n")
        if not lines:
            return set()
        data = memoryview(b"".join(lines))
        written = 0
        try:
            while written < len(data):
                written += os.write(self.fd, data[written:])
            os.fsync(self.fd)
        except OSError:
            os.ftruncate(self.fd, self.size)  # shrinking needs no space; on failure the next open cuts it
            raise
        self.ids |= new
        self.records += len(lines)
        self.size += len(data)
        return new

    def close(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


class Staging:
    """The part files of one file sink, per partition, rolled by size and age.

    ``write`` appends a partition's records to its part file (each id once, see :class:`IdLog`);
    ``due`` names the partitions whose file is big or old enough; ``finish`` closes their files
    and has the sink make its output of each (the caller made sure their offsets are committed);
    ``release`` lets partitions go without finishing (their next owner continues the files).
    """

    def __init__(self, sink: FileSink, roll_bytes: int, roll_seconds: float, id_window: int = 100_000):
        self.sink = sink
        self.directory = sink.directory
        self.staging = sink.staging_dir()
        self.staging.mkdir(parents=True, exist_ok=True)
        self.roll_bytes = roll_bytes
        self.roll_seconds = roll_seconds
        self.id_window = id_window
        self.name = sink.name
        self._open: dict[int, PartFile] = {}
        self._ids: dict[int, IdLog] = {}
        self._finish_leftovers()

    # --- writing ---------------------------------------------------------------------------------

    def _part_path(self, partition: int) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        return self.staging / f"enriched-p{partition:03d}-{stamp}.jsonl{PART_SUFFIX}"

    def _existing_part(self, partition: int) -> Path | None:
        parts = sorted(self.staging.glob(f"enriched-p{partition:03d}-*.jsonl{PART_SUFFIX}"))
        return parts[-1] if parts else None

    def _writer(self, partition: int) -> tuple[PartFile, IdLog]:
        ids = self._ids.get(partition)
        if ids is None:
            ids = IdLog(self.directory / "_ids" / f"p{partition:03d}.ids", self.id_window)
            self._ids[partition] = ids
        part = self._open.get(partition)
        if part is None:
            path = self._existing_part(partition) or self._part_path(partition)
            part = PartFile(path)
            # a crash between the part file's fsync and the id log's leaves ids only in the part file
            ids.add([key for key in {id_key(rid)[0] for rid in part.ids} if key not in ids])
            self._open[partition] = part
        return part, ids

    def write(self, records: list[dict[str, Any]], partition: int) -> set[str]:
        """Append the records not written before to the partition's part file, durably; return
        their ids."""
        try:
            part, ids = self._writer(partition)
            fresh: dict[bytes, dict[str, Any]] = {}
            for record in records:
                key = id_key(record["id"])[0]
                if key not in ids and key not in fresh:
                    fresh[key] = record
            written = part.append(list(fresh.values()))
            ids.add(list(fresh))
            return written
        except OSError as exc:
            raise TemporaryFailure(f"{self.name}: {exc}") from exc

    def adopt(self, partitions: set[int]) -> None:
        """Open the part files these partitions already have (left by an earlier owner, perhaps
        killed), so they roll and are finished like this worker's own, even if the partition gets
        no record again: its ids join the id log first, so a record of it delivered again is
        skipped after the file is finished."""
        try:
            for partition in sorted(partitions):
                if partition not in self._open and self._existing_part(partition) is not None:
                    self._writer(partition)
        except OSError as exc:
            raise TemporaryFailure(f"{self.name}: {exc}") from exc

    # --- rolling ---------------------------------------------------------------------------------

    def due(self) -> set[int]:
        now = time.monotonic()
        return {p for p, part in self._open.items()
                if part.records and (part.size >= self.roll_bytes or now - part.opened >= self.roll_seconds)}

    def finish(self, partitions: set[int]) -> list[Path]:
        """Finish these partitions' part files (the caller made sure their offsets are committed)."""
        done: list[Path] = []
        for partition in sorted(partitions):
            part = self._open.pop(partition, None)  # the id log stays open: ids outlive the file
            if part is None:
                path = self._existing_part(partition)
                if path is None:
                    continue
            else:
                part.close()
                path = part.path
            try:
                done.extend(self.sink.finish(path))
            except OSError as exc:
                # the part file stays whole (finishing writes elsewhere, then renames): the next roll,
                # or the next owner of the partition, finishes it; writes go on appending to it
                raise TemporaryFailure(f"{self.name}: finishing {path.name}: {exc}") from exc
        return done

    def release(self, partitions: set[int]) -> None:
        """Stop writing these partitions without finishing their files (another worker continues)."""
        for partition in partitions:
            part = self._open.pop(partition, None)
            if part is not None:
                part.close()
            ids = self._ids.pop(partition, None)
            if ids is not None:
                ids.close()

    def partitions(self) -> set[int]:
        return set(self._open)

    def close(self) -> None:
        self.release(set(self._open) | set(self._ids))

    def _finish_leftovers(self) -> None:
        """Older part files of a partition than its newest cannot get more records: finish them."""
        by_partition: dict[str, list[Path]] = {}
        for path in self.staging.glob(f"enriched-p*-*.jsonl{PART_SUFFIX}"):
            by_partition.setdefault(path.name.split("-")[1], []).append(path)
        for paths in by_partition.values():
            for path in sorted(paths)[:-1]:
                try:
                    with open(path, "rb") as fh:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                self.sink.finish(path)
