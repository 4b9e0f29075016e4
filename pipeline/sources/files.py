"""Raw events from files (``FilesSource``, the default source): page files, folders of them, and
JSONL files (or stdin) of raw events.

- ``*.txt`` (and other text files): a rendered-text page -> ``{"text", "source"}``
- ``*.html`` / ``*.htm``: page bytes -> ``{"html_base64", "source"}`` (the clean stage decodes them)
- ``*.jsonl`` / ``*.jsonl.gz`` / ``-`` (stdin): one raw event per line, passed on as they are; a
  line that is not a JSON object is passed on too, as bytes, so the pipeline dead-letters it.
- ``*.warc`` / ``*.warc.gz``: the HTML responses in it (``pipeline/sources/warc.py``)
"""

from __future__ import annotations

import base64
import gzip
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from pipeline.sources.base import Source, SourceItem
from pipeline.sources.warc import is_warc, read_warc

HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
SKIP_NAMES = {".DS_Store"}


def _is_jsonl(path: Path) -> bool:
    suffixes = path.suffixes
    return bool(suffixes) and (suffixes[-1] in JSONL_SUFFIXES or suffixes[-2:] in ([".jsonl", ".gz"],
                                                                                   [".ndjson", ".gz"]))


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.name not in SKIP_NAMES and not child.name.startswith("."):
                yield child
    elif path.is_file():
        yield path
    else:
        raise FileNotFoundError(f"no such file or folder: {path}")


def _jsonl_lines(lines: Iterable[bytes], origin: str) -> Iterator[SourceItem]:
    for number, line in enumerate(lines, 1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        where = f"{origin}:{number}"
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield SourceItem(where, payload=line, position=where)
            continue
        if isinstance(obj, dict):
            yield SourceItem(where, event=obj, position=where)
        else:
            yield SourceItem(where, payload=line, position=where)


def read_file(path: Path, skipped: Counter | None = None) -> Iterator[SourceItem]:
    if is_warc(path):
        yield from read_warc(path, skipped)
        return
    if _is_jsonl(path):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            yield from _jsonl_lines(fh, str(path))
        return
    data = path.read_bytes()
    if path.suffix.lower() in HTML_SUFFIXES:
        yield SourceItem(str(path), event={"html_base64": base64.b64encode(data).decode("ascii"),
                                           "source": str(path)}, position=str(path))
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from pipeline.charset import decode_bytes
        from pipeline.records import BadInput

        try:
            text, _ = decode_bytes(data)
        except BadInput:  # not text at all: passed on as it is, the pipeline dead-letters it
            yield SourceItem(str(path), payload=data, position=str(path))
            return
    yield SourceItem(str(path), event={"text": text, "source": str(path)}, position=str(path))


def read_paths(paths: Iterable[str], skipped: Counter | None = None) -> Iterator[SourceItem]:
    """Raw events from every path in order; ``-`` reads JSONL from standard input."""
    for raw in paths:
        if raw == "-":
            yield from _jsonl_lines(sys.stdin.buffer, "<stdin>")
            continue
        for path in _files(Path(raw)):
            yield from read_file(path, skipped)


class FilesSource(Source):
    """Page files, folders of them and JSONL files of raw events, in the order given; ``-`` is
    JSONL on standard input. Resumes after a position (``path`` or ``path:line``) by skipping to it."""

    kind = "files"

    @classmethod
    def open(cls, argument: str, settings) -> FilesSource:
        return cls([argument])

    def __init__(self, paths: list[str]):
        self.paths = list(paths)
        self.skipped: Counter = Counter()  # WARC records that are no HTML page, by why
        for raw in self.paths:  # a missing path fails before anything is read or sent
            if raw != "-" and not Path(raw).exists():
                if re.match(r"(?i)^https?://", raw):
                    raise FileNotFoundError(f"{raw} is a URL, not a file: put URLs in a file, one per line, "
                                            "and give urls:FILE (the fetch stage fetches them)")
                raise FileNotFoundError(f"no such file or folder: {raw}")

    def items(self, after: str | None = None, stop: threading.Event | None = None) -> Iterator[SourceItem]:
        skipping = after is not None
        for item in read_paths(self.paths, self.skipped):
            if skipping:
                skipping = item.position != after
                continue
            yield item

    def size(self) -> int | None:
        """Files are counted; JSONL files by their lines, without parsing them. Unknown for stdin
        and WARC files (their pages are known only by reading them)."""
        if "-" in self.paths:
            return None
        total = 0
        for raw in self.paths:
            for path in _files(Path(raw)):
                if is_warc(path):
                    return None
                total += _count_lines(path) if _is_jsonl(path) else 1
        return total

    def __str__(self) -> str:
        return ", ".join(self.paths)


def _count_lines(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    with opener(path, "rb") as fh:
        for line in fh:
            count += 1 if line.strip() else 0
    return count
