"""How many records a stage worker takes in its next batch.

A worker hands a batch's records on when the whole batch is done, and what comes meanwhile waits
for it. With batches of up to 200 records, a short burst of rendered pages built a backlog that
the entities stage (~14 CPU-ms a page, two to three times that in wall time beside the other
stages) took in batches of 15-40: the batch's first record waited 0.5-1.5 s for the last, and each
later stage added its own batch wait (issue 20: p99 ingestion-to-sink 2.5 s at half the
saturation rate). Sized by time, a batch holds a record at most about ``target_s`` beyond its own
work, however much waits, while a stage whose records are cheap (dedup, the sink) still takes
hundreds at once.

Small batches cost more per record, though: the records then flow in small groups, so every
hop takes more produce and fetch requests per record (the broker's CPU per event at saturation
more than doubled in a first run: bench/pipeline/README.md). So a batch may also hold its records
up to ``waited_share`` of the time its first record has waited already (since the stage before
handed it on): a backlog of seconds (the pipeline at its limit, where the wait is the queue's
anyway) is taken in large batches again, while a short burst, whose records have waited little,
is taken in small ones. No Faust in here
(``pipeline.streaming.worker`` uses it; the tests drive it on its own).
"""

from __future__ import annotations


class BatchSizer:
    """The size of a stage worker's next batch: as many records as the stage is expected to work
    through in ``target_s`` seconds (or in ``waited_share`` of the time the batch's first record
    has waited, when that is longer), at least ``least`` and at most ``most``.

    The expectation is a moving average of the wall time per record of the batches handled so
    far (wall time, not CPU: a stage that shares the cores with others holds its records longer;
    it is what the records wait). Each record weighs the same: a batch of ``n`` records moves
    the average ``1 - (1 - 1/memory) ** n`` of the way to its own mean, and a mean above
    ``SPIKE`` times the average counts as that much, so one slow record (a language's model
    loading with it) hardly moves it, while a stage that became slower, even many times, is
    followed within a few batches. Before the first batch the cost is unknown: the first batch is
    ``least``. ``target_s`` 0: no sizing by time, always ``most``."""

    SPIKE = 4.0

    def __init__(self, target_s: float, most: int, least: int = 1, memory: int = 16,
                 waited_share: float = 0.5) -> None:
        if most < 1 or least < 1 or memory < 1 or target_s < 0 or waited_share < 0:
            raise ValueError(f"BatchSizer: most ({most}), least ({least}) and memory ({memory}) must be >= 1, "
                             f"target_s ({target_s}) and waited_share ({waited_share}) >= 0")
        self.target_s = target_s
        self.waited_share = waited_share
        self.most = most
        self.least = min(least, most)
        self.memory = memory
        self.per_record_s: float | None = None  # the moving average; None: nothing measured yet

    def size(self, waited_s: float = 0.0) -> int:
        """How many records the next batch takes at most; ``waited_s``: how long its first record
        has waited since the stage before handed it on."""
        if not self.target_s:
            return self.most
        if self.per_record_s is None:
            return self.least
        if self.per_record_s <= 0:
            return self.most
        hold_s = max(self.target_s, self.waited_share * waited_s)
        return max(self.least, min(self.most, int(hold_s / self.per_record_s)))

    def observe(self, records: int, seconds: float) -> None:
        """A batch of ``records`` took ``seconds`` of wall time (only batches the stage finished:
        a batch that failed for a while and was retried says nothing about the stage's cost)."""
        if records < 1 or seconds < 0:
            return
        mean = seconds / records
        if self.per_record_s is None:
            self.per_record_s = mean
            return
        if self.per_record_s > 0:
            mean = min(mean, self.SPIKE * self.per_record_s)
        weight = 1.0 - (1.0 - 1.0 / self.memory) ** records
        self.per_record_s += weight * (mean - self.per_record_s)
