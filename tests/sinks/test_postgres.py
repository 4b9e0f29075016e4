import psycopg
import pytest

from pipeline.records import TemporaryFailure
from pipeline.redaction import redact
from pipeline.sinks.postgres import PostgresSink
from tests.conftest import PG_DSN as DSN
from tests.sinks.test_parquet import record


@pytest.fixture
def table(pg_table):
    return pg_table


def test_creates_table_and_upserts_one_row_per_id(table):
    sink = PostgresSink(DSN, table)
    assert sink.write([record(1), record(2, "en")]) == {"r1", "r2"}
    changed = record(1)
    changed["title"] = "Title 1, corrected"
    assert sink.write([changed, record(3)]) == {"r3"}  # r1 is written again in place, not new
    sink.close()
    with psycopg.connect(DSN) as conn:
        rows = conn.execute(f"SELECT id, title, lang, published_date::text, dedup_status, "
                            f"entities->0->>'canonical', trace->0->>'stage', extra->>'brand_new_field' "
                            f"FROM {table} ORDER BY id").fetchall()
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,))}
    assert [r[0] for r in rows] == ["r1", "r2", "r3"]
    assert rows[0] == ("r1", "Title 1, corrected", "id", "2023-09-20", "unique", "Russia", "clean", '{"x": 1}')
    assert {f"{table}_{c}_idx" for c in ("lang", "site", "published_date", "dedup_status")} <= indexes


def test_an_older_table_gets_the_new_columns(table):
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, title text)")
    sink = PostgresSink(DSN, table)
    sink.write([record(7)])
    sink.close()
    with psycopg.connect(DSN) as conn:
        assert conn.execute(f"SELECT lang FROM {table}").fetchone() == ("id",)


def test_unreachable_database_is_a_temporary_failure_and_no_password_is_shown():
    sink = PostgresSink("postgresql://bob:s3cret@127.0.0.1:1/test", "x")
    assert "s3cret" not in sink.name
    with pytest.raises(TemporaryFailure) as err:
        sink.write([record(1)])
    assert "s3cret" not in str(err.value)
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"
    assert redact("host=h password=p dbname=x") == "host=h password=*** dbname=x"


def test_every_version_is_a_row_and_the_view_holds_the_newest(table):
    first = {**record(1), "url": "https://news.example/a", "version": {"number": 1, "status": "first"}}
    second = {**record(2), "url": "https://news.example/a", "title": "Updated",
              "version": {"number": 2, "previous_id": "r1", "status": "changed", "title_changed": True}}
    other = {**record(3), "url": "https://news.example/b", "version": {"number": 1, "status": "first"}}
    sink = PostgresSink(DSN, table)
    sink.write([second, first, other])
    sink.close()
    with psycopg.connect(DSN) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (3,)
        current = conn.execute(f"SELECT url, id, title, version->>'number' FROM {table}_current ORDER BY url").fetchall()
    assert current == [("https://news.example/a", "r2", "Updated", "2"), ("https://news.example/b", "r3", "Title 3", "1")]


def test_stories_keep_one_row_each_with_their_newest_summary(table):
    def storied(n: int, story: str, articles: int, last_seen: str) -> dict:
        return {**record(n), "story": {"id": story, "status": "joined" if articles > 1 else "started",
                                       "similarity": 0.4, "summary": {
                                           "title": f"Story {story}", "first_seen": "2026-12-01T08:00:00Z",
                                           "last_seen": last_seen, "articles": articles, "outlets": ["a.example"],
                                           "languages": ["id"], "top_entities": ["Armenia"]}}}

    sink = PostgresSink(DSN, table)
    sink.write([storied(1, "s1", 1, "2026-12-01T08:00:00Z"), storied(2, "s1", 2, "2026-12-01T09:00:00Z"),
                storied(3, "s3", 1, "2026-12-01T10:00:00Z")])
    sink.write([storied(1, "s1", 1, "2026-12-01T08:00:00Z")])  # sent again: the story does not go back
    sink.write([storied(4, "s1", 3, "2026-12-02T08:00:00Z")])
    sink.close()
    with psycopg.connect(DSN) as conn:
        stories = conn.execute(f"SELECT story_id, articles, to_char(last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
                               f"outlets->>0 FROM {table}_stories "
                               "ORDER BY story_id").fetchall()
        members = conn.execute(f"SELECT id FROM {table} WHERE story_id = 's1' ORDER BY id").fetchall()
    assert stories == [("s1", 3, "2026-12-02 08:00", "a.example"), ("s3", 1, "2026-12-01 10:00", "a.example")]
    assert [m[0] for m in members] == ["r1", "r2", "r4"]


