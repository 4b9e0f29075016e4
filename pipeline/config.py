"""Configuration: one TOML file (config/pipeline.toml) plus environment overrides.

Resolution of the file: ``--config`` / ``PIPELINE_CONFIG``, else ``./config/pipeline.toml``, else the
file next to the installed package (the repository's ``config/``). Environment overrides:
``KAFKA_BOOTSTRAP_SERVERS`` and ``PIPELINE__SECTION__KEY=value`` for any key.

The file is the only place default values live; the dataclasses below only give them types.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import registry

ENV_PREFIX = "PIPELINE__"
EMBEDDED_STORE = "embedded"  # stages.dedup.store: the Redis server `pipeline run` starts
DEDUP_STORE_SCHEMES = ("redis://", "rediss://", "unix://")
#: kafka-python clients try a broker that went away again at least once a second (see client_options)
RECONNECT_BACKOFF_MAX_MS = 1000


class ConfigError(ValueError):
    """The configuration file or an override is invalid; ``key``: the dotted key at fault, when
    known (``load`` then names the environment variable that set it)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class BrokerProfile:
    """Client settings that depend on the kind of broker (embedded Tansu or Apache Kafka)."""

    session_timeout_s: float
    heartbeat_interval_s: float
    rebalance_timeout_s: float
    request_timeout_s: float
    fetch_max_wait_ms: int
    producer_max_batch_bytes: int
    producer_linger_ms: int
    commit_interval_s: float
    max_message_bytes: int
    compression: str  # of what producers send: "none", "gzip", "lz4", "zstd"
    # "at_least_once": a worker killed between producing and committing sends those records again
    # (the sink writes each id once either way); "exactly_once": Kafka transactions, outputs and
    # offsets committed together (Apache Kafka only)
    processing_guarantee: str = "at_least_once"
    # how long the broker may hold a fetch that asks for every partition a worker has (an idle
    # worker's fetch); 0: fetch_max_wait_ms. Only for brokers that answer as soon as a record comes.
    fetch_idle_wait_ms: int = 0
    # producers number their batches so the broker drops a batch retried after it was written
    # (Kafka's enable.idempotence); without it a retried send can be written twice
    idempotent_producer: bool = False


