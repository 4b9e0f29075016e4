"""Reading records back out of the sinks: one record by id or URL, and a bounded search.

``pipeline record`` and the dashboard's record page and search read through here; each kind of
sink is read the way it is cheapest:

- ``jsonl:FOLDER``: the finished files and the open part files, newest first; a line is parsed only
  when it holds the id's or URL's JSON bytes (finding one record in 1 GB of files is a byte scan);
- ``parquet:FOLDER``: each Parquet file with a pyarrow filter on ``id``/``url`` (row groups whose
  statistics rule the key out are not read), newest first, plus the part files still staged in
  ``_staging/`` (records not turned into Parquet yet);
- ``postgres:DSN``: one indexed query (the primary key, the ``url`` and ``canonical_url`` indexes).

Typed sinks (Parquet, PostgreSQL) give their rows back in the record's form through their own
``record_of`` (times in RFC 3339, maps as objects, ``extra`` merged back). A kind of sink of your
own (``sink.plugins``) cannot be read: it is named in the result's notes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.records import iso, parse_iso
from pipeline.redaction import MASK, redact

#: URL fields a URL lookup matches (each indexed in PostgreSQL)
URL_FIELDS = ("url", "canonical_url")
SEARCH_BYTES = 64 << 20  # a search reads at most this much of a file sink, newest files first
SEARCH_ROWS = 20_000  # ... and at most this many Parquet rows


@dataclass
class Copy:
    """One copy of a record in a sink: the record, and where exactly it is."""

    record: dict[str, Any]
    sink: str  # the sink's printable name (no password)
    where: str  # a file (and whether it is still open), or a table


@dataclass
class SinkResult:
    copies: list[Copy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read, and why


def is_url(key: str) -> bool:
    return key.startswith(("http://", "https://"))


def matches_key(record: dict[str, Any], key: str) -> bool:
    return record.get("id") == key or any(record.get(name) == key for name in URL_FIELDS)


def find(targets: list[str], settings: Any, key: str) -> SinkResult:
    """Every copy of the record ``key`` names (an id, or a URL: every version of the page) in the
    sink ``targets`` (``settings``: the ``[sink]`` settings)."""
    result = SinkResult()
    for target in targets:
        kind, _, location = target.partition(":")
        if MASK in location:
            result.notes.append(f"{target}: its password is not known here (the run file keeps none): "
                                "give the sink with --sink, or its connection string in DATABASE_URL")
            continue
        reader = _FINDERS.get(kind)
        if reader is None:
            result.notes.append(f"{redact(target)}: a {kind} sink cannot be read back here")
            continue
        try:
            result.copies += reader(location, settings, key)
        except Exception as exc:  # noqa: BLE001 - one unreadable sink must not hide the others
            result.notes.append(f"{redact(target)}: cannot be read: {redact(_first_line(exc))}")
    return result


# --- search --------------------------------------------------------------------------------------

@dataclass
class Filters:
    """What the dashboard's search asks for; every field is optional. ``text`` and ``entity`` match
    case-insensitive parts (of the title, URL, id or site; of an entity's canonical name), ``story``
    a story's id or part of its title; ``since``/``until`` bound the fetch time."""

    text: str = ""
    site: str = ""
    lang: str = ""
    entity: str = ""
    story: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def __bool__(self) -> bool:
        return any((self.text, self.site, self.lang, self.entity, self.story, self.since, self.until))

    def matches(self, brief: dict[str, Any]) -> bool:
        """Whether a record's :func:`brief` (or a delivery receipt, which has the same fields) matches."""
        if self.text:
            needle = self.text.casefold()
            if not any(needle in str(brief.get(k) or "").casefold() for k in ("title", "url", "id", "site")):
                return False
        if self.site and (brief.get("site") or "").casefold() != self.site.casefold():
            return False
        if self.lang and (brief.get("lang") or "") != self.lang:
            return False
        if self.entity:
            needle = self.entity.casefold()
            if not any(needle in str(e.get("canonical") or "").casefold() for e in brief.get("entities") or []
                       if isinstance(e, dict)):
                return False
        if self.story:
            story = brief.get("story") or {}
            if story.get("id") != self.story and self.story.casefold() not in str(story.get("title") or "").casefold():
                return False
        if self.since or self.until:
            try:
                fetched = parse_iso(brief.get("fetched_at") or "")
            except ValueError:
                return False
            if (self.since and fetched < self.since) or (self.until and fetched > self.until):
                return False
        return True


def brief(record: dict[str, Any]) -> dict[str, Any]:
    """What a search lists of a record: the fields of a delivery receipt (``records.receipt``) that
    the dashboard shows, so receipts and sink records are listed alike."""
    entities = record.get("entity_summary")
    if not isinstance(entities, list):  # a record from before entity summaries: its entities
        seen: dict[str, dict] = {}
        for e in record.get("entities") or []:
            if isinstance(e, dict) and e.get("canonical"):
                seen.setdefault(e["canonical"], {"canonical": e["canonical"], "label": e.get("label"), "count": 0})
                seen[e["canonical"]]["count"] += 1
        entities = sorted(seen.values(), key=lambda e: -e["count"])
    story = record.get("story") if isinstance(record.get("story"), dict) else None
    version = record.get("version") if isinstance(record.get("version"), dict) else None
    return {"id": record.get("id"), "title": record.get("title"), "site": record.get("site"),
            "url": record.get("url"), "lang": (record.get("lang") or {}).get("code"),
            "fetched_at": record.get("fetched_at"), "dedup_status": (record.get("dedup") or {}).get("status"),
            "entities": [{"canonical": e.get("canonical"), "label": e.get("label"), "count": e.get("count")}
                         for e in entities[:10] if isinstance(e, dict)],
            "story": {"id": story.get("id"), "title": (story.get("summary") or {}).get("title")} if story else None,
            "version": {"number": version.get("number"), "previous_id": version.get("previous_id"),
                        "status": version.get("status")} if version else None}


def search(targets: list[str], settings: Any, filters: Filters, limit: int = 50) -> tuple[list[dict], list[str]]:
    """Briefs of the newest records of the sinks that match ``filters`` (at most ``limit`` per sink,
    reading at most ``SEARCH_BYTES`` of a file sink), and notes on what was not read."""
    found: list[dict] = []
    notes: list[str] = []
    for target in targets:
        kind, _, location = target.partition(":")
        if MASK in location:
            notes.append(f"{target}: its password is not known here (the run file keeps none)")
            continue
        reader = _SEARCHERS.get(kind)
        if reader is None:
            notes.append(f"{redact(target)}: a {kind} sink cannot be searched here")
            continue
        try:
            briefs, note = reader(location, settings, filters, limit)
        except Exception as exc:  # noqa: BLE001 - one unreadable sink must not hide the others
            notes.append(f"{redact(target)}: cannot be searched: {redact(_first_line(exc))}")
            continue
        for b in briefs:
            b["found_in"] = redact(target)
        found += briefs
        if note:
            notes.append(f"{redact(target)}: {note}")
    return found, notes


# --- JSON lines (the JSONL sink, and every file sink's staged part files) ---------------------------

def _newest_first(paths: list[Path]) -> list[Path]:
    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:  # finished (renamed) meanwhile
            return 0.0

    return sorted(paths, key=mtime, reverse=True)


def _jsonl_files(folder: Path) -> list[Path]:
    from pipeline.sinks.staging import PART_SUFFIX

    return _newest_first([*folder.glob("*.jsonl"), *folder.glob(f"*.jsonl{PART_SUFFIX}")])


def _scan_lines(paths: list[Path], wanted: Callable[[bytes], bool], budget: int | None = None
                ) -> Iterator[tuple[dict, Path]]:
    """Records of the lines ``wanted`` lets through (a byte test, before parsing), file by file."""
    read = 0
    for path in paths:
        if budget is not None and read >= budget:
            return
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a part file finished meanwhile: its records are in the new file
            continue
        read += len(data)
        if not wanted(data):
            continue
        for line in data.splitlines():
            if wanted(line):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a line cut short in an open part file
                if isinstance(record, dict):
                    yield record, path


def _where(path: Path) -> str:
    from pipeline.sinks.staging import PART_SUFFIX

    return f"{path} (open part file, not finished yet)" if path.name.endswith(PART_SUFFIX) else str(path)


def _find_lines(paths: list[Path], sink: str, key: str, where: Callable[[Path], str] = _where) -> list[Copy]:
    needle = orjson.dumps(key)
    return [Copy(record, sink, where(path)) for record, path in _scan_lines(paths, lambda b: needle in b)
            if matches_key(record, key)]


def _find_jsonl(location: str, settings: Any, key: str) -> list[Copy]:
    folder = _folder(location, "jsonl")
    return _find_lines(_jsonl_files(folder), f"jsonl:{folder}", key)


def _search_lines(paths: list[Path], filters: Filters, limit: int) -> tuple[list[dict], str | None]:
    text = filters.text.casefold().encode() if filters.text else b""

    def wanted(data: bytes) -> bool:  # a cheap test before parsing: the text somewhere in the line
        return not text or text in data.lower() or not text.isascii()

    found = []
    for record, _ in _scan_lines(paths, wanted, SEARCH_BYTES):
        b = brief(record)
        if filters.matches(b):
            found.append(b)
    found.sort(key=lambda b: b.get("fetched_at") or "", reverse=True)
    total = sum(_size(p) for p in paths)
    note = (f"searched the newest {SEARCH_BYTES >> 20} MB of {total >> 20} MB in {len(paths)} files"
            if total > SEARCH_BYTES else None)
    return found[:limit], note


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _search_jsonl(location: str, settings: Any, filters: Filters, limit: int) -> tuple[list[dict], str | None]:
    return _search_lines(_jsonl_files(_folder(location, "jsonl")), filters, limit)


def _folder(location: str, kind: str) -> Path:
    if not location:
        raise ValueError(f"a {kind} sink needs a folder: {kind}:FOLDER")
    folder = Path(location)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    return folder


# --- Parquet ------------------------------------------------------------------------------------------

def _parquet_files(folder: Path) -> list[Path]:
    """The dataset's files (not the ones under a folder starting with "_" or ".": staging, stories)."""
    return _newest_first([p for p in folder.rglob("*.parquet")
                          if not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)])