def _sink_settings(table: str):
    from types import SimpleNamespace

    return SimpleNamespace(postgres_table=table, postgres_url=None)


def test_a_table_of_an_older_version_gets_published_as_a_timestamp(table):
    """Before, ``published`` was text as the page gave it: the sink converts it to timestamptz (a
    date only is 00:00 UTC, a time without zone UTC) and fills ``published_precision`` from its form."""
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, url text, canonical_url text, fetched_at timestamptz, "
                     "version jsonb, published text, published_date date)")
        conn.execute(f"CREATE VIEW {table}_current AS SELECT * FROM {table}")  # as the older sink made it
        conn.cursor().executemany(f"INSERT INTO {table} (id, published, published_date) VALUES (%s, %s, %s::date)", [
            ("o1", "2023-09-20T06:12:00+07:00", "2023-09-20"), ("o2", "2023-09-20", "2023-09-20"),
            ("o3", "2023-09-20T06:12:00", "2023-09-20"), ("o4", None, None)])
    assert PostgresSink.check(DSN, _sink_settings(table)) == []
    sink = PostgresSink(DSN, table)
    sink.write([record(1)])
    sink.close()
    with psycopg.connect(DSN) as conn:
        conn.execute("SET TIME ZONE 'Asia/Jakarta'")  # what a reader's session shows does not matter
        rows = conn.execute(f"SELECT id, to_char(published AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
                            f"published_date::text, published_precision FROM {table} ORDER BY id").fetchall()
        current = conn.execute(f"SELECT id, published_precision FROM {table}_current").fetchall()  # made again
        kind = conn.execute("SELECT data_type FROM information_schema.columns WHERE table_name = %s "
                            "AND column_name = 'published'", (table,)).fetchone()
    assert kind == ("timestamp with time zone",)
    assert rows == [("o1", "2023-09-19 23:12", "2023-09-20", "instant"), ("o2", "2023-09-20 00:00", "2023-09-20", "day"),
                    ("o3", "2023-09-20 06:12", "2023-09-20", "local_time"), ("o4", None, None, None),
                    ("r1", "2023-09-19 23:12", "2023-09-20", "instant")]
    assert current == [("r1", "instant")]
    assert PostgresSink.check(DSN, _sink_settings(table)) == []  # and the next start finds nothing to do


@pytest.mark.parametrize("columns, values, said", [
    ("published text", "('o1', 'yesterday')", "column published (text, from an older version) holds 'yesterday'"),
    ("published text", "('o1', '2023-02-30')", "column published (text, from an older version) cannot be converted"),
    ("fetched_at text", "('o1', '2023-09-20')", "column fetched_at is text, the record schema says timestamp with"),
])
def test_a_column_of_another_type_is_refused_in_one_line_and_left_as_it_is(table, columns, values, said):
    from pipeline.sinks.postgres import TableMismatch

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, {columns})")
        conn.execute(f"INSERT INTO {table} VALUES {values}")
    problems = PostgresSink.check(DSN, _sink_settings(table))
    if "cannot be converted" not in said:  # the preflight reads the values' form, not every value's calendar
        assert len(problems) == 1 and said in problems[0] and "\n" not in problems[0]
    sink = PostgresSink(DSN, table)
    for _ in range(2):  # refused again on the next batch, not written into a half-checked table
        with pytest.raises(TableMismatch) as err:
            sink.write([record(1)])
        assert said in str(err.value) and "\n" not in str(err.value)
    sink.close()
    with psycopg.connect(DSN) as conn:
        assert conn.execute(f"SELECT id FROM {table}").fetchall() == [("o1",)]
        assert conn.execute("SELECT data_type FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
                            (table, columns.split()[0])).fetchone() == ("text",)


def test_pipeline_run_refuses_such_a_table_before_it_starts_anything(table):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, lang jsonb)")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", "--sink", f"postgres:{DSN}", "--replay", "seeds/",
                           "--exit-when-done", "--no-dashboard"], cwd=ROOT, capture_output=True, timeout=60,
                          env={**os.environ, "PIPELINE__SINK__POSTGRES_TABLE": table})
    assert proc.returncode == 2
    (line,) = proc.stderr.decode().splitlines()
    assert f"PostgreSQL table {table}: column lang is jsonb, the record schema says text" in line
