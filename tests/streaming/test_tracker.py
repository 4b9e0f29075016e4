"""The delivery tracker's tally: what a continuous run keeps does not grow with the stream."""

from __future__ import annotations

from pipeline.streaming.tracker import Tally


def _feed(tally: Tally, n: int, keep_ids: bool) -> None:
    for i in range(n):
        tally.add_receipt({"id": f"r{i}", "dedup_status": "unique" if i % 3 else "exact_duplicate",
                           "outcome": "written"}, keep_ids)
        if i % 10 == 0:
            tally.add_dead_letter({"id": f"d{i}", "stage": "clean", "reason": "timeout", "topic": "pages.raw",
                                   "partition": 0, "offset": i}, keep_ids, "pages.raw")


def test_a_continuous_run_counts_receipts_without_keeping_their_ids():
    tally = Tally()
    _feed(tally, 30_000, keep_ids=False)
    assert tally.receipt_count == 30_000
    assert tally.statuses == {"unique": 20_000, "exact_duplicate": 10_000}
    assert tally.dead_letters == {("clean", "timeout"): 3_000}
    held = (tally.delivered, tally.receipts, tally.written, tally.dead_ids, tally.dead_raw_positions)
    assert [len(x) for x in held] == [0, 0, 0, 0, 0]


def test_a_run_that_waits_for_its_records_keeps_their_ids():
    tally = Tally()
    _feed(tally, 100, keep_ids=True)
    assert len(tally.delivered) == len(tally.written) == 100 and tally.receipts["r7"] == 1
    assert "d10" in tally.dead_ids and (0, 10) in tally.dead_raw_positions
