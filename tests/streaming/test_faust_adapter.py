"""What the pipeline relies on in Faust beyond its public API (``faust_adapter.RELIED_ON`` and
``RELIED_ON_INSTANCES``) is there, on real objects: a Faust upgrade that changes any of it fails
here, by name, before a worker runs."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.structs import TopicPartition

from pipeline import config
from pipeline.streaming import faust_adapter
from pipeline.streaming.batching import BatchAllowance
from tests.conftest import CONFIG, ROOT


def test_every_internal_the_adapter_relies_on_exists():
    assert faust_adapter.missing_internals() == []
    settings = config.load(CONFIG, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    app = faust_adapter.make_app(settings, "clean")  # nothing connects until it starts
    worker = faust_adapter.new_worker(app, "warn", {"version": 1}, lambda handler: handler)

    async def consumer_of_aiokafka():  # what the consumer thread makes when it starts (patched by the adapter)
        return app.consumer._thread._create_worker_consumer(app.transport)

    aiokafka_consumer = asyncio.run(consumer_of_aiokafka())
    owners = {"consumer": app.consumer, "producer": app.producer, "worker": worker,
              "aiokafka_consumer": aiokafka_consumer,
              "fetch_request": FetchRequest(500, 1, 1 << 20, 0, [("pages.raw", [(0, 0, 1 << 20)])])}
    missing = [f"{owner}.{name} ({why})" for owner, name, why in faust_adapter.RELIED_ON_INSTANCES
               if not hasattr(owners[owner], name)]
    assert missing == []
    assert aiokafka_consumer._fetch_max_wait_ms == settings.profile.fetch_max_wait_ms
    # the assignor learns topic groups from the group leader at assignment; as it would:
    app.assignor._topic_groups["pages.raw"] = 0
    assert faust_adapter.transactional_id(app, "pages.raw", 3) == f"{app.conf.id}-0-3"


def test_the_workers_producer_is_idempotent_as_its_profile_says():
    """aiokafka's producer as Faust builds it (nothing connects): with the profile's
    ``idempotent_producer`` it numbers its batches (a transaction manager without a transactional
    id), and without it it does not."""
    async def producer_of(settings):
        return faust_adapter.make_app(settings, "clean").producer._new_producer()

    for value, idempotent in (("true", True), ("false", False)):
        settings = config.load(CONFIG, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                                            "PIPELINE__PROFILES__EXTERNAL__IDEMPOTENT_PRODUCER": value})
        producer = asyncio.run(producer_of(settings))
        assert (producer._txn_manager is not None) is idempotent
        assert producer._txn_manager is None or producer._txn_manager.transactional_id is None


def test_a_fetch_for_every_partition_waits_the_idle_wait_and_one_that_leaves_a_partition_out_does_not():
    """aiokafka's own fetch plan (a real Fetcher, the adapter's wrapper around it) for a consumer
    with four partitions on one node: all four asked for, the broker may hold the fetch for the
    profile's idle wait; one of them paused (as Faust pauses a partition whose buffer is full),
    the fetch leaves it out and keeps the short wait, so that partition is not stuck behind it."""
    settings = config.load(CONFIG, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    faust_adapter.make_app(settings, "clean")  # takes the profile's fetch waits
    profile = settings.profile

    class OneNode:  # the cluster's metadata: node 1 leads every partition
        def leader_for_partition(self, tp):
            return 1

        def broker_metadata(self, node_id):
            return object()

    async def plans() -> list[list[tuple[int, int, int]]]:
        client = AIOKafkaClient(bootstrap_servers="127.0.0.1:1")  # never connects here
        client.cluster = OneNode()
        subscription = SubscriptionState()
        partitions = [TopicPartition("pages.raw", p) for p in range(4)]
        subscription.assign_from_user(set(partitions))
        fetcher = Fetcher(client, subscription, fetch_max_wait_ms=profile.fetch_max_wait_ms)
        assignment = subscription.subscription.assignment
        for tp in partitions:
            assignment.state_value(tp).seek(0)
        out = []
        try:
            for paused in (None, partitions[2]):
                if paused is not None:
                    assignment.state_value(paused).pause()
                requests = fetcher._get_actions_per_node(assignment)[0]
                out.append([(node, sum(len(p) for _, p in r.topics), r._max_wait_ms) for node, r in requests])
        finally:
            await fetcher.close()
            await client.close()
        return out

    idle, one_paused = asyncio.run(plans())
    assert profile.fetch_idle_wait_ms > profile.fetch_max_wait_ms
    assert idle == [(1, 4, profile.fetch_idle_wait_ms)]
    assert one_paused == [(1, 3, profile.fetch_max_wait_ms)]


def test_a_worker_that_joins_last_gets_partitions_from_the_workers_app_assignor():
    """Workers of a stage joined one after another: 4 partitions held 2 + 2 by the first two, a
    third joins. Faust's sticky assignor, as the workers' app configures it (no standby replicas),
    gives the third at least one; with a standby replica (Faust's default) it gave it none. The
    consumer keeps Faust's assignor (exactly-once names its producers by its topic groups)."""
    from faust.assignor.client_assignment import CopartitionedAssignment
    from faust.assignor.copartitioned_assignor import CopartitionedAssignor

    settings = config.load(CONFIG, env={"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    app = faust_adapter.make_app(settings, "language")

    def third_gets(replicas: int) -> list[int]:
        held = {"first": CopartitionedAssignment({0, 1}), "second": CopartitionedAssignment({2, 3}),
                "third": CopartitionedAssignment()}
        out = CopartitionedAssignor({"pages.cleaned"}, held, 4, replicas).get_assignment()
        assert sorted(p for a in out.values() for p in a.actives) == [0, 1, 2, 3]
        return sorted(out["third"].actives)

    assert app.assignor.replicas == 0 and len(third_gets(app.assignor.replicas)) >= 1
    assert isinstance(app.assignor, faust_adapter.BalancedAssignor) and app.conf.table_standby_replicas > 0
    assert third_gets(1) == []  # the defect the setting avoids


def test_no_other_module_imports_faust_or_its_libraries():
    importers = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] in ("faust", "mode") for n in names):
                importers.append(str(path.relative_to(ROOT)))
    assert set(importers) == {str(Path("pipeline/streaming/faust_adapter.py"))}


class _Stream:
    """What take_batches uses of a Faust stream: its events, and acknowledging one."""

    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue()
        self.acked: list = []
        self.enable_acks = True

    async def events(self):
        while True:
            item = await self.queue.get()
            if isinstance(item, Exception):
                raise item
            if item is None:  # the stream stops
                return
            yield item

    async def ack(self, event) -> None:
        self.acked.append(event)


def test_take_batches_acknowledges_a_batch_once_handled_and_waits_for_the_first_event_without_a_limit():
    async def scenario():
        stream = _Stream()
        for n in range(5):
            stream.queue.put_nowait(n)
        batches = faust_adapter.take_batches(stream, limit=2, within_s=0.05, gap_s=0.01)
        assert await anext(batches) == [0, 1] and stream.acked == [] and stream.enable_acks is False
        assert await anext(batches) == [2, 3] and stream.acked == [0, 1]
        assert await anext(batches) == [4] and stream.acked == [0, 1, 2, 3]  # the rest, after gap_s
        waiting = asyncio.ensure_future(anext(batches))
        for _ in range(100):  # nothing comes: the next batch waits, whatever within_s is
            await asyncio.sleep(0)
        assert not waiting.done() and stream.acked == [0, 1, 2, 3, 4]
        stream.queue.put_nowait(5)
        assert await waiting == [5]
        stream.queue.put_nowait(RuntimeError("the channel failed"))
        try:
            await anext(batches)
        except RuntimeError as exc:
            assert str(exc) == "the channel failed"
        else:
            raise AssertionError("the stream's error did not reach the agent")
        await batches.aclose()

        ending = _Stream()
        for item in (7, 8, None):
            ending.queue.put_nowait(item)
        assert [batch async for batch in faust_adapter.take_batches(ending, 5, 0.05, 0.01)] == [[7, 8]]
        assert ending.acked == [7, 8]

    asyncio.run(scenario())


def test_take_batches_asks_a_callable_for_each_batch_s_size_given_its_first_event():
    async def scenario():
        stream = _Stream()
        for n in range(6):
            stream.queue.put_nowait(n)
        sizes = iter([1, 3, 5])
        asked: list[tuple[int, int]] = []

        def size(first) -> int:
            asked.append((first, len(stream.acked)))  # and what was handled when the batch began
            return next(sizes)

        batches = faust_adapter.take_batches(stream, size, within_s=0.05, gap_s=0.01)
        assert [await anext(batches) for _ in range(3)] == [[0], [1, 2, 3], [4, 5]]
        assert asked == [(0, 0), (1, 1), (4, 4)]
        await batches.aclose()

    asyncio.run(scenario())


def test_take_batches_begins_the_next_batch_with_the_event_an_allowance_refused():
    async def scenario():
        stream = _Stream()
        for length in (5, 3, 4, 9, 1, 1):
            stream.queue.put_nowait("x" * length)
        batches = faust_adapter.take_batches(stream, lambda first: BatchAllowance(10, units=8, weigh=len),
                                             within_s=0.05, gap_s=0.01)
        got = [[len(e) for e in await anext(batches)] for _ in range(3)]
        assert got == [[5, 3], [4], [9]]  # 4 would pass 8 after 5 + 3; 9 alone is over 8, and first
        assert [len(e) for e in stream.acked] == [5, 3, 4]
        assert [len(e) for e in await anext(batches)] == [1, 1]
        await batches.aclose()

    asyncio.run(scenario())
