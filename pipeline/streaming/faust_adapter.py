"""Everything the pipeline takes from Faust (and from mode and aiokafka beneath it), in one place:
apps configured from the broker profile, the worker process object, and the few internals the
stage workers need that Faust has no public API for.

What is relied on beyond Faust's public API is listed in ``RELIED_ON`` and checked when this
module is imported (a missing one stops the worker with its name); ``tests/streaming/
test_faust_adapter.py`` checks the same on real objects, so a Faust upgrade that changes any of
it fails loudly, in one test, instead of quietly somewhere in a worker. Tested with
faust-streaming 0.15.3, mode-streaming 0.4, aiokafka 0.14.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import faust
from aiokafka.consumer.fetcher import Fetcher as AIOKafkaFetcher
from aiokafka.protocol.fetch import FetchRequest
from faust.assignor import PartitionAssignor
from faust.sensors import Monitor, Sensor
from faust.tables.manager import TableManager
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline import registry
from pipeline.config import BrokerProfile, Settings
from pipeline.streaming.batching import BatchAllowance

#: (owner, attribute, why): what this module uses that Faust does not document; checked at import
#: for classes, and by the adapter's test on real instances
RELIED_ON: list[tuple[Any, str, str]] = [
    (faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer",
     "replaced to set aiokafka's fetch_max_wait_ms (Faust hardcodes 1500 ms)"),
    (faust_consumer.TransactionManager, "commit", "replaced: exactly-once workers commit their transactions"),
    (faust_consumer.TransactionManager, "transactional_id_format", "the id of a partition's transactional producer"),
    (faust_aiokafka.Producer, "commit_transactions", "commits a partition's records and offsets together"),
    (faust_aiokafka.Producer, "_settings_extra", "wrapped: the profile's idempotent_producer for aiokafka"),
    (TableManager, "_update_channels", "what the table manager does at start, without its one-second pause"),
    (faust.Worker, "_sentinel_task", "replaced: mode waits a second before closing a stopped worker's loop"),
    (Monitor, "_sampler", "replaced: Faust's statistics (unused here) are sampled every second"),
    (AIOKafkaFetcher, "_get_actions_per_node", "wrapped: a fetch that asks for every partition waits longer"),
    (AIOKafkaFetcher, "_select_read_replica", "the node a partition is fetched from"),
    (faust_consumer.Consumer, "_commit_handler", "replaced: commits every commit interval while records are "
     "acknowledged, and sleeps while none are"),
    (faust_consumer.Consumer, "_commit_livelock_detector", "replaced: the same check, every 10 s"),
    (faust_consumer.Consumer, "ack", "wrapped: an acknowledged record wakes the commit loop"),
    (faust_consumer.Consumer, "verify_all_partitions_active", "what the livelock check runs"),
]
#: attributes of instances (Faust sets them in __init__): checked on real objects by the test
RELIED_ON_INSTANCES: list[tuple[str, str, str]] = [
    ("consumer", "_read_offset", "the offset of the last record read per partition (metrics, lag)"),
    ("consumer", "_committed_offset", "the offsets committed per partition (files are finished up to them)"),
    ("producer", "_transaction_producers", "dropped on revocation so the next owner starts a fresh producer"),
    ("worker", "_on_sigterm", "wrapped to end the process at the latest a grace time after SIGTERM"),
    ("worker", "_on_sigint", "the same for SIGINT"),
    ("aiokafka_consumer", "_fetch_max_wait_ms", "set from the broker profile"),
    ("aiokafka_consumer", "_consumer_timeout", "how often aiokafka's fetch loop looks around while it waits"),
    ("fetch_request", "_max_wait_ms", "how long the broker may hold the fetch (lengthened when idle)"),
]


def missing_internals() -> list[str]:
    """What of ``RELIED_ON`` the installed Faust lacks (empty when all is there)."""
    return [f"{getattr(owner, '__qualname__', owner)}.{name} ({why})" for owner, name, why in RELIED_ON
            if not hasattr(owner, name)]


_missing = missing_internals()
if _missing:
    raise ImportError("this Faust lacks what the pipeline relies on: " + "; ".join(_missing))

_fetch_max_wait_ms: int | None = None
_original_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
#: aiokafka's fetch loop waits for its fetch's answer, for records to be taken and for changes of
#: assignment, each of which wakes it; besides, it looks around every ``consumer_timeout_ms`` (200
#: by default: 5 wake-ups a second in an idle worker's consumer thread for nothing)
FETCH_LOOP_POLL_S = 2.0


def _create_worker_consumer(self, transport):
    """Faust hardcodes fetch_max_wait_ms=1500; the profile's value replaces it before start."""
    consumer = _original_create_worker_consumer(self, transport)
    if _fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms
    consumer._consumer_timeout = FETCH_LOOP_POLL_S
    return consumer


faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer

_idempotent_producer = False
_original_producer_extra = faust_aiokafka.Producer._settings_extra


def _producer_extra(self):
    """aiokafka's producer settings Faust adds: with the profile's ``idempotent_producer``, a
    retried batch carries its sequence number and the broker writes it once (Faust asks for that
    only inside transactions)."""
    extra = dict(_original_producer_extra(self))
    if _idempotent_producer:
        extra.update(acks="all", enable_idempotence=True)
    return extra


faust_aiokafka.Producer._settings_extra = _producer_extra

_fetch_idle_wait_ms: int = 0
_original_actions_per_node = AIOKafkaFetcher._get_actions_per_node


def asks_for_all(request: FetchRequest, partitions_of_node: int) -> bool:
    """Whether a fetch asks for every partition the consumer has on its node."""
    return sum(len(partitions) for _, partitions in request.topics) >= partitions_of_node


def _actions_per_node(self, assignment):
    """aiokafka's fetch plan, where a fetch that asks for every partition the consumer has on its
    node may be held by the broker for the profile's ``fetch_idle_wait_ms`` instead of
    ``fetch_max_wait_ms``. Kafka answers a fetch as soon as any partition it names has a record,
    so that adds no latency; but aiokafka sends one fetch per node at a time, leaving out the
    partitions whose records are not taken yet (or are paused), so a fetch that leaves any out
    keeps the short wait: a partition emptied meanwhile waits for that fetch to come back. An idle
    worker's consumer asks the broker every few seconds instead of twice a second."""
    actions = _original_actions_per_node(self, assignment)
    if _fetch_idle_wait_ms and actions[0]:
        per_node: dict[int, int] = {}
        for tp in assignment.tps:
            node = self._select_read_replica(tp)
            per_node[node] = per_node.get(node, 0) + 1
        for node, request in actions[0]:
            if asks_for_all(request, per_node.get(node, 0)):
                request._max_wait_ms = max(request._max_wait_ms, _fetch_idle_wait_ms)
    return actions


AIOKafkaFetcher._get_actions_per_node = _actions_per_node

_faust_transactions_commit = faust_consumer.TransactionManager.commit


async def _transactions_commit(self, offsets, start_new_transaction: bool = True) -> bool:
    """With exactly-once processing the stage worker commits its transactions itself, with the
    offsets of the records it has produced for (``pipeline.streaming.worker``). Faust's own commit
    would end a partition's transaction with the offsets its acknowledgement bookkeeping reaches,
    which lags behind what was produced when the source topic holds transaction markers (measured:
    hundreds of records doubled downstream per killed worker)."""
    if getattr(self.app, "commits_transactions_itself", False):
        return False
    return await _faust_transactions_commit(self, offsets, start_new_transaction)


faust_consumer.TransactionManager.commit = _transactions_commit

_faust_ack = faust_consumer.Consumer.ack
#: how often a worker's consumer checks that every partition with records moves (Faust: every 2.5
#: commit intervals, 1.25 s here); it warns of partitions stuck for minutes
LIVELOCK_CHECK_S = 10.0


def _acks_waiting(consumer) -> asyncio.Event:
    """Set when a record was acknowledged since the consumer's last commit."""
    event = consumer.__dict__.get("_acks_waiting")
    if event is None:
        event = consumer._acks_waiting = asyncio.Event()
    return event


def _ack(self, message) -> bool:
    acked = _faust_ack(self, message)
    if acked:
        _acks_waiting(self).set()
    return acked


async def _commit_when_acknowledged(self) -> None:
    """The consumer's commit loop: a commit at most one commit interval after a record was
    acknowledged, as Faust's, which wakes every interval (twice a second here) whether or not
    anything was acknowledged; this one sleeps until something is. At least once stays as it
    was: offsets are committed only as far as records were acknowledged, and a stopping consumer
    commits what is left (Faust's stop, unchanged)."""
    acks = _acks_waiting(self)
    while not self.should_stop:
        if (await self.wait(acks)).stopped:
            return
        acks.clear()
        await self.sleep(self.commit_interval)
        if self.should_stop:
            return
        await self.commit()


async def _check_partitions_move(self) -> None:
    """Faust's livelock check (a warning for a partition whose records have not moved for
    minutes), every ``LIVELOCK_CHECK_S``."""
    interval = max(LIVELOCK_CHECK_S, self.commit_interval * 2.5)
    while not self.should_stop:
        await self.sleep(interval)
        if not self.should_stop and not self.app.rebalancing:
            await self.verify_all_partitions_active()


