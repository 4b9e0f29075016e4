"""One record contract for every sink: the same enriched records, made by the real stages in one
process (``pipeline enrich``'s ``OfflinePipeline``: the seed pages and a few edge cases), written
through the real JSONL, Parquet and PostgreSQL sinks and read back, are each valid against
``records.record_json_schema()`` and equal across the three (instants compared as instants); and
the typed sinks' column types are the ones the JSON Schema says, so a new field cannot drift."""

from __future__ import annotations

import base64
import uuid
from datetime import date
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import config, records
from pipeline.records import RECORD_FIELDS, parse_iso
from pipeline.sinks import jsonl, parquet, postgres
from pipeline.sinks.staging import Staging
from tests.conftest import CONFIG, SEEDS, require_postgres
from tests.stages.test_clean import ARTICLE_HTML

CHAIN = '["clean", "language", "entities", "dedup", "stories"]'
URL = "https://www.example.co.id/dunia/rusia-desak-turki"


def events() -> list[dict[str, Any]]:
    """The seed pages, and what they lack: an HTML page with a date only, one with a time without
    zone, a second fetch of a URL with changed text (a version) sent as bytes (``encoding``), and a
    seed page fetched again (an exact duplicate)."""
    seeds = [{"source": f"seeds/{p.name}", "text": p.read_text(encoding="utf-8"), "fetched_at": "2026-01-05T08:00:00Z"}
             for p in sorted(SEEDS.iterdir())]
    day_only = ARTICLE_HTML.replace("2020-09-29T10:15:00+07:00", "2020-09-29")
    changed = ARTICLE_HTML.replace("2020-09-29T10:15:00+07:00", "2020-09-29T10:15:00").replace(
        "</article>", "<p>Pembaruan: Armenia dan Azerbaijan menyepakati gencatan senjata kemanusiaan di Moskwa.</p>"
                      "</article>")
    return [*seeds,
            {"url": URL, "html": day_only, "fetched_at": "2020-10-01T00:00:00Z"},
            {"url": URL, "html_base64": base64.b64encode(changed.encode("utf-8")).decode("ascii"),
             "fetched_at": "2020-10-02T00:00:00.125Z"},
            {**seeds[2], "fetched_at": "2026-01-06T08:00:00Z"}]


@pytest.fixture(scope="module")
def enriched() -> list[dict[str, Any]]:
    from pipeline.enrich import OfflinePipeline

    settings = config.load(CONFIG, env={"PIPELINE__STAGES__CHAIN": CHAIN})
    pipeline = OfflinePipeline(settings, dedup_store="memory")
    try:
        outcomes = [pipeline.enrich_payload(records.encode(event)) for event in events()]
    finally:
        pipeline.close()
    assert [o.dead_letter for o in outcomes if o.record is None] == []
    made = [o.record for o in outcomes]
    # the records hold what the test claims to cover
    assert {r["published_precision"] for r in made} == {None, "day", "local_time", "instant"}
    assert {(r["version"] or {}).get("status") for r in made} >= {"first", "changed"}
    assert {r["dedup"]["status"] for r in made} >= {"unique", "exact_duplicate"}
    assert {(r["story"] or {}).get("status") for r in made} >= {"started", "joined"}
    assert any(r.get("encoding") for r in made) and all(r["entities"] for r in made)
    return made


