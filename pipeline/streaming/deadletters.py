"""``pipeline deadletter list|replay``: look at dead letters, and send them again after a fix.

``list`` reads the whole dead-letter topic without a consumer group (it changes nothing).
``replay`` sends each selected dead letter's original payload back to the topic of the stage that
failed on it, keyed by its record id. It reads from the offsets committed for the consumer group
``<prefix>-deadletter-replay`` and commits after sending, so a dead letter is replayed once;
``--all`` reads from the beginning regardless. Dead letters whose payload was cut (bodies over
the dead-letter size limit) cannot be replayed and are counted as such. The group only keeps
offsets: partitions are assigned, so two replays run one after the other never wait for a
rebalance (two at once would both send the same letters; sinks write them once).

Processing is at least once: a message a worker handled again (after a crash, a rebalance or a
retried batch) may leave its dead letter twice. Both copies name the same failure (the stage, and
the topic, partition and offset of the message it failed on), and both commands count a failure
once: ``list`` shows one line and ``replay`` sends the payload once (within one run), each saying
how many copies it left out.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from pipeline import registry
from pipeline.config import Settings
from pipeline.records import CANNOT_SUCCEED_AGAIN, parse_iso


@dataclass
class Selection:
    stages: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)
    since: datetime | None = None

    def __call__(self, letter: dict) -> bool:
        if self.stages and letter.get("stage") not in self.stages:
            return False
        if self.reasons and letter.get("reason") not in self.reasons:
            return False
        if self.since is not None:
            try:
                if parse_iso(letter.get("failed_at") or "") < self.since:
                    return False
            except ValueError:
                return False
        return True


def _consumer(settings: Settings, group: str | None):
    from kafka import KafkaConsumer

    return KafkaConsumer(bootstrap_servers=settings.broker.bootstrap_servers.split(","), group_id=group,
                         enable_auto_commit=False, auto_offset_reset="earliest", client_id="pipeline-deadletter",
                         # it reads up to an end and stops: a partition with nothing new answers soon
                         fetch_max_wait_ms=min(settings.profile.fetch_max_wait_ms, 100),
                         session_timeout_ms=int(settings.profile.session_timeout_s * 1000),
                         heartbeat_interval_ms=int(settings.profile.heartbeat_interval_s * 1000),
                         **settings.consumer_options())


def read(settings: Settings, group: str | None = None, from_start: bool = True, timeout_s: float = 30.0,
         before_commit: Callable[[], None] | None = None,
         on_total: Callable[[int], None] | None = None, commit: bool = True) -> Iterator[tuple[object, dict]]:
    """``(message, letter)`` for every dead letter up to the topic's end when the read started.
    With a ``group``, its offsets are committed at the end, after ``before_commit`` ran (unless
    ``commit`` is False: a dry run reads from them and leaves them). ``on_total`` learns how many
    messages are to be read (for a progress bar)."""
    from kafka import TopicPartition

    topic = settings.topics.deadletter
    consumer = _consumer(settings, group)
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.topics.partitions_of(topic))]
        ends = consumer.end_offsets(parts)
        if on_total is not None:
            starts = {tp: 0 if group is None or from_start else (consumer.committed(tp) or 0) for tp in parts}
            on_total(sum(max(0, ends[tp] - starts[tp]) for tp in parts))
        # Partitions are assigned, never subscribed: the replay group has no members, so nothing
        # rebalances (a second replay right after a first used to wait for the first's member to
        # leave, and its commit was refused). Offsets are committed as a group-less "simple" consumer.
        consumer.assign(parts)
        if group is None or from_start:
            consumer.seek_to_beginning(*parts)
        else:
            for tp in parts:
                done = consumer.committed(tp)
                if done is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, done)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=200, max_records=1000)
            for messages in batches.values():
                for message in messages:
                    try:
                        letter = orjson.loads(message.value)
                    except orjson.JSONDecodeError:
                        continue
                    yield message, letter
            if all(consumer.position(tp) >= ends[tp] for tp in parts):
                break
        if group is not None and commit:
            if before_commit is not None:
                before_commit()
            from kafka.structs import OffsetAndMetadata

            read_to = {tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in parts}
            commit_offsets(consumer, read_to, timeout_s)
    finally:
        consumer.close()


def commit_offsets(consumer, offsets: dict, timeout_s: float) -> None:
    """Commit ``offsets`` (how far this read went), again while the broker refuses: the replay
    group has no members, but one left by an older version (which subscribed) keeps the group busy
    until its session times out (RebalanceInProgressError, UnknownMemberIdError). A poll in between
    keeps the client's connections served; what it reads is not committed."""
    from kafka.errors import (
        CommitFailedError,
        IllegalGenerationError,
        RebalanceInProgressError,
        UnknownMemberIdError,
    )

    settling = (RebalanceInProgressError, CommitFailedError, UnknownMemberIdError, IllegalGenerationError)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            consumer.commit(offsets)
            return
        except settling:
            if time.monotonic() >= deadline:
                raise
        try:
            consumer.poll(timeout_ms=200, max_records=1)
        except settling:
            pass


