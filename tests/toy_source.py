"""A source that lives outside ``pipeline/``: the tests register it by configuration only
(``sources.plugins``) and read it with `pipeline enrich` and `pipeline run --replay`."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from pipeline.sources.base import Source, SourceItem

STORY = ("Pemerintah kota mengumumkan rencana pembangunan taman baru di pusat kota pada hari Senin. "
         "Warga menyambut baik rencana tersebut karena ruang hijau di kota masih sangat terbatas. ")


class CountingSource(Source):
    """``count:N``: N short Indonesian news texts, numbered; resumes after a number."""

    kind = "count"

    def __init__(self, argument: str):
        self.n = int(argument)

    def items(self, after: str | None = None, stop: threading.Event | None = None) -> Iterator[SourceItem]:
        for i in range(int(after or 0) + 1, self.n + 1):
            if stop is not None and stop.is_set():
                return
            text = f"Berita nomor {i}. " + STORY * (2 + i % 3)
            yield SourceItem(f"count:{i}", event={"text": text, "source": f"count:{i}",
                                                  "url": f"https://news.example/{i}"}, position=str(i))

    def size(self) -> int:
        return self.n


ENV = {"PIPELINE__SOURCES__PLUGINS": '{count = "tests.toy_source:CountingSource"}'}
