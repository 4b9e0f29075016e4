"""The workers' producer against the real embedded Apache Kafka: a send whose answer is lost is
retried, and with the profile's ``idempotent_producer`` the broker writes it once."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import RequestTimedOutError
from aiokafka.protocol.produce import ProduceRequest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from pipeline import config
from pipeline.streaming import faust_adapter
from tests.conftest import CONFIG, test_broker

pytestmark = pytest.mark.integration


async def send_once_losing_the_first_answer(settings: config.Settings, topic: str) -> int:
    """One record through the producer Faust builds for a worker, where the broker's answer to
    the first produce request is lost on the way back (the request was written; the client sees
    a timeout, which it retries): how many times that produce request went out."""
    producer = faust_adapter.make_app(settings, "clean").producer._new_producer()
    await producer.start()
    original = producer.client.send
    produced = []

    async def send(node_id, request, *args, **kwargs):
        answer = await original(node_id, request, *args, **kwargs)
        if isinstance(request, ProduceRequest):
            produced.append(request)
            if len(produced) == 1:
                raise RequestTimedOutError("the answer was lost (injected)")
        return answer

    producer.client.send = send
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"one record", key=b"k"), 60)
    finally:
        await producer.stop()
    return len(produced)


def records_in(bootstrap: str, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=50)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    values = []
    while consumer.position(tp) < end:
        for messages in consumer.poll(timeout_ms=500).values():
            values.extend(m.value for m in messages)
    consumer.close()
    return values


def test_a_send_retried_after_its_answer_was_lost_is_written_once(tmp_path):
    broker, env = test_broker(tmp_path)
    try:
        if broker.profile != "embedded":
            pytest.skip("Tansu refuses idempotent producers; the embedded Apache Kafka is needed")
        bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("idempotent", 1, 1), NewTopic("plain", 1, 1)])
        admin.close()
        written = {}
        for topic, idempotent in (("idempotent", "true"), ("plain", "false")):
            settings = config.load(CONFIG, env={**env, "PIPELINE__PROFILES__EMBEDDED__IDEMPOTENT_PRODUCER": idempotent})
            sends = asyncio.run(send_once_losing_the_first_answer(settings, topic))
            assert sends == 2  # the fault was real: the request went out again
            written[topic] = records_in(bootstrap, topic)
        assert written["idempotent"] == [b"one record"]
        assert written["plain"] == [b"one record", b"one record"]  # what the option prevents
    finally:
        broker.stop()
