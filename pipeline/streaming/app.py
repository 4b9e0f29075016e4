"""Faust apps configured from the broker profile. The only module that sets Faust options."""

from __future__ import annotations

import tempfile
from pathlib import Path

import faust
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline import registry
from pipeline.config import BrokerProfile, Settings

_fetch_max_wait_ms: int | None = None
_original_create_worker_consumer = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer


def _create_worker_consumer(self, transport):
    """Faust hardcodes fetch_max_wait_ms=1500; the profile's value replaces it before start."""
    consumer = _original_create_worker_consumer(self, transport)
    if _fetch_max_wait_ms is not None:
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms
    return consumer


faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer

_faust_transactions_commit = faust_consumer.TransactionManager.commit


async def _transactions_commit(self, offsets, start_new_transaction: bool = True) -> bool:
    """With exactly-once processing the stage worker commits its transactions itself, with the
    offsets of the records it has produced for (``pipeline.streaming.worker``). Faust's own commit
    would end a partition's transaction with the offsets its acknowledgement bookkeeping reaches,
    which lags behind what was produced when the source topic holds transaction markers (measured:
    hundreds of records doubled downstream per killed worker)."""
    if getattr(self.app, "commits_transactions_itself", False):
        return False
    return await _faust_transactions_commit(self, offsets, start_new_transaction)


faust_consumer.TransactionManager.commit = _transactions_commit


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in bootstrap.split(",") if hostport.strip()]


def broker_credentials(settings: Settings):
    """Faust's credentials for the configured security protocol (None: plaintext)."""
    b = settings.broker
    if b.security_protocol == "PLAINTEXT":
        return None
    import ssl

    context = None
    if b.security_protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=b.ssl_cafile or None)
        context.check_hostname = b.ssl_check_hostname
        if b.ssl_certfile:
            context.load_cert_chain(b.ssl_certfile, b.ssl_keyfile or None)
    if b.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=b.sasl_username, password=b.sasl_password,
                                     mechanism=b.sasl_mechanism, ssl_context=context)
    return faust.SSLCredentials(context)


def make_app(settings: Settings, stage: str, datadir: Path | None = None) -> faust.App:
    global _fetch_max_wait_ms
    if not settings.broker.bootstrap_servers:
        raise ValueError("no bootstrap servers: set broker.bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS "
                         "(or use `pipeline run`, which starts the embedded broker)")
    profile: BrokerProfile = settings.profile
    _fetch_max_wait_ms = profile.fetch_max_wait_ms
    datadir = datadir or Path(tempfile.mkdtemp(prefix=f"pipeline-{stage}-"))
    return faust.App(
        registry.consumer_group(settings, stage),
        broker=broker_urls(settings.broker.bootstrap_servers),
        broker_credentials=broker_credentials(settings),
        datadir=str(datadir),
        web_enabled=False,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        # topics are created by `pipeline topics`/`pipeline run` with explicit partitions
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=profile.session_timeout_s,
        broker_heartbeat_interval=profile.heartbeat_interval_s,
        broker_rebalance_timeout=profile.rebalance_timeout_s,
        broker_request_timeout=profile.request_timeout_s,
        broker_commit_interval=profile.commit_interval_s,
        producer_max_batch_size=profile.producer_max_batch_bytes,
        producer_linger=profile.producer_linger_ms / 1000.0,
        producer_max_request_size=max(profile.producer_max_batch_bytes, profile.max_message_bytes + 65536),
        producer_compression_type=None if profile.compression == "none" else profile.compression,
        stream_wait_empty=True,
        stream_buffer_maxsize=settings.run.buffer_records,
        processing_guarantee=profile.processing_guarantee,
    )
