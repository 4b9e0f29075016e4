"""PostgreSQL sink: one row per record id, written with an upsert, batch by batch.

The sink creates its table (and adds columns a newer version of this module names) on first
use, with indexes on language, site, publication date and dedup status; ``entities``,
``entity_summary`` and ``trace`` are ``jsonb``, and fields without a column of their own go to
``extra`` (``jsonb``). A batch is one transaction: when it commits, every record in it is
durable, so the worker may acknowledge it. A lost connection is a ``TemporaryFailure``: the worker
retries with backoff and the sink reconnects.

The connection string comes from the sink target (``postgres:postgresql://...``), else
``DATABASE_URL``, else ``sink.postgres_url``; it is never printed with its password.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import orjson

from pipeline.records import TemporaryFailure, parse_iso
from pipeline.redaction import redact

COLUMNS: list[tuple[str, str]] = [
    ("id", "text PRIMARY KEY"),
    ("schema", "text"),
    ("url", "text"),
    ("source", "text"),
    ("fetched_at", "timestamptz"),
    ("content_type", "text"),
    ("title", "text"),
    ("author", "text"),
    ("authors", "jsonb"),
    ("published", "text"),
    ("published_date", "date"),
    ("site", "text"),
    ("canonical_url", "text"),
    ("declared_lang", "text"),
    ("lang", "text"),
    ("lang_confidence", "double precision"),
    ("lang_detail", "jsonb"),
    ("text", "text"),
    ("entities", "jsonb"),
    ("entity_summary", "jsonb"),
    ("dedup_status", "text"),
    ("duplicate_of", "text"),
    ("similarity", "double precision"),
    ("trace", "jsonb"),
    ("extra", "jsonb"),
    ("written_at", "timestamptz NOT NULL DEFAULT now()"),
]
INDEXED = ["lang", "site", "published_date", "dedup_status"]
_RECORD_FIELDS_IN_COLUMNS = {"id", "schema", "url", "source", "fetched_at", "content_type", "title", "author",
                             "authors", "published", "site", "canonical_url", "declared_lang", "lang", "text",
                             "entities", "entity_summary", "dedup", "trace"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _published_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return parse_iso(value).date()
    except ValueError:
        return None


def row_of(record: dict[str, Any]) -> tuple:
    lang = record.get("lang") or {}
    dedup = record.get("dedup") or {}
    extra = {k: v for k, v in record.items() if k not in _RECORD_FIELDS_IN_COLUMNS}
    values = {
        "id": record["id"], "schema": record.get("schema"), "url": record.get("url"), "source": record.get("source"),
        "fetched_at": parse_iso(record["fetched_at"]), "content_type": record.get("content_type"),
        "title": record.get("title"), "author": record.get("author"),
        "authors": orjson.dumps(record.get("authors") or []).decode(),
        "published": record.get("published"), "published_date": _published_date(record.get("published")),
        "site": record.get("site"), "canonical_url": record.get("canonical_url"),
        "declared_lang": record.get("declared_lang"), "lang": lang.get("code"),
        "lang_confidence": lang.get("confidence"), "lang_detail": orjson.dumps(lang).decode(),
        "text": record.get("text"), "entities": orjson.dumps(record.get("entities") or []).decode(),
        "entity_summary": orjson.dumps(record.get("entity_summary") or []).decode(),
        "dedup_status": dedup.get("status"), "duplicate_of": dedup.get("duplicate_of"),
        "similarity": dedup.get("similarity"), "trace": orjson.dumps(record.get("trace") or []).decode(),
        "extra": orjson.dumps(extra).decode(),
    }
    return tuple(values[name] for name, _ in COLUMNS if name != "written_at")


class PostgresSink:
    kind = "postgres"

    def __init__(self, dsn: str, table: str):
        if not _IDENT.match(table):
            raise ValueError(f"not a plain table name: {table!r}")
        self.dsn = dsn
        self.table = table
        self.name = f"postgres:{redact(dsn)}#{table}"
        self._conn = None
        names = [name for name, _ in COLUMNS if name != "written_at"]
        jsonb = {name for name, kind in COLUMNS if kind == "jsonb"}
        values = ", ".join("%s::jsonb" if n in jsonb else "%s" for n in names)
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n != "id")
        self._upsert = (f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values}) "
                        f"ON CONFLICT (id) DO UPDATE SET {updates}, written_at = now() "
                        # xmax is 0 on a row this statement inserted, not on one it updated
                        "RETURNING id, (xmax = 0) AS inserted")

    def _connect(self):
        import psycopg

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.dsn, connect_timeout=5, autocommit=False)
            except psycopg.OperationalError as exc:
                raise TemporaryFailure(f"{self.name}: cannot connect: {_first_line(exc)}") from None
            self._migrate(self._conn)
        return self._conn

    def _migrate(self, conn) -> None:
        with conn.transaction():
            # one migrating process at a time
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"news-pipeline:{self.table}",))
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id text PRIMARY KEY)")
            for name, kind in COLUMNS:
                if name != "id":
                    conn.execute(f"ALTER TABLE {self.table} ADD COLUMN IF NOT EXISTS {name} {kind}")
            for name in INDEXED:
                conn.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_{name}_idx ON {self.table} ({name})")

    def write(self, records: list[dict[str, Any]], partition: int = 0) -> set[str]:
        """Upsert the records (a record written again replaces its row); return the ids that had
        no row before."""
        import psycopg

        if not records:
            return set()
        rows = [row_of(r) for r in records]
        conn = self._connect()
        new: set[str] = set()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(self._upsert, rows, returning=True)
                while True:
                    for rid, inserted in cur.fetchall():
                        if inserted:
                            new.add(rid)
                    if not cur.nextset():
                        break
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop()
            raise TemporaryFailure(f"{self.name}: {_first_line(exc)}") from None
        return new

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - the connection is gone either way
                pass
            self._conn = None

    def rolls_due(self) -> set[int]:
        return set()

    def roll(self, partitions: set[int]) -> list:
        return []

    def release(self, partitions: set[int]) -> None:
        pass

    def close(self) -> None:
        self._drop()


def _first_line(exc: Exception) -> str:
    return redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
