"""``pipeline worker STAGE``: one stage (or the sink) as a Faust agent in its own consumer group.

The agent takes small batches of messages, runs the stage in a worker thread (the event loop
stays free for heartbeats), produces each record to the next topic keyed by its id, and each
failure to the dead-letter topic. A stage that handles its records one at a time (language,
entities) may have each batch cut in pieces (``run.piece_ms``) whose records are produced as soon
as the piece is done, not when the whole batch is. Offsets are committed by Faust only after a
batch is done and the producer flushed, so a crash means redelivery (at least once), never loss;
ids make the redelivery harmless downstream.

A ``TemporaryFailure`` (index or database unavailable) is retried with backoff, without
committing and without dead-lettering.

Each worker serves its Prometheus metrics, /healthz and /readyz on its own port (see
``pipeline.monitoring.metrics``) from a thread of its own, started before Faust.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from pipeline import registry
from pipeline.config import Settings
from pipeline.monitoring.metrics import ConsumerView, WorkerMetrics
from pipeline.records import (
    SKIPPED_WRITTEN,
    TOO_LARGE,
    WRITTEN,
    BadInput,
    TemporaryFailure,
    check_record,
    dead_letter,
    decode,
    encode,
    receipt,
    story_update,
)
from pipeline.sinks import open_sinks
from pipeline.sinks.runner import SinkRunner
from pipeline.stages import build_stage, freeze_loaded_objects, stage_factory
from pipeline.stages.base import Stage, StageStats, worker_name
from pipeline.stages.runner import Message, Origin, handle_messages
from pipeline.streaming import faust_adapter
from pipeline.streaming.batching import BatchAllowance, BatchSizer, record_weight

log = logging.getLogger("pipeline.worker")

BATCH_MAX = 200  # records in a batch at most (a stage's batch_max instead); fewer by time: run.batch_ms
BATCH_WITHIN_S = 0.02  # a batch is taken within this ...
# ... of events each at most this long after the one before: a backlog (events that are there)
# fills a batch within it, and every lone event waits this long at every hop (5 ms before: 25 ms
# of a record's latency over the 5 hops of the chain)
BATCH_GAP_S = 0.001
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
STATS_EVERY_S = 30.0
#: what OpenBLAS, OpenMP, MKL, BLIS, Apple's Accelerate and numexpr read for their thread count
NUMERIC_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def one_numeric_thread() -> None:
    """Numeric libraries compute on one thread in this process and the processes it starts.

    A stage worker is one of several processes that share the machine's cores, each handling its
    own records: a pool of OpenBLAS threads per worker (one per core by default) only contends
    with the others, and idle pool threads spin (measured on the clean stage's line classifier:
    21.1 CPU-ms per rendered page with OpenBLAS's default threads, 9.95 with one; issue 20). The
    worker sets this itself, whatever the environment says: the variables for libraries loaded
    later and for child processes (the clean stage's HTML parsers), threadpoolctl for the
    libraries already loaded."""
    from threadpoolctl import threadpool_limits

    for name in NUMERIC_THREAD_VARIABLES:
        os.environ[name] = "1"
    threadpool_limits(limits=1)


@dataclass
class Item:
    """One consumed message, detached from Faust."""

    key: bytes | None
    value: bytes | None
    timestamp: float | None
    topic: str
    partition: int
    offset: int

    @property
    def origin(self) -> Origin:
        return Origin(self.topic, self.partition, self.offset)

    @property
    def received_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC) if self.timestamp else datetime.now(UTC)


class Output(NamedTuple):
    """One message to produce, and the source partition of the record it comes from (with
    exactly-once processing it goes out in that partition's transaction)."""

    topic: str
    key: bytes | None
    value: bytes
    source_partition: int


class StageProcessor:
    """Runs a record stage over a batch; no Faust in here, so it is testable on its own."""

    def __init__(self, settings: Settings, stage: Stage, worker: str, metrics: WorkerMetrics | None = None):
        self.stage = stage
        self.stats = stage.stats
        self.worker = worker
        self.metrics = metrics
        self.target = registry.stage_topics(settings, stage.name).target
        self.deadletter = settings.topics.deadletter
        self.max_message_bytes = settings.profile.max_message_bytes

    def process(self, items: list[Item]) -> tuple[list[Output], list[Item]]:
        """Outputs for the batch; on ``TemporaryFailure`` nothing, and the whole batch to retry."""
        outputs: list[Output] = []
        passed: list[dict[str, Any]] = []
        messages = [Message(i.value, i.key, i.received_at, i.origin) for i in items]
        try:
            outcomes = handle_messages(self.stage, messages, self.worker)
        except TemporaryFailure as exc:
            log.warning("%s: %s; retrying %d records", self.stage.name, exc, len(items),
                        extra={"stage": self.stage.name})
            if self.metrics:
                self.metrics.retrying(str(exc))
            return [], items
        if self.metrics:
            self.metrics.unblocked()
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.record is not None:
                value = encode(outcome.record)
                if len(value) <= self.max_message_bytes:
                    outputs.append(Output(self.target, outcome.record["id"].encode(), value, item.partition))
                    passed.append(outcome.record)
                    continue
                self.stats.records_out -= 1
                self.stats.failed[TOO_LARGE] += 1
                outcome.dead_letter = dead_letter(
                    stage=self.stage.name, reason=TOO_LARGE, worker=self.worker, payload=item.value,
                    error=f"the record out is {len(value):,} bytes; the topic takes {self.max_message_bytes:,}",
                    record_id=outcome.record["id"], topic=item.topic, partition=item.partition, offset=item.offset)
            letter = outcome.dead_letter
            key = letter["id"].encode() if letter.get("id") else item.key
            outputs.append(Output(self.deadletter, key, encode(letter), item.partition))
            log_dead_letter(letter)
        if self.metrics and passed:
            self.metrics.observe_records(passed)
        return outputs, []

    def close(self) -> None:
        self.stage.close()


class SinkProcessor:
    """Writes a batch of enriched records to every sink (through the sink runner, which keeps
    partitions, rolls and offsets: ``pipeline.sinks.runner``), then emits one receipt per record;
    a record that is not one is dead-lettered."""

    def __init__(self, settings: Settings, targets: list[str], worker: str, metrics: WorkerMetrics | None = None):
        self.runner = SinkRunner(open_sinks(targets, settings.sink), settings.sink)
        self.worker = worker
        self.metrics = metrics
        self.stats = StageStats()
        self.delivered = settings.topics.delivered
        self.deadletter = settings.topics.deadletter
        self.stories = registry.story_updates_topic(settings)

    def process(self, items: list[Item]) -> tuple[list[Output], list[Item]]:
        outputs: list[Output] = []
        good: dict[int, list[tuple[Item, dict[str, Any]]]] = defaultdict(list)
        for item in items:
            try:
                record = decode(item.value)
                check_record(record)
                good[item.partition].append((item, record))
            except BadInput as exc:
                self.stats.records_in += 1
                self.stats.failed[exc.reason] += 1
                letter = dead_letter(stage="sink", reason=exc.reason, error=exc.message, worker=self.worker,
                                     payload=item.value, record_id=item.key.decode("utf-8", "replace")
                                     if item.key else None, topic=item.topic, partition=item.partition,
                                     offset=item.offset)
                outputs.append(Output(self.deadletter, item.key, encode(letter), item.partition))
                log_dead_letter(letter)
                self.runner.handled(item.partition, item.offset)
        t0 = time.perf_counter()
        new: set[str] = set()  # ids that were new in at least one sink
        try:
            for partition, pairs in good.items():
                for name, written in self.runner.write([record for _, record in pairs], partition).items():
                    self.stats.extra[f"new_{name}"] += len(written)
                    new |= written
        except TemporaryFailure as exc:
            waiting = [item for pairs in good.values() for item, _ in pairs]
            log.warning("sink: %s; retrying %d records", exc, len(waiting), extra={"stage": "sink"})
            self.stats.extra["sink_retries"] += 1
            if self.metrics:
                self.metrics.retrying(str(exc))
            return outputs, waiting
        if self.metrics:
            self.metrics.unblocked()
        seconds = time.perf_counter() - t0
        self.stats.busy_ms += seconds * 1000
        names = self.runner.names
        written_at = datetime.now(UTC)
        if self.metrics:
            self.metrics.observe_written([record for pairs in good.values() for _, record in pairs], seconds,
                                         written_at)
        for pairs in good.values():
            for item, record in pairs:
                outcome = WRITTEN if record["id"] in new else SKIPPED_WRITTEN
                self.stats.extra[outcome] += 1
                outputs.append(Output(self.delivered, record["id"].encode(),
                                      encode(receipt(record, names, self.worker, written_at, outcome)),
                                      item.partition))
                update = story_update(record, written_at) if self.stories and outcome == WRITTEN else None
                if update is not None:  # keyed by story: one story's updates stay in order
                    outputs.append(Output(self.stories, update["story_id"].encode(), encode(update), item.partition))
                self.runner.handled(item.partition, item.offset)
                self.stats.records_in += 1
                self.stats.records_out += 1
        return outputs, []

    def close(self) -> None:
        """The runner is closed by the worker, with the committed offsets (``run_worker``)."""


def log_dead_letter(letter: dict[str, Any]) -> None:
    """One info line per dead letter (quiet at the default level; the dead-letter topic has it all)."""
    if log.isEnabledFor(logging.INFO):
        error = (letter.get("error") or "").strip().splitlines()
        log.info("dead letter: %s", error[-1][:300] if error else letter.get("reason"),
                 extra={"stage": letter.get("stage"), "record_id": letter.get("id"), "reason": letter.get("reason"),
                        "topic": letter.get("topic"), "partition": letter.get("partition"),
                        "offset": letter.get("offset")})


def build_processor(settings: Settings, stage: str, sink_targets: list[str] | None = None,
                    metrics: WorkerMetrics | None = None):
    worker = worker_name(stage)
    if stage == "sink":
        return SinkProcessor(settings, sink_targets or settings.sink.targets, worker, metrics)
    return StageProcessor(settings, build_stage(stage, settings, in_processes=True), worker, metrics)


def _watch_consumer(app, stage: str, metrics: WorkerMetrics, source: str) -> None:
    """Feed ``metrics`` from the app: readiness, a heartbeat of the event loop, the consumer's
    partitions and offsets, and the offsets of every record the worker produced."""
    view = metrics.view
    faust_adapter.on_produced(app, lambda metadata: view.note_produced(metadata.topic, metadata.partition,
                                                                        metadata.offset))

    def refresh_view() -> None:
        consumer = app.consumer
        try:
            assigned = [tp for tp in consumer.assignment() if tp.topic == source]
        except Exception:  # noqa: BLE001 - not started yet
            return
        read = faust_adapter.read_offsets(consumer)
        position, highwater = {}, {}
        for tp in assigned:
            last = read.get(tp)
            if last is not None:
                position[tp.partition] = last + 1
            try:
                mark = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - no fetch answered yet
                mark = None
            if mark is not None and mark >= 0:
                highwater[tp.partition] = mark
        view.assigned = frozenset(tp.partition for tp in assigned)
        view.position = position
        view.highwater = highwater

    @app.on_rebalance_complete.connect
    async def now_ready(sender, **kwargs) -> None:
        refresh_view()
        metrics.ready = True

    @app.on_partitions_revoked.connect
    async def rebalancing(sender, revoked, **kwargs) -> None:
        metrics.ready = False

    @app.timer(interval=1.0)
    async def watch() -> None:
        metrics.tick()
        refresh_view()


EXIT_STOPPED_LOUDLY = 3


def stop_loudly(what: str, exc: BaseException) -> None:
    """End the worker process at once, with exit code 3, when it cannot go on: an error that is
    not one record's bad input (those are dead letters) and not a temporary failure (those are
    retried), such as an index that refuses writes, or a failed send or commit. Nothing of the
    batch in hand is committed, so a new worker (the supervisor or orchestrator starts one) reads
    it again. Faust would restart the agent a few times and then keep a healthy-looking process
    without it, having committed the offsets of the batch that failed."""
    log.critical("%s failed: %s: %s; the worker stops (exit code %d) without committing the records in hand",
                 what, type(exc).__name__, exc, EXIT_STOPPED_LOUDLY, exc_info=exc)
    logging.shutdown()
    os._exit(EXIT_STOPPED_LOUDLY)


class Transactions:
    """Exactly-once processing with Kafka transactions, one per source partition.

    Every record produced for a record read from partition ``p`` goes out in the transaction of
    ``p``'s transactional producer (Faust starts one per assigned partition and fences the one of
    any earlier owner). Every ``commit_interval_s``, on a file roll and before partitions are
    revoked, each partition's transaction commits together with the offset after the last record
    produced for, so the records and the offset count together or not at all: a worker killed in
    between leaves an open transaction that the next owner aborts, and that owner reads again from
    the committed offset. Consumers read ``read_committed`` and never see the aborted records.

    The worker commits these itself, always between two batches (under the worker's lock), instead
    of Faust's timer: see ``pipeline.streaming.faust_adapter._transactions_commit``.
    """

    def __init__(self, app, source: str):
        self.app = app
        self.source = source
        self.done: dict[int, int] = {}  # next offset after the last record produced for, per partition
        self.committed: dict[int, int] = {}
        app.commits_transactions_itself = True

    def transactional_id(self, partition: int) -> str:
        # the id Faust gives the producer it starts for this partition on assignment
        return faust_adapter.transactional_id(self.app, self.source, partition)

    async def send(self, outputs: list[Output], on_sent) -> None:
        try:
            for topic, key, value, partition in outputs:
                sent = await self.app.producer.send(topic, key, value, None, None, None,
                                                    transactional_id=self.transactional_id(partition))
                sent.add_done_callback(on_sent)
        except Exception as exc:  # noqa: BLE001 - no producer for the partition (fenced), broker gone
            self._stop(f"producing in the transactions of partitions {sorted({o.source_partition for o in outputs})}",
                       exc)

    def processed(self, items: list[Item]) -> None:
        for item in items:
            if item.offset + 1 > self.done.get(item.partition, -1):
                self.done[item.partition] = item.offset + 1

    async def commit(self, partitions: set[int] | None = None) -> None:
        from aiokafka import TopicPartition

        assigned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.source}
        due = {p: offset for p, offset in self.done.items()
               if p in assigned and (partitions is None or p in partitions) and offset > self.committed.get(p, -1)}
        if not due:
            return
        try:
            await self.app.producer.commit_transactions(
                {self.transactional_id(p): {TopicPartition(self.source, p): offset} for p, offset in due.items()},
                self.app.conf.id, start_new_transaction=True)
        except Exception as exc:  # noqa: BLE001 - fenced, broker gone: the transactions' fate is unknown
            self._stop(f"committing the transactions of partitions {sorted(due)}", exc)
        self.committed.update(due)

    @staticmethod
    def _stop(what: str, exc: BaseException) -> None:
        """The supervisor (or the orchestrator) starts a new worker, which fences this one's
        producers, so the broker aborts what is open, and reads again from the committed offsets:
        nothing lost, nothing twice."""
        stop_loudly(what, exc)

    async def release(self, partitions: set[int]) -> None:
        """After a revoked partition's transaction was committed: drop its producer, so that the
        next owner of the partition, this worker included, starts a new one. A producer kept
        across a rebalance (Faust stops only some of them) may since have been fenced by the
        worker that owned the partition in between, and then fails its next commit."""
        producers = faust_adapter.transaction_producers(self.app)
        for partition in partitions:
            self.done.pop(partition, None)
            self.committed.pop(partition, None)
            producer = producers.pop(self.transactional_id(partition), None)
            if producer is not None:
                try:
                    await producer.stop()
                except Exception as exc:  # noqa: BLE001 - it is dropped either way; the next owner fences it
                    log.info("stopping the producer of partition %d: %r", partition, exc)


def make_worker_app(settings: Settings, stage: str, processor, ready_file: str | None = None,
                    metrics: WorkerMetrics | None = None, runner: SinkRunner | None = None):
    """The Faust app of one stage worker, with its agent attached.

    ``ready_file`` is touched each time the worker has its partitions and fetches (the supervisor
    of ``pipeline run`` waits for it). ``runner``: the sink worker's sink runner, told when files
    may be finished (every offset they hold committed) and when partitions leave."""
    from pipeline import registry

    app = faust_adapter.make_app(settings, stage)
    topics = registry.stage_topics(settings, stage)
    if metrics is not None:
        metrics.view = ConsumerView(topics.source, registry.consumer_group(settings, stage))
        _watch_consumer(app, stage, metrics, topics.source)
    source = app.topic(topics.source, key_type=bytes, value_type=bytes)
    updates = registry.story_updates_topic(settings) if stage == registry.SINK else None
    story_updates = [updates] if updates else []
    outputs_by_name = {name: app.topic(name, key_type=bytes, value_type=bytes)
                       for name in {topics.target, settings.topics.deadletter, *story_updates}}
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{stage}-stage")
    sizer = batch_sizer(settings, processor)
    busy = asyncio.Lock()  # a batch, a roll and a release never overlap
    last_stats = [time.monotonic()]

    transactions = Transactions(app, topics.source) \
        if settings.profile.processing_guarantee == "exactly_once" else None

    def committed_offsets() -> dict[int, int]:
        """Offsets committed for the source topic (next offset to read, per partition)."""
        if transactions is not None:
            return dict(transactions.committed)
        offsets = faust_adapter.committed_offsets(app.consumer)
        return {tp.partition: off for tp, off in list(offsets.items()) if tp.topic == topics.source and off}

    async def commit() -> None:
        if transactions is not None:
            await transactions.commit()
        else:
            await app.consumer.commit()

    async def roll_if_due() -> None:
        if runner is not None and runner.rolls_due():
            await commit()
            try:
                await asyncio.get_running_loop().run_in_executor(executor, runner.roll, committed_offsets())
            except TemporaryFailure as exc:  # a full disk: the files stay whole and are finished later
                log.warning("%s: %s; finishing the files later", stage, exc, extra={"stage": stage})
                if metrics is not None:
                    metrics.retrying(str(exc))

    def note_produced(sent: asyncio.Future) -> None:
        if metrics is not None and not sent.cancelled() and sent.exception() is None:
            metadata = sent.result()
            metrics.view.note_produced(metadata.topic, metadata.partition, metadata.offset)

    async def send_all(outputs: list[Output]) -> None:
        if transactions is not None:
            await transactions.send(outputs, note_produced)
            return
        for topic, key, value, _ in outputs:
            await outputs_by_name[topic].send(key=key, value=value)

    if ready_file:
        @app.on_rebalance_complete.connect
        async def mark_ready(sender, **kwargs) -> None:
            Path(ready_file).touch()

    if runner is not None:
        @app.on_partitions_assigned.connect
        async def on_assigned(sender, assigned, **kwargs) -> None:
            partitions = {tp.partition for tp in assigned if tp.topic == topics.source}
            if partitions:
                async with busy:
                    await asyncio.get_running_loop().run_in_executor(executor, runner.adopt, partitions)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender, revoked, **kwargs) -> None:
        # Faust has waited for the agent (and, at least once, committed) before this signal
        partitions = {tp.partition for tp in revoked if tp.topic == topics.source}
        if partitions:
            async with busy:
                if transactions is not None:
                    await transactions.commit(partitions)
                if runner is not None:
                    await asyncio.get_running_loop().run_in_executor(executor, runner.release, partitions,
                                                                     committed_offsets())
                if transactions is not None:
                    await transactions.release(partitions)

    if runner is not None:
        @app.timer(interval=1.0)
        async def roll_idle_files() -> None:
            async with busy:
                await roll_if_due()

    if transactions is not None:
        @app.timer(interval=settings.profile.commit_interval_s)
        async def commit_transactions() -> None:
            async with busy:
                await transactions.commit()

    @app.agent(source, name=f"{stage}-agent")
    async def run_stage(stream):
        try:
            await process_stream(stream)
        except Exception as exc:  # noqa: BLE001 - see stop_loudly
            stop_loudly(f"the {stage} agent", exc)

    def waited_since(event) -> float:
        """Seconds since ``event`` was sent (its timestamp), by the stage before or the source."""
        sent = event.message.timestamp
        return max(0.0, time.time() - sent) if sent else 0.0

    def batch_limit(first) -> BatchAllowance:
        """What a batch takes, given its first event."""
        return sizer.allowance(waited_since(first), lambda event: record_weight(event.message.value))

    async def process_stream(stream) -> None:
        loop = asyncio.get_running_loop()
        async with contextlib.aclosing(faust_adapter.take_batches(stream, batch_limit, BATCH_WITHIN_S,
                                                                  BATCH_GAP_S)) as batches:
            async for events in batches:
                await handle_batch(loop, events)

    async def handle_batch(loop, events) -> None:
        items = [Item(e.message.key, e.message.value, e.message.timestamp, e.message.topic,
                      e.message.partition, e.message.offset) for e in events]
        weights = [record_weight(item.value) for item in items]
        pieces = sizer.pieces(items, weights, waited_since(events[0]))
        if metrics is not None:
            metrics.observe_batch(len(items))
        async with busy:
            await roll_if_due()
            seconds = await work_through(pieces, functools.partial(loop.run_in_executor, executor, processor.process),
                                         send_all)
            if seconds is not None:  # done at the first try: what the stage costs
                sizer.observe(len(items), seconds, sum(weights))
            if transactions is not None:
                transactions.processed(items)
        if time.monotonic() - last_stats[0] > STATS_EVERY_S:
            last_stats[0] = time.monotonic()
            log.info("%s stats: %s", stage, processor.stats.as_dict(), extra={"stage": stage})

    app.executor = executor
    app.committed_offsets = committed_offsets
    return app


async def work_through(pieces: list[list[Item]], process, send) -> float | None:
    """A batch's ``pieces`` in order through ``process`` (awaited: the outputs, and the items to try
    again), each piece's outputs handed to ``send`` as soon as it is done, before the next piece
    starts. Items to try again (a ``TemporaryFailure``) are tried again after ``RETRY_FIRST_S``,
    doubling up to ``RETRY_MAX_S``; the outputs already sent are not sent again. The batch's offsets
    are committed only after this returns, so a crash midway sends its records again (at least
    once), and in a transaction they count only with the offsets. Returns the seconds ``process``
    took, or None when something was tried again (then they say nothing of the stage's cost)."""
    took = 0.0
    retried = False
    for piece in pieces:
        pending, delay = piece, RETRY_FIRST_S
        while pending:
            started = time.perf_counter()
            outputs, pending = await process(pending)
            took += time.perf_counter() - started
            await send(outputs)
            if pending:
                retried = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
    return None if retried else took


def batch_sizer(settings: Settings, processor) -> BatchSizer:
    """How a worker sizes its batches: a stage by time (``run.batch_ms``, see
    ``pipeline.streaming.batching``) unless it says otherwise (``Stage.batches_by_time``); the
    sink always up to ``BATCH_MAX`` (its records cost little, and each batch a write to every sink)."""
    stage = processor.stage if isinstance(processor, StageProcessor) else None
    most = (stage.batch_max if stage is not None else None) or BATCH_MAX
    if stage is None or not stage.batches_by_time:
        return BatchSizer(0.0, most)
    return BatchSizer(settings.run.batch_ms / 1000.0, most, least=stage.batch_least,
                      piece_s=settings.run.piece_ms / 1000.0 if stage.one_by_one else 0.0)


def metrics_port_of(settings: Settings, stage: str, port: int | None) -> int:
    """The port a worker of ``stage`` serves its metrics on: ``port``, or (None) the stage's
    configured one (a stage without one: 0, any free port)."""
    return settings.monitoring.ports.get(stage, 0) if port is None else port


def metrics_port_hint(stage: str, port: int | None) -> str:
    """What moves a worker's metrics port: the flag it was given, else the stage's setting."""
    if port is not None:
        return "give another with --metrics-port N (0: any free port)"
    return (f"set monitoring.ports.{stage} (PIPELINE__MONITORING__PORTS__{stage.upper()}), or give "
            "--metrics-port N (0: any free port)")


def start_metrics(settings: Settings, stage: str, worker: str, port: int | None, stats,
                  fallback: bool = False):
    """The worker's metrics and their HTTP server (``port`` None: the configured port of the stage).
    Without ``fallback`` a port it cannot listen on is :class:`PreflightFailed` (one line)."""
    from pipeline.monitoring.lag import OffsetsProbe
    from pipeline.monitoring.metrics import serve
    from pipeline.streaming import preflight

    m = settings.monitoring
    want = metrics_port_of(settings, stage, port)
    declared = () if stage == registry.SINK else getattr(stage_factory(stage, settings), "record_metrics", ())
    metrics = WorkerMetrics(stage, worker, stats, lag_cache_s=m.lag_cache_s, stall_after_s=m.stall_after_s,
                            record_metrics=declared)
    metrics.probe = OffsetsProbe(settings.broker.bootstrap_servers, options=settings.broker.client_options(),
                                 transactional=settings.exactly_once)
    try:
        server = serve(metrics, m.host, want, fallback=fallback, read_timeout_s=m.http_read_timeout_s,
                       max_connections=m.http_max_connections)
    except OSError as exc:  # taken since run_worker looked
        metrics.probe.close()
        exc = OSError(exc.errno, os.strerror(exc.errno)) if exc.errno else exc
        raise preflight.PreflightFailed([preflight.cannot_listen(
            m.host, want, f"the metrics of worker {stage}", metrics_port_hint(stage, port), exc)]) from None
    return metrics, server


STOP_GRACE_S = 10.0  # after SIGTERM, a worker has the commit interval plus this to stop cleanly
EXIT_STOP_TIMEOUT = 4


def stop_deadline(seconds: float):
    """A wrapper for the worker's SIGTERM and SIGINT handlers: after either signal, the process
    ends at the latest ``seconds`` later. A stage busy on one record, or a stop that waits on a
    broker or index that is gone, must not keep a worker (and its port) alive. Nothing is lost:
    what it had not committed is read again by the next owner."""
    timer: list[threading.Timer] = []

    def expire() -> None:
        log.error("still running %.0f s after the signal to stop; exiting without a clean stop", seconds)
        logging.shutdown()
        os._exit(EXIT_STOP_TIMEOUT)

    def wrap(on_signal):
        def handler() -> None:
            if not timer:
                timer.append(threading.Timer(seconds, expire))
                timer[0].daemon = True
                timer[0].start()
            on_signal()
        return handler

    return wrap


def run_worker(settings: Settings, stage: str, sink_targets: list[str] | None = None,
               log_level: str = "warn", ready_file: str | None = None, metrics_port: int | None = None,
               metrics_port_fallback: bool = False, log_format: str = "text") -> int:
    """Run one stage worker until it is stopped. ``metrics_port``: where it serves /metrics
    (None: the stage's configured port; 0: any free port); ``metrics_port_fallback``: a free port
    when that one is taken (``pipeline run``; the port is written next to ``ready_file``)."""
    from pipeline.monitoring.logs import logging_config
    from pipeline.streaming import preflight

    one_numeric_thread()
    if not metrics_port_fallback:  # the port asked for, or one line before anything starts
        preflight.require_listen(settings.monitoring.host, metrics_port_of(settings, stage, metrics_port),
                                 f"the metrics of worker {stage}", metrics_port_hint(stage, metrics_port))
    if not settings.broker.bootstrap_servers:
        raise RuntimeError("no bootstrap servers: set broker.bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS "
                           "(or use `pipeline run`, which starts the embedded broker)")
    holder: list = []
    metrics, server = start_metrics(settings, stage, worker_name(stage), metrics_port,
                                    lambda: holder[0].stats if holder else StageStats(),
                                    fallback=metrics_port_fallback)
    try:
        processor = build_processor(settings, stage, sink_targets, metrics)
    except BaseException:
        server.close()
        raise
    holder.append(processor)
    freeze_loaded_objects()
    stage_code = getattr(processor, "stage", None)
    if stage_code is not None:
        metrics.record_clock = stage_code.clock
    runner = processor.runner if isinstance(processor, SinkProcessor) else None
    app = make_worker_app(settings, stage, processor, ready_file, metrics, runner)
    if ready_file:  # the supervisor reads where this worker serves its metrics
        Path(ready_file).with_suffix(".port").write_text(str(server.port))
    log.info("metrics on %s/metrics", server.url, extra={"stage": stage})
    worker = faust_adapter.new_worker(app, log_level, logging_config(log_level, log_format),
                                      stop_deadline(settings.profile.commit_interval_s + STOP_GRACE_S))
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    else:
        code = 0
    finally:
        metrics.stopping = True
        log.info("%s final stats: %s", stage, processor.stats.as_dict(), extra={"stage": stage})
        app.executor.shutdown(wait=True)
        # Faust committed what was acknowledged on its way out: finish the files that hold only that
        if runner is not None:
            runner.close(app.committed_offsets())
        processor.close()
        server.close()
        metrics.probe.close()
    return code
