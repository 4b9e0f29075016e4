"""PostgreSQL sink: one row per record id, written with an upsert, batch by batch.

The sink creates its table (and adds columns a newer version of this module names) on first
use, with indexes on language, site, publication date, dedup status, story and URL (``pipeline
record URL``), and a view
``<table>_current`` with the newest version of each article (by URL). Records that belong to a
story also keep the table ``<table>_stories`` up to date: one row per story with its running
summary (the newest one: a record sent again does not take a story back). The columns derive from
``records.RECORD_FIELDS``: times are ``timestamptz`` (``fetched_at``, ``ingested_at``,
``published``), dates ``date`` (``published_date``: the day the page shows), lists and objects
``jsonb`` (``lang``, ``dedup`` and ``story`` also split into columns, see ``SPLIT``), and fields
without a column of their own go to ``extra`` (``jsonb``); ``record_of`` turns a row back into the
record. A table an older version made with ``published`` as text is converted in place (once,
under a lock); a column of another type the sink cannot convert stops it with one line
(``TableMismatch``), and ``check`` finds it before anything starts.

A batch is one transaction: when it commits, every record in it is durable, so the worker may
acknowledge it. A lost connection is a ``TemporaryFailure``: the worker
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

from pipeline.records import RECORD_FIELDS, TemporaryFailure, json_scalar, parse_iso
from pipeline.redaction import redact
from pipeline.sinks.base import Sink

_SQL_SCALARS = {"str": "text", "int": "bigint", "float": "double precision", "bool": "boolean",
                "time": "timestamptz", "date": "date"}
#: objects kept in several columns, for queries and indexes: column -> key of the object (None: the
#: whole object, as jsonb). Keys of ``dedup`` the schema does not name go to ``extra``.
SPLIT: dict[str, dict[str, str | None]] = {
    "lang": {"lang": "code", "lang_confidence": "confidence", "lang_detail": None},
    "dedup": {"dedup_status": "status", "duplicate_of": "duplicate_of", "similarity": "similarity"},
    "story": {"story_id": "id", "story": None},
}


class TableMismatch(Exception):
    """The table has a column of another type than the record schema's, which the sink cannot
    convert: it refuses to write rather than guess (the message is one line, with the way out)."""


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _time(value: Any) -> datetime | None:
    return parse_iso(value) if isinstance(value, str) else None


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _scalar(kind: str, get: Callable[[dict], Any]) -> tuple[str, Callable[[dict], Any]]:
    if kind == "time":
        return "timestamptz", lambda r: _time(get(r))
    if kind == "date":
        return "date", lambda r: _date(get(r))
    return _SQL_SCALARS[kind], get


def _field(name: str, kind: Any) -> list[tuple[str, str, Callable[[dict], Any]]]:
    """The column(s) of one field of ``records.RECORD_FIELDS``: a scalar in its SQL type, a list
    or an object as jsonb; the objects of ``SPLIT`` in several columns."""
    if name == "id":
        return [("id", "text PRIMARY KEY", lambda r: r["id"])]
    if name in SPLIT:
        columns = []
        for column, key in SPLIT[name].items():
            if key is None:
                columns.append((column, "jsonb", lambda r: _json(r.get(name))))
            else:
                sql, get = _scalar(kind[key], lambda r, key=key: (r.get(name) or {}).get(key))
                columns.append((column, sql, get))
        return columns
    if not isinstance(kind, str):
        return [(name, "jsonb", lambda r: _json(r.get(name)))]
    return [(name, *_scalar(kind, lambda r: r.get(name)))]


def _extra(record: dict[str, Any]) -> str | None:
    """Fields the schema does not name, and keys of split objects kept in no jsonb column."""
    rest = {k: v for k, v in record.items() if k not in RECORD_FIELDS}
    for name, columns in SPLIT.items():
        value = record.get(name)
        if None not in columns.values() and isinstance(value, dict) and (unknown := set(value) - set(columns.values())):
            rest[name] = {k: value[k] for k in sorted(unknown)}
    return _json(rest) if rest else None


_COLUMN_SPECS = [spec for name, kind in RECORD_FIELDS.items() for spec in _field(name, kind)] + [
    ("extra", "jsonb", _extra)]
#: the table's columns, derived from the record schema (``written_at``: when the sink last wrote the row)
COLUMNS: list[tuple[str, str]] = [(name, sql) for name, sql, _ in _COLUMN_SPECS] + [
    ("written_at", "timestamptz NOT NULL DEFAULT now()")]
INDEXED = ["lang", "site", "published_date", "dedup_status", "story_id", "url", "canonical_url"]
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: the type names PostgreSQL gives (``format_type``) for the types of ``COLUMNS``
_TYPE_NAMES = {"timestamptz": "timestamp with time zone"}
#: columns an older version of this sink made with another type, and how their values convert:
#: ``published`` was text (ISO-8601 as the page gave it; no zone meaning UTC, as the clean stage
#: takes it now); ``published_precision`` is filled from the text's form.
MIGRATIONS: dict[tuple[str, str], str] = {("published", "text"): "published::timestamptz"}
_OLD_PUBLISHED = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$"


def column_type(sql: str) -> str:
    """The type name PostgreSQL reports for a column of ``COLUMNS`` (its SQL without constraints)."""
    name = sql.split(" PRIMARY KEY")[0].split(" NOT NULL")[0]
    return _TYPE_NAMES.get(name, name)


def table_columns(conn, table: str) -> dict[str, str]:
    """The columns of ``table`` and their types (``format_type``); empty when there is no table."""
    rows = conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped", (table,)).fetchall()
    return dict(rows)


def table_problems(conn, table: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``(columns to migrate, problems)`` of an existing table: a column of another type than the
    schema's is migrated when ``MIGRATIONS`` knows how (and its values convert), else a problem."""
    have = table_columns(conn, table)
    migrate, problems = [], []
    for name, sql in COLUMNS:
        want = column_type(sql)
        if name not in have or have[name] == want:
            continue
        if (name, have[name]) not in MIGRATIONS:
            problems.append(f"PostgreSQL table {table}: column {name} is {have[name]}, the record schema says {want}; "
                            f"convert it (ALTER TABLE {table} ALTER COLUMN {name} TYPE {want} USING ...) "
                            "or use another sink.postgres_table")
            continue
        if name == "published":
            bad = conn.execute(f"SELECT published FROM {table} WHERE published !~ %s LIMIT 1",
                               (_OLD_PUBLISHED,)).fetchone()
            if bad:
                problems.append(f"PostgreSQL table {table}: column published (text, from an older version) holds "
                                f"{bad[0][:60]!r}, which is not an ISO-8601 date or date-time: correct or clear such "
                                "values, and the sink converts the column to timestamptz")
                continue
        migrate.append((name, have[name]))
    return migrate, problems


