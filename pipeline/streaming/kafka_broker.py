"""Apache Kafka brokers run here: the embedded default of ``pipeline run`` (one KRaft node with its
data on disk) and the nodes of the test cluster.

The jars come from Maven Central: ``scripts/bootstrap`` copies Kafka (version pinned in
``scripts/kafka/pom.xml``) and its dependencies into ``.cache/kafka/libs``; a node is
``java -cp 'libs/*' kafka.Kafka server.properties``. A node's folder holds its properties, its
log configuration, its cluster id and its partitions (``data/``); a node started again on the same
folder resumes with every topic, record and committed offset it had.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.streaming import processes

KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = out
"""


class BrokerError(RuntimeError):
    pass


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_kafka(bootstrap: str, timeout_s: float, proc: subprocess.Popen | None = None,
                   options: dict | None = None) -> None:
    """Block until a Kafka client can fetch metadata from ``bootstrap`` (``options``: kafka-python
    client settings, BrokerSettings.client_options)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    first = bootstrap.split(",")[0]
    host, _, port = first.rpartition(":")
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"broker exited with code {proc.returncode} during start-up")
        # a client made before the port listens backs off for seconds: wait for the port first
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError as exc:
            last = exc
            time.sleep(0.05)
            continue
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=3000,
                                     bootstrap_timeout_ms=5000, client_id="pipeline-probe", **(options or {}))
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError) as exc:
            last = exc
            time.sleep(0.1)
    raise BrokerError(f"no Kafka broker answered at {bootstrap} within {timeout_s:g} s: {last}")


class KafkaUnavailable(RuntimeError):
    """Java or the Kafka jars are missing."""


def kafka_libs(configured: str = "") -> Path:
    """The folder of Kafka's jars: ``configured``, else ``KAFKA_LIBS``, else this checkout's cache."""
    return Path(configured or os.environ.get("KAFKA_LIBS") or PROJECT_ROOT / ".cache" / "kafka" / "libs")


def java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def kafka_version(libs: Path) -> str | None:
    for jar in libs.glob("kafka_2.13-*.jar"):
        return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return None


def check_available(libs: Path) -> tuple[str, str]:
    """``(java, version)``, or :class:`KafkaUnavailable` saying what is missing."""
    java = java_binary()
    if java is None:
        raise KafkaUnavailable("no java on PATH (or JAVA_HOME)")
    version = kafka_version(libs)
    if version is None:
        raise KafkaUnavailable(f"no Kafka jars in {libs} (scripts/bootstrap fetches them with Maven)")
    return java, version


def new_cluster_id() -> str:
    """A random id as Kafka writes them (22 characters of URL-safe base64), never starting with "-"
    (Kafka's own tools avoid that too: a command line would read it as an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


@dataclass
class KafkaNode:
    """One KRaft node (broker and controller). ``voters``: node id -> controller port of every
    controller of the cluster (one entry for a single node)."""

    node_id: int
    folder: Path
    port: int
    controller_port: int
    voters: dict[int, int]
    host: str = "127.0.0.1"
    heap_mb: int = 512
    log_level: str = "warn"
    properties: dict[str, str] = field(default_factory=dict)
    libs: Path = field(default_factory=kafka_libs)
    listener: str = "PLAINTEXT"  # the clients' listener: its name is its security protocol (SASL_PLAINTEXT, SSL, ...)
    log_file: Path | None = None  # default: broker.log in the node's folder
    jvm_options: list[str] = field(default_factory=list)  # more options for the broker's JVM
    proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.log_file or self.folder / "broker.log"

    def server_properties(self) -> dict[str, str]:
        voters = ",".join(f"{n}@{self.host}:{p}" for n, p in sorted(self.voters.items()))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"{self.listener}://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"{self.listener}://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": self.listener,
            "listener.security.protocol.map": f"{self.listener}:{self.listener},CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.num.partitions": "8",
            # A node killed and started again registers anew only once the controller has fenced its
            # old incarnation, when the old one's session (9 s by default) has run out: the embedded
            # broker then took 11.8 s to answer again after a SIGKILL, 4.8 s with these (a node
            # pausing for 3 s is briefly fenced and back at its next heartbeat). Idle, the embedded
            # broker used 1.17 % of a core with the defaults, 1.32 % with these, 1.73 % with
            # heartbeats every 500 ms (4.7 s); one 60 s window each.
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "1000",
        }
        props.update(self.properties)
        return props

    def _write_config(self) -> tuple[Path, Path]:
        self.folder.mkdir(parents=True, exist_ok=True)
        props = self.folder / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties().items()))
        log4j = self.folder / "log4j2.properties"
        log4j.write_text(LOG4J2.format(level={"warn": "warn", "warning": "warn"}.get(self.log_level, self.log_level)))
        return props, log4j

    def _java(self, main: str, *args: str, broker: bool = False) -> list[str]:
        """The command of a Kafka tool, or (``broker``) of the node itself, with its heap and
        ``jvm_options``."""
        java, _ = check_available(self.libs)
        log4j = self.folder / "log4j2.properties"
        opts = [f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true"]
        if broker and self.heap_mb:
            # a fixed heap, touched at start: the broker's memory is as large on day 3 as at minute 1
            opts += [f"-Xms{self.heap_mb}m", f"-Xmx{self.heap_mb}m", "-XX:+AlwaysPreTouch", "-XX:+UseG1GC",
                     "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError"]
        if broker:
            opts += self.jvm_options
        return [java, *opts, "-cp", str(self.libs / "*"), main, *args]

    def format(self, cluster_id: str) -> None:
        """Write the node's storage metadata, once (a formatted folder is left as it is)."""
        if (self.data_dir / "meta.properties").exists():
            return
        props, _ = self._write_config()
        cmd = self._java(STORAGE_TOOL, "format", f"--cluster-id={cluster_id}", "-c", str(props), "--ignore-formatted")
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            out = (result.stderr + result.stdout).splitlines()
            reason = next((line for line in out if "Exception" in line or "rror" in line), out[-1] if out else "")
            raise RuntimeError(f"formatting Kafka storage in {self.data_dir} failed: {reason.strip()}")

    def start(self) -> None:
        props, _ = self._write_config()
        cmd = self._java(KAFKA_MAIN, str(props), broker=True)
        self.proc = processes.spawn(cmd, self.log_path)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: the node moves its leaderships away, flushes and exits (SIGKILL after the time-out)."""
        if self.proc is not None:
            processes.stop([self.proc], timeout=timeout_s)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class LocalCluster:
    """Several KRaft nodes on loopback, each broker and controller (a quorum of all of them): the
    test suite's Apache Kafka cluster. Replication factor and ``min.insync.replicas`` apply to
    every topic, the internal ones included; ``jvm_options`` go to every node's JVM."""

    def __init__(self, folder: Path, nodes: int = 3, replication_factor: int = 3, min_insync: int = 2,
                 heap_mb: int = 256, properties: dict[str, str] | None = None, host: str = "127.0.0.1",
                 jvm_options: list[str] | None = None):
        self.folder = Path(folder)
        ports = {n: (free_port(host), free_port(host)) for n in range(1, nodes + 1)}
        voters = {n: cport for n, (_, cport) in ports.items()}
        props = {
            "default.replication.factor": str(replication_factor),
            "min.insync.replicas": str(min_insync),
            "offsets.topic.replication.factor": str(replication_factor),
            "transaction.state.log.replication.factor": str(replication_factor),
            "transaction.state.log.min.isr": str(min_insync),
            "share.coordinator.state.topic.replication.factor": str(replication_factor),
            "share.coordinator.state.topic.min.isr": str(min_insync),
            "num.partitions": "4",
            "auto.create.topics.enable": "false",
            **(properties or {}),
        }
        self.nodes = [KafkaNode(node_id=n, folder=self.folder / f"node-{n}", port=port, controller_port=cport,
                                voters=voters, host=host, heap_mb=heap_mb, properties=props,
                                jvm_options=list(jvm_options or []))
                      for n, (port, cport) in ports.items()]
        self.cluster_id = new_cluster_id()

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def start(self, timeout_s: float = 120.0) -> str:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.nodes)) as pool:  # a JVM of Kafka's storage tool each, at once
            list(pool.map(lambda node: node.format(self.cluster_id), self.nodes))
        for node in self.nodes:
            node.start()
        self.wait_healthy(timeout_s)
        return self.bootstrap

    def wait_healthy(self, timeout_s: float = 120.0, topics: list[str] | None = None) -> None:
        """Until every node answers and every partition of ``topics`` (all, if None) has its full ISR."""
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            if node.alive():
                wait_for_kafka(node.bootstrap, max(1.0, deadline - time.monotonic()), node.proc)
        while time.monotonic() < deadline:
            try:
                if not self.under_replicated(topics):
                    return
            except Exception:  # noqa: BLE001 - metadata not there yet
                pass
            time.sleep(0.5)
        raise BrokerError(f"cluster not fully replicated after {timeout_s:g} s: {self.under_replicated(topics)}")

    def describe(self, topics: list[str] | None = None) -> list[dict]:
        from kafka import KafkaAdminClient

        live = ",".join(n.bootstrap for n in self.nodes if n.alive())
        admin = KafkaAdminClient(bootstrap_servers=live.split(","), client_id="cluster-probe", request_timeout_ms=5000)
        try:
            return admin.describe_topics(topics)
        finally:
            admin.close()

    def under_replicated(self, topics: list[str] | None = None) -> list[tuple[str, int]]:
        want = len(self.nodes)
        out = []
        for topic in self.describe(topics):
            for part in topic["partitions"]:
                if len(part["isr_nodes"]) < min(want, len(part["replica_nodes"])):
                    out.append((topic["name"], part["partition_index"]))
        return out

    def leader_counts(self, topics: list[str]) -> dict[int, int]:
        counts = {n.node_id: 0 for n in self.nodes}
        for topic in self.describe(topics):
            for part in topic["partitions"]:
                if part["leader_id"] in counts:
                    counts[part["leader_id"]] += 1
        return counts

    def stop(self, timeout_s: float = 20.0) -> None:
        """All nodes at once (one by one, the last ones would wait for a quorum that is gone)."""
        processes.stop([n.proc for n in self.nodes if n.proc is not None], timeout=timeout_s)
        for node in self.nodes:
            node.proc = None
