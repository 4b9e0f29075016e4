"""JSONL sink: rolled files of one JSON record per line, in a folder.

Finished files (``enriched-p<partition>-<opened>.jsonl``) are complete and never change again:
they appear by an atomic rename of the part file the sink runner staged, so anything reading ``*.jsonl`` while the
pipeline runs sees whole files only. Open files end in ``.part``.
"""

from __future__ import annotations

import os
from pathlib import Path

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
        os.replace(part, final)
        fsync_dir(part.parent)
        return [final]


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
