"""The workers' producer against the real embedded Apache Kafka: a send whose answer is lost is
retried, and with the profile's ``idempotent_producer`` the broker writes it once. A broker that
gives an idempotent producer no id is found before a run starts."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import RequestTimedOutError
from aiokafka.protocol.produce import ProduceRequest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from pipeline import config
from pipeline.streaming import faust_adapter, preflight
from pipeline.streaming.broker import TansuBroker
from tests.conftest import CONFIG, test_broker

pytestmark = pytest.mark.integration


async def send_once_losing_the_first_answer(settings: config.Settings, topic: str, datadir) -> int:
    """One record through the producer Faust builds for a worker, where the broker's answer to
    the first produce request is lost on the way back (the request was written; the client sees
    a timeout, which it retries): how many times that produce request went out."""
    producer = faust_adapter.make_app(settings, "clean", datadir).producer._new_producer()
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
            sends = asyncio.run(send_once_losing_the_first_answer(settings, topic, tmp_path / topic))
            assert sends == 2  # the fault was real: the request went out again
            written[topic] = records_in(bootstrap, topic)
        assert written["idempotent"] == [b"one record"]
        assert written["plain"] == [b"one record", b"one record"]  # what the option prevents
        # the same broker as an external one: the preflight's producer-id check passes
        external = config.load(CONFIG, env={**env, "PIPELINE__BROKER__PROFILE": "external"})
        assert external.profile.idempotent_producer and not external.uses_embedded_broker
        assert preflight.problems(external, [f"jsonl:{tmp_path / 'out'}"]) == []
    finally:
        broker.stop()


def test_a_run_on_a_broker_that_gives_no_producer_id_is_refused_before_it_starts(tmp_path):
    """Tansu answers aiokafka's InitProducerId with an error: as an external broker with
    ``idempotent_producer`` on, the preflight (what `pipeline run` and `pipeline doctor` check) says so
    in one line naming the setting; with it off, nothing is in the way."""
    settings = config.load(CONFIG, env={"PIPELINE__EMBEDDED_BROKER__KIND": "tansu"})
    broker = TansuBroker(settings.embedded_broker, tmp_path)
    bootstrap = broker.start()
    try:
        for idempotent in ("true", "false"):
            external = config.load(CONFIG, env={"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PIPELINE__BROKER__PROFILE": "external",
                                                "PIPELINE__PROFILES__EXTERNAL__IDEMPOTENT_PRODUCER": idempotent})
            found = preflight.problems(external, [f"jsonl:{tmp_path / 'out'}"])
            if idempotent == "true":
                assert len(found) == 1 and "gives no producer id" in found[0]
                assert "PIPELINE__PROFILES__EXTERNAL__IDEMPOTENT_PRODUCER=false" in found[0]
            else:
                assert found == []
    finally:
        broker.stop()
