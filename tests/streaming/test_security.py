"""The pipeline against Apache Kafka brokers that require SASL/PLAIN authentication, in plain text
and over TLS (SASL_SSL, as managed services do; the certificates are made here with openssl)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from pipeline.sources.files import read_paths
from tests.conftest import ROOT, SEEDS
from tests.streaming.conftest import running_pipeline

pytestmark = pytest.mark.integration

USER, PASSWORD = "pipeline", "pipeline-secret-4711"


def make_certificates(folder) -> tuple[str, str]:
    """A CA and a server certificate for 127.0.0.1; returns (CA file, server key + chain PEM)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=news-pipeline test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    (folder / "server.pem").write_text((folder / "server.key").read_text() + (folder / "server.crt").read_text())
    return str(folder / "ca.pem"), str(folder / "server.pem")


@pytest.fixture(scope="module", params=["SASL_PLAINTEXT", "SASL_SSL"])
def sasl_broker(request, tmp_path_factory):
    from pipeline.streaming.broker import IDLE_JVM_OPTIONS, free_port
    from pipeline.streaming.kafka_broker import (
        KafkaNode,
        KafkaUnavailable,
        check_available,
        kafka_libs,
        new_cluster_id,
    )

    try:
        check_available(kafka_libs())
    except KafkaUnavailable as exc:
        pytest.skip(f"Apache Kafka cannot run here ({exc}); scripts/bootstrap fetches it")
    protocol = request.param
    folder = tmp_path_factory.mktemp(protocol.lower())
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
            f'password="admin-secret" user_admin="admin-secret" user_{USER}="{PASSWORD}";')
    tls = {}
    cafile = ""
    if protocol == "SASL_SSL":
        if shutil.which("openssl") is None:
            pytest.skip("no openssl to make the test certificates")
        cafile, keystore = make_certificates(folder)
        tls = {"ssl.keystore.type": "PEM", "ssl.keystore.location": keystore,
               "ssl.truststore.type": "PEM", "ssl.truststore.location": cafile}
    cport = free_port("127.0.0.1")
    node = KafkaNode(node_id=1, folder=folder, port=free_port("127.0.0.1"),
                     controller_port=cport, voters={1: cport}, heap_mb=256, listener=protocol, log_level="info",
                     jvm_options=IDLE_JVM_OPTIONS,  # the embedded node's: C1 only, one GC thread of each kind
                     properties={"sasl.enabled.mechanisms": "PLAIN",
                                 "sasl.mechanism.inter.broker.protocol": "PLAIN",
                                 f"listener.name.{protocol.lower()}.plain.sasl.jaas.config": jaas, **tls,
                                 "offsets.topic.replication.factor": "1",
                                 "transaction.state.log.replication.factor": "1",
                                 "transaction.state.log.min.isr": "1",
                                 "share.coordinator.state.topic.replication.factor": "1",
                                 "share.coordinator.state.topic.min.isr": "1"})
    node.format(new_cluster_id())
    node.start()
    import socket
    import time

    deadline = time.monotonic() + 60
    while True:  # the port first: a client cannot authenticate before the broker listens
        try:
            socket.create_connection(("127.0.0.1", node.port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and node.alive(), node.log_path.read_text()[-2000:]
            time.sleep(0.1)
    node.cafile = cafile
    node.protocol = protocol
    yield node
    node.stop()


def sasl_env(node, password: str = PASSWORD) -> dict[str, str]:
    env = {"KAFKA_BOOTSTRAP_SERVERS": node.bootstrap, "PIPELINE__BROKER__PROFILE": "external",
           "PIPELINE__BROKER__SECURITY_PROTOCOL": node.protocol, "PIPELINE__BROKER__SASL_MECHANISM": "PLAIN",
           "PIPELINE__BROKER__SASL_USERNAME": USER, "PIPELINE__BROKER__SASL_PASSWORD": password}
    if node.cafile:
        env["PIPELINE__BROKER__SSL_CAFILE"] = node.cafile
    return env


def client_options(node) -> dict:
    from pipeline import config
    from tests.conftest import CONFIG

    return config.load(CONFIG, env=sasl_env(node)).broker.client_options()


def test_seeds_flow_with_sasl_plain_authentication(sasl_broker, tmp_path):
    from pipeline.streaming.broker import wait_for_kafka

    wait_for_kafka(sasl_broker.bootstrap, 60, sasl_broker.proc, options=client_options(sasl_broker))
    with running_pipeline(tmp_path, **sasl_env(sasl_broker)) as pipeline:
        sent, _ = pipeline.replay_items(list(read_paths([str(SEEDS)])))
        pipeline.wait(sent)
        records = pipeline.sink_records()
    assert sorted(records) == sorted(s.id for s in sent)
    assert all(len(copies) == 1 and copies[0]["lang"]["code"] == "id" for copies in records.values())


@pytest.mark.parametrize("sasl_broker", ["SASL_PLAINTEXT"], indirect=True)
def test_a_wrong_password_is_refused_in_one_line(sasl_broker, tmp_path):
    import os

    env = {**os.environ, **sasl_env(sasl_broker, password="wrong"), "PIPELINE__RUN__LOG_DIR": str(tmp_path / "logs")}
    # the client waits out its time-out (the broker hangs up without a reason it passes on)
    result = subprocess.run([sys.executable, "-m", "pipeline", "topics", "--timeout", "5"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    # one line, no traceback; the client only sees the broker hang up (kafka-python does not pass the
    # broker's reason on), and the broker's log says why
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.startswith("pipeline: Kafka: ") and "Traceback" not in result.stderr, result.stderr
    assert "Authentication failed" in sasl_broker.log_path.read_text(errors="replace")


def test_the_preflight_connects_a_producer_as_the_workers_will(sasl_broker):
    """`pipeline run` and `pipeline doctor` connect an idempotent producer with the configured
    security before anything starts: with the right password it gets its producer id; with a wrong
    one the run is refused in one line that points at the security settings, not at idempotence."""
    from pipeline import config
    from pipeline.streaming import preflight
    from tests.conftest import CONFIG

    good = config.load(CONFIG, env=sasl_env(sasl_broker))
    assert good.profile.idempotent_producer
    assert preflight._idempotence_check(good) == []
    found = preflight._idempotence_check(config.load(CONFIG, env=sasl_env(sasl_broker, password="wrong")))
    assert len(found) == 1 and "cannot connect" in found[0] and "security_protocol" in found[0], found
    assert "wrong" not in found[0]