def _staged(folder: Path) -> list[Path]:
    """The Parquet sink's part files not written as Parquet yet (the sink is not opened: nothing is made)."""
    from pipeline.sinks.parquet import ParquetSink
    from pipeline.sinks.staging import PART_SUFFIX

    return _newest_first(list(ParquetSink(folder).staging_dir().glob(f"*{PART_SUFFIX}")))


def _find_parquet(location: str, settings: Any, key: str) -> list[Copy]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipeline.sinks.parquet import record_of

    folder = _folder(location, "parquet")
    sink = f"parquet:{folder}"
    copies = _find_lines(_staged(folder), sink, key,
                         lambda p: f"{p} (staged: not written as Parquet yet)")
    for path in _parquet_files(folder):
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except FileNotFoundError:
            continue
        fields = [n for n in ("id", *URL_FIELDS) if n in names]
        if not fields:
            continue
        expr = pc.field(fields[0]) == key
        for name in fields[1:]:
            expr = expr | (pc.field(name) == key)
        for row in pq.read_table(path, filters=expr, partitioning=None).to_pylist():
            copies.append(Copy(record_of(row), sink, str(path)))
    return copies


_BRIEF_COLUMNS = ("id", "title", "site", "url", "lang", "fetched_at", "entity_summary", "entities", "dedup", "story",
                  "version")


