"""A running pipeline for a test module: the embedded broker, the topics and one real worker
process per stage, with a dedup index and a sink folder of its own (the embedded index server in
the test's folder, or a namespace of the tests' Redis when the test asks for a redis:// store)."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from pipeline import config
from pipeline.streaming.replay import Sent, make_producer, prepare
from pipeline.streaming.supervisor import Supervisor
from pipeline.streaming.tracker import DeliveryTracker
from tests.conftest import CONFIG, copy_formatted_broker

# test pipelines serve their metrics and dashboard on free ports, never on the configured ones
FREE_PORTS = {"PIPELINE__MONITORING__PORTS": "{clean = 0, language = 0, entities = 0, dedup = 0, sink = 0}",
              "PIPELINE__MONITORING__DASHBOARD_PORT": "0"}
#: settings that change how fast a test pipeline starts, never what it answers: the language worker's
#: token cache starts empty (filling it from wordfreq costs 1.2 CPU-seconds at every start, while
#: four other workers load on the same two cores; the cached sums equal the model's, see
#: tests/stages/test_language.py)
QUICK_START = {"PIPELINE__STAGES__LANGUAGE__CACHE_WORDS": "0"}


@dataclass
class RunningPipeline:
    supervisor: Supervisor
    tracker: DeliveryTracker
    sink_path: Path
    namespace: str

    @property
    def settings(self):
        return self.supervisor.settings

    @property
    def bootstrap(self) -> str:
        return self.supervisor.bootstrap

    def send(self, topic: str, messages: list[tuple[bytes | None, bytes]], rate: float | None = None) -> list[Sent]:
        """Send the messages (at about ``rate`` per second, as a live feed would, when given)."""
        producer = make_producer(self.bootstrap, self.settings)
        producer.config["max_request_size"] = 32 << 20  # the fuzz test sends 20 MB events
        futures = []
        start = time.monotonic()
        for n, (key, value) in enumerate(messages):
            delay = start + n / rate - time.monotonic() if rate else 0
            if delay > 0:
                time.sleep(delay)
            futures.append((key, producer.send(topic, key=key, value=value)))
        producer.flush()
        sent = []
        for key, future in futures:
            meta = future.get(timeout=30)
            sent.append(Sent(key.decode() if key else None, meta.partition, meta.offset))
        producer.close()
        return sent

    def replay_items(self, items) -> tuple[list[Sent], list[bytes]]:
        """Send source items as `pipeline replay` would; return what was sent and the payloads."""
        prepared = [prepare(item) for item in items]
        return self.send(self.settings.topics.raw, prepared), [value for _, value in prepared]

    def wait(self, sent: list[Sent], timeout_s: float = 60.0) -> None:
        missing = self.tracker.wait_for(sent, timeout_s)
        assert not missing, f"not delivered nor dead-lettered within {timeout_s} s: {missing}"

    def sink_records(self) -> dict[str, list[dict]]:
        """Records in the JSONL sink folder (open part files included), by id."""
        from pipeline.sinks.jsonl import read_records

        by_id: dict[str, list[dict]] = {}
        for record in read_records(self.sink_path, include_open=True):
            by_id.setdefault(record["id"], []).append(record)
        return by_id

    def dead_letters(self) -> list[dict]:
        return [orjson.loads(value) for _, value in self.topic_messages(self.settings.topics.deadletter)]

    def topic_messages(self, topic: str, committed_only: bool | None = None) -> list[tuple[bytes | None, bytes]]:
        """Every message of ``topic`` from its start: ``(key, value)``. ``committed_only``: only
        those of committed transactions (None: as the pipeline's own consumers read)."""
        from kafka import KafkaConsumer, TopicPartition

        options = self.settings.consumer_options()
        if committed_only is not None:
            options["isolation_level"] = "read_committed" if committed_only else "read_uncommitted"
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), group_id=None, enable_auto_commit=False,
                                 fetch_max_wait_ms=50, **options)
        parts = [TopicPartition(topic, p) for p in range(self.settings.topics.partitions_of(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        found = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=200).values():
                found.extend((m.key, m.value) for m in messages)
        consumer.close()
        return found

    def worker_pids(self) -> dict[str, int]:
        return {w.name: w.proc.pid for w in self.supervisor.workers}


@contextmanager
def pipeline_environment(tmp: Path, **overrides: str):
    """Environment every process of a test pipeline sees: a dedup index namespace, an embedded
    index folder and a log folder of its own, plus ``overrides`` (``PIPELINE__...`` variables;
    ``PIPELINE__STAGES__DEDUP__STORE`` set to a Redis URL uses that Redis instead)."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        "PIPELINE__STAGES__DEDUP__STORE": "embedded",
        "PIPELINE__EMBEDDED_INDEX__DIR": str(tmp / "dedup-index"),
        "PIPELINE__EMBEDDED_BROKER__DATA_DIR": str(tmp / "broker"),
        "PIPELINE__STAGES__DEDUP__NAMESPACE": namespace,
        "PIPELINE__RUN__LOG_DIR": str(tmp / "logs"),
        "PIPELINE__RUN__LOG_LEVEL": "info",
        **FREE_PORTS,
        **QUICK_START,
        **overrides,
    }
    if "KAFKA_BOOTSTRAP_SERVERS" not in overrides:
        copy_formatted_broker(Path(env["PIPELINE__EMBEDDED_BROKER__DATA_DIR"]))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        mp.delenv("PIPELINE_CONFIG", raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        try:
            yield namespace
        finally:
            store = env["PIPELINE__STAGES__DEDUP__STORE"]
            if store.startswith("redis://"):
                import redis

                client = redis.Redis.from_url(store)
                for key in client.scan_iter(match=f"{namespace}:*", count=1000):
                    client.delete(key)
                client.close()


_IN_TMP = object()


@contextmanager
def running_pipeline(tmp: Path, sink_targets=_IN_TMP, **overrides: str):
    """The broker (embedded unless KAFKA_BOOTSTRAP_SERVERS is among ``overrides``), the topics and
    real worker processes, until the block ends. The sink is a JSONL folder in ``tmp`` unless
    ``sink_targets`` is given (None: the configured targets)."""
    with pipeline_environment(tmp, **overrides) as namespace:
        settings = config.load(CONFIG)
        sink_path = tmp / "enriched"
        targets = [f"jsonl:{sink_path}"] if sink_targets is _IN_TMP else sink_targets
        supervisor = Supervisor(settings, sink_targets=targets, console=Console(stderr=True))
        tracker = None
        try:
            supervisor.start()
            supervisor.wait_ready(90)
            tracker = DeliveryTracker(supervisor.bootstrap, supervisor.settings)
            yield RunningPipeline(supervisor, tracker, sink_path, namespace)
        finally:
            if tracker is not None:
                tracker.close()
            supervisor.stop()


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with running_pipeline(tmp_path_factory.mktemp("pipeline")) as pipeline:
        yield pipeline
