"""PostgreSQL sink: one row per record id, written with an upsert, batch by batch.

The sink creates its table (and adds columns a newer version of this module names) on first
use, with indexes on language, site, publication date, dedup status and story, and a view
``<table>_current`` with the newest version of each article (by URL). Records that belong to a
story also keep the table ``<table>_stories`` up to date: one row per story with its running
summary (the newest one: a record sent again does not take a story back). ``entities``,
``entity_summary`` and ``trace`` are ``jsonb``, and fields without a column of their own go to
``extra`` (``jsonb``). A batch is one transaction: when it commits, every record in it is
durable, so the worker may acknowledge it. A lost connection is a ``TemporaryFailure``: the worker
retries with backoff and the sink reconnects.

The connection string comes from the sink target (``postgres:postgresql://...``), else
``DATABASE_URL``, else ``sink.postgres_url``; it is never printed with its password.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import orjson

from pipeline.records import RECORD_FIELDS, TemporaryFailure, parse_iso
from pipeline.redaction import redact
from pipeline.sinks.base import Sink

_SQL_SCALARS = {"str": "text", "int": "bigint", "float": "double precision", "bool": "boolean",
                "time": "timestamptz"}


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _time(value: Any) -> datetime | None:
    return parse_iso(value) if isinstance(value, str) else None


def _field(name: str, kind: Any) -> list[tuple[str, str, Callable[[dict], Any]]]:
    """The column(s) of one field of ``records.RECORD_FIELDS``: a scalar in its SQL type, a list
    or an object as jsonb; three fields are also split for queries and indexes."""
    if name == "lang":
        return [("lang", "text", lambda r: (r.get("lang") or {}).get("code")),
                ("lang_confidence", "double precision", lambda r: (r.get("lang") or {}).get("confidence")),
                ("lang_detail", "jsonb", lambda r: _json(r.get("lang") or {}))]
    if name == "dedup":
        return [("dedup_status", "text", lambda r: (r.get("dedup") or {}).get("status")),
                ("duplicate_of", "text", lambda r: (r.get("dedup") or {}).get("duplicate_of")),
                ("similarity", "double precision", lambda r: (r.get("dedup") or {}).get("similarity"))]
    if name == "story":
        return [("story_id", "text", lambda r: (r.get("story") or {}).get("id")),
                ("story", "jsonb", lambda r: _json(r.get("story")))]
    if name == "published":
        return [("published", "text", lambda r: r.get("published")),
                ("published_date", "date", lambda r: _published_date(r.get("published")))]
    if name == "id":
        return [("id", "text PRIMARY KEY", lambda r: r["id"])]
    if isinstance(kind, list) and kind[0] == "list":
        return [(name, "jsonb", lambda r: _json(r.get(name) or []))]
    if not isinstance(kind, str):
        return [(name, "jsonb", lambda r: _json(r.get(name)))]
    if kind == "time":
        return [(name, "timestamptz", lambda r: _time(r.get(name)))]
    return [(name, _SQL_SCALARS[kind], lambda r: r.get(name))]


_COLUMN_SPECS = [spec for name, kind in RECORD_FIELDS.items() for spec in _field(name, kind)] + [
    ("extra", "jsonb", lambda r: _json({k: v for k, v in r.items() if k not in RECORD_FIELDS})),
]
#: the table's columns, derived from the record schema (``written_at``: when the sink last wrote the row)
COLUMNS: list[tuple[str, str]] = [(name, sql) for name, sql, _ in _COLUMN_SPECS] + [
    ("written_at", "timestamptz NOT NULL DEFAULT now()")]
INDEXED = ["lang", "site", "published_date", "dedup_status", "story_id"]
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _published_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return parse_iso(value).date()
    except ValueError:
        return None


def row_of(record: dict[str, Any]) -> tuple:
    return tuple(get(record) for _, _, get in _COLUMN_SPECS)


class PostgresSink(Sink):
    kind = "postgres"

    @classmethod
    def _dsn(cls, location: str, settings: Any) -> str:
        dsn = location or os.environ.get("DATABASE_URL") or settings.postgres_url
        if not dsn:
            raise ValueError("postgres sink needs a connection string: postgres:postgresql://..., "
                             "DATABASE_URL, or sink.postgres_url")
        return dsn

    @classmethod
    def open(cls, location: str, settings: Any) -> PostgresSink:
        return cls(cls._dsn(location, settings), settings.postgres_table)

    @classmethod
    def check(cls, location: str, settings: Any) -> list[str]:
        """A connection string is given, the table name is plain, and the server answers (3 s)."""
        import psycopg

        try:
            dsn = cls._dsn(location, settings)
        except ValueError as exc:
            return [str(exc)]
        problems = [] if _IDENT.match(settings.postgres_table) else [
            f"sink.postgres_table: not a plain table name: {settings.postgres_table!r}"]
        try:
            with psycopg.connect(dsn, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, ValueError) as exc:  # ValueError: a connection string psycopg cannot parse
            reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            problems.append(f"PostgreSQL at {redact(dsn)} cannot be used: {redact(reason)}")
        return problems

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
        stories = f"{table}_stories"
        self._story_upsert = (
            f"INSERT INTO {stories} (story_id, title, first_seen, last_seen, articles, outlets, languages, "
            "top_entities, summary) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s::jsonb) "
            "ON CONFLICT (story_id) DO UPDATE SET title = EXCLUDED.title, first_seen = EXCLUDED.first_seen, "
            "last_seen = EXCLUDED.last_seen, articles = EXCLUDED.articles, outlets = EXCLUDED.outlets, "
            "languages = EXCLUDED.languages, top_entities = EXCLUDED.top_entities, summary = EXCLUDED.summary, "
            f"updated_at = now() WHERE {stories}.articles <= EXCLUDED.articles")

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
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table}_stories (story_id text PRIMARY KEY, title text, "
                         "first_seen timestamptz, last_seen timestamptz, articles bigint, outlets jsonb, "
                         "languages jsonb, top_entities jsonb, summary jsonb, updated_at timestamptz NOT NULL "
                         "DEFAULT now())")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_stories_last_seen_idx ON {self.table}_stories "
                         "(last_seen)")
            # every version of an article is a row of its own; the view holds the newest per URL
            conn.execute(f"CREATE OR REPLACE VIEW {self.table}_current AS SELECT DISTINCT ON "
                         f"(coalesce(canonical_url, url)) * FROM {self.table} "
                         "WHERE coalesce(canonical_url, url) IS NOT NULL ORDER BY coalesce(canonical_url, url), "
                         "(version->>'number')::int DESC NULLS LAST, fetched_at DESC")

    def write(self, records: list[dict[str, Any]]) -> set[str]:
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
                stories = _story_rows(records)
                if stories:
                    cur.executemany(self._story_upsert, stories)
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

    def close(self) -> None:
        self._drop()


def _story_rows(records: list[dict[str, Any]]) -> list[tuple]:
    """One row per story of the batch: its summary as of the batch's newest record in it (the one
    with the most articles)."""
    newest: dict[str, dict[str, Any]] = {}
    for record in records:
        story = record.get("story")
        if not isinstance(story, dict) or not story.get("id"):
            continue
        summary = story.get("summary") or {}
        held = newest.get(story["id"])
        if held is None or int(summary.get("articles") or 0) >= int(held.get("articles") or 0):
            newest[story["id"]] = summary
    return [(sid, s.get("title"), _time(s.get("first_seen")), _time(s.get("last_seen")), int(s.get("articles") or 0),
             _json(s.get("outlets") or []), _json(s.get("languages") or []), _json(s.get("top_entities") or []),
             _json(s)) for sid, s in sorted(newest.items())]


def _first_line(exc: Exception) -> str:
    return redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
