"""Parquet sink: records in Parquet files partitioned by fetch date and language.

Layout (Hive style, read directly by DuckDB, pandas and Spark)::

    <folder>/dt=2026-11-21/language=id/enriched-p003-20261121T101500123456.parquet

(``language``, not ``lang``: a partition key must not shadow the ``lang`` column of the files.)

The sink runner stages records per partition in a JSON-lines part file under ``<folder>/_staging/``
(the same exactly-once rolling as the JSONL sink); finishing one writes one Parquet file per (date,
language) in it, with the schema derived from ``records.RECORD_FIELDS`` (times as UTC timestamps,
``published_date`` as a date, entities, trace, lang, dedup, version and story as nested columns;
fields the schema does not know go to ``extra`` as JSON), then removes the part file.
``read_records`` gives the records back in their JSON form.
Finishing again after a crash rewrites the same file names: nothing is doubled. With the stories
stage, the story updates of a part file's records (``records.STORY_UPDATE_FIELDS``) go to
``<folder>/_stories/<same name>.parquet`` (the leading "_" keeps them out of the records' dataset).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.records import RECORD_FIELDS, STORY_UPDATE_FIELDS, json_scalar, parse_iso
from pipeline.sinks.base import FileSink
from pipeline.sinks.staging import PART_SUFFIX, fsync_dir

_STR = pa.string()
_SCALARS = {"str": _STR, "int": pa.int32(), "float": pa.float64(), "bool": pa.bool_(),
            "time": pa.timestamp("ms", tz="UTC"), "date": pa.date32()}


def arrow_type(kind: Any) -> pa.DataType:
    """The Arrow type of a field type of ``records.RECORD_FIELDS``."""
    if isinstance(kind, dict):
        return pa.struct([(name, arrow_type(k)) for name, k in kind.items()])
    if isinstance(kind, list):
        container, item = kind
        return pa.list_(arrow_type(item)) if container == "list" else pa.map_(_STR, arrow_type(item))
    return _SCALARS[kind]


#: one column per field of the record schema, plus ``extra``: JSON of the fields it does not name
#: (a stage's own fields, keys of a nested object the schema does not know yet)
SCHEMA = pa.schema([(name, arrow_type(kind)) for name, kind in RECORD_FIELDS.items()] + [("extra", _STR)])
#: the story updates' files (``stories/``): one column per field of a story update
STORY_SCHEMA = pa.schema([(name, arrow_type(kind)) for name, kind in STORY_UPDATE_FIELDS.items()])


def _value(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, dict):
        return {name: _value(k, value.get(name)) for name, k in kind.items()} if isinstance(value, dict) else None
    if isinstance(kind, list):
        container, item = kind
        if container == "list":
            return [_value(item, v) for v in value] if isinstance(value, list) else None
        return [(str(k), _value(item, v)) for k, v in value.items()] if isinstance(value, dict) else None
    if kind == "time":
        return parse_iso(value) if isinstance(value, str) else None
    if kind == "date":
        return date.fromisoformat(value) if isinstance(value, str) else None
    return value


def _plain(kind: Any, value: Any) -> Any:
    """The JSON form of a value read from a column of ``kind`` (the inverse of ``_value``)."""
    if value is None:
        return None
    if isinstance(kind, dict):
        return {name: _plain(k, value.get(name)) for name, k in kind.items()}
    if isinstance(kind, list):
        container, item = kind
        if container == "list":
            return [_plain(item, v) for v in value]
        return {k: _plain(item, v) for k, v in value}
    return json_scalar(kind, value)


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    """A row of a records' file (``pyarrow.Table.to_pylist``) in the record's form: times in RFC 3339
    (UTC), dates in ISO-8601, maps as objects, ``extra`` merged back; a field without a value is
    left out, as is a partition column."""
    record = {name: _plain(kind, row[name]) for name, kind in RECORD_FIELDS.items() if row.get(name) is not None}
    for name, value in orjson.loads(row["extra"]).items() if row.get("extra") else ():
        if isinstance(value, dict) and isinstance(record.get(name), dict):
            record[name] = {**record[name], **value}  # keys of a nested object the schema does not name
        else:
            record[name] = value
    return record


def read_records(folder: str | os.PathLike[str]):
    """Every record of a Parquet sink folder (its finished files), in the record's form."""
    for path in sorted(Path(folder).glob("dt=*/language=*/*.parquet")):
        for row in pq.read_table(path).to_pylist():
            yield record_of(row)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = {name: _value(kind, record.get(name)) for name, kind in RECORD_FIELDS.items()}
    rest = {k: v for k, v in record.items() if k not in RECORD_FIELDS}
    for name, kind in RECORD_FIELDS.items():  # keys of a nested object the schema does not name
        value = record.get(name)
        if isinstance(kind, dict) and isinstance(value, dict) and (unknown := set(value) - set(kind)):
            rest[name] = {k: value[k] for k in sorted(unknown)}
    row["extra"] = orjson.dumps(rest).decode() if rest else None
    return row


def partition_of(record: dict[str, Any]) -> tuple[str, str]:
    lang = (record.get("lang") or {}).get("code") or "und"
    return record["fetched_at"][:10], lang


def _write(table: pa.Table, folder: Path, stem: str) -> Path:
    """``folder/stem.parquet``, whole or not at all (written aside, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{stem}.parquet"
    tmp = folder / f".{stem}.parquet.tmp"
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    fsync_dir(folder)
    return final


class ParquetSink(FileSink):
    kind = "parquet"

    def stories_dir(self) -> Path:
        return self.directory / "_stories"  # "_": left out when the folder is read as one dataset

    def staging_dir(self) -> Path:
        return self.directory / "_staging"

    def finish(self, part: Path) -> list[Path]:
        groups: dict[tuple[str, str], list[dict]] = {}
        stem = part.name[: -len(PART_SUFFIX)].removesuffix(".jsonl")
        written = []
        data = part.read_bytes()
        updates = self.stories_of(part, data)
        if updates:
            rows = [{name: _value(kind, u.get(name)) for name, kind in STORY_UPDATE_FIELDS.items()} for u in updates]
            written.append(_write(pa.Table.from_pylist(rows, schema=STORY_SCHEMA), self.stories_dir(), stem))
        for line in data.splitlines():
            if line.strip():
                record = orjson.loads(line)
                groups.setdefault(partition_of(record), []).append(_row(record))
        for (day, lang), rows in sorted(groups.items()):
            written.append(_write(pa.Table.from_pylist(rows, schema=SCHEMA),
                                  self.directory / f"dt={day}" / f"language={lang}", stem))
        part.unlink()
        fsync_dir(part.parent)
        return written
