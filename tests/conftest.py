"""Shared fixtures. Integration fixtures start the real embedded broker and real worker processes."""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from pipeline import config, registry

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
CONFIG = ROOT / "config" / "pipeline.toml"
REDIS_URL = os.environ.get("PIPELINE_TEST_REDIS", "redis://127.0.0.1:6379/15")
PG_DSN = os.environ.get("PIPELINE_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")
#: the worker kinds of the configured chain, in order: its stages, then the sink
ROLES = tuple(registry.roles(config.load(CONFIG, env={})))


SETUP_HINT = "scripts/bootstrap installs and starts it when it runs as root"


@functools.cache
def redis_missing() -> str | None:
    """Why the tests' Redis cannot be used, or None when it answers."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
        return None
    except redis.RedisError as exc:
        return f"no Redis at {REDIS_URL} ({exc}); {SETUP_HINT} (or set PIPELINE_TEST_REDIS)"


@functools.cache
def postgres_missing() -> str | None:
    """Why the tests' PostgreSQL database cannot be used, or None when it answers."""
    import psycopg

    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no PostgreSQL database at {PG_DSN} ({reason}); {SETUP_HINT} (or set PIPELINE_TEST_POSTGRES)"


def require_redis() -> str:
    """The tests' Redis URL; skips the calling test, saying why, when no Redis answers there."""
    missing = redis_missing()
    if missing:
        pytest.skip(missing)
    return REDIS_URL


def require_postgres() -> str:
    """The tests' PostgreSQL DSN; skips the calling test, saying why, when it cannot be reached."""
    missing = postgres_missing()
    if missing:
        pytest.skip(missing)
    return PG_DSN


@pytest.fixture
def settings():
    return config.load(CONFIG, env={})


@pytest.fixture
def redis_url():
    return require_redis()


@pytest.fixture
def pg_dsn():
    return require_postgres()


@pytest.fixture
def redis_namespace(redis_url):
    """A namespace of its own for each test, deleted afterwards."""
    import redis

    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{ns}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def pg_table(pg_dsn):
    """A table name of its own in the test database, dropped afterwards."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name} CASCADE")  # with its view
        conn.execute(f"DROP TABLE IF EXISTS {name}_stories")


@functools.cache
def _formatted_broker() -> Path | None:
    """The data folder of an embedded broker (Apache Kafka) that was formatted and never started,
    made once per test session; None where the embedded broker is Tansu (no Java or no jars)."""
    import atexit
    import shutil
    import tempfile

    from pipeline.streaming.broker import EmbeddedKafka, embedded_broker
    from pipeline.streaming.kafka_broker import free_port, new_cluster_id

    root = Path(tempfile.mkdtemp(prefix="pipeline-test-broker-"))
    atexit.register(shutil.rmtree, root, True)
    folder = root / "broker"
    settings = config.load(CONFIG, env={"PIPELINE__EMBEDDED_BROKER__DATA_DIR": str(folder)})
    broker, _ = embedded_broker(settings, root)
    if not isinstance(broker, EmbeddedKafka):
        return None
    node = broker.node  # formatted as EmbeddedKafka.start formats a new folder: one voter, itself
    node.controller_port = free_port(node.host)
    node.voters = {1: node.controller_port}
    cluster_id = new_cluster_id()
    folder.mkdir(parents=True)
    (folder / "cluster.id").write_text(cluster_id + "\n")
    node.format(cluster_id)
    return folder


def copy_formatted_broker(data_dir: Path) -> None:
    """Give a test's embedded broker, whose data goes to ``data_dir``, a copy of the session's
    formatted folder, so that its start skips formatting (a JVM run of Kafka's storage tool, about
    2 s on two busy cores). Nothing when ``data_dir`` exists or the embedded broker is Tansu. The
    tests of a first run on a bare machine (tests/streaming/test_run_command.py) and of formatting
    itself (tests/streaming/test_kafka_broker.py) format their own."""
    import shutil

    template = _formatted_broker()
    if template is not None and not data_dir.exists():
        shutil.copytree(template, data_dir)


def test_broker(tmp: Path, **env: str):
    """The broker `pipeline run` would start (embedded Apache Kafka, Tansu where Java is missing),
    with its data in ``tmp`` (and ``env``: PIPELINE__EMBEDDED_BROKER__... settings), for tests
    that keep one broker across several pipelines. Returns ``(broker, environment)``: the
    environment points a pipeline or a command at it."""
    from pipeline.streaming.broker import embedded_broker

    settings = config.load(CONFIG, env={"PIPELINE__EMBEDDED_BROKER__DATA_DIR": str(tmp / "broker"), **env})
    copy_formatted_broker(Path(settings.embedded_broker.data_dir))
    broker, _ = embedded_broker(settings, tmp)
    bootstrap = broker.start()
    return broker, {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PIPELINE__BROKER__PROFILE": broker.profile}


test_broker.__test__ = False  # a helper, not a test


def seed_files() -> list[Path]:
    return sorted(SEEDS.glob("*.txt"))


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs of the test's own (mounting needs root, as CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """A file that takes all of the file system's free space but ``leave_bytes``."""
    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(filler, "wb") as fh:
        chunk = b"\0" * (1 << 20)
        left = free - leave_bytes
        while left > 0:
            try:
                left -= fh.write(chunk[: min(left, len(chunk))])
                fh.flush()
            except OSError:
                break
    return filler
