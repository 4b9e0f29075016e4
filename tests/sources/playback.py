"""Reading an endless source for a while in a thread, as the sender would: every checkpoint is
acknowledged (unless ``acknowledge`` is False: a sender that died before the broker confirmed)."""

from __future__ import annotations

import threading
import time


def collect(source, seconds: float, acknowledge: bool = True) -> list:
    """The items ``source`` yields within ``seconds``."""
    stop = threading.Event()
    items = []

    def run():
        for item in source.items(stop=stop):
            items.append(item)
            if item.checkpoint and acknowledge:
                source.acknowledge(item.position)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    return items
