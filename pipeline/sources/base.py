"""What every source is: something that yields raw events, each with the position after which a
later read can resume.

A bounded source (files, a JSONL file, a WARC) ends; an unbounded one (a feed poller, an HTTP
endpoint, a watched folder) yields until ``stop`` is set, and says so with ``bounded = False``.
A source knows nothing of Kafka: `pipeline replay`, `pipeline run --replay` and `pipeline enrich`
open every source through this interface (``pipeline.sources.open_sources``) and read several as
one stream with ``pipeline.sources.reading.read_sources`` (an endless one alongside the others).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class SourceItem:
    """One raw event: ``event`` when it parsed as a JSON object, else the raw ``payload`` bytes.
    ``origin`` says where it came from (``path`` or ``path:line``); ``position`` is what
    :meth:`Source.items` takes to resume after it (None: the source cannot resume)."""

    origin: str
    event: dict[str, Any] | None = None
    payload: bytes | None = None
    position: str | None = None
    #: the last item of a unit the source wants to hear about once it is durably sent (a watched
    #: folder's file): the sender flushes, then calls :meth:`Source.acknowledge` with its position
    checkpoint: bool = False


class Source:
    """Subclasses set ``kind`` and implement :meth:`items` (and :meth:`size` when it is cheap)."""

    kind: str = ""
    bounded: bool = True  # False: it never ends by itself (a feed, an endpoint)
    #: what its events are: "raw" (raw events, to ``topics.raw``) or "urls" (URL events for the
    #: fetch stage, to ``topics.urls``)
    produces: str = "raw"

    @classmethod
    def open(cls, argument: str, settings: Any) -> Source:
        """The source ``KIND:ARGUMENT`` names (``settings``: the pipeline's settings)."""
        return cls(argument)

    def items(self, after: str | None = None, stop: threading.Event | None = None) -> Iterator[SourceItem]:
        """The raw events, from the start or from just after position ``after``; an unbounded
        source returns once ``stop`` is set."""
        raise NotImplementedError

    def size(self) -> int | None:
        """How many events :meth:`items` yields, when that is known without reading them (a
        progress bar's total); None otherwise."""
        return None

    def listens_on(self) -> list[tuple[str, int, str]]:
        """The addresses it will listen on once read (an HTTP endpoint), as ``(host, port, what
        changes it)``: checked before anything starts (``pipeline.streaming.preflight``)."""
        return []

    def acknowledge(self, position: str) -> None:
        """Every item up to the checkpoint at ``position`` is durably sent (see ``SourceItem.checkpoint``).
        May raise ``OSError`` when the source cannot record it (a full disk): see :func:`acknowledge`."""

    def close(self) -> None:
        """Release what the source holds (connections, files)."""

    def __str__(self) -> str:
        return self.kind


log = logging.getLogger("pipeline.sources")
_ACK_WARN_EVERY_S = 60.0
_last_ack_error: dict[str, float] = {}


def acknowledge(source: Source, position: str) -> bool:
    """Tell ``source`` that its items up to ``position`` are durably sent. When it cannot record
    that (its journal or state is on a full or failing disk), the sender goes on: nothing is lost,
    since the source only forgets less, and gives those items again after a restart (under the same
    ids where it can: the sink skips them). The failure is logged as an error, at most once a
    minute per source; False says it happened."""
    try:
        source.acknowledge(position)
        return True
    except OSError as exc:
        now = time.monotonic()
        if now - _last_ack_error.get(str(source), -_ACK_WARN_EVERY_S) >= _ACK_WARN_EVERY_S:
            _last_ack_error[str(source)] = now
            log.error("%s: could not record that its items up to %s were sent (%s); going on: after a restart "
                      "they are read and sent again (the sink skips ids it has written)", source, position,
                      exc.strerror or exc)
        return False
