"""WARC archives as a source: files the test writes (warcio) from the shared evaluation pages, with
request, metadata, revisit and warcinfo records, an error page and a PDF mixed in."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from pipeline import config
from pipeline.charset import body_text
from pipeline.records import accept_raw
from pipeline.sources import open_source
from pipeline.sources.files import FilesSource
from pipeline.sources.warc import WarcSource
from tests.conftest import CONFIG, ROOT
from tests.news_site import news_pages

WARC_DATE = "2026-11-30T08:15:00Z"


def eval_pages(n: int) -> list[dict]:
    """News pages of the shared evaluation data when it is there, else pages made of the seeds."""
    return [dict(page) for page in news_pages(n)]


def write_warc(path: Path, pages: list[dict]) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as out:
        w = WARCWriter(out, gzip=path.suffix == ".gz")
        w.write_record(w.create_warcinfo_record(path.name, {"software": "tests", "format": "WARC/1.1"}))

        def response(url, status, content_type, body, date=WARC_DATE):
            http = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
            return w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http,
                                        warc_headers_dict={"WARC-Date": date})

        for page in pages:
            request = StatusAndHeaders(f"GET {page['url']} HTTP/1.1", [("User-Agent", "tests")], is_http_request=True)
            w.write_record(w.create_warc_record(page["url"], "request", payload=io.BytesIO(b""), http_headers=request))
            w.write_record(response(page["url"], "200 OK", "text/html; charset=utf-8", page["html"].encode()))
            w.write_record(w.create_warc_record(page["url"], "metadata", payload=io.BytesIO(b"fetchTimeMs: 120\r\n"),
                                                warc_content_type="application/warc-fields"))
        # a page whose only charset declaration is the HTTP header's
        w.write_record(response("https://news.example/ru", "200 OK", "text/html; charset=koi8-r",
                                "<html><body><p>Привет, мир</p></body></html>".encode("koi8-r")))
        w.write_record(w.create_revisit_record(pages[0]["url"], "sha1:AAAA", pages[0]["url"], WARC_DATE))
        w.write_record(response("https://news.example/gone", "404 Not Found", "text/html", b"<html>gone</html>"))
        w.write_record(response("https://news.example/a.pdf", "200 OK", "application/pdf", b"%PDF-1.7 ..."))


@pytest.fixture
def archive(tmp_path):
    pages = eval_pages(4)
    path = tmp_path / "crawl.warc.gz"
    write_warc(path, pages)
    return path, pages


def test_html_responses_become_raw_events_and_the_rest_is_counted(archive):
    path, pages = archive
    source = FilesSource([str(path)])
    items = list(source.items())
    urls = [item.event["url"] for item in items]
    assert urls == [p["url"] for p in pages] + ["https://news.example/ru"]
    assert all(item.event["fetched_at"].startswith("2026-11-30T08:15:00") for item in items)
    assert base64.b64decode(items[0].event["html_base64"]).decode() == pages[0]["html"]
    assert [item.event.get("charset") for item in items] == ["utf-8"] * 4 + ["koi8-r"]
    assert dict(source.skipped) == {"warcinfo": 1, "request": 4, "metadata": 4, "revisit": 1,
                                    "http_status": 1, "not_html": 1}
    assert source.size() is None  # pages are known only by reading the archive
    # resumes after a position, as a replay restarted in the middle does
    assert [i.event["url"] for i in source.items(after=items[2].position)] == urls[3:]
    # warc:PATH names the same source; the HTTP charset decodes the bytes
    warc = open_source(f"warc:{path.parent}", config.load(CONFIG, env={}))
    event = accept_raw(list(warc.items())[-1].event, datetime.now(UTC))
    assert "Привет, мир" in body_text(event)[0]


@pytest.mark.parametrize("name", ["cut.warc", "cut.warc.gz"])
def test_a_cut_short_archive_gives_the_records_before_the_cut(tmp_path, name, caplog):
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    path = tmp_path / name
    pages = eval_pages(2)
    write_warc(path, pages)
    with open(path, "rb") as fh:  # where the second page's record starts and ends (compressed offsets for .gz)
        starts = [(r.stream_pos, r.record_type) for r in ArchiveIterator(fh)]
    second = [i for i, (_, kind) in enumerate(starts) if kind == WarcRecordType.response][1]
    end = starts[second + 1][0] if second + 1 < len(starts) else path.stat().st_size
    path.write_bytes(path.read_bytes()[: (starts[second][0] + end) // 2])  # cut inside it
    source = WarcSource(str(path))
    with caplog.at_level("WARNING", logger="pipeline.sources.warc"):
        assert [item.event["url"] for item in source.items()] == [pages[0]["url"]]
    assert source.skipped["truncated"] == 1 and "is cut short" in caplog.text


def test_pipeline_enrich_reads_a_warc_archive(archive):
    path, pages = archive
    result = subprocess.run([sys.executable, "-m", "pipeline", "--config", str(CONFIG), "enrich", str(path),
                             "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["url"] for r in records] == [p["url"] for p in pages] + ["https://news.example/ru"]
    assert all(r["fetched_at"].startswith("2026-11-30T08:15:00") and r["content_type"] == "html" for r in records)
    assert all(len(r["text"]) > 200 for r in records[:4])
    assert records[-1]["text"].startswith("Привет")