faust_consumer.Consumer.ack = _ack
faust_consumer.Consumer._commit_handler = faust_consumer.Consumer.task(_commit_when_acknowledged)
faust_consumer.Consumer._commit_livelock_detector = faust_consumer.Consumer.task(_check_partitions_move)


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


def broker_credentials(settings: Settings):
    """Faust's credentials for the configured security protocol (None: plaintext)."""
    b = settings.broker
    if b.security_protocol == "PLAINTEXT":
        return None
    import ssl

    context = None
    if b.security_protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=b.ssl_cafile or None)
        context.check_hostname = b.ssl_check_hostname
        if b.ssl_certfile:
            context.load_cert_chain(b.ssl_certfile, b.ssl_keyfile or None)
    if b.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=b.sasl_username, password=b.sasl_password,
                                     mechanism=b.sasl_mechanism, ssl_context=context)
    return faust.SSLCredentials(context)


class BalancedAssignor(PartitionAssignor):
    """Faust's partition assignor, assigning no standby partitions. Our workers keep no Faust tables,
    so standbys serve nothing; yet with one (Faust's default, ``table_standby_replicas = 1``) its
    sticky assignment counts a member's partitions against ceil(partitions / members), and a third
    worker that joins after a second finds 2 + 2 of 4 partitions "balanced" and gets none. Faust's
    assignor itself must stay: with ``table_standby_replicas = 0`` and no tables Faust hands the
    consumer aiokafka's round-robin assignor instead, and exactly-once processing then finds no topic
    groups to name its transactional producers by."""

    def __init__(self, app, replicas: int = 0) -> None:
        super().__init__(app, replicas=0)


class QuietMonitor(Monitor):
    """Faust's monitor without its sampler, which computes Faust's own rates every second
    (``app.monitor``: nothing here reads them; a worker's metrics are its own, see
    ``pipeline.monitoring.metrics``)."""

    @Monitor.task
    async def _sampler(self) -> None:
        return


class TablelessManager(TableManager):
    """Faust's table manager without the second it waits at start for tables to be declared
    (``TableManager.on_start``: ``sleep(1.0)``) before the consumer subscribes: our workers declare
    no table, so every worker start (and restart after a crash) was a second longer than needed."""

    async def on_start(self) -> None:
        if self.values():
            await super().on_start()
            return
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def make_app(settings: Settings, stage: str, datadir: Path | None = None) -> faust.App:
    global _fetch_max_wait_ms, _fetch_idle_wait_ms, _idempotent_producer
    if not settings.broker.bootstrap_servers:
        raise ValueError("no bootstrap servers: set broker.bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS "
                         "(or use `pipeline run`, which starts the embedded broker)")
    profile: BrokerProfile = settings.profile
    _fetch_max_wait_ms = profile.fetch_max_wait_ms
    _idempotent_producer = profile.idempotent_producer
    _fetch_idle_wait_ms = profile.fetch_idle_wait_ms
    datadir = datadir or Path(tempfile.mkdtemp(prefix=f"pipeline-{stage}-"))
    return faust.App(
        registry.consumer_group(settings, stage),
        broker=broker_urls(settings.broker.bootstrap_servers),
        broker_credentials=broker_credentials(settings),
        datadir=str(datadir),
        web_enabled=False,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        # topics are created by `pipeline topics`/`pipeline run` with explicit partitions
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=profile.session_timeout_s,
        broker_heartbeat_interval=profile.heartbeat_interval_s,
        broker_rebalance_timeout=profile.rebalance_timeout_s,
        broker_request_timeout=profile.request_timeout_s,
        broker_commit_interval=profile.commit_interval_s,
        producer_max_batch_size=profile.producer_max_batch_bytes,
        producer_linger=profile.producer_linger_ms / 1000.0,
        producer_max_request_size=max(profile.producer_max_batch_bytes, profile.max_message_bytes + 65536),
        producer_compression_type=None if profile.compression == "none" else profile.compression,
        stream_wait_empty=True,
        stream_buffer_maxsize=settings.run.buffer_records,
        processing_guarantee=profile.processing_guarantee,
        PartitionAssignor=BalancedAssignor,
        TableManager=TablelessManager,
        Monitor=QuietMonitor,
    )


# --- the internals the stage workers use -----------------------------------------------------

def read_offsets(consumer) -> dict:
    """TopicPartition -> offset of the last record the consumer read."""
    return getattr(consumer, "_read_offset", {})


def committed_offsets(consumer) -> dict:
    """TopicPartition -> the next offset to read, as last committed."""
    return getattr(consumer, "_committed_offset", {})


