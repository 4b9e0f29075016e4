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


def test_with_max_keys_a_finished_slot_keeps_only_its_most_counted_keys():
    clock = Clock()
    bounded = SlidingCounter(window_s=3600, slot_s=60, clock=clock, max_keys=10)
    exact = SlidingCounter(window_s=3600, slot_s=60, clock=clock)
    for minute in range(90):
        counts = {f"once-{minute}-{k}": 1 for k in range(100)} | {"often": 7, f"twice-{minute % 3}": 2}
        bounded.add(counts)
        exact.add(counts)
        clock.now += 60
    assert bounded.keys_held() <= 60 * 10 + 102 < exact.keys_held()
    assert bounded.top(4) == exact.top(4)
