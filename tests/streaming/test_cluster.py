"""The pipeline on a three-broker Apache Kafka cluster (KRaft, replication factor 3,
``min.insync.replicas`` 2) with the external profile, while brokers fail: every test counts every
record at the sink.

Each test has topics and consumer groups of its own on the one cluster of this module."""

from __future__ import annotations

import threading
import uuid

import pytest

from pipeline import registry
from pipeline.records import encode
from pipeline.sinks.jsonl import read_records
from pipeline.sources.files import read_paths
from tests.conftest import SEEDS
from tests.streaming.conftest import running_pipeline
from tests.streaming.test_delivery import events, flowing, sigkill_each_stage_while_records_flow

pytestmark = pytest.mark.integration

TOPIC_KEYS = ("raw", "cleaned", "language", "entities", "enriched", "deadletter", "delivered")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from pipeline.streaming.broker import IDLE_JVM_OPTIONS
    from pipeline.streaming.kafka_broker import KafkaUnavailable, LocalCluster, check_available, kafka_libs

    try:
        check_available(kafka_libs())
    except KafkaUnavailable as exc:
        pytest.skip(f"Apache Kafka cannot run here ({exc}); scripts/bootstrap fetches it")
    # the embedded node's JVM options (C1 compiles only, one GC thread of each kind): three JVMs
    # share the machine's cores with the workers
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), jvm_options=IDLE_JVM_OPTIONS)
    cluster.start()
    yield cluster
    cluster.stop()


