import base64
from datetime import UTC, datetime

import pytest

from pipeline.records import BadInput
from pipeline.stages.base import Context
from pipeline.stages.clean import CleanStage
from pipeline.stages.clean.charset import decode_bytes
from pipeline.stages.clean.dates import find_date
from pipeline.stages.clean.html_page import strip_site_suffix
from pipeline.stages.clean.text_page import extract_text_page
from tests.conftest import seed_files

NOW = datetime(2026, 11, 21, tzinfo=UTC)
RELATED_HEADLINES = {
    0: "Kremlin Risih Joe Biden Jadikan Rusia Sebagai Ancaman Nomor Satu AS",
    2: "Jokowi Tak Serius Dukung RK-Suswono",
    3: "Putin Berencana Kunjungi China pada Mei 2024",
}


@pytest.fixture(scope="module")
def pages():
    return [extract_text_page(p.read_text(encoding="utf-8"), NOW) for p in seed_files()]


def test_seed_titles(pages):
    assert [p.title for p in pages] == [
        "Nagorno-Karabakh Semakin Membara, Rusia Desak Turki Dukung Gencatan Senjata",
        "Kremlin Desak Armenia-Azerbaijan Hentikan Pertempuran",
        "Rusia Desak Armenia dan Azerbaijan Hentikan Permusuhan di Nagorno-Karabakh",
        "Rusia Tawarkan Jadi Tuan Rumah Pembicaraan Damai Perang Armenia-Azerbaijan",
        "Belasan Tewas, Rusia Minta Gencatan Senjata di Nagorno-Karabakh",
    ]


def test_seed_bodies_keep_the_article_and_drop_lists_and_prompts(pages):
    for i, page in enumerate(pages):
        assert len(page.text.split()) > 150, i
        assert "baca juga" not in page.text.lower(), i
        assert "akismet" not in page.text.lower(), i
        if i in RELATED_HEADLINES:
            assert RELATED_HEADLINES[i] not in page.text, i
    # in-article subheads stay
    assert "1. Rusia bantu evakuasi warga" in pages[4].text
    # first and last paragraphs stay
    assert pages[3].text.startswith("MOSKWA, KOMPAS.com - Rusia menawarkan diri")
    assert pages[3].text.endswith('"propaganda murahan".')


def test_seed_metadata(pages):
    assert pages[2].published == "2023-09-20T06:12:00+07:00"
    assert pages[2].authors == ["Reni Erina"]
    assert pages[3].published == "2020-10-01T15:32:00+07:00"
    assert pages[3].authors == ["Shintaloka Pradita Sicca"]
    assert pages[3].site == "Kompas.com"
    assert pages[4].site == "IDN Times"
    # the related-list dates of seed 000 are not its publication date
    assert pages[0].published is None


@pytest.mark.parametrize("line, expected", [
    ("RABU, 20 SEPTEMBER 2023 | 06:12 WIB | LAPORAN: RENI ERINA", "2023-09-20T06:12:00+07:00"),
    ("Kompas.com - 01/10/2020, 15:32 WIB", "2020-10-01T15:32:00+07:00"),
    ("September 20, 2023 10:15 AM EDT", "2023-09-20T10:15:00-04:00"),
    ("Published 2023-09-20T06:12:00Z", "2023-09-20T06:12:00+00:00"),
    ("Selasa, 3 Maret 2020", "2020-03-03"),
    ("Pada Selasa (29/9)", None),
    ("1 Januari 2099 10:00 WIB", None),  # after the fetch time
])
def test_dates(line, expected):
    found = find_date(line, NOW)
    assert (found[0] if found else None) == expected


def test_charset_declared_latin1_and_detection():
    html = '<html><head><meta charset="iso-8859-1"></head><body><p>Café crème à São Paulo</p></body></html>'
    assert decode_bytes(html.encode("cp1252")) == (html, "cp1252")
    assert decode_bytes(html.encode("utf-8"))[0] == html  # valid UTF-8 wins over a wrong declaration
    bom = "<p>naïve</p>".encode("utf-16")  # with its byte-order mark
    assert decode_bytes(bom)[0] == "<p>naïve</p>"


def test_title_suffix():
    assert strip_site_suffix("Rusia Desak Turki | Kompas.com", "Kompas.com") == "Rusia Desak Turki"
    assert strip_site_suffix("War and Peace - Review", "example.org") == "War and Peace - Review"


@pytest.fixture(scope="module")
def stage(request):
    from pipeline import config
    from tests.conftest import CONFIG

    s = CleanStage(config.load(CONFIG, env={}).stages.clean)
    yield s
    s.close()


def test_html_page_through_the_process_pool(stage):
    paragraphs = "".join(f"<p>Paragraph {i} of a long article about the river and the city council.</p>"
                         for i in range(12))
    html = (f"<html><head><title>River plan approved | Daily Example</title>"
            f'<meta name="author" content="Jane Roe"></head><body><nav><a href="/">Home</a></nav>'
            f"<article><h1>River plan approved</h1>{paragraphs}</article><footer>© Daily Example</footer>"
            "</body></html>")
    event = {"html_base64": base64.b64encode(html.encode("cp1252")).decode(), "url": "https://www.example.com/a",
             "fetched_at": "2026-11-20T10:00:00Z"}
    record = stage.run(event, Context(worker="t"))
    assert record["title"] == "River plan approved"
    assert "Paragraph 11" in record["text"] and "Home" not in record["text"]
    assert record["site"] == "example.com"
    assert record["authors"] == ["Jane Roe"]
    assert record["trace"][-1]["stage"] == "clean"


def test_page_without_main_text_is_bad_input(stage):
    with pytest.raises(BadInput) as err:
        stage.run({"html": "<html><head><title></title></head><body><script>x=1</script></body></html>"},
                  Context(worker="t"))
    assert err.value.reason == "no_main_text"


def test_html_extraction_has_a_time_limit(settings):
    import dataclasses

    from pipeline.stages.clean import html_page

    extractor = html_page.HtmlExtractor(timeout_s=1.0)
    original = html_page.extract_in_process
    try:
        # a page that makes the child hang: the pool kills it and the next page still works
        html_page.extract_in_process = _hang
        with pytest.raises(BadInput) as err:
            extractor.extract("<p>x</p>", None)
        assert err.value.reason == "timeout"
    finally:
        html_page.extract_in_process = original
    page = extractor.extract("<html><body><article>" + "<p>Some real text in a sentence here.</p>" * 10
                             + "</article></body></html>", None)
    assert "real text" in page.text
    extractor.close()
    assert dataclasses.is_dataclass(page)


def _hang(*args, **kwargs):
    import time

    time.sleep(60)
