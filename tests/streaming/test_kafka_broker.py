"""Kafka nodes: storage formatting and cluster ids (one in 64 random ids starts with "-", which a
command line reads as an option: CI met one)."""

from __future__ import annotations

import pytest

from pipeline.streaming.kafka_broker import (
    KafkaNode,
    KafkaUnavailable,
    check_available,
    free_port,
    kafka_libs,
    new_cluster_id,
)


def test_new_cluster_ids_are_kafka_shaped_and_never_start_with_a_dash():
    ids = {new_cluster_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_storage_formats_with_an_id_that_starts_with_a_dash(tmp_path):
    try:
        check_available(kafka_libs())
    except KafkaUnavailable as exc:
        pytest.skip(f"Apache Kafka cannot run here ({exc}); scripts/bootstrap fetches it")
    controller = free_port("127.0.0.1")
    node = KafkaNode(1, tmp_path, free_port("127.0.0.1"), controller, {1: controller})
    node.format("-Ui2Y6ksThC5hcLt3Eq1mQ")  # an id as older code made them
    assert "cluster.id=-Ui2Y6ksThC5hcLt3Eq1mQ" in (node.data_dir / "meta.properties").read_text()
