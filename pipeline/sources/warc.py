"""Raw events from WARC archives (``.warc``, ``.warc.gz``): what crawlers and Common Crawl's
CC-NEWS write. Read with FastWARC (a C++ reader, several times faster than warcio).

An HTML ``response`` record with a 2xx status becomes a raw event: its URL (``WARC-Target-URI``),
its fetch time (``WARC-Date``), the page bytes (``html_base64``) and the charset its HTTP header
declared. Every other record is skipped and counted by why (:attr:`WarcSource.skipped`):
``request``, ``metadata``, ``revisit``, ``warcinfo``, ``resource``, ... by type; ``not_html``,
``http_status``, ``empty`` for responses. An archive cut short gives the records before the cut;
the record the cut went through is not a page (FastWARC hands it over shorter than its declared
length without an error): it is counted ``truncated`` and the cut is logged as a warning. A
reading error ends the file and counts ``unreadable``.

``pipeline replay``, ``run --replay`` and ``enrich`` read WARC files given as paths (or in a
folder); ``warc:PATH`` names one explicitly. The position of an event is ``PATH@OFFSET``.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pipeline.sources.base import Source, SourceItem

log = logging.getLogger("pipeline.sources.warc")

WARC_SUFFIXES = ((".warc",), (".warc", ".gz"))
HTML_TYPES = ("text/html", "application/xhtml+xml")


def is_warc(path: Path) -> bool:
    suffixes = tuple(s.lower() for s in path.suffixes[-2:])
    return suffixes[-1:] in WARC_SUFFIXES or suffixes in WARC_SUFFIXES


def read_warc(path: Path, skipped: Counter | None = None) -> Iterator[SourceItem]:
    """The raw events of one WARC file, in file order; what is skipped is counted in ``skipped``."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    skipped = Counter() if skipped is None else skipped
    events = 0
    stream = open(path, "rb")  # noqa: SIM115 - closed below, after the generator's last record
    try:  # ArchiveIterator recognises gzip (and other) compression by itself
        for record in ArchiveIterator(stream, parse_http=True):
            if record.record_type != WarcRecordType.response:
                skipped[str(record.record_type).rsplit(".", 1)[-1]] += 1
                continue
            if not record.is_http or record.http_headers is None:
                skipped["not_http"] += 1
                continue
            status = record.http_headers.status_code or 0
            if not 200 <= status < 300:
                skipped["http_status"] += 1
                continue
            content_type = (record.http_content_type or "").split(";")[0].strip().lower()
            if content_type not in HTML_TYPES:
                skipped["not_html"] += 1
                continue
            body = record.reader.read()
            if len(body) < record.content_length:  # the archive ends inside this record
                skipped["truncated"] += 1
                log.warning("%s is cut short: the record at byte %d has %d of its %d bytes; the records before "
                            "it were read", path, record.stream_pos, len(body), record.content_length)
                continue
            if not body.strip():
                skipped["empty"] += 1
                continue
            where = f"{path}@{record.stream_pos}"
            event = {"url": record.headers.get("WARC-Target-URI"), "source": str(path),
                     "html_base64": base64.b64encode(body).decode("ascii")}
            if record.record_date is not None:
                event["fetched_at"] = record.record_date.isoformat()
            if record.http_charset:
                event["charset"] = record.http_charset
            events += 1
            yield SourceItem(where, event=event, position=where)
    except Exception as exc:  # noqa: BLE001 - a damaged archive: its readable records were given
        skipped["unreadable"] += 1
        log.warning("%s: reading stopped: %r", path, exc)
    finally:
        stream.close()
    log.info("%s: %d HTML pages; skipped %s", path, events, dict(skipped) or "nothing")


class WarcSource(Source):
    """``warc:PATH``: the HTML pages of one WARC file (or of every WARC file in a folder)."""

    kind = "warc"

    def __init__(self, argument: str):
        self.path = Path(argument)
        if not self.path.exists():
            raise FileNotFoundError(f"no such file or folder: {argument}")
        self.skipped: Counter = Counter()

    def files(self) -> list[Path]:
        if self.path.is_dir():
            return [p for p in sorted(self.path.rglob("*")) if p.is_file() and is_warc(p)]
        return [self.path]

    def items(self, after: str | None = None, stop: threading.Event | None = None) -> Iterator[SourceItem]:
        skipping = after is not None
        for path in self.files():
            for item in read_warc(path, self.skipped):
                if skipping:
                    skipping = item.position != after
                    continue
                yield item

    def __str__(self) -> str:
        return f"warc:{self.path}"
