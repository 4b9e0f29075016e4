"""Reading an endless source for a while in a thread, as the sender would: every checkpoint is
acknowledged (unless ``acknowledge`` is False: a sender that died before the broker confirmed)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SETTLE_S = 0.2  # once what was awaited came: how long to go on reading, for anything more


def collect(source, seconds: float, acknowledge: bool = True,
            until: int | Callable[[list], bool] | None = None) -> list:
    """The items ``source`` yields within ``seconds``; with ``until`` (a number of items, or a test
    of the items so far), ``seconds`` is only the limit: reading ends ``SETTLE_S`` after ``until``
    holds, so a slow machine gets the time it needs and a fast one does not wait."""
    stop = threading.Event()
    items = []

    def run():
        for item in source.items(stop=stop):
            items.append(item)
            if item.checkpoint and acknowledge:
                source.acknowledge(item.position)

    def done() -> bool:
        if until is None:
            return False
        return len(items) >= until if isinstance(until, int) else until(list(items))

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and thread.is_alive():
        if done():
            time.sleep(SETTLE_S)
            break
        time.sleep(0.02)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    return items
