"""A sink that lives outside ``pipeline/``: the tests register it by configuration only
(``sink.plugins``) and run it in the sink runner and in `pipeline run`.

``tally:FILE`` keeps one row per record id in an SQLite file (id, url, language, words): a batch
is one transaction, so it is durable when ``write`` returns, and a record written again is
skipped by its id."""

from __future__ import annotations

import sqlite3
from typing import Any

from pipeline.sinks.base import Sink

ENV = {"PIPELINE__SINK__PLUGINS": '{tally = "tests.toy_sink:TallySink"}'}


class TallySink(Sink):
    kind = "tally"

    @classmethod
    def open(cls, location: str, settings: Any) -> TallySink:
        if not location:
            raise ValueError("tally sink needs a file: tally:FILE")
        return cls(location)

    def __init__(self, path: str):
        self.path = path
        self.name = f"tally:{path}"
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # see Sink
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS pages (id TEXT PRIMARY KEY, url TEXT, lang TEXT, words INTEGER)")

    def write(self, records: list[dict[str, Any]]) -> set[str]:
        new: set[str] = set()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO pages VALUES (?, ?, ?, ?)",
                    (record["id"], record.get("url"), (record.get("lang") or {}).get("code"),
                     len((record.get("text") or "").split())))
                if cursor.rowcount:
                    new.add(record["id"])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return new

    def close(self) -> None:
        self.db.close()


def rows(path: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT id, url, lang, words FROM pages ORDER BY url").fetchall()
