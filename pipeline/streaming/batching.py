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
is taken in small ones. A stage that handles its records one at a time may hand a batch on in
pieces as they are done (``run.piece_ms``, ``BatchSizer.pieces``), so that a batch holds a record
only for the pieces before its own and the piece it is in; the pieces grow with the wait as the
batches do, since pieces of one or two records all down the chain made every hop's requests, the
sink's writes and the receipts small (rendered text at saturation, 1 run: the run's CPU per event
33.0 -> 48.4 ms, 46.3 -> 34.7 events/s). No Faust in here (``pipeline.streaming.worker`` uses it;
the tests drive it on its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

#: a record's weight when a batch is sized by bytes: its message's bytes and this much more, the
#: part of a stage's cost that comes with every record whatever its length (bench/pipeline/README.md:
#: the entities and language stages' time per record is almost all proportional to the text, the
#: clean stage's on rendered text about 2.4 ms plus 0.3 ms per KB: `python -m bench.pipeline.costs`)
RECORD_BYTES = 1024


def record_weight(value: bytes | None) -> int:
    """A record's weight in a batch sized by bytes: its message's bytes and ``RECORD_BYTES``."""
    return len(value or b"") + RECORD_BYTES


class BatchAllowance:
    """What one batch may take: at most ``most`` records, and beyond the first ``least`` only
    records whose weight (``weigh``, 1 each without it) keeps the batch's total within ``units``.
    :meth:`takes` is asked for each record in arrival order, the batch's first included; a record
    it refuses begins the next batch."""

    __slots__ = ("most", "least", "units", "weigh", "count", "used")

    def __init__(self, most: int, least: int = 1, units: float = math.inf,
                 weigh: Callable[[Any], float] | None = None) -> None:
        self.most, self.least, self.units, self.weigh = most, least, units, weigh
        self.count = 0
        self.used = 0.0

    def takes(self, event: Any) -> bool:
        if self.count >= self.most:
            return False
        weight = self.weigh(event) if self.weigh is not None else 1.0
        if self.count >= max(1, self.least) and self.used + weight > self.units:
            return False
        self.count += 1
        self.used += weight
        return True


class BatchSizer:
    """The size of a stage worker's next batch: as much as the stage is expected to work through
    in ``target_s`` seconds (or in ``waited_share`` of the time the batch's first record has
    waited, when that is longer), at least ``least`` and at most ``most`` records.

    Size is counted in units: records, or (``observe(..., units=...)`` and a weighed
    :meth:`allowance`) their bytes, for a stage whose cost follows the records' length: the entities
    stage's batches, counted in records, took up to 7 times their target when long Russian
    texts met (issue 20).

    The expectation is a moving average of the wall time per unit of the batches handled so
    far (wall time, not CPU: a stage that shares the cores with others holds its records longer;
    it is what the records wait). Each record weighs the same in it: a batch of ``n`` records moves
    the average ``1 - (1 - 1/memory) ** n`` of the way to its own mean, and a mean above
    ``SPIKE`` times the average counts as that much, so one slow record (a language's model
    loading with it) hardly moves it, while a stage that became slower, even many times, is
    followed within a few batches. Before the first batch the cost is unknown: the first batch is
    ``least``. ``target_s`` 0: no sizing by time, always ``most``."""

    SPIKE = 4.0

    def __init__(self, target_s: float, most: int, least: int = 1, memory: int = 16,
                 waited_share: float = 0.5, piece_s: float = 0.0) -> None:
        if most < 1 or least < 1 or memory < 1 or target_s < 0 or waited_share < 0:
            raise ValueError(f"BatchSizer: most ({most}), least ({least}) and memory ({memory}) must be >= 1, "
                             f"target_s ({target_s}) and waited_share ({waited_share}) >= 0")
        self.target_s = target_s
        self.waited_share = waited_share
        self.piece_s = piece_s
        self.most = most
        self.least = min(least, most)
        self.memory = memory
        self.per_unit_s: float | None = None  # the moving average; None: nothing measured yet

    def budget(self, waited_s: float = 0.0) -> float:
        """How many units the next batch holds at most (beyond its first ``least`` records);
        ``waited_s``: how long its first record has waited since the stage before handed it on."""
        if not self.target_s or (self.per_unit_s is not None and self.per_unit_s <= 0):
            return math.inf
        if self.per_unit_s is None:
            return 0.0
        return max(self.target_s, self.waited_share * waited_s) / self.per_unit_s

    def size(self, waited_s: float = 0.0) -> int:
        """How many records the next batch takes at most, when each record is a unit."""
        return max(self.least, min(self.most, int(min(self.budget(waited_s), self.most))))

    def allowance(self, waited_s: float = 0.0, weigh: Callable[[Any], float] | None = None) -> BatchAllowance:
        """The next batch's allowance, its records weighed by ``weigh`` (None: a unit each)."""
        budget = self.budget(waited_s)
        return BatchAllowance(self.most, self.least, budget, weigh if math.isfinite(budget) else None)

    def pieces(self, items: list, weights: list[float], waited_s: float = 0.0) -> list[list]:
        """A batch of a stage that handles records one at a time, cut in the pieces its worker hands
        on as each is done: of ``piece_s``, or of ``waited_share`` of the time the first record
        has waited when that is longer (a backlog goes on in long pieces, as it is taken in large
        batches: one-record pieces all down the chain multiplied every hop's produce requests and
        fetches, the sink's writes and the receipts). ``piece_s`` 0: one piece, the batch."""
        if not self.piece_s:
            return [items]
        return cut_in_pieces(items, weights, self.per_unit_s, max(self.piece_s, self.waited_share * waited_s))

    def observe(self, records: int, seconds: float, units: float | None = None) -> None:
        """A batch of ``records`` (``units`` in all; None: a unit each) took ``seconds`` of wall
        time (only batches the stage finished: a batch that failed for a while and was retried
        says nothing about the stage's cost)."""
        units = records if units is None else units
        if records < 1 or seconds < 0 or units <= 0:
            return
        mean = seconds / units
        if self.per_unit_s is None:
            self.per_unit_s = mean
            return
        if self.per_unit_s > 0:
            mean = min(mean, self.SPIKE * self.per_unit_s)
        weight = 1.0 - (1.0 - 1.0 / self.memory) ** records
        self.per_unit_s += weight * (mean - self.per_unit_s)


def cut_in_pieces(items: list, weights: list[float], per_unit_s: float | None, piece_s: float) -> list[list]:
    """``items`` in order, cut into pieces that each take about ``piece_s`` at the stage's measured
    time per unit (``per_unit_s``; ``weights``: each item's units), at least one item each. Cost not
    known yet (None): an item per piece; no cost (0): one piece."""
    if per_unit_s is not None and per_unit_s <= 0:
        return [items] if items else []
    budget = piece_s / per_unit_s if per_unit_s is not None else 0.0
    pieces: list[list] = []
    piece: list = []
    used = 0.0
    for item, weight in zip(items, weights, strict=True):
        if piece and used + weight > budget:
            pieces.append(piece)
            piece, used = [], 0.0
        piece.append(item)
        used += weight
    if piece:
        pieces.append(piece)
    return pieces
