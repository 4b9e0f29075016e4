"""JSONL sink: rolled files of one JSON record per line, in a folder.

Finished files (``enriched-p<partition>-<opened>.jsonl``) are complete and never change again:
they appear by an atomic rename of the part file the sink runner staged, so anything reading ``*.jsonl`` while the
pipeline runs sees whole files only. Open files end in ``.part``. With the stories stage, the story
updates of a file's records (``records.STORY_UPDATE_FIELDS``, as on ``topics.stories``) go to
``stories/`` under the same name, written before the records' file appears.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from pipeline.sinks.base import FileSink
from pipeline.sinks.staging import PART_SUFFIX, fsync_dir


class JsonlSink(FileSink):
    kind = "jsonl"

    def finish(self, part: Path) -> list[Path]:
        final = part.with_name(part.name[: -len(PART_SUFFIX)])
        with open(part, "rb") as fh:
            os.fsync(fh.fileno())
            empty = fh.seek(0, os.SEEK_END) == 0
        if empty:
            part.unlink()
            return []
        written = []
        updates = self.stories_of(part)
        if updates:  # first, so that a crash before the rename writes them again, the same
            stories = self.stories_dir() / final.name
            stories.parent.mkdir(parents=True, exist_ok=True)
            tmp = stories.with_name(f".{stories.name}.tmp")
            with open(tmp, "wb") as fh:
                fh.write(b"".join(orjson.dumps(u) + b"\n" for u in updates))
                os.fsync(fh.fileno())
            os.replace(tmp, stories)
            fsync_dir(stories.parent)
            written.append(stories)
        os.replace(part, final)
        fsync_dir(part.parent)
        return [final, *written]


def read_records(folder: str | os.PathLike[str], include_open: bool = False):
    """Every record in a JSONL sink folder, finished files first (then open part files)."""
    import orjson

    folder = Path(folder)
    paths = sorted(folder.glob("*.jsonl"))
    if include_open:
        paths += sorted(folder.glob(f"*.jsonl{PART_SUFFIX}"))
    for path in paths:
        for line in path.read_bytes().splitlines():
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a line cut short in an open part file
