"""``urls:FILE``: URL events for the fetch stage, from a file: one URL per line (``#`` starts a
comment), or JSONL of URL events (``{"url", "changed"?, "source"?}``). ``-`` is standard input.
The chain must have the fetch stage (``stages.chain = ["fetch", "clean", ...]``)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from pipeline.sources.base import Source, SourceItem


class UrlListSource(Source):
    kind = "urls"
    produces = "urls"

    def __init__(self, argument: str):
        self.path = argument
        if argument != "-" and not Path(argument).is_file():
            raise FileNotFoundError(f"no such file: {argument}")

    def _lines(self) -> Iterator[bytes]:
        if self.path == "-":
            yield from sys.stdin.buffer
            return
        with open(self.path, "rb") as fh:
            yield from fh

    def items(self, after: str | None = None, stop: threading.Event | None = None) -> Iterator[SourceItem]:
        skipping = after is not None
        for number, line in enumerate(self._lines(), 1):
            line = line.strip()
            if not line or line.startswith(b"#"):
                continue
            where = f"{self.path}:{number}"
            if skipping:
                skipping = where != after
                continue
            event: Any
            if line.startswith(b"{"):
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    yield SourceItem(where, payload=line, position=where)
                    continue
            else:
                event = {"url": line.decode("utf-8", "replace"), "source": where}
            yield SourceItem(where, event=event, position=where)

    def size(self) -> int | None:
        if self.path == "-":
            return None
        with open(self.path, "rb") as fh:
            return sum(1 for line in fh if line.strip() and not line.strip().startswith(b"#"))

    def __str__(self) -> str:
        return f"urls:{self.path}"
