import pytest

from pipeline import config, registry
from pipeline.config import ConfigError
from tests.conftest import CONFIG


def test_file_loads_with_embedded_profile_by_default():
    s = config.load(CONFIG, env={})
    assert s.uses_embedded_broker
    assert s.embedded_broker.kind == "kafka"
    assert s.profile_name == "embedded"
    assert s.profile.session_timeout_s >= 6.0  # an Apache Kafka broker
    assert s.profile.producer_max_batch_bytes == 1 << 20
    tansu = config.load(CONFIG, env={"PIPELINE__EMBEDDED_BROKER__KIND": "tansu"})
    assert tansu.profile_name == "tansu"
    assert tansu.profile.session_timeout_s == 3.0


def test_embedded_broker_settings_are_checked():
    with pytest.raises(ConfigError, match="kind"):
        config.load(CONFIG, env={"PIPELINE__EMBEDDED_BROKER__KIND": "redpanda"})
    with pytest.raises(ConfigError, match="retention_hours"):
        config.load(CONFIG, env={"PIPELINE__EMBEDDED_BROKER__RETENTION_HOURS": "0"})


def test_bootstrap_env_selects_external_profile_valid_for_apache_kafka():
    s = config.load(CONFIG, env={"KAFKA_BOOTSTRAP_SERVERS": "kafka1:9092,kafka2:9092"})
    assert not s.uses_embedded_broker
    assert s.profile_name == "external"
    assert s.profile.session_timeout_s >= 6.0
    assert s.profile.heartbeat_interval_s * 3 <= s.profile.session_timeout_s


def test_profiles_differ_only_in_broker_client_settings():
    s = config.load(CONFIG, env={})
    embedded, external, tansu = s.profiles["embedded"], s.profiles["external"], s.profiles["tansu"]
    assert embedded != external != tansu
    assert type(embedded) is type(external) is type(tansu)


def test_generic_env_override_is_typed():
    s = config.load(CONFIG, env={"PIPELINE__STAGES__DEDUP__THRESHOLD": "0.9",
                                 "PIPELINE__SINK__TARGETS": '["jsonl:/tmp/a.jsonl", "jsonl:/tmp/b.jsonl"]',
                                 "PIPELINE__TOPICS__RAW": "my.raw"})
    assert s.stages.dedup.threshold == 0.9
    assert s.sink.targets == ["jsonl:/tmp/a.jsonl", "jsonl:/tmp/b.jsonl"]
    assert s.topics.raw == "my.raw"


def test_unknown_key_is_refused():
    with pytest.raises(ConfigError, match="unknown key"):
        config.load(CONFIG, env={"PIPELINE__STAGES__DEDUP__TRESHOLD": "0.9"})


def test_external_profile_below_kafka_minimum_is_refused():
    with pytest.raises(ConfigError, match=">= 6 s"):
        config.load(CONFIG, env={"PIPELINE__PROFILES__EXTERNAL__SESSION_TIMEOUT_S": "3.0",
                                 "PIPELINE__PROFILES__EXTERNAL__HEARTBEAT_INTERVAL_S": "1.0"})


def test_idle_fetch_wait_is_checked_and_kept_short_for_tansu():
    s = config.load(CONFIG, env={})
    assert s.profiles["embedded"].fetch_idle_wait_ms > s.profiles["embedded"].fetch_max_wait_ms
    assert s.profiles["tansu"].fetch_idle_wait_ms == 0  # Tansu holds every fetch for its whole wait
    with pytest.raises(ConfigError, match="fetch_idle_wait_ms"):
        config.load(CONFIG, env={"PIPELINE__PROFILES__EMBEDDED__FETCH_IDLE_WAIT_MS": "30000"})


def test_memory_dedup_store_with_several_dedup_workers_is_refused():
    with pytest.raises(ConfigError, match="private to one process"):
        config.load(CONFIG, env={"PIPELINE__STAGES__DEDUP__STORE": "memory",
                                 "PIPELINE__RUN__WORKERS": "{ clean = 1, language = 1, entities = 1, dedup = 2, sink = 1 }"})


