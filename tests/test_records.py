from datetime import UTC, datetime

import orjson
import pytest

from pipeline import records
from pipeline.records import BadInput

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_id_is_stable_for_a_redelivery_and_new_for_a_second_fetch():
    event = {"url": "https://example.com/a", "text": "hello world"}
    first = records.accept_raw(event, T)
    again = records.accept_raw(event, T)  # same message timestamp: a redelivery
    later = records.accept_raw(event, datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))  # a second fetch
    assert first.id == again.id
    assert first.id != later.id
    assert first.fetched_at == "2026-01-02T03:04:05.000Z"


def test_given_id_and_fetch_time_are_kept():
    raw = records.accept_raw({"id": "abc", "fetched_at": "2020-10-01T15:32:00+07:00", "html": "<p>x</p>"}, T)
    assert raw.id == "abc"
    assert raw.fetched_at == "2020-10-01T08:32:00.000Z"
    assert raw.content_type == "html"


def test_id_depends_on_content_and_locator():
    a = records.accept_raw({"source": "a.txt", "fetched_at": "2026-01-01T00:00:00Z", "text": "x"}, T)
    b = records.accept_raw({"source": "b.txt", "fetched_at": "2026-01-01T00:00:00Z", "text": "x"}, T)
    c = records.accept_raw({"source": "a.txt", "fetched_at": "2026-01-01T00:00:00Z", "text": "y"}, T)
    assert len({a.id, b.id, c.id}) == 3


@pytest.mark.parametrize("event, reason", [
    ({}, records.INVALID_EVENT),
    ({"text": "   "}, records.EMPTY_BODY),
    ({"text": 5}, records.INVALID_EVENT),
    ({"text": "a", "html": "b"}, records.INVALID_EVENT),
    ({"text": "a", "url": ["x"]}, records.INVALID_EVENT),
    ({"text": "a", "fetched_at": "yesterday"}, records.INVALID_EVENT),
])
def test_invalid_events_are_refused_with_a_reason(event, reason):
    with pytest.raises(BadInput) as err:
        records.accept_raw(event, T)
    assert err.value.reason == reason


@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe\x00garbage", b"[1,2]", b"", None])
def test_decode_refuses_anything_but_a_json_object(payload):
    with pytest.raises(BadInput):
        records.decode(payload)


def test_dead_letter_keeps_binary_payload_as_base64_and_truncates_huge_ones():
    letter = records.dead_letter(stage="clean", reason="malformed_json", error="x", worker="w",
                                 payload=b"\xff" * 10)
    assert letter["payload_base64"] and "payload" not in letter
    huge = records.dead_letter(stage="clean", reason="too_large", error="x", worker="w",
                               payload=b"a" * (records.DEADLETTER_PAYLOAD_LIMIT + 10))
    assert huge["payload_truncated"] and huge["payload_bytes"] == records.DEADLETTER_PAYLOAD_LIMIT + 10
    assert len(huge["payload"]) == records.DEADLETTER_PAYLOAD_LIMIT


def test_wire_round_trip():
    rec = records.new_record(records.accept_raw({"text": "héllo"}, T))
    assert records.decode(records.encode(rec)) == rec
    records.check_record(rec)


def test_ingested_at_is_when_the_event_entered_the_pipeline():
    received = records.parse_iso("2026-11-21T06:00:00.250Z")
    rec = records.new_record(records.accept_raw({"text": "x", "fetched_at": "2026-11-20T00:00:00Z"}, received))
    assert rec["fetched_at"] == "2026-11-20T00:00:00.000Z"
    assert rec["ingested_at"] == "2026-11-21T06:00:00.250Z"


def test_receipt_carries_what_a_dashboard_shows_and_the_latency():
    rec = records.new_record(records.accept_raw({"text": "x", "url": "https://kompas.com/a"},
                                                records.parse_iso("2026-11-21T06:00:00Z")))
    rec.update(title="T" * 500, site="kompas.com", lang={"code": "id"}, dedup={"status": "unique"},
               entity_summary=[{"canonical": f"E{i}", "label": "PER", "count": 1} for i in range(30)])
    r = records.receipt(rec, ["jsonl"], "w", written_at=records.parse_iso("2026-11-21T06:00:01.5Z"))
    assert r["latency_ms"] == 1500.0 and r["ingested_at"] == "2026-11-21T06:00:00.000Z"
    assert (r["site"], r["lang"], r["dedup_status"], r["url"]) == ("kompas.com", "id", "unique", "https://kompas.com/a")
    assert len(r["title"]) == records.RECEIPT_TITLE_CHARS
    assert r["entities"][0] == {"canonical": "E0", "label": "PER", "count": 1}
    assert len(r["entities"]) == records.RECEIPT_ENTITIES
    bare = records.receipt({"id": "x"}, [], "w")
    assert bare["latency_ms"] is None and bare["entities"] == [] and bare["title"] is None and bare["version"] is None


def test_the_dashboard_lists_changed_versions_from_receipts_only_once_written():
    from pipeline.monitoring.dashboard import RecentData

    recent = RecentData()
    changed = {"number": 2, "previous_id": "a", "status": "changed", "title_changed": True, "paragraphs_added": 1,
               "paragraphs_removed": 0, "paragraphs_edited": 2}
    for rid, version, outcome in (("a", {"number": 1, "status": "first"}, "written"), ("b", changed, "written"),
                                  ("b", changed, "skipped_written"), ("c", {"number": 2, "status": "unchanged"}, "written")):
        recent("receipt", records.receipt({"id": rid, "url": "https://x.example/1", "version": version}, ["jsonl"], "w",
                                          outcome=outcome), 1.0)
    (update,) = recent.snapshot()["updates"]
    assert (update["id"], update["number"], update["title_changed"], update["added"], update["edited"]) == \
        ("b", 2, True, 1, 2)


