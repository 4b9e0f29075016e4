"""The dead-letter replay commits how far it read, again while its group rebalances; copies of a
letter count once (no broker)."""

import pytest
from kafka.errors import CommitFailedError, RebalanceInProgressError, UnknownMemberIdError

from pipeline.streaming.deadletters import commit_offsets


class Consumer:
    def __init__(self, refusals, forever=False):
        self.refusals = list(refusals)
        self.forever = forever
        self.polls = 0
        self.committed = None

    def commit(self, offsets):
        if self.forever:
            raise RebalanceInProgressError()
        if self.refusals:
            raise self.refusals.pop(0)
        self.committed = offsets

    def poll(self, timeout_ms, max_records):
        self.polls += 1
        return {}


def test_a_commit_refused_during_a_rebalance_is_tried_again_with_the_same_offsets():
    consumer = Consumer([RebalanceInProgressError(), CommitFailedError(), UnknownMemberIdError()])
    commit_offsets(consumer, {"tp": 5}, timeout_s=5)
    assert consumer.committed == {"tp": 5} and consumer.polls == 3


def test_a_group_that_never_settles_fails_loudly():
    consumer = Consumer([], forever=True)
    with pytest.raises(RebalanceInProgressError):
        commit_offsets(consumer, {"tp": 5}, timeout_s=0.3)
    assert consumer.committed is None


def test_copies_of_a_letter_name_the_same_failure_and_only_the_first_counts():
    """At least once, a redelivered message may leave its dead letter twice: a copy names the same
    stage, topic, partition and offset; the same record failing again elsewhere does not."""
    from pipeline.streaming.deadletters import Copies

    letter = {"stage": "clean", "topic": "pages.raw", "partition": 2, "offset": 41, "id": "a"}
    copies = Copies()
    assert copies.first(letter) and not copies.first(dict(letter))
    assert copies.first({**letter, "offset": 42})  # sent again later (a replay): another failure
    assert copies.first({**letter, "stage": "entities", "topic": "pages.language"})
    assert copies.first({"stage": "sink"}) and copies.first({"stage": "sink"})  # no origin: never a copy
    assert copies.left_out == 1