@pytest.fixture(scope="module")
def written(enriched, tmp_path_factory):
    """The records through each sink, read back: ``(kind -> records, Parquet files, PostgreSQL rows)``."""
    import psycopg
    from psycopg.rows import dict_row

    dsn = require_postgres()
    out = tmp_path_factory.mktemp("contract")
    back: dict[str, list[dict[str, Any]]] = {}
    for sink_class in (jsonl.JsonlSink, parquet.ParquetSink):
        sink = Staging(sink_class(out / sink_class.kind), roll_bytes=1 << 30, roll_seconds=3600)
        sink.write(enriched, partition=0)
        sink.finish({0})
        sink.close()
    back["jsonl"] = list(jsonl.read_records(out / "jsonl"))
    back["parquet"] = list(parquet.read_records(out / "parquet"))
    files = sorted((out / "parquet").glob("dt=*/language=*/*.parquet"))
    table = f"test_{uuid.uuid4().hex[:12]}"
    sink = postgres.PostgresSink(dsn, table)
    try:
        sink.write(enriched)
        sink.close()
        with psycopg.connect(dsn, row_factory=dict_row) as conn:
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            columns = {r["column_name"]: r["data_type"] for r in conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", (table,))}
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
            conn.execute(f"DROP TABLE IF EXISTS {table}_stories")
    back["postgres"] = [postgres.record_of(row) for row in rows]
    return back, files, rows, columns


def canonical(kind: Any, value: Any) -> Any:
    """A value of a record field in one form for comparison: instants as aware datetimes (equal when
    they are the same instant, whatever the offset), dates as dates, a missing key as null."""
    if value is None:
        return None
    if isinstance(kind, dict):
        return {k: canonical(kind.get(k), value.get(k)) for k in sorted(set(kind) | set(value))}
    if isinstance(kind, list):
        container, item = kind
        if container == "list":
            return [canonical(item, v) for v in value]
        return {k: canonical(item, v) for k, v in value.items()}
    if kind == "time":
        return parse_iso(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "float":
        return float(value)
    return value


def test_every_sink_gives_back_the_same_records_valid_against_the_schema(enriched, written):
    import jsonschema

    back, _, rows, _ = written
    validator = jsonschema.Draft202012Validator(records.record_json_schema(), format_checker=jsonschema.FormatChecker())
    assert "date-time" in validator.format_checker.checkers  # else formats would pass unchecked
    expected = {r["id"]: canonical(RECORD_FIELDS, r) for r in enriched}
    assert len(expected) == len(enriched)
    for kind, got in back.items():
        for record in got:
            errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(record)]
            assert errors == [], (kind, record["id"], errors)
        by_id = {r["id"]: canonical(RECORD_FIELDS, r) for r in got}
        assert sorted(by_id) == sorted(expected), kind
        for rid, record in expected.items():
            assert by_id[rid] == record, (kind, rid, {k for k in record if by_id[rid].get(k) != record.get(k)})
    # every field the stages wrote has a column of its own: nothing went to ``extra``
    assert [r["id"] for r in rows if r["extra"] is not None] == []
    assert [r["id"] for path in written[1] for r in pq.read_table(path).to_pylist() if r["extra"] is not None] == []
    # the day the page shows survives the typed sinks' UTC: 06:12 in Jakarta is 23:12 the day before in UTC
    (seed,) = [r for r in back["postgres"] if r.get("source") == "seeds/002_1ca96d3d8bd197b0.txt"
               and r["fetched_at"].startswith("2026-01-05")]
    assert (seed["published"], seed["published_date"]) == ("2023-09-19T23:12:00.000Z", "2023-09-20")


def _arrow(prop: dict[str, Any]) -> pa.DataType:
    """The Arrow type a JSON Schema property asks for."""
    kind = next(t for t in ([prop["type"]] if isinstance(prop["type"], str) else prop["type"]) if t != "null")
    if kind == "string":
        return {"date-time": pa.timestamp("ms", tz="UTC"), "date": pa.date32()}.get(prop.get("format"), pa.string())
    if kind == "array":
        return pa.list_(_arrow(prop["items"]))
    if kind == "object":
        if "properties" in prop:
            return pa.struct([(name, _arrow(p)) for name, p in prop["properties"].items()])
        return pa.map_(pa.string(), _arrow(prop["additionalProperties"]))
    return {"integer": pa.int32(), "number": pa.float64(), "boolean": pa.bool_()}[kind]


def _sql(prop: dict[str, Any]) -> str:
    """The PostgreSQL type (``information_schema.columns.data_type``) a JSON Schema property asks for."""
    kind = next(t for t in ([prop["type"]] if isinstance(prop["type"], str) else prop["type"]) if t != "null")
    if kind == "string":
        return {"date-time": "timestamp with time zone", "date": "date"}.get(prop.get("format"), "text")
    return {"integer": "bigint", "number": "double precision", "boolean": "boolean"}.get(kind, "jsonb")


def test_the_typed_sinks_columns_are_the_types_the_json_schema_says(written):
    _, files, _, columns = written
    props = records.record_json_schema()["properties"]
    props["schema"] = {"type": "string"}  # a constant in the JSON Schema, text in the sinks
    assert files
    for path in files:
        schema = pq.read_schema(path)
        assert schema.names == [*props, "extra"]
        for name, prop in props.items():
            assert schema.field(name).type == _arrow(prop), name
        assert schema.field("extra").type == pa.string()
    want = {"extra": "jsonb", "written_at": "timestamp with time zone"}
    for name, prop in props.items():
        if name in postgres.SPLIT:  # an object in several columns: each part in its own type
            want |= {column: "jsonb" if key is None else _sql(prop["properties"][key])
                     for column, key in postgres.SPLIT[name].items()}
        else:
            want[name] = _sql(prop)
    assert columns == want
    assert orjson.loads(orjson.dumps(props["published"])) == {"type": ["string", "null"], "format": "date-time"}
