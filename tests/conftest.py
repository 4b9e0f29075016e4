"""Shared fixtures. Integration fixtures start the real embedded broker and real worker processes."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pipeline import config

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
CONFIG = ROOT / "config" / "pipeline.toml"
REDIS_URL = os.environ.get("PIPELINE_TEST_REDIS", "redis://127.0.0.1:6379/15")
PG_DSN = os.environ.get("PIPELINE_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


@pytest.fixture
def settings():
    return config.load(CONFIG, env={})


@pytest.fixture
def redis_namespace():
    """A namespace of its own for each test, deleted afterwards."""
    import redis

    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{ns}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def pg_table():
    """A table name of its own in the test database, dropped afterwards."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


def seed_files() -> list[Path]:
    return sorted(SEEDS.glob("*.txt"))
