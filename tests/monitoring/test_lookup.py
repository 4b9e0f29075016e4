"""Finding a record again (``pipeline record``, the dashboard's record page and search) in real sinks:
JSONL files (finished and open), Parquet files written by the Parquet sink (and a part file still
staged), and a PostgreSQL table written by the PostgreSQL sink; no broker."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson
import pytest

from pipeline import config
from pipeline.monitoring import lookup
from pipeline.sinks import lookup as sink_lookup
from pipeline.sinks.parquet import ParquetSink
from pipeline.sinks.postgres import PostgresSink
from tests.conftest import CONFIG, PG_DSN

URL = "https://news.example/2026/12/kremlin-urges-ceasefire"


def make(rid: str, fetched_at: str, title: str, *, url: str | None = URL, site: str = "news.example",
         lang: str = "id", canonical: str = "Russia", number: int = 1, previous: str | None = None,
         story: str | None = None) -> dict:
    text = f"Rusia mendesak gencatan senjata. {title}."
    return {
        "schema": "news-pipeline/record/1", "id": rid, "url": url, "source": None, "fetched_at": fetched_at,
        "ingested_at": fetched_at, "content_type": "html", "title": title, "author": None, "authors": [],
        "site": site, "canonical_url": None, "declared_lang": lang, "text": text,
        "lang": {"code": lang, "confidence": 0.99, "reliable": True},
        "entities": [{"text": "Rusia", "label": "LOC", "start": 0, "end": 5, "canonical": canonical}],
        "entity_summary": [{"canonical": canonical, "label": "LOC", "count": 1}],
        "dedup": {"status": "unique"},
        "version": {"number": number, "status": "changed" if previous else "first",
                    **({"previous_id": previous} if previous else {})},
        "story": {"id": story, "status": "joined", "similarity": 0.5,
                  "summary": {"title": "Ceasefire talks", "articles": 2}} if story else None,
        "trace": [{"stage": "clean", "worker": "clean-0", "started_at": fetched_at, "ms": 12.5},
                  {"stage": "entities", "worker": "entities-0", "started_at": fetched_at, "ms": 3.25}],
    }


FIRST = make("a" * 32, "2026-12-01T08:00:00.000Z", "Kremlin urges a ceasefire", story="s1")
SECOND = make("b" * 32, "2026-12-01T09:30:00.000Z", "Kremlin urges a ceasefire, updated", number=2,
              previous="a" * 32, story="s1")
OTHER = make("c" * 32, "2026-12-02T10:00:00.000Z", "Jakarta floods", url="https://other.example/floods",
             site="other.example", lang="en", canonical="Jakarta")
RECORDS = [FIRST, SECOND, OTHER]


def lines(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


@pytest.fixture
def settings():
    return config.load(CONFIG, env={})


@pytest.fixture
def jsonl(tmp_path):
    folder = tmp_path / "jsonl"
    folder.mkdir()
    (folder / "enriched-p000-20261201T080000.jsonl").write_bytes(lines([FIRST, OTHER]))
    (folder / "enriched-p001-20261201T093000.jsonl.part").write_bytes(lines([SECOND]) + b'{"id": "cut sho')
    return f"jsonl:{folder}"


@pytest.fixture
def parquet(tmp_path):
    folder = tmp_path / "parquet"
    sink = ParquetSink(folder)
    staging = sink.staging_dir()
    staging.mkdir(parents=True)
    part = staging / "enriched-p000-20261201T080000.jsonl.part"
    part.write_bytes(lines([FIRST, OTHER]))
    assert sink.finish(part)  # real Parquet files, as the sink writes them
    (staging / "enriched-p001-20261201T093000.jsonl.part").write_bytes(lines([SECOND]))  # not finished yet
    return f"parquet:{folder}"


@pytest.fixture
def postgres(pg_table):
    sink = PostgresSink(PG_DSN, pg_table)
    sink.write(RECORDS)
    sink.close()
    return f"postgres:{PG_DSN}", pg_table


def _set(value):
    """A value without the keys a typed sink gives back as null (fields of a nested object it has a column for)."""
    if isinstance(value, dict):
        return {k: _set(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_set(v) for v in value]
    return value


def _same(found: dict, original: dict) -> None:
    for field in ("id", "url", "title", "text", "site", "fetched_at", "entities", "entity_summary", "trace"):
        assert _set(found.get(field)) == original[field], field
    assert found["lang"]["code"] == original["lang"]["code"]
    assert found["dedup"]["status"] == "unique"
    assert found["version"]["number"] == original["version"]["number"]


def test_a_record_is_found_by_id_and_every_version_by_url_in_every_sink(settings, jsonl, parquet, postgres):
    target, table = postgres
    settings = dataclasses.replace(settings, sink=dataclasses.replace(settings.sink, postgres_table=table))
    targets = [jsonl, parquet, target]

    by_id = lookup.find(settings, "a" * 32, targets, topics=False)
    assert by_id.found and [v.id for v in by_id.versions] == ["a" * 32]
    (version,) = by_id.versions
    assert sorted(c.sink.split(":")[0] for c in version.copies) == ["jsonl", "parquet", "postgres"]
    assert all(c.where for c in version.copies)
    for copy in version.copies:
        _same(copy.record, FIRST)
    assert "password" not in str(version.copies)

    by_url = lookup.find(settings, URL, targets, topics=False)
    assert [v.id for v in by_url.versions] == ["b" * 32, "a" * 32]  # every version, newest first
    newest = by_url.versions[0]
    assert len(newest.copies) == 3
    wheres = " ".join(c.where for c in newest.copies)
    assert "open part file" in wheres and "staged" in wheres and f"table {table}" in wheres
    for copy in newest.copies:
        _same(copy.record, SECOND)

    text = lookup.text(by_url)
    assert text.startswith(f"2 versions of {URL}") and "Kremlin urges a ceasefire, updated" in text
    assert "clean 12.5 ms" in text and "topics" not in text  # --no-topics: no note about them


def test_nothing_found_and_no_broker_are_said_not_raised(settings, jsonl, tmp_path):
    missing = lookup.find(settings.with_bootstrap(""), "no-such-record", [jsonl, f"jsonl:{tmp_path / 'nowhere'}",
                                                                           "toy:thing"])
    assert not missing.found and not missing.topics_read
    notes = " | ".join(missing.notes)
    assert "nowhere" in notes and "a toy sink cannot be read back" in notes and "no broker known" in notes

    down = lookup.find(settings.with_bootstrap("127.0.0.1:1"), "a" * 32, [jsonl])
    assert down.found and not down.topics_read
    assert any("topics not read: the broker does not answer (127.0.0.1:1" in n for n in down.notes)


def test_search_filters_records_in_every_sink(settings, jsonl, parquet, postgres):
    target, table = postgres
    sinks = dataclasses.replace(settings.sink, postgres_table=table)
    for t in (jsonl, parquet, target):
        def ids(t=t, **filters):
            found, notes = sink_lookup.search([t], sinks, sink_lookup.Filters(**filters))
            assert notes == [], notes
            return [b["id"] for b in found]

        assert ids() == ["c" * 32, "b" * 32, "a" * 32]  # newest fetch first
        assert ids(text="FLOODS") == ["c" * 32]
        assert ids(site="other.example") == ids(lang="en") == ids(entity="jakar") == ["c" * 32]
        assert ids(story="s1") == ids(story="ceasefire talks") == ["b" * 32, "a" * 32]
        assert ids(since=datetime(2026, 12, 1, 9, tzinfo=UTC), until=datetime(2026, 12, 2, tzinfo=UTC)) == ["b" * 32]
        assert ids(text="nothing like it") == []
        found, _ = sink_lookup.search([t], sinks, sink_lookup.Filters(entity="russia"))
        assert {b["title"] for b in found} == {FIRST["title"], SECOND["title"]}
        assert all(b["found_in"] == t for b in found)


def test_filters_match_receipts_as_they_match_records():
    from pipeline.records import receipt

    r = receipt({**OTHER, "entity_summary": OTHER["entity_summary"]}, ["jsonl:x"], "sink-0")
    assert sink_lookup.Filters(entity="jakarta", site="OTHER.example", lang="en").matches(r)
    assert not sink_lookup.Filters(entity="russia").matches(r)
    assert sink_lookup.brief(OTHER)["entities"] == r["entities"]


def test_the_postgresql_lookup_by_id_or_url_is_an_index_scan(postgres):
    import psycopg

    _, table = postgres
    with psycopg.connect(PG_DSN) as conn:
        conn.execute("SET enable_seqscan = off")  # the plan a large table gets, on a small one
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT * FROM {table} WHERE id = %s OR url = %s OR canonical_url = %s", (URL, URL, URL)))
    assert "Seq Scan" not in plan and plan.count("Index Scan") >= 3, plan


def test_the_run_file_names_the_runs_sinks_without_their_password(settings, tmp_path, monkeypatch, jsonl):
    import os

    from pipeline.monitoring import runfile

    secret = "pw-0f9e8d7c6b5a"
    dsn = f"postgresql://bob:{secret}@127.0.0.1:5432/test"
    settings = dataclasses.replace(settings, run=dataclasses.replace(settings.run, log_dir=str(tmp_path / "logs")))
    runfile.write(settings.with_sinks([jsonl, f"postgres:{dsn}"]), "127.0.0.1:9092")
    text = runfile.path(settings).read_text()
    assert secret not in text and "postgres:postgresql://bob:***@127.0.0.1:5432/test" in text
    assert os.getpid() == runfile.running_info(settings)["pid"]  # this process is the live "run"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    masked = runfile.run_sinks(settings)
    assert masked == [jsonl, "postgres:postgresql://bob:***@127.0.0.1:5432/test"]
    result = sink_lookup.find(masked, settings.sink, "a" * 32)
    assert len(result.copies) == 1 and "password is not known here" in result.notes[0]
    monkeypatch.setenv("DATABASE_URL", dsn)  # where this process knows it, it is used
    assert runfile.run_sinks(settings) == [jsonl, f"postgres:{dsn}"]
    assert runfile.resolve(settings).sink.targets == [jsonl, f"postgres:{dsn}"]


def test_a_delivered_records_uncommitted_message_is_a_note_not_in_flight():
    result = lookup.Lookup("https://news.example/a")
    result.versions = [lookup.Version("id-delivered", {"id": "id-delivered"}, [])]
    result.in_flight = [lookup.InFlight("pages.raw", 1, 13, "clean", {"id": "id-delivered"}),
                        lookup.InFlight("pages.raw", 2, 7, "clean", {"id": "id-other-fetch"}),
                        lookup.InFlight("pages.raw", 3, 2, "clean", None)]
    lookup._delivered_apart(result)
    assert [(m.partition, m.offset) for m in result.in_flight] == [(2, 7), (3, 2)]
    assert result.notes == ["pages.raw partition 1 offset 13: delivered already; clean has not committed past it yet"]
    text = lookup.text(result)
    assert "in flight: pages.raw partition 2 offset 7" in text and "partition 1 offset 13: delivered already" in text
