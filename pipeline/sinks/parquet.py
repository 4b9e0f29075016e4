"""Parquet sink: records in Parquet files partitioned by fetch date and language.

Layout (Hive style, read directly by DuckDB, pandas and Spark)::

    <folder>/dt=2026-11-21/language=id/enriched-p003-20261121T101500123456.parquet

(``language``, not ``lang``: a partition key must not shadow the ``lang`` column of the files.)

Records are staged per partition in a JSON-lines part file under ``<folder>/_staging/`` (the same
exactly-once rolling as the JSONL sink); finishing one writes one Parquet file per (date,
language) in it, with the explicit schema below (entities, trace and dedup as nested columns;
fields the schema does not know yet go to ``extra`` as JSON), then removes the part file.
Finishing again after a crash rewrites the same file names: nothing is doubled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.records import parse_iso
from pipeline.sinks.rolling import PART_SUFFIX, RollingSink, fsync_dir

_STR = pa.string()
ENTITY = pa.struct([("text", _STR), ("label", _STR), ("start", pa.int32()), ("end", pa.int32()),
                    ("canonical", _STR), ("ids", pa.map_(_STR, _STR)), ("source", _STR)])
SCHEMA = pa.schema([
    ("id", _STR), ("schema", _STR), ("url", _STR), ("source", _STR),
    ("fetched_at", pa.timestamp("ms", tz="UTC")), ("content_type", _STR),
    ("title", _STR), ("author", _STR), ("authors", pa.list_(_STR)), ("published", _STR), ("site", _STR),
    ("canonical_url", _STR), ("declared_lang", _STR), ("text", _STR),
    ("lang", pa.struct([("code", _STR), ("confidence", pa.float64()), ("reliable", pa.bool_()),
                        ("alternatives", pa.list_(pa.struct([("code", _STR), ("score", pa.float64())]))),
                        ("spans", pa.list_(pa.struct([("start", pa.int32()), ("end", pa.int32()), ("code", _STR),
                                                      ("confidence", pa.float64())])))])),
    ("entities", pa.list_(ENTITY)),
    ("entity_summary", pa.list_(pa.struct([("canonical", _STR), ("label", _STR), ("count", pa.int32())]))),
    ("entities_tagger", _STR),
    ("dedup", pa.struct([("status", _STR), ("duplicate_of", _STR), ("similarity", pa.float64())])),
    ("trace", pa.list_(pa.struct([("stage", _STR), ("worker", _STR),
                                  ("started_at", pa.timestamp("ms", tz="UTC")), ("ms", pa.float64())]))),
    ("extra", _STR),  # JSON of the fields this schema does not name yet
])
_NAMED = set(SCHEMA.names)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = {name: record.get(name) for name in _NAMED if name != "extra"}
    row["fetched_at"] = parse_iso(record["fetched_at"])
    if record.get("entities"):
        row["entities"] = [{**e, "ids": list((e.get("ids") or {}).items())} for e in record["entities"]]
    if record.get("trace"):
        row["trace"] = [{**t, "started_at": parse_iso(t["started_at"])} for t in record["trace"]]
    if isinstance(record.get("lang"), dict):
        row["lang"] = {k: record["lang"].get(k) for k in ("code", "confidence", "reliable", "alternatives", "spans")}
    rest = {k: v for k, v in record.items() if k not in _NAMED}
    if isinstance(record.get("lang"), dict):
        lang_rest = {k: v for k, v in record["lang"].items()
                     if k not in ("code", "confidence", "reliable", "alternatives", "spans")}
        if lang_rest:
            rest["lang"] = lang_rest
    row["extra"] = orjson.dumps(rest).decode() if rest else None
    return row


def partition_of(record: dict[str, Any]) -> tuple[str, str]:
    lang = (record.get("lang") or {}).get("code") or "und"
    return record["fetched_at"][:10], lang


class ParquetSink(RollingSink):
    kind = "parquet"

    def staging_dir(self) -> Path:
        return self.directory / "_staging"

    def finish(self, part: Path) -> list[Path]:
        groups: dict[tuple[str, str], list[dict]] = {}
        for line in part.read_bytes().splitlines():
            if line.strip():
                record = orjson.loads(line)
                groups.setdefault(partition_of(record), []).append(_row(record))
        stem = part.name[: -len(PART_SUFFIX)].removesuffix(".jsonl")
        written = []
        for (day, lang), rows in sorted(groups.items()):
            folder = self.directory / f"dt={day}" / f"language={lang}"
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"{stem}.parquet"
            tmp = folder / f".{stem}.parquet.tmp"
            pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp, compression="zstd")
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            fsync_dir(folder)
            written.append(final)
        part.unlink()
        fsync_dir(part.parent)
        return written
