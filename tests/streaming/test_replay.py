"""What a replay keeps of its sends between two checkpoints of its sources: only the sends the
broker has not answered yet, and a marker for a failed one (reported, and the next checkpoint is
not acknowledged). Kafka's own futures, answered as the producer's I/O thread answers them."""

from __future__ import annotations

from kafka.errors import MessageSizeTooLargeError
from kafka.future import Future

from pipeline.streaming.replay import ReplayResult, _compact


def answered(ok: bool = True) -> Future:
    future = Future()
    return future.success(7) if ok else future.failure(MessageSizeTooLargeError("too big for the broker"))


def test_written_sends_are_let_go_and_unanswered_ones_kept_in_order():
    pending = [("a", Future()), ("b", Future())]
    sent = [("w1", answered()), pending[0], ("w2", answered()), pending[1]]
    result = ReplayResult()
    assert _compact(sent, result, report=True) == pending
    assert result.rejected == []


def test_a_failed_send_leaves_one_marker_and_is_reported_once():
    later = ("c", Future())
    sent = [("w", answered()), ("x", answered(ok=False)), None, later, ("y", answered(ok=False))]
    result = ReplayResult()
    kept = _compact(sent, result, report=True)
    assert kept == [None, later]  # the next checkpoint sees the failure first
    assert [origin for origin, _ in result.rejected] == ["x", "y"]
    assert "MessageSizeTooLargeError" in result.rejected[0][1]
    # compacted again: the marker stays, nothing is reported twice
    assert _compact([*kept, ("w3", answered())], result, report=True) == [None, later]
    assert len(result.rejected) == 2


def test_a_tracked_replay_reports_failures_at_its_end_not_here():
    result = ReplayResult()
    assert _compact([("x", answered(ok=False))], result, report=False) == [None]
    assert result.rejected == []
