"""Counts over a sliding time window (the last hour's top entities, language mix)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Mapping


class SlidingCounter:
    """Counts of keys over the last ``window_s`` seconds, kept in ``slot_s``-second slots.

    A slot that leaves the window is dropped whole, so a count is exact to within one slot.
    Memory is bounded by the distinct keys of the window, and with ``max_keys`` by that many keys
    per slot: a slot keeps only its ``max_keys`` most counted keys once the next one starts (for a
    top-n of the window, with n well below ``max_keys``; a key cut from some slots is counted
    short by what it had there). Thread-safe."""

    def __init__(self, window_s: float = 3600.0, slot_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int | None = None):
        self.window_s = window_s
        self.slot_s = slot_s
        self.max_keys = max_keys
        self._clock = clock
        self._slots: deque[tuple[int, Counter]] = deque()
        self._lock = threading.Lock()

    def _slot(self, now: float) -> int:
        return int(now // self.slot_s)

    def _expire(self, now: float) -> None:
        oldest = self._slot(now - self.window_s) + 1
        while self._slots and self._slots[0][0] < oldest:
            self._slots.popleft()

    def add(self, keys: Iterable[Hashable] | Mapping[Hashable, int], at: float | None = None) -> None:
        """Count each key once (an iterable) or by its number (a mapping)."""
        now = self._clock() if at is None else at
        slot = self._slot(now)
        with self._lock:
            self._expire(now)
            if not self._slots or self._slots[-1][0] != slot:
                if self.max_keys is not None and self._slots and len(self._slots[-1][1]) > self.max_keys:
                    finished = self._slots[-1][1]
                    kept = Counter(dict(finished.most_common(self.max_keys)))
                    finished.clear()
                    finished.update(kept)
                self._slots.append((slot, Counter()))
            self._slots[-1][1].update(keys)

    def keys_held(self) -> int:
        """Keys held over every slot (what the memory grows with)."""
        with self._lock:
            return sum(len(counts) for _, counts in self._slots)

    def totals(self) -> Counter:
        with self._lock:
            self._expire(self._clock())
            total: Counter = Counter()
            for _, counts in self._slots:
                total.update(counts)
            return total

    def top(self, n: int) -> list[tuple[Hashable, int]]:
        return self.totals().most_common(n)