def cluster_env(cluster) -> dict[str, str]:
    """The environment of a pipeline on the cluster, with topics and consumer groups of its own."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    return {"KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap, "PIPELINE__BROKER__PROFILE": "external",
            "PIPELINE__TOPICS__REPLICATION_FACTOR": "3", "PIPELINE__BROKER__CONSUMER_GROUP_PREFIX": prefix,
            **{f"PIPELINE__TOPICS__{key.upper()}": f"{prefix}.{key}" for key in TOPIC_KEYS}}


def on_cluster(cluster, tmp_path):
    return running_pipeline(tmp_path, **cluster_env(cluster))


class Feeder:
    """Sends records at about ``rate`` per second from a thread until stopped (or out of records),
    so that whatever a test does to the cluster happens while records flow, however long it takes."""

    def __init__(self, pipeline, batch: list[dict], rate: float):
        self.pipeline, self.batch, self.rate = pipeline, batch, rate
        self.sent: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        step = max(1, int(self.rate // 5))  # five sends a second
        for start in range(0, len(self.batch), step):
            if self._stop.wait(step / self.rate):
                return
            chunk = self.batch[start:start + step]
            self.sent.extend(self.pipeline.send(self.pipeline.settings.topics.raw,
                                                [(e["id"].encode(), encode(e)) for e in chunk]))

    def stop(self) -> list:
        self._stop.set()
        self._thread.join(60)
        return self.sent

    def finish(self) -> tuple[list[dict], list[dict]]:
        """Stop feeding, wait until every sent record is through; (the records fed, dead letters)."""
        sent = self.stop()
        self.pipeline.wait(sent, timeout_s=300)
        return self.batch[:len(sent)], self.pipeline.dead_letters()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def topics_of(pipeline) -> list[str]:
    return registry.topic_names(pipeline.settings)


def exactly_once(tmp_path, batch, also: frozenset[str] = frozenset()) -> list[str]:
    """Every record of ``batch`` (and the ids in ``also``) in the sink exactly once, and no other."""
    ids = [r["id"] for r in read_records(tmp_path / "enriched")]
    expected = {e["id"] for e in batch} | also
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} records written twice"
    assert set(ids) == expected, f"{len(expected - set(ids))} records missing"
    return ids


def test_replicated_topics_and_seeds_as_offline_then_the_broker_leading_most_partitions_is_killed(cluster,
                                                                                                    tmp_path):
    """Every topic has its partitions on all three brokers, in sync, and the seeds come out as
    `pipeline enrich` gives them; then, in the same pipeline, the broker leading most partitions
    is SIGKILLed mid-stream, the stream goes on with two, and the broker is started again: every
    record reaches the sink once. (One pipeline for both: each on the cluster costs about 9 s to
    start and stop.)"""
    from pipeline import config
    from pipeline.enrich import OfflinePipeline
    from tests.conftest import CONFIG
    from tests.streaming.test_pipeline import _comparable

    n = 1000  # the kill after 200, then 150 more on two brokers: the restart comes with hundreds still to go
    batch = events(n)
    with on_cluster(cluster, tmp_path) as pipeline:
        described = {t["name"]: t for t in cluster.describe(topics_of(pipeline))}
        for topic in topics_of(pipeline):
            parts = described[topic]["partitions"]
            assert len(parts) == pipeline.settings.topics.partitions_of(topic)
            assert all(len(p["replica_nodes"]) == 3 and len(p["isr_nodes"]) == 3 for p in parts), topic
        seeds, payloads = pipeline.replay_items(list(read_paths([str(SEEDS)])))
        pipeline.wait(seeds)
        records = pipeline.sink_records()
        assert sorted(records) == sorted(s.id for s in seeds) and all(len(r) == 1 for r in records.values())

        sent = pipeline.send(pipeline.settings.topics.raw, [(e["id"].encode(), encode(e)) for e in batch])
        at = flowing(pipeline, more=200)
        leaders = cluster.leader_counts(topics_of(pipeline))
        victim = cluster.node(max(leaders, key=leaders.get))
        victim.kill()
        flowing(pipeline, more=150)  # the stream goes on with two brokers
        victim.start()
        pipeline.wait(sent, timeout_s=300)
        cluster.wait_healthy(120, topics_of(pipeline))
        letters = pipeline.dead_letters()
    ids = exactly_once(tmp_path, batch, also=frozenset(s.id for s in seeds))
    print(f"\nleader kill: node {victim.node_id} led {leaders[victim.node_id]} of {sum(leaders.values())} partitions, "
          f"killed after {at - len(seeds)} of {n} delivered; sink {len(ids)} lines, {len(set(ids))} distinct")
    assert letters == []
    offline = OfflinePipeline(config.load(CONFIG), dedup_store="memory")
    try:
        for payload, s in zip(payloads, seeds, strict=True):
            assert _comparable(offline.enrich_payload(payload).record) == _comparable(records[s.id][0])
    finally:
        offline.close()


def test_sigkill_each_stage_while_records_flow_on_the_cluster(cluster, tmp_path, pg_table):
    """With exactly-once processing, which Apache Kafka offers (the other cluster tests run the
    external profile's at-least-once): every id once in the JSONL files and in PostgreSQL, and
    also once in every topic a stage writes."""
    # a SIGKILLed worker's successor gets its partitions once the dead member's session has expired:
    # Apache Kafka's shortest session (as the embedded profile has), not the external profile's 10 s
    sigkill_each_stage_while_records_flow(tmp_path, pg_table, **cluster_env(cluster),
                                          PIPELINE__PROFILES__EXTERNAL__PROCESSING_GUARANTEE="exactly_once",
                                          PIPELINE__PROFILES__EXTERNAL__SESSION_TIMEOUT_S="6.0",
                                          PIPELINE__PROFILES__EXTERNAL__HEARTBEAT_INTERVAL_S="2.0")


def test_rolling_restart_of_all_three_brokers_during_a_run(cluster, tmp_path):
    batch = events(20000)
    with on_cluster(cluster, tmp_path) as pipeline:
        feeder = Feeder(pipeline, batch, rate=50)
        restarted = []
        for node in cluster.nodes:
            at = flowing(pipeline, more=50)
            assert feeder.running, "out of records before the restarts ended"
            node.stop()  # SIGTERM: a controlled shutdown moves its leaderships away first
            node.start()
            cluster.wait_healthy(180, topics_of(pipeline))
            restarted.append((node.node_id, at))
        flowing(pipeline, more=50)  # and on after the last restart
        fed, letters = feeder.finish()
    ids = exactly_once(tmp_path, fed)
    print(f"\nrolling restart: (node, records delivered when it went down) {restarted}; "
          f"{len(fed)} sent, sink {len(ids)} lines")
    assert letters == []


def test_exactly_once_while_a_stage_scales_from_one_to_three_workers_and_back(cluster, tmp_path):
    """The stage's added workers take partitions and handle records, and with transactions the
    partitions (and with them the transactional ids) move between workers twice: every id is once in
    the topics the stages write, read as the pipeline reads them (read_committed), and once at the
    sink. (One test for both: scaling without transactions is the same rebalance, and each cluster
    run costs about a minute.)"""
    from collections import Counter

    batch = events(20000)
    stage = "language"
    env = {**cluster_env(cluster), "PIPELINE__PROFILES__EXTERNAL__PROCESSING_GUARANTEE": "exactly_once"}
    with running_pipeline(tmp_path, **env) as pipeline:
        feeder = Feeder(pipeline, batch, rate=50)
        flowing(pipeline, more=100)
        pipeline.supervisor.scale(stage, 3)
        pipeline.supervisor.wait_ready(90)
        flowing(pipeline, more=300)
        pipeline.supervisor.scale(stage, 1)
        flowing(pipeline, more=100)
        assert feeder.running, "out of records before the stage was scaled back"
        fed, letters = feeder.finish()
        t = pipeline.settings.topics
        twice = {topic: sum(1 for n in Counter(k for k, _ in pipeline.topic_messages(topic)).values() if n > 1)
                 for topic in (t.cleaned, t.language, t.entities, t.enriched, t.delivered)}
    ids = exactly_once(tmp_path, fed)
    workers = {t["worker"] for r in read_records(tmp_path / "enriched") for t in r["trace"] if t["stage"] == stage}
    print(f"\nexactly-once, scale 1 -> 3 -> 1 on the cluster: {len(workers)} {stage} worker processes handled "
          f"records; {len(fed)} sent, sink {len(ids)} lines; ids more than once per topic {twice}")
    assert set(twice.values()) == {0}
    # each of the three took partitions and handled records (with Faust's default of one standby
    # replica, a third worker that joined after the second got no partition in 2 of 8 runs; the
    # workers' app now has none, see test_faust_adapter.py)
    assert len(workers) >= 3
    assert letters == []