def _search_parquet(location: str, settings: Any, filters: Filters, limit: int) -> tuple[list[dict], str | None]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipeline.sinks.parquet import record_of

    folder = _folder(location, "parquet")
    found, _ = _search_lines(_staged(folder), filters, limit)
    rows = 0
    files = _parquet_files(folder)
    reached = 0  # files looked at, newest first
    for path in files:
        if rows >= SEARCH_ROWS or len(found) >= limit:
            break
        reached += 1
        if filters.lang and any(p.startswith("language=") and p != f"language={filters.lang}" for p in path.parts):
            continue  # the file of another language
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except FileNotFoundError:
            continue
        expr = None
        if "fetched_at" in names:
            for term in ((pc.field("fetched_at") >= filters.since) if filters.since else None,
                         (pc.field("fetched_at") <= filters.until) if filters.until else None):
                if term is not None:
                    expr = term if expr is None else expr & term
        table = pq.read_table(path, columns=[c for c in _BRIEF_COLUMNS if c in names], filters=expr,
                              partitioning=None)
        rows += table.num_rows
        for row in table.to_pylist():
            b = brief(record_of(row))
            if filters.matches(b):
                found.append(b)
    found.sort(key=lambda b: b.get("fetched_at") or "", reverse=True)
    note = f"searched the newest {reached} of {len(files)} Parquet files" if reached < len(files) else None
    return found[:limit], note