@dataclass(frozen=True)
class BrokerSettings:
    bootstrap_servers: str
    profile: str
    consumer_group_prefix: str
    # How clients authenticate and encrypt (managed services: SASL_SSL with PLAIN or SCRAM)
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = ""  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""  # CA bundle to verify the brokers ("" = the system's)
    ssl_certfile: str = ""  # client certificate (mutual TLS)
    ssl_keyfile: str = ""
    ssl_check_hostname: bool = True

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of kafka-python's clients (admin, producer, consumer): security, and
        how long a client waits at most between attempts to reach a broker that went away
        (kafka-python's default doubles up to 30 s: after the embedded broker was killed and started
        again, the run's delivery tracker saw the records ~20 s after the workers had sent them)."""
        options: dict[str, Any] = {"reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS}
        if self.security_protocol == "PLAINTEXT":
            return options
        options["security_protocol"] = self.security_protocol
        if self.security_protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        if self.security_protocol.endswith("SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, key):
                    options[key] = getattr(self, key)
        return options


@dataclass(frozen=True)
class EmbeddedBrokerSettings:
    kind: str  # "kafka" (Apache Kafka, data on disk; Tansu where Java is missing) | "tansu" (memory only)
    host: str
    port: int
    data_dir: str
    retention_hours: float
    retention_bytes_per_partition: int
    segment_bytes: int
    retention_check_s: float
    heap_mb: int
    kafka_libs: str
    log_level: str
    tansu_log_level: str


@dataclass(frozen=True)
class EmbeddedIndexSettings:
    """The Redis server ``pipeline run`` starts for ``stages.dedup.store = "embedded"``."""

    host: str
    port: int
    dir: str
    appendfsync: str
    maxmemory_bytes: int
    log_level: str


@dataclass(frozen=True)
class TopicSettings:
    raw: str
    cleaned: str
    language: str
    entities: str
    enriched: str
    deadletter: str
    delivered: str
    partitions: int = field(metadata={"min": 1})
    replication_factor: int = field(metadata={"min": 1})
    partitions_by_topic: dict[str, int] = field(default_factory=dict)
    urls: str = "pages.urls"  # URL events, read by the fetch stage (keyed by host)
    stories: str = "pages.stories"  # story updates: one per record the sink wrote into a story (keyed by story)
    storied: str = "pages.storied"  # records out of the stories stage when a stage follows it

    def partitions_of(self, topic: str) -> int:
        return int(self.partitions_by_topic.get(topic, self.partitions))



@dataclass(frozen=True)
class CleanSettings:
    html_timeout_s: float
    html_processes: int = field(metadata={"min": 0})  # 0: one per core this process may use
    html_recycle_after: int
    include_comments: bool
    max_input_bytes: int
    html_max_parse_chars: int


@dataclass(frozen=True)
class LanguageSettings:
    min_chars: int
    min_confidence: float
    reliable_confidence: float
    max_chars: int
    span_min_chars: int
    span_min_confidence: float
    short_text_words: int
    short_text_max_confidence: float
    cache_words: int


@dataclass(frozen=True)
class EntitiesSettings:
    max_entities: int
    taggers: dict[str, str]  # lang -> "crf:<model>[@domain]" | "spacy:<pkg>" | "slovnet:<model>" | "rules"
    default_tagger: str


@dataclass(frozen=True)
class DedupSettings:
    store: str
    namespace: str
    threshold: float
    num_perm: int
    bands: int
    band_rows: int
    shingle_words: int
    min_words: int
    seed: int
    horizon_days: int
    capacity: int


@dataclass(frozen=True)
class StageLimits:
    max_text_chars: int = 1_000_000  # a longer text (into or out of a stage) is a dead letter too_large
    time_limit_s: float = 30.0  # a stage working on one record longer: dead letter timeout (0: none)


@dataclass(frozen=True)
class FetchSettings:
    """The fetch stage (``pipeline/stages/fetch``): URL events to raw page events."""

    user_agent: str = "news-pipeline/0.1 (news ingestion; +https://example.invalid/news-pipeline)"
    per_host_concurrency: int = 2      # requests in flight to one host at most
    per_host_delay_s: float = 1.0      # between two request starts to one host (robots.txt crawl-delay wins if longer)
    max_in_flight: int = 32            # requests in flight per worker
    timeout_s: float = 20.0            # per request, all of it
    max_bytes: int = 10485760          # a larger body is a dead letter too_large
    max_redirects: int = 10
    retries: int = 3                   # for 5xx, 429 and refused connections, with backoff
    retry_base_s: float = 1.0
    retry_max_s: float = 30.0          # a Retry-After longer than this is a dead letter, not a wait
    robots: bool = True
    robots_cache_s: float = 3600.0
    seen_horizon_s: float = 86400.0    # a URL fetched within this is not fetched again unless the event says changed
    seen_store: str = "dedup"          # "dedup": the dedup index's Redis; "memory"; or a redis:// URL


@dataclass(frozen=True)
class StoriesSettings:
    """The stories stage (``pipeline/stages/stories``): each record joins or starts a story."""

    store: str = "dedup"  # "dedup": the dedup index's Redis (shared by every story worker); "memory"; redis://
    namespace: str = "news-pipeline:stories"  # key prefix of the story state in Redis
    #: the model's settings (``StoryOptions`` in pipeline/stages/stories/model.py); unset: its defaults
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageSettings:
    chain: list[str]  # the stages records go through, in order (pipeline/registry.py)
    clean: CleanSettings
    language: LanguageSettings
    entities: EntitiesSettings
    dedup: DedupSettings
    limits: StageLimits = StageLimits()
    fetch: FetchSettings = FetchSettings()
    stories: StoriesSettings = StoriesSettings()
    plugins: dict[str, str] = field(default_factory=dict)  # stage name -> "module:Class"
    plugin_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage name -> its options
    # stage name -> processes its worker runs it in, its own and children (0: one per usable core; 1: its own)
    processes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceSettings:
    plugins: dict[str, str] = field(default_factory=dict)  # source kind -> "module:Class"
    watch_state_dir: str = "out/watch"  # watched folders' journals of ingested files
    watch_poll_s: float = 1.0
    watch_settle_s: float = 2.0  # a file is read once it has not changed for this long
    feeds_state_dir: str = "out/feeds"  # what each feed list's feeds gave, and their ETags
    feeds_min_interval_s: float = 60.0
    feeds_max_interval_s: float = 3600.0
    feeds_timeout_s: float = 20.0
    feeds_remember: int = 5000  # article URLs remembered per feed


@dataclass(frozen=True)
class IngestSettings:
    """``POST /ingest`` (``--replay ingest:``, ``pipeline/sources/ingest.py``)."""

    host: str = "127.0.0.1"
    port: int = 8470
    token: str = ""  # required: PIPELINE__INGEST__TOKEN
    max_body_bytes: int = 32 << 20
    max_pending_events: int = 10_000
    max_lag_records: int = 100_000
    retry_after_s: int = 5
    ack_timeout_s: float = 30.0


@dataclass(frozen=True)
class SinkSettings:
    targets: list[str]
    roll_bytes: int
    roll_seconds: float
    id_window: int
    postgres_url: str
    postgres_table: str
    plugins: dict[str, str] = field(default_factory=dict)  # sink kind -> "module:Class"


@dataclass(frozen=True)
class RunSettings:
    workers: dict[str, int]
    buffer_records: int
    ready_timeout_s: float
    log_dir: str
    log_level: str
    log_format: str
    layout: str  # "fixed": run.workers; "auto": run.workers as the floor, more where a stage falls behind
    layout_interval_s: float
    # a stage worker's batch: what its stage works through in this long (0: up to 200 records)
    batch_ms: float = field(default=100.0, metadata={"min": 0})
    # a stage that handles records one at a time hands its batch on in pieces of this long as they
    # are done (0: the whole batch when it is done)
    piece_ms: float = field(default=0.0, metadata={"min": 0})


@dataclass(frozen=True)
class HealthThresholds:
    """When ``pipeline status`` and the dashboard call a stage unhealthy (deploy/monitoring's alert
    rules use the same numbers)."""

    lag_records: int
    lag_growing_s: float
    dead_letter_ratio: float
    end_to_end_p99_s: float


@dataclass(frozen=True)
class MonitoringSettings:
    host: str
    ports: dict[str, int]
    dashboard_port: int
    sample_interval_s: float
    lag_cache_s: float
    stall_after_s: float
    health: HealthThresholds
    http_read_timeout_s: float = 10.0  # a connection that sends nothing for this long is closed
    http_max_connections: int = 32  # connections served at once per HTTP server; more are refused


@dataclass(frozen=True)
class Settings:
    broker: BrokerSettings
    embedded_broker: EmbeddedBrokerSettings
    embedded_index: EmbeddedIndexSettings
    profiles: dict[str, BrokerProfile]
    topics: TopicSettings
    stages: StageSettings
    sink: SinkSettings
    run: RunSettings
    monitoring: MonitoringSettings
    sources: SourceSettings = SourceSettings()
    ingest: IngestSettings = IngestSettings()
    source: str = ""  # the file these settings were read from

    @property
    def profile_name(self) -> str:
        if self.broker.profile != "auto":
            return self.broker.profile
        if self.broker.bootstrap_servers:
            return "external"
        return "tansu" if self.embedded_broker.kind == "tansu" else "embedded"

    @property
    def profile(self) -> BrokerProfile:
        try:
            return self.profiles[self.profile_name]
        except KeyError:
            raise ConfigError(f"no [profiles.{self.profile_name}] table in {self.source}") from None

    @property
    def uses_embedded_broker(self) -> bool:
        return not self.broker.bootstrap_servers

    @property
    def uses_embedded_index(self) -> bool:
        return self.stages.dedup.store == EMBEDDED_STORE

    @property
    def exactly_once(self) -> bool:
        return self.profile.processing_guarantee == "exactly_once"

    def consumer_options(self) -> dict[str, Any]:
        """kafka-python consumer keyword arguments: security, and with exactly-once processing
        ``read_committed`` (records of aborted transactions are never seen)."""
        options = self.broker.client_options()
        if self.exactly_once:
            options["isolation_level"] = "read_committed"
        return options

    def with_bootstrap(self, servers: str, profile: str | None = None) -> Settings:
        """The same settings pointed at running brokers (keeps the profile chosen before, unless given)."""
        profile = profile or self.profile_name
        broker = dataclasses.replace(self.broker, bootstrap_servers=servers, profile=profile)
        return dataclasses.replace(self, broker=broker)

    def with_sinks(self, targets: list[str]) -> Settings:
        """The same settings writing to (and read back from) these sink targets."""
        return dataclasses.replace(self, sink=dataclasses.replace(self.sink, targets=list(targets)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- loading -------------------------------------------------------------------------------------

def default_config_path() -> Path:
    env = os.environ.get("PIPELINE_CONFIG")
    if env:
        return Path(env)
    local = Path.cwd() / "config" / "pipeline.toml"
    if local.is_file():
        return local
    return Path(__file__).resolve().parent.parent / "config" / "pipeline.toml"


def load(path: str | os.PathLike[str] | None = None, env: typing.Mapping[str, str] | None = None,
         overrides: dict[str, Any] | None = None) -> Settings:
    """Read the file, apply environment overrides, then explicit ``overrides`` (dotted keys)."""
    env = os.environ if env is None else env
    cfg_path = Path(path) if path else default_config_path()
    try:
        data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {cfg_path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from None
    from_env = _env_overrides(env)
    try:
        for dotted, value in from_env.items():
            _set_dotted(data, dotted, value)
        for dotted, value in (overrides or {}).items():
            _set_dotted(data, dotted, value)
        settings = _build(Settings, {**data, "source": str(cfg_path)}, "")
        _validate(settings)
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({_origin(exc, from_env, env, cfg_path)})", exc.key) from None
    return settings


def effective(settings: Settings, env: typing.Mapping[str, str] | None = None) -> list[tuple[str, Any, str]]:
    """Every setting as ``(dotted key, value, where it came from)``: the environment variable that
    set it, the configuration file, or the built-in default."""
    env = os.environ if env is None else env
    path = Path(settings.source)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        data = {}
    from_env = _env_overrides(env)

    def in_file(dotted: str) -> bool:
        node: Any = data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    out: list[tuple[str, Any, str]] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            dotted = f"{prefix}{f.name}"
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, dotted + ".")
                continue
            if dotted == "source":
                continue
            if dotted in from_env:
                where = _env_name(dotted, env)
            elif any(key.startswith(dotted + ".") for key in from_env):
                where = "file + " + ", ".join(_env_name(k, env) for k in from_env if k.startswith(dotted + "."))
            else:
                where = str(path) if in_file(dotted) else "default"
            out.append((dotted, value, where))

    walk(settings, "")
    return out


def _env_name(dotted: str, env: typing.Mapping[str, str]) -> str:
    name = ENV_PREFIX + dotted.upper().replace(".", "__")
    if name not in env and dotted == "broker.bootstrap_servers" and env.get("KAFKA_BOOTSTRAP_SERVERS"):
        return "KAFKA_BOOTSTRAP_SERVERS"
    return name


def _origin(exc: ConfigError, from_env: dict[str, Any], env: typing.Mapping[str, str], path: Path) -> str:
    """Where the value at fault came from: the environment variable that set it, or the file."""
    message = str(exc)
    for dotted in sorted(from_env, key=len, reverse=True):
        key = exc.key
        if (key and (dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + "."))) \
                or re.search(rf"(?<![\w.]){re.escape(dotted)}(?![\w])", message):
            name = _env_name(dotted, env)
            return f"set by {name}={env.get(name, '')!r}"
    return f"in {path}"


def _env_overrides(env: typing.Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if env.get("KAFKA_BOOTSTRAP_SERVERS"):
        out["broker.bootstrap_servers"] = env["KAFKA_BOOTSTRAP_SERVERS"]
    for name, raw in env.items():
        if name.startswith(ENV_PREFIX):
            dotted = name[len(ENV_PREFIX):].lower().replace("__", ".")
            out[dotted] = _parse_env_value(raw)
    return out


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot override {dotted}: {part} is not a table")
    node[parts[-1]] = value


def build_section(cls: Any, data: Any, where: str) -> Any:
    """A dataclass from a table of the configuration (a plugin's options), checked like every
    section: unknown or missing keys and wrong types are a ``ConfigError`` naming ``where``."""
    return _build(cls, data, where)


def _build(cls: Any, data: Any, where: str) -> Any:
    """Turn nested dicts into the dataclasses above, refusing unknown or missing keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{where or 'root'}] must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        first = sorted(unknown)[0]
        raise ConfigError(f"unknown key(s) in [{where or 'root'}]: {', '.join(sorted(unknown))}",
                          f"{where}.{first}" if where else first)
    kwargs = {}
    for name, f in known.items():
        sub = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            raise ConfigError(f"missing key {sub}")
        kwargs[name] = _coerce(hints[name], data[name], sub)
        low, high = f.metadata.get("min"), f.metadata.get("max")
        if (low is not None and kwargs[name] < low) or (high is not None and kwargs[name] > high):
            span = f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"
            raise ConfigError(f"{sub} must be {span}, got {data[name]!r}", sub)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is dict:
        _, val_t = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table", where)
        return {str(k): _coerce(val_t, v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        (item_t,) = typing.get_args(hint)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list", where)
        return [_coerce(item_t, v, where) for v in value]
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}", where)
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}", where)
        return hint(value)
    if hint is str:
        return str(value)
    return value


def _validate(s: Settings) -> None:
    if s.profile_name not in s.profiles:
        raise ConfigError(f"broker profile {s.profile_name!r} has no [profiles.{s.profile_name}] table")
    for name, p in s.profiles.items():
        if p.heartbeat_interval_s * 3 > p.session_timeout_s + 1e-9:
            raise ConfigError(f"profiles.{name}: heartbeat_interval_s must be at most a third of "
                              "session_timeout_s")
        if p.session_timeout_s > p.request_timeout_s:
            raise ConfigError(f"profiles.{name}: session_timeout_s must not exceed request_timeout_s")
        if not 0 <= p.fetch_idle_wait_ms < p.request_timeout_s * 1000:
            raise ConfigError(f"profiles.{name}: fetch_idle_wait_ms must be >= 0 (0: fetch_max_wait_ms) and "
                              "below request_timeout_s")
    b = s.broker
    if b.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError("broker.security_protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, "
                          f"got {b.security_protocol!r}")
    if b.security_protocol.startswith("SASL"):
        if b.sasl_mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ConfigError("broker.sasl_mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with "
                              f"security_protocol {b.security_protocol}, got {b.sasl_mechanism!r}")
        if not b.sasl_username or not b.sasl_password:
            raise ConfigError("broker.sasl_username and broker.sasl_password are needed with SASL "
                              "(PIPELINE__BROKER__SASL_PASSWORD keeps the password out of the file)")
    e = s.embedded_broker
    if e.kind not in ("kafka", "tansu"):
        raise ConfigError(f"embedded_broker.kind must be \"kafka\" or \"tansu\", got {e.kind!r}")
    if e.retention_hours <= 0 or e.retention_bytes_per_partition < -1 or e.segment_bytes < 1 << 20 or e.heap_mb < 128:
        raise ConfigError("embedded_broker: retention_hours must be > 0, retention_bytes_per_partition >= -1 "
                          "(-1: no size limit), segment_bytes >= 1 MiB, heap_mb >= 128")
    for name, p in s.profiles.items():
        if p.compression not in ("none", "gzip", "lz4", "zstd"):
            raise ConfigError(f"profiles.{name}.compression must be none, gzip, lz4 or zstd, got {p.compression!r}")
        if p.processing_guarantee not in ("at_least_once", "exactly_once"):
            raise ConfigError(f"profiles.{name}.processing_guarantee must be at_least_once or exactly_once, "
                              f"got {p.processing_guarantee!r}")
    tansu = s.profiles.get("tansu")
    if tansu and tansu.processing_guarantee == "exactly_once":
        raise ConfigError("profiles.tansu.processing_guarantee: Tansu does not run Kafka transactions; "
                          "exactly_once needs Apache Kafka (the embedded default or an external cluster)")
    if tansu and tansu.idempotent_producer:
        raise ConfigError("profiles.tansu.idempotent_producer: Tansu refuses the workers' idempotent "
                          "producers (it answers aiokafka's InitProducerId with an error); set it false")
    for name in ("external", "embedded"):
        if s.profiles.get(name) and s.profiles[name].session_timeout_s < 6.0:
            raise ConfigError(f"profiles.{name}.session_timeout_s must be >= 6 s (Apache Kafka's "
                              "group.min.session.timeout.ms)")
    if s.run.buffer_records < 1:
        raise ConfigError("run.buffer_records must be >= 1")
    problem = registry.check(s.stages)
    if problem:
        raise ConfigError(problem)
    bad = [f"{k} = {v!r}" for k, v in s.sources.plugins.items() if ":" not in v]
    if bad:
        raise ConfigError(f"sources.plugins entries are KIND = \"module:Class\", got {', '.join(bad)}")
    bad = [f"{k} = {v!r}" for k, v in s.sink.plugins.items() if ":" not in v]
    if bad:
        raise ConfigError(f"sink.plugins entries are KIND = \"module:Class\", got {', '.join(bad)}")
    roles = registry.roles(s)
    unknown = set(s.run.workers) - set(roles) - set(registry.BUILT_IN)  # a built-in stage off the chain: unused
    if unknown:
        raise ConfigError(f"run.workers names unknown stage(s): {', '.join(sorted(unknown))}")
    d = s.stages.dedup
    if d.store not in ("memory", EMBEDDED_STORE) and not d.store.startswith(DEDUP_STORE_SCHEMES):
        raise ConfigError(f"stages.dedup.store must be \"embedded\", \"memory\" or a redis:// URL, got {d.store!r}")
    if d.store == "memory" and s.run.workers.get("dedup", 1) > 1:
        raise ConfigError("stages.dedup.store = \"memory\" is private to one process: with several dedup "
                          "workers use a shared store (\"embedded\" or redis://...)")
    st = s.stages.stories
    if st.store not in ("memory", "dedup") and not st.store.startswith(DEDUP_STORE_SCHEMES):
        raise ConfigError(f"stages.stories.store must be \"dedup\", \"memory\" or a redis:// URL, got {st.store!r}")
    if st.store == "memory" and s.run.workers.get("stories", 1) > 1:
        raise ConfigError("stages.stories.store = \"memory\" is private to one process: with several story "
                          "workers keep the state beside the dedup index (\"dedup\") or in a redis:// URL")
    e = s.embedded_index
    if e.appendfsync not in ("always", "everysec", "no"):
        raise ConfigError(f"embedded_index.appendfsync must be \"always\", \"everysec\" or \"no\", got {e.appendfsync!r}")
    if e.log_level not in ("debug", "verbose", "notice", "warning"):
        raise ConfigError("embedded_index.log_level must be one of debug, verbose, notice, warning")
    if not 0 <= e.port <= 65535 or e.maxmemory_bytes < 0 or not e.dir:
        raise ConfigError("embedded_index: port must be in 0..65535, maxmemory_bytes >= 0, dir not empty")
    if d.bands * d.band_rows > d.num_perm:
        raise ConfigError("stages.dedup: bands * band_rows must not exceed num_perm")
    if not 4 <= d.num_perm <= 4096 or d.num_perm % 4:
        raise ConfigError("stages.dedup.num_perm must be a multiple of 4 between 4 and 4096")
    if d.horizon_days < 0 or d.capacity < 1:
        raise ConfigError("stages.dedup.horizon_days must be >= 0 and stages.dedup.capacity >= 1")
    if not 0 < d.threshold <= 1:
        raise ConfigError("stages.dedup.threshold must be in (0, 1]")
    if not s.sink.targets:
        raise ConfigError("sink.targets is empty")
    if s.run.log_format not in ("text", "json"):
        raise ConfigError(f"run.log_format must be \"text\" or \"json\", got {s.run.log_format!r}")
    if s.run.layout not in ("fixed", "auto") or s.run.layout_interval_s < 1:
        raise ConfigError(f"run.layout must be \"fixed\" or \"auto\" (got {s.run.layout!r}) and "
                          f"run.layout_interval_s at least 1 (got {s.run.layout_interval_s})")
    m = s.monitoring
    unknown = set(m.ports) - set(roles) - set(registry.BUILT_IN)  # a built-in stage off the chain: unused
    if unknown:  # a stage without a port gets any free one
        raise ConfigError(f"monitoring.ports names unknown stage(s) {', '.join(sorted(unknown))}; "
                          f"stages are {', '.join(roles)}")
    for name, port in {**m.ports, "dashboard": m.dashboard_port}.items():
        if not 0 <= port <= 65535:
            raise ConfigError(f"monitoring port of {name} must be in 0..65535, got {port}")
    if m.sample_interval_s <= 0 or m.lag_cache_s < 0 or m.stall_after_s <= 0:
        raise ConfigError("monitoring.sample_interval_s and stall_after_s must be > 0, lag_cache_s >= 0")
    lim = s.stages.limits
    if lim.max_text_chars < 0 or lim.time_limit_s < 0:
        raise ConfigError("stages.limits.max_text_chars and time_limit_s must be >= 0 (0: no limit)")
    if m.http_read_timeout_s <= 0 or m.http_max_connections < 1:
        raise ConfigError("monitoring.http_read_timeout_s must be > 0 and http_max_connections >= 1")
