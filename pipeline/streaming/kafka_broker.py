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
import subprocess
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
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


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
    log_file: Path | None = None  # default: broker.log in the node's folder
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
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "group.initial.rebalance.delay.ms": "0",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.num.partitions": "8",
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

    def _java(self, main: str, *args: str, heap_mb: int | None = None) -> list[str]:
        java, _ = check_available(self.libs)
        log4j = self.folder / "log4j2.properties"
        opts = [f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true"]
        if heap_mb:
            opts += [f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                     "-XX:+ExitOnOutOfMemoryError"]
        return [java, *opts, "-cp", str(self.libs / "*"), main, *args]

    def format(self, cluster_id: str) -> None:
        """Write the node's storage metadata, once (a formatted folder is left as it is)."""
        if (self.data_dir / "meta.properties").exists():
            return
        props, _ = self._write_config()
        cmd = self._java(STORAGE_TOOL, "format", "-t", cluster_id, "-c", str(props), "--ignore-formatted")
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            out = (result.stderr + result.stdout).splitlines()
            reason = next((line for line in out if "Exception" in line or "rror" in line), out[-1] if out else "")
            raise RuntimeError(f"formatting Kafka storage in {self.data_dir} failed: {reason.strip()}")

    def start(self) -> None:
        props, _ = self._write_config()
        cmd = self._java(KAFKA_MAIN, str(props), heap_mb=self.heap_mb)
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
