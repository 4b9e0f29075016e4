"""What every sink is. A sink knows nothing of Kafka, partitions or offsets: those live in the
sink runner (``pipeline.sinks.runner``), which gives each sink batches of records.

There are two kinds:

- :class:`Sink` writes a batch to its destination and returns when the batch is durable there
  (PostgreSQL: one transaction). The destination keeps one copy per record id by itself.
- :class:`FileSink` makes files. The runner stages its records in append-only part files (one per
  partition, each record id once, see ``pipeline.sinks.staging``), so a batch is durable when the
  part file is fsynced; once every record in a part file is acknowledged upstream, the runner asks
  the sink to :meth:`FileSink.finish` it into its final form (a renamed JSONL file, Parquet files).

A sink of your own is a subclass of either, in any importable module, with a classmethod
``open(location, settings)``, plus one line of configuration: ``sink.plugins = {KIND =
"module:Class"}`` (``tests/toy_sink.py`` is one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Sink:
    """Writes batches of records; a batch is durable when :meth:`write` returns.

    The worker opens a sink in one thread and writes (and closes) it from another, one call at a
    time: a client that binds itself to its thread must be told otherwise (or connect lazily)."""

    kind: str = ""
    name: str = ""  # safe to print (no password)

    @classmethod
    def open(cls, location: str, settings: Any) -> Sink:
        """The sink a target ``KIND:LOCATION`` names (``settings``: the ``[sink]`` settings)."""
        raise NotImplementedError

    @classmethod
    def check(cls, location: str, settings: Any) -> list[str]:
        """Problems that would stop the sink from working, one line each, found before anything
        starts (``pipeline run``, ``pipeline doctor``): a missing location, an unreachable
        server. The default finds none."""
        return []

    def write(self, records: list[dict[str, Any]]) -> set[str]:
        """Durably write the records; return the ids that were not there before (the others were
        skipped, or written again in place). Raise ``TemporaryFailure`` when the destination is
        unavailable; nothing of a failed call may stay half-written."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class FileSink:
    """Turns finished part files (JSON lines, one record per line, each id once) into output files
    in :attr:`directory`. Part files are kept in :meth:`staging_dir` (the directory by default)."""

    kind: str = ""
    name: str = ""
    directory: Path

    @classmethod
    def open(cls, location: str, settings: Any) -> FileSink:
        if not location:
            raise ValueError(f"{cls.kind} sink needs a folder: {cls.kind}:FOLDER")
        return cls(location)

    @classmethod
    def check(cls, location: str, settings: Any) -> list[str]:
        """A folder is given, and it is (or can be made) a writable folder."""
        if not location:
            return [f"{cls.kind} sink needs a folder: {cls.kind}:FOLDER"]
        folder = Path(location)
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            return [f"{cls.kind} sink folder {location}: {existing} is not a folder"]
        if not os.access(existing, os.W_OK | os.X_OK):
            return [f"{cls.kind} sink folder {location}: {existing} is not writable"]
        return []

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.name = f"{self.kind}:{self.directory}"

    def staging_dir(self) -> Path:
        return self.directory

    def finish(self, part: Path) -> list[Path]:
        """Make the output of a closed part file and remove the part file; return the files made.
        Called again on the same part file after a crash, it makes the same files (nothing
        doubles). An ``OSError`` must leave the part file whole."""
        raise NotImplementedError

    def story_updates(self, part: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The story updates of a part file's records (those that started or joined a story), as
        ``topics.stories`` carries them; ``written_at`` is the part file's last change, so that
        finishing it again after a crash writes the same lines."""
        from datetime import UTC, datetime

        from pipeline.records import story_update

        written_at = datetime.fromtimestamp(part.stat().st_mtime, UTC)
        return [u for r in records if (u := story_update(r, written_at)) is not None]

    def stories_of(self, part: Path, data: bytes | None = None) -> list[dict[str, Any]]:
        """:meth:`story_updates` of a part file (``data``: its bytes, when read already; only lines
        holding a story are parsed)."""
        import orjson

        data = part.read_bytes() if data is None else data
        if b'"story":{' not in data:
            return []
        return self.story_updates(part, [orjson.loads(line) for line in data.splitlines() if b'"story":{' in line])

    def stories_dir(self) -> Path:
        """Where the story updates of finished files go (one file per finished part file, same name)."""
        return self.directory / "stories"

    def close(self) -> None:
        """Release what the sink holds."""