def transactional_id(app: faust.App, source: str, partition: int) -> str:
    """The id of the transactional producer Faust starts for ``partition`` of ``source``."""
    group = types.SimpleNamespace(group=app.assignor.group_for_topic(source), partition=partition)
    return faust_consumer.TransactionManager.transactional_id_format.format(group_id=app.conf.id, tpg=group)


def transaction_producers(app: faust.App) -> dict:
    """transactional id -> the aiokafka producer Faust keeps for it."""
    return app.producer._transaction_producers


class _StreamFailed(NamedTuple):
    error: BaseException


_NOT_READ = object()  # take_batches: the next batch's first event is still to be read


async def take_batches(stream, limit: int | Callable[[Any], int | BatchAllowance], within_s: float,
                       gap_s: float) -> AsyncIterator[list]:
    """The events of an agent's ``stream`` in batches of at most ``limit`` events, or, a callable,
    of what it says for a batch's first event once that is in hand: a number of events, or a
    ``BatchAllowance`` asked for each event (an event it refuses begins the next batch). The first
    event of a batch is awaited without a time limit, then the events that follow it, each within
    ``gap_s`` of the one before, for at most ``within_s`` in all. A backlog (events that are there
    already) fills a batch; a lone event waits ``gap_s`` for company, not ``within_s``.
    Each batch's events are acknowledged (their offsets may then be committed) when the caller
    asks for the next batch, that is once it has handled this one.

    Faust's ``Stream.take_events`` wakes every ``within`` seconds while nothing comes (at 20 ms,
    50 wake-ups a second in every idle worker) and holds a lone event until its window ends.
    Here a task of its own reads the stream (its public event iterator, with Faust's
    acknowledgement turned off) and hands the events over one at a time, so a worker reads at
    most two events beyond the batch in hand."""
    stream.enable_acks = False  # acknowledged below, after the caller handled the batch
    handoff: asyncio.Queue = asyncio.Queue(maxsize=1)

    async def read() -> None:
        try:
            async for event in stream.events():
                await handoff.put(event)
            await handoff.put(None)  # the stream ended (it stops with the worker)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - raised again in the agent's task
            await handoff.put(_StreamFailed(exc))

    def checked(event):
        if isinstance(event, _StreamFailed):
            raise event.error
        return event

    def allowance_for(first) -> BatchAllowance:
        given = limit(first) if callable(limit) else limit
        return given if isinstance(given, BatchAllowance) else BatchAllowance(given)

    reader = asyncio.get_running_loop().create_task(read(), name="take-batches")
    try:
        event = checked(await handoff.get())
        while event is not None:  # None: the stream ended
            allowance = allowance_for(event)
            allowance.takes(event)  # the first is always taken
            batch = [event]
            deadline = time.monotonic() + within_s
            event = _NOT_READ
            while allowance.count < allowance.most:
                if handoff.empty():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        event = await asyncio.wait_for(handoff.get(), min(gap_s, remaining))
                    except TimeoutError:
                        break
                else:
                    event = handoff.get_nowait()
                if checked(event) is None or not allowance.takes(event):
                    break  # the stream ended, or the event begins the next batch
                batch.append(event)
                event = _NOT_READ
            yield batch
            for done in batch:
                await stream.ack(done)
            if event is _NOT_READ:
                event = checked(await handoff.get())
    finally:
        reader.cancel()


def on_produced(app: faust.App, callback: Callable[[Any], None]) -> None:
    """Call ``callback(metadata)`` for every record the app's producer has sent."""

    class ProducedOffsets(Sensor):
        def on_send_completed(self, producer, state, metadata) -> None:
            callback(metadata)

    app.sensors.add(ProducedOffsets())


class QuickWorker(faust.Worker):
    """Faust's worker, closing its event loop 0.1 s after everything stopped and was gathered (mode
    waits 1 s: every stop and every restart of a worker took that second more)."""

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(0.1)


def new_worker(app: faust.App, log_level: str, logging_config: dict,
               on_stop_signal: Callable[[Callable[[], None]], Callable[[], None]] | None = None) -> faust.Worker:
    """The worker process object of ``app``. ``on_stop_signal`` wraps mode's SIGTERM and SIGINT
    handlers (it gets the original and returns the handler to install)."""
    worker = QuickWorker(app, loglevel=log_level, quiet=True, redirect_stdouts=False, logging_config=logging_config)
    worker.spinner = None  # it writes terminal escape codes into the log file
    if on_stop_signal is not None:
        # mode's Worker installs these (bound methods looked up on the instance) when it starts
        worker._on_sigterm = on_stop_signal(worker._on_sigterm)
        worker._on_sigint = on_stop_signal(worker._on_sigint)
    return worker
