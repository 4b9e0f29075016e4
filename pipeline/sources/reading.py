"""Reading several sources as one stream of ``(source, item)``: what `pipeline replay`, `pipeline
run --replay` and `pipeline enrich` do with the sources they are given.

Bounded sources alone are read one after another, in the order given (again and again with
``loop``). As soon as one source is endless (an ingest endpoint, feeds, a watched folder) and there
is any other, every endless source is read in a thread of its own and the bounded ones one after
another in one more thread (still in their order; again and again with ``loop``), their items
handed over as they come: `--replay ingest: seeds/` takes pushed events while it replays the seeds,
instead of waiting forever on the endpoint before the seeds. Each source's own order is kept.

The stream ends when every source has ended; an endless one ends when ``stop`` is set, and then
the stream ends at once, between two items (what a source gave that was not taken yet is not sent,
as when it is stopped alone; a bounded source blocked in a read, such as standard input, is left
to its daemon thread). An error in a source's thread is raised in the reader's thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from pipeline.sources.base import Source, SourceItem

QUEUE_SIZE = 256  # items waiting to be taken: a source waits while the reader is behind (backpressure)
POLL_S = 0.2


def read_sources(sources: list[Source], stop: threading.Event, loop: bool = False) -> Iterator[tuple[Source, SourceItem]]:
    """Every item of ``sources`` with its source (see the module's description)."""
    if len(sources) > 1 and not all(s.bounded for s in sources):
        yield from _together(sources, stop, loop)
        return
    while True:
        for source in sources:
            for item in source.items(stop=stop):
                yield source, item
        if not loop or stop.is_set() or not all(s.bounded for s in sources):
            return


class _Ended:
    """What a reader thread hands over last: how its sources ended (``error``: they failed)."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


def _together(sources: list[Source], stop: threading.Event, loop: bool) -> Iterator[tuple[Source, SourceItem]]:
    items: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
    # the sources' own stop: ``stop``, or the reader leaving (an error downstream, a closed generator)
    halt = threading.Event()
    bounded = [s for s in sources if s.bounded]

    def hand_over(source: Source, item: SourceItem | _Ended) -> bool:
        while not halt.is_set():
            try:
                items.put((source, item), timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def read(group: list[Source], again: bool) -> None:
        ended = _Ended()
        try:
            while True:
                for source in group:
                    for item in source.items(stop=halt):
                        if not hand_over(source, item):
                            return
                if not again or halt.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reader's thread, raised there
            ended.error = exc
        finally:
            hand_over(group[0], ended)

    # the bounded ones' thread first: files already there go ahead of what an endpoint is sent later
    groups = ([(bounded, loop)] if bounded else []) + [([s], False) for s in sources if not s.bounded]
    threads = [threading.Thread(target=read, args=group, name=f"source-{group[0][0].kind}", daemon=True)
               for group in groups]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running and not stop.is_set():
            try:
                source, item = items.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, _Ended):
                running -= 1
                if item.error is not None:
                    raise item.error
                continue
            yield source, item
    finally:
        halt.set()
