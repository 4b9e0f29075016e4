"""``watch:DIR`` (and ``pipeline watch DIR``): a folder watched for new files, each ingested once.

Every ``poll_s`` the folder (and its subfolders) is scanned. A file is read once it has settled
(not modified for ``settle_s``), so a file still being written is left until it is whole; names
that writers use for files in progress (dotfiles, ``*.part``, ``*.tmp``, ``*.crdownload``,
``*.download``) are never read. Pages, text files, JSONL files of raw events and WARC archives
are read as ``pipeline replay`` reads them (``pipeline/sources/files.py``).

Each file is ingested once, across restarts: once every event of a file is durably in the raw
topic (the sender flushes at the file's last event, then acknowledges it), the file's name,
size and modification time are appended to a journal (``sources.watch_state_dir``, one file per
watched folder). A file with the same name but another size or time is new content and is read
again. After a crash in the middle of a file, the file is read again from its start; its events
get the same ids as before (their fetch time is the file's modification time unless they carry
one), so the sink skips what it already wrote.

The folder is polled, not watched with inotify: a scan of a folder of news files is cheap at one
per second, and polling also sees files written over NFS or SMB, which inotify does not.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.sources.base import Source, SourceItem
from pipeline.sources.files import read_file

IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".crdownload", ".download", ".partial")


class WatchedFolderSource(Source):
    """``watch:DIR``: never ends by itself; stops when ``stop`` is set."""

    kind = "watch"
    bounded = False

    @classmethod
    def open(cls, argument: str, settings: Any) -> WatchedFolderSource:
        s = settings.sources
        return cls(argument, s.watch_state_dir, poll_s=s.watch_poll_s, settle_s=s.watch_settle_s)

    def __init__(self, folder: str, state_dir: str, poll_s: float = 1.0, settle_s: float = 2.0):
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise FileNotFoundError(f"no such folder: {folder}")
        self.poll_s = poll_s
        self.settle_s = settle_s
        digest = hashlib.blake2b(str(self.folder).encode(), digest_size=6).hexdigest()
        self.journal = Path(state_dir) / f"{self.folder.name}-{digest}.ingested.jsonl"
        self.done: set[tuple[str, int, int]] = self._read_journal()
        self.tried: set[tuple[str, int, int]] = set()  # read by this process (not again before a restart)
        self.files_read = 0
        self.unjournaled: list[tuple[str, int, int]] = []  # sent, but a failed write kept them out of the journal
        self.skipped: Counter = Counter()  # WARC records that are no HTML page, by why

    # --- the journal of ingested files -----------------------------------------------------------

    def _read_journal(self) -> set[tuple[str, int, int]]:
        done = set()
        if self.journal.exists():
            for line in self.journal.read_bytes().splitlines():
                try:
                    entry = orjson.loads(line)
                    done.add((entry["name"], entry["size"], entry["mtime_ns"]))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a crash: that file is read again
        return done

    def _remember(self, key: tuple[str, int, int]) -> None:
        """Append ``key`` (and any entry a failed write left out) to the journal. A write that fails
        (a full disk) is cut back to the last whole line, so no line is ever half written, and the
        entries wait for the next acknowledgement; ``OSError`` tells the sender."""
        self.unjournaled.append(key)
        self.done.add(key)
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        at = datetime.now(UTC).isoformat(timespec="seconds")
        lines = b"".join(orjson.dumps({"name": k[0], "size": k[1], "mtime_ns": k[2], "at": at}) + b"\n"
                         for k in self.unjournaled)
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            whole = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(lines)
                while view:  # unbuffered: a short write goes on until it fails
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, whole)
                raise
        finally:
            os.close(fd)
        self.unjournaled.clear()

    def acknowledge(self, position: str) -> None:
        name, size, mtime_ns = orjson.loads(position)
        self._remember((name, size, mtime_ns))

    # --- scanning --------------------------------------------------------------------------------

    def ready_files(self, now: float | None = None) -> list[tuple[Path, tuple[str, int, int]]]:
        """Files not ingested yet that have settled, oldest first."""
        now = datetime.now(UTC).timestamp() if now is None else now
        found = []
        for path in self.folder.rglob("*"):
            rel = path.relative_to(self.folder)
            if any(part.startswith(".") for part in rel.parts) or path.name.endswith(IN_PROGRESS_SUFFIXES):
                continue
            try:
                st = path.stat()
            except OSError:  # gone since the listing
                continue
            if not path.is_file():
                continue
            key = (str(rel), st.st_size, st.st_mtime_ns)
            if key in self.done or key in self.tried or now - st.st_mtime < self.settle_s:
                continue
            found.append((st.st_mtime_ns, path, key))
        return [(path, key) for _, path, key in sorted(found)]

    def items(self, after: str | None = None, stop: threading.Event | None = None) -> Iterator[SourceItem]:
        stop = stop or threading.Event()
        while not stop.is_set():
            for path, key in self.ready_files():
                if stop.is_set():
                    return
                yield from self._read(path, key)
            stop.wait(self.poll_s)

    def _read(self, path: Path, key: tuple[str, int, int]) -> Iterator[SourceItem]:
        self.tried.add(key)
        fetched_at = datetime.fromtimestamp(key[2] / 1e9, UTC).isoformat()
        position = orjson.dumps(list(key)).decode()
        last: SourceItem | None = None
        try:
            for item in read_file(path, self.skipped):
                if item.event is not None and not item.event.get("fetched_at"):
                    item.event["fetched_at"] = fetched_at  # the same ids if the file is read again
                if last is not None:
                    yield last
                last = item
        except OSError:  # removed or unreadable since it was listed: tried again at the next scan
            self.tried.discard(key)
            return
        self.files_read += 1
        if last is None:  # nothing to send (an empty file, an archive without pages)
            self._remember(key)
            return
        last.checkpoint = True
        last.position = position
        yield last

    def __str__(self) -> str:
        return f"watch:{self.folder}"