def test_monitoring_ports_name_known_stages_and_log_format_is_known():
    s = config.load(CONFIG, env={})
    assert s.monitoring.ports == {"clean": 9110, "language": 9120, "entities": 9130, "dedup": 9140, "sink": 9150}
    assert s.run.log_format == "text"
    # a stage without a port gets any free one
    assert config.load(CONFIG, env={"PIPELINE__MONITORING__PORTS": "{clean = 1}"}).monitoring.ports == {"clean": 1}
    with pytest.raises(ConfigError, match="monitoring.ports names unknown stage"):
        config.load(CONFIG, env={"PIPELINE__MONITORING__PORTS": "{cleaner = 1}"})
    with pytest.raises(ConfigError, match="log_format"):
        config.load(CONFIG, env={"PIPELINE__RUN__LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="0..65535"):
        config.load(CONFIG, env={"PIPELINE__MONITORING__DASHBOARD_PORT": "70000"})


def test_broker_security_settings_become_client_options_and_are_checked():
    s = config.load(CONFIG, env={})
    assert s.broker.client_options() == {"reconnect_backoff_max_ms": config.RECONNECT_BACKOFF_MAX_MS}
    sasl = config.load(CONFIG, env={"PIPELINE__BROKER__SECURITY_PROTOCOL": "SASL_SSL",
                                    "PIPELINE__BROKER__SASL_MECHANISM": "SCRAM-SHA-512",
                                    "PIPELINE__BROKER__SASL_USERNAME": "u", "PIPELINE__BROKER__SASL_PASSWORD": "p",
                                    "PIPELINE__BROKER__SSL_CAFILE": "/etc/ca.pem"})
    assert sasl.broker.client_options() == {
        "reconnect_backoff_max_ms": config.RECONNECT_BACKOFF_MAX_MS, "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
        "sasl_plain_password": "p", "ssl_check_hostname": True, "ssl_cafile": "/etc/ca.pem"}
    with pytest.raises(ConfigError, match="security_protocol"):
        config.load(CONFIG, env={"PIPELINE__BROKER__SECURITY_PROTOCOL": "TLS"})
    with pytest.raises(ConfigError, match="sasl_password"):
        config.load(CONFIG, env={"PIPELINE__BROKER__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                                 "PIPELINE__BROKER__SASL_MECHANISM": "PLAIN", "PIPELINE__BROKER__SASL_USERNAME": "u"})
    with pytest.raises(ConfigError, match="compression"):
        config.load(CONFIG, env={"PIPELINE__PROFILES__EXTERNAL__COMPRESSION": "brotli"})


def test_processing_guarantee_is_checked_and_sets_read_committed():
    s = config.load(CONFIG, env={})
    assert s.profile.processing_guarantee == "at_least_once" and not s.exactly_once
    assert "isolation_level" not in s.consumer_options()
    eos = config.load(CONFIG, env={"PIPELINE__PROFILES__EMBEDDED__PROCESSING_GUARANTEE": "exactly_once"})
    assert eos.exactly_once and eos.consumer_options()["isolation_level"] == "read_committed"
    with pytest.raises(ConfigError, match="at_least_once or exactly_once"):
        config.load(CONFIG, env={"PIPELINE__PROFILES__EXTERNAL__PROCESSING_GUARANTEE": "exactly-once"})
    with pytest.raises(ConfigError, match="Tansu does not run Kafka transactions"):
        config.load(CONFIG, env={"PIPELINE__PROFILES__TANSU__PROCESSING_GUARANTEE": "exactly_once"})


def test_producers_are_idempotent_on_apache_kafka_and_tansu_refuses_it():
    s = config.load(CONFIG, env={})
    assert s.profiles["embedded"].idempotent_producer and s.profiles["external"].idempotent_producer
    assert not s.profiles["tansu"].idempotent_producer
    with pytest.raises(ConfigError, match="Tansu refuses the workers' idempotent"):
        config.load(CONFIG, env={"PIPELINE__PROFILES__TANSU__IDEMPOTENT_PRODUCER": "true"})


def test_the_chain_is_checked_when_the_configuration_is_read():
    s = config.load(CONFIG, env={})
    assert s.stages.chain == ["clean", "language", "entities", "dedup"]
    for chain, message in [('["clean", "sentiment"]', "unknown stage"), ('["language", "clean"]', "only one stage"),
                           ('["clean", "fetch"]', "must come before"), ('["language"]', "must have 'clean'"),
                           ('["clean", "clean"]', "twice"), ("[]", "empty")]:
        with pytest.raises(ConfigError, match=message):
            config.load(CONFIG, env={"PIPELINE__STAGES__CHAIN": chain})
    fetching = config.load(CONFIG, env={"PIPELINE__STAGES__CHAIN": '["fetch", "clean", "language", "entities", "dedup"]'})
    assert registry.stage_topics(fetching, "fetch") == registry.StageTopics("pages.urls", "pages.raw")
    assert registry.stage_topics(fetching, "clean").source == "pages.raw"
    assert registry.topic_names(fetching)[:2] == ["pages.urls", "pages.raw"] and registry.fetches(fetching)
    assert "pages.urls" not in registry.topic_names(s)
    with pytest.raises(ConfigError, match="reuses a built-in name"):
        config.load(CONFIG, env={"PIPELINE__STAGES__PLUGINS": '{dedup = "x:Y"}'})
    with pytest.raises(ConfigError, match="unknown stage"):
        config.load(CONFIG, env={"PIPELINE__RUN__WORKERS": "{sentiment = 2}"})