def test_the_published_json_schema_and_every_typed_sink_derive_from_the_record_fields():
    import subprocess
    import sys

    import jsonschema

    from pipeline.records import RECORD_FIELDS, record_json_schema
    from pipeline.sinks import parquet, postgres
    from tests.conftest import ROOT, SEEDS

    printed = subprocess.run([sys.executable, "-m", "pipeline", "schema"], cwd=ROOT, capture_output=True,
                             check=True, timeout=60).stdout
    schema = orjson.loads(printed)
    assert schema == record_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    enriched = subprocess.run([sys.executable, "-m", "pipeline", "enrich", str(SEEDS), "--no-progress"], cwd=ROOT,
                              capture_output=True, check=True, timeout=120).stdout.splitlines()
    assert len(enriched) == 5
    for line in enriched:
        record = orjson.loads(line)
        validator.validate(record)
        assert set(record) <= set(RECORD_FIELDS)  # every field the stages write is named in the schema
    bad = {**orjson.loads(enriched[0]), "fetched_at": None, "lang": {"code": 5}}
    assert {e.json_path for e in validator.iter_errors(bad)} == {"$.fetched_at", "$.lang.code"}
    # a stage's own field is allowed, and kept by the typed sinks in ``extra``
    validator.validate({**orjson.loads(enriched[0]), "word_count": 3})
    assert parquet.SCHEMA.names == [*RECORD_FIELDS, "extra"]
    columns = {name for name, _ in postgres.COLUMNS}
    split = {"lang": "lang_detail", "dedup": "dedup_status"}
    assert {split.get(name, name) for name in RECORD_FIELDS} <= columns


def test_receipts_and_story_updates_say_which_story_and_the_dashboard_shows_the_top_ones():
    from pipeline.monitoring.dashboard import RecentData

    def storied(rid: str, story: str, articles: int, site: str) -> dict:
        return {"id": rid, "title": f"Article {rid}", "site": site, "url": f"https://{site}/{rid}",
                "lang": {"code": "id"}, "story": {"id": story, "status": "joined" if articles > 1 else "started",
                                                  "similarity": 0.5, "summary": {
                                                      "title": f"Story {story}", "articles": articles,
                                                      "outlets": [site], "languages": ["id"]}}}

    update = records.story_update(storied("b", "s1", 2, "x.example"), records.parse_iso("2026-12-01T08:00:00Z"))
    assert update["story_id"] == "s1" and update["article"] == {
        "id": "b", "status": "joined", "similarity": 0.5, "title": "Article b", "url": "https://x.example/b",
        "site": "x.example", "lang": "id", "published": None}
    assert records.story_update({"id": "c"}, records.utc_now()) is None
    recent = RecentData()
    for rid, story, n in (("a", "s1", 1), ("b", "s1", 2), ("c", "s2", 1), ("d", "s1", 3)):
        recent("receipt", records.receipt(storied(rid, story, n, f"{rid}.example"), ["jsonl"], "w"), 100.0)
    top = recent.top_stories(now=110.0)
    assert [(s["id"], s["articles"]) for s in top] == [("s1", 3), ("s2", 1)]
    assert [a["id"] for a in top[0]["articles_newest"]] == ["d", "b", "a"]
    assert recent.top_stories(now=100.0 + 7200) == []  # nothing active in the last hour


@pytest.mark.parametrize("given, published, day, precision", [
    ("2023-09-20T06:12:00+07:00", "2023-09-20T06:12:00+07:00", "2023-09-20", "instant"),
    ("2023-09-20T01:12:00+07:00", "2023-09-20T01:12:00+07:00", "2023-09-20", "instant"),  # 09-19 in UTC
    ("2023-09-20T06:12:00.250-04:00", "2023-09-20T06:12:00-04:00", "2023-09-20", "instant"),
    ("2023-09-20T06:12:00+00:00", "2023-09-20T06:12:00Z", "2023-09-20", "instant"),
    ("2023-09-20T06:12:00", "2023-09-20T06:12:00Z", "2023-09-20", "local_time"),
    ("2023-09-20 06:12", "2023-09-20T06:12:00Z", "2023-09-20", "local_time"),
    (" 2023-09-20 ", "2023-09-20T00:00:00Z", "2023-09-20", "day"),
    (None, None, None, None), ("", None, None, None), ("yesterday", None, None, None),
    ("2023-02-30", None, None, None), ("2023-09-20T25:00:00", None, None, None),
    ("0001-01-01T00:00:00+07:00", None, None, None),  # before the first instant a datetime holds
])
def test_published_fields_keep_the_day_the_page_shows_and_say_how_much_it_gave(given, published, day, precision):
    import jsonschema

    fields = records.published_fields(given)
    assert fields == {"published": published, "published_date": day, "published_precision": precision}
    if published is not None:
        assert published[:10] == day and precision in records.PUBLISHED_PRECISIONS
        assert records.parse_iso(published).utcoffset() is not None
        assert jsonschema.FormatChecker().conforms(published, "date-time")


def test_the_json_schema_says_which_fields_are_instants_and_dates():
    props = records.record_json_schema()["properties"]
    for name in ("published", "fetched_at", "ingested_at"):
        assert props[name] == {"type": ["string", "null"] if name != "fetched_at" else "string", "format": "date-time"}
    assert props["published_date"] == {"type": ["string", "null"], "format": "date"}
    assert props["trace"]["items"]["properties"]["started_at"]["format"] == "date-time"