def failure_of(letter: dict) -> tuple | None:
    """The failure a letter reports: its stage, and the topic, partition and offset of the message
    it failed on (the same in every copy of the letter); None when the letter lacks one of them."""
    failure = (letter.get("stage"), letter.get("topic"), letter.get("partition"), letter.get("offset"))
    return None if None in failure else failure


class Copies:
    """Tells the first letter of a failure from its later copies."""

    def __init__(self) -> None:
        self.seen: set[tuple] = set()
        self.left_out = 0

    def first(self, letter: dict) -> bool:
        failure = failure_of(letter)
        if failure is None:
            return True
        if failure in self.seen:
            self.left_out += 1
            return False
        self.seen.add(failure)
        return True


def list_letters(settings: Settings, select: Selection) -> tuple[list[dict], int]:
    """The selected dead letters, one per failure, oldest first (by when they failed; as read when
    that is unknown), and how many copies of a letter were left out."""
    copies = Copies()
    letters = [letter for _, letter in read(settings) if select(letter) and copies.first(letter)]
    return sorted(letters, key=lambda letter: letter.get("failed_at") or ""), copies.left_out


def origin_of(letter: dict) -> str:
    """Where the failed record came from, for a person: its URL, else its source, else the start
    of a payload that is not an event ("" when there is nothing to show)."""
    payload = payload_of(letter)
    if payload is None:
        return ""
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "payload " + repr(payload[:40].decode("utf-8", "replace"))
    if isinstance(event, dict):
        for key in ("url", "canonical_url", "source"):
            if isinstance(event.get(key), str) and event[key]:
                return event[key]
    return ""


def payload_of(letter: dict) -> bytes | None:
    if letter.get("payload_truncated"):
        return None
    if "payload_base64" in letter:
        return base64.b64decode(letter["payload_base64"])
    if "payload" in letter:
        return letter["payload"].encode("utf-8", "surrogatepass")
    return None


@dataclass
class ReplayReport:
    sent: Counter = field(default_factory=Counter)  # (topic, reason) -> count
    not_replayable: int = 0
    skipped: int = 0
    cannot_succeed: Counter = field(default_factory=Counter)  # reason -> letters left out (no --force)
    copies: int = 0  # copies of a letter already read in this run (at-least-once processing)


def replay(settings: Settings, select: Selection, from_start: bool, dry_run: bool = False,
           progress: bool = False, force: bool = False) -> ReplayReport:
    """Send the selected dead letters back to the topic their stage reads. Letters whose reason
    is in ``CANNOT_SUCCEED_AGAIN`` are left out (counted) unless ``force``."""
    from pipeline.progress import progress_bar
    from pipeline.streaming.replay import make_producer

    report = ReplayReport()
    producer = None if dry_run else make_producer(settings.broker.bootstrap_servers, settings)
    group = None if from_start else f"{settings.broker.consumer_group_prefix}-deadletter-replay"
    known_topics = set(registry.topic_names(settings))
    def flush() -> None:
        if producer is not None:
            producer.flush()  # sent before the dead-letter offsets are committed

    copies = Copies()
    bar = progress_bar("deadletter replay", "letters", enabled=progress)
    task = bar.add_task("deadletter replay", total=None)
    try:
        bar.start()
        for _, letter in read(settings, group=group, from_start=False, before_commit=flush,
                              on_total=lambda n: bar.update(task, total=n), commit=not dry_run):
            bar.advance(task)
            if not select(letter):
                report.skipped += 1
                continue
            if not copies.first(letter):
                continue
            if not force and letter.get("reason") in CANNOT_SUCCEED_AGAIN:
                report.cannot_succeed[letter["reason"]] += 1
                continue
            payload = payload_of(letter)
            topic = letter.get("topic")
            if payload is None or topic not in known_topics:
                report.not_replayable += 1
                continue
            key = letter["id"].encode() if letter.get("id") else None
            if producer is not None:
                producer.send(topic, key=key, value=payload)
            report.sent[(topic, letter.get("reason"))] += 1
    finally:
        report.copies = copies.left_out
        bar.stop()
        if producer is not None:
            producer.flush()
            producer.close()
    return report
