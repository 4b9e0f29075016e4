import duckdb
import orjson
import pandas as pd

from pipeline.records import published_fields
from pipeline.sinks.parquet import ParquetSink
from pipeline.sinks.staging import Staging


def record(i, lang="id", day="2026-11-21"):
    return {
        "schema": "news-pipeline/record/1", "id": f"r{i}", "url": f"https://example.com/{i}", "source": None,
        "fetched_at": f"{day}T10:00:00.000Z", "content_type": "text", "title": f"Title {i}", "author": "A",
        "authors": ["A"], **published_fields("2023-09-20T06:12:00+07:00"), "site": "example.com", "canonical_url": None,
        "declared_lang": None, "text": f"text {i}",
        "lang": {"code": lang, "confidence": 0.9, "reliable": True, "alternatives": [{"code": lang, "score": 0.9}],
                 "spans": [{"start": 0, "end": 1, "code": lang, "confidence": 0.9}], "model": "x"},
        "entities": [{"text": "Rusia", "label": "LOC", "start": 0, "end": 5, "canonical": "Russia",
                      "ids": {"iso3166": "RU"}, "source": "gazetteer"}],
        "entity_summary": [{"canonical": "Russia", "label": "LOC", "count": 1}], "entities_tagger": "t",
        "dedup": {"status": "unique", "duplicate_of": None, "similarity": None},
        "trace": [{"stage": "clean", "worker": "w", "started_at": f"{day}T10:00:00.000Z", "ms": 1.5}],
        "brand_new_field": {"x": 1},
    }


def test_parquet_partitioned_by_date_and_language_read_by_duckdb_and_pandas(tmp_path):
    sink = Staging(ParquetSink(tmp_path), roll_bytes=1 << 20, roll_seconds=3600)
    sink.write([record(1), record(2, "en"), record(3, "id", "2026-11-22"), record(1)], partition=0)
    sink.write([record(4)], partition=1)
    written = sink.finish({0, 1})
    sink.close()
    assert sorted(str(p.relative_to(tmp_path)).rsplit("/", 1)[0] for p in written) == [
        "dt=2026-11-21/language=en", "dt=2026-11-21/language=id", "dt=2026-11-21/language=id",
        "dt=2026-11-22/language=id"]
    glob = str(tmp_path / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT id, CAST(dt AS VARCHAR), language, lang.code, entities[1].canonical, entities[1].ids['iso3166'], "
        f"trace[1].ms, dedup.status, extra FROM read_parquet('{glob}', hive_partitioning = true) ORDER BY id"
    ).fetchall()
    assert [r[0] for r in rows] == ["r1", "r2", "r3", "r4"]  # r1 written twice, stored once
    assert rows[0][1:8] == ("2026-11-21", "id", "id", "Russia", "RU", 1.5, "unique")
    assert '"brand_new_field"' in rows[0][8] and '"model"' in rows[0][8]
    frame = pd.read_parquet(tmp_path)
    assert sorted(frame["id"]) == ["r1", "r2", "r3", "r4"]
    assert set(frame["language"].astype(str)) == {"id", "en"}
    assert frame.sort_values("id").iloc[0]["entities"][0]["canonical"] == "Russia"
    assert not list((tmp_path / "_staging").glob("*.part"))


def test_story_updates_go_beside_the_records_and_out_of_their_dataset(tmp_path):
    from pipeline.sinks.jsonl import JsonlSink, read_records

    story = {"id": "r1", "status": "started", "similarity": None,
             "summary": {"title": "Title 1", "first_seen": "2023-09-20T00:00:00Z", "last_seen": "2023-09-21T00:00:00Z",
                         "articles": 2, "outlets": ["example.com"], "languages": ["id"], "top_entities": ["Russia"]}}
    records = [dict(record(1), story=story), dict(record(2), story=dict(story, status="joined", similarity=0.42)),
               dict(record(3), story=None)]
    for sink_class, folder in ((ParquetSink, "_stories"), (JsonlSink, "stories")):
        out = tmp_path / sink_class.kind
        sink = Staging(sink_class(out), roll_bytes=1 << 20, roll_seconds=3600)
        sink.write(records, partition=0)
        written = sink.finish({0})
        sink.close()
        stories = [p for p in written if p.parent.name == folder]
        assert len(stories) == 1 and stories[0].stem.startswith("enriched-p000")
        if sink_class is ParquetSink:
            rows = duckdb.sql(f"SELECT story_id, article.id, article.status, article.similarity, summary.articles, "
                              f"summary.top_entities FROM read_parquet('{stories[0]}') ORDER BY article.id").fetchall()
            assert rows == [("r1", "r1", "started", None, 2, ["Russia"]), ("r1", "r2", "joined", 0.42, 2, ["Russia"])]
            assert sorted(pd.read_parquet(out)["id"]) == ["r1", "r2", "r3"]  # the records' dataset leaves them out
        else:
            updates = list(read_records(out / folder))
            assert [(u["story_id"], u["article"]["id"], u["article"]["status"]) for u in updates] == [
                ("r1", "r1", "started"), ("r1", "r2", "joined")]
            assert sorted(r["id"] for r in read_records(out)) == ["r1", "r2", "r3"]


def test_a_file_finished_again_after_a_crash_writes_the_same_story_updates(tmp_path):
    """A crash after the story updates were written but before the records' file appeared leaves
    the part file: finishing it again gives the same files, each update once."""
    import shutil

    from pipeline.sinks.jsonl import JsonlSink, read_records

    story = {"id": "r1", "status": "started", "similarity": None, "summary": {"title": "T", "articles": 1}}
    for sink_class in (JsonlSink, ParquetSink):
        out = tmp_path / sink_class.kind
        sink = sink_class(out)
        staging = sink.staging_dir()
        staging.mkdir(parents=True)
        part = staging / "enriched-p000-20261121T100000000000.jsonl.part"
        part.write_bytes(b"".join(orjson.dumps(dict(record(i), story=dict(story, id="r1"))) + b"\n" for i in (1, 2)))
        kept = tmp_path / f"{sink_class.kind}.copy"
        shutil.copy2(part, kept)  # the part file as the crash left it (same content, same time)
        first = sink.finish(part)
        stories = next(p for p in first if p.parent == sink.stories_dir())
        before = stories.read_bytes()
        shutil.copy2(kept, part)
        again = sink.finish(part)
        assert sorted(map(str, again)) == sorted(map(str, first)) and stories.read_bytes() == before
        if sink_class is JsonlSink:
            assert [u["article"]["id"] for u in read_records(sink.stories_dir())] == ["r1", "r2"]
            assert sorted(r["id"] for r in read_records(out)) == ["r1", "r2"]
        else:
            assert sorted(pd.read_parquet(stories)["article"].map(lambda a: a["id"])) == ["r1", "r2"]
        assert not part.exists()
