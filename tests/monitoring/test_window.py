"""Counts over the last hour."""

from pipeline.monitoring.window import SlidingCounter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_counts_leave_the_window_a_slot_at_a_time():
    clock = Clock()
    counter = SlidingCounter(window_s=3600, slot_s=60, clock=clock)
    counter.add(["id", "id", "en"])
    clock.now += 1800
    counter.add({"id": 3})
    assert counter.totals() == {"id": 5, "en": 1}
    assert counter.top(1) == [("id", 5)]
    clock.now += 1850  # the first slot is now more than an hour old
    assert counter.totals() == {"id": 3}
    clock.now += 3700
    assert counter.totals() == {}


def test_events_can_be_placed_at_their_own_time():
    clock = Clock()
    counter = SlidingCounter(window_s=3600, slot_s=60, clock=clock)
    counter.add(["old"], at=clock.now - 4000)  # read back from a topic, older than the window
    counter.add(["new"], at=clock.now - 10)
    assert counter.totals() == {"new": 1}