# --- PostgreSQL ---------------------------------------------------------------------------------------

def _pg_rows(location: str, settings: Any, sql: str, params: tuple) -> tuple[Any, list[dict]]:
    """The sink, and the rows of ``sql`` (``{table}``: its table; none when there is no table yet)."""
    import psycopg
    from psycopg.rows import dict_row

    from pipeline.sinks.postgres import PostgresSink

    sink = PostgresSink.open(location, settings)  # the connection string and table; connects lazily
    with psycopg.connect(sink.dsn, connect_timeout=3, row_factory=dict_row) as conn:
        conn.execute("SET statement_timeout = 5000")
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS found", (sink.table,)).fetchone()["found"]
        if not exists:
            return sink, []
        return sink, conn.execute(sql.format(table=sink.table), params).fetchall()


def _find_postgres(location: str, settings: Any, key: str) -> list[Copy]:
    from pipeline.sinks.postgres import record_of

    sink, rows = _pg_rows(location, settings, "SELECT * FROM {table} WHERE id = %s OR url = %s OR canonical_url = %s",
                          (key, key, key))
    return [Copy(record_of(row), sink.name, f"table {sink.table}, written {iso(row['written_at'])}"
                 if row.get("written_at") else f"table {sink.table}") for row in rows]


def _search_postgres(location: str, settings: Any, filters: Filters, limit: int) -> tuple[list[dict], str | None]:
    where, params = [], []
    if filters.text:
        where.append("(title ILIKE %s OR url ILIKE %s OR id = %s OR site ILIKE %s)")
        like = f"%{_escape_like(filters.text)}%"
        params += [like, like, filters.text, like]
    if filters.site:
        where.append("lower(site) = lower(%s)")
        params.append(filters.site)
    if filters.lang:
        where.append("lang = %s")
        params.append(filters.lang)
    if filters.entity:
        where.append("EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(entity_summary, '[]'::jsonb)) e "
                     "WHERE e->>'canonical' ILIKE %s)")
        params.append(f"%{_escape_like(filters.entity)}%")
    if filters.story:
        where.append("(story_id = %s OR story->'summary'->>'title' ILIKE %s)")
        params += [filters.story, f"%{_escape_like(filters.story)}%"]
    if filters.since:
        where.append("fetched_at >= %s")
        params.append(filters.since)
    if filters.until:
        where.append("fetched_at <= %s")
        params.append(filters.until)
    columns = "id, title, site, url, lang, fetched_at, entity_summary, dedup_status, story, version"
    sql = (f"SELECT {columns} FROM {{table}} {'WHERE ' + ' AND '.join(where) if where else ''} "
           "ORDER BY fetched_at DESC NULLS LAST LIMIT %s")
    from pipeline.sinks.postgres import record_of

    _, rows = _pg_rows(location, settings, sql, (*params, limit))
    return [brief(record_of(row)) for row in rows], None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_FINDERS: dict[str, Callable[[str, Any, str], list[Copy]]] = {
    "jsonl": _find_jsonl, "parquet": _find_parquet, "postgres": _find_postgres, "postgresql": _find_postgres}
_SEARCHERS = {"jsonl": _search_jsonl, "parquet": _search_parquet, "postgres": _search_postgres,
              "postgresql": _search_postgres}