def _convert_published(conn, table: str) -> None:
    """``published`` text (an older version's) to timestamptz, in the caller's transaction: a date
    only is 00:00 UTC, a time without zone UTC; ``published_precision`` from the text's form."""
    conn.execute("SET LOCAL TIME ZONE 'UTC'")
    conn.execute(f"UPDATE {table} SET published_precision = CASE "
                 r"WHEN published ~ '^\d{4}-\d{2}-\d{2}$' THEN 'day' "
                 r"WHEN published ~ '[T ].*(Z|[+-]\d{2}(:?\d{2})?)$' THEN 'instant' ELSE 'local_time' END "
                 "WHERE published IS NOT NULL AND published_precision IS NULL")
    conn.execute(f"ALTER TABLE {table} ALTER COLUMN published TYPE timestamptz USING {MIGRATIONS['published', 'text']}")


def row_of(record: dict[str, Any]) -> tuple:
    return tuple(get(record) for _, _, get in _COLUMN_SPECS)


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    """A row of the table (a dict of its columns) in the record's form, the inverse of ``row_of``:
    times in RFC 3339 (UTC), dates in ISO-8601, ``extra`` merged back; a field without a value is
    left out."""
    record: dict[str, Any] = {}
    for name, kind in RECORD_FIELDS.items():
        if name in SPLIT:
            whole = next((row.get(c) for c, key in SPLIT[name].items() if key is None), None)
            parts = {key: row.get(c) for c, key in SPLIT[name].items() if key is not None}
            value = whole if whole is not None else (parts if any(v is not None for v in parts.values()) else None)
        else:
            value = json_scalar(kind, row.get(name))
        if value is not None:
            record[name] = value
    for name, value in (row.get("extra") or {}).items():
        if isinstance(value, dict) and isinstance(record.get(name), dict):
            record[name] = {**record[name], **value}
        else:
            record[name] = value
    return record


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
        """A connection string is given, the table name is plain, the server answers (3 s), and a
        table that exists has the schema's column types (or ones the sink converts)."""
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
                if not problems:
                    problems += table_problems(conn, settings.postgres_table)[1]
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
            try:
                self._migrate(self._conn)
            except TableMismatch:
                self._drop()  # the next write checks the table again
                raise
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop()
                raise TemporaryFailure(f"{self.name}: {_first_line(exc)}") from None
        return self._conn

    def _migrate(self, conn) -> None:
        import psycopg

        with conn.transaction():
            # one migrating process at a time
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"news-pipeline:{self.table}",))
            migrate, problems = table_problems(conn, self.table)
            if problems:
                raise TableMismatch(problems[0])
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id text PRIMARY KEY)")
            for name, kind in COLUMNS:
                if name != "id":
                    conn.execute(f"ALTER TABLE {self.table} ADD COLUMN IF NOT EXISTS {name} {kind}")
            if migrate:  # the view selects every column: made again below
                conn.execute(f"DROP VIEW IF EXISTS {self.table}_current")
            if ("published", "text") in migrate:
                try:
                    _convert_published(conn, self.table)
                except (psycopg.errors.DataError, psycopg.errors.FeatureNotSupported) as exc:  # a value; a view of yours
                    raise TableMismatch(f"PostgreSQL table {self.table}: column published (text, from an older "
                                        f"version) cannot be converted to timestamptz: {_first_line(exc)}; correct "
                                        "or clear such values") from None
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
