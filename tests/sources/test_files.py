import base64
import gzip

from pipeline.sources.files import read_paths
from tests.conftest import SEEDS


def test_seed_folder_gives_five_text_pages():
    items = list(read_paths([str(SEEDS)]))
    assert len(items) == 5
    assert all(i.event and set(i.event) == {"text", "source"} for i in items)
    assert items[0].event["source"].endswith("000_f67f3eff65664d6b.txt")


def test_html_is_sent_as_bytes_and_jsonl_line_by_line(tmp_path):
    (tmp_path / "a.html").write_bytes("<p>Café</p>".encode("cp1252"))
    with gzip.open(tmp_path / "b.jsonl.gz", "wb") as fh:
        fh.write(b'{"text": "one"}\n\n{broken\n[1]\n{"html": "<p>x</p>"}\n')
    items = list(read_paths([str(tmp_path)]))
    assert base64.b64decode(items[0].event["html_base64"]) == "<p>Café</p>".encode("cp1252")
    assert [i.event for i in items[1:]] == [{"text": "one"}, None, None, {"html": "<p>x</p>"}]
    assert items[2].payload == b"{broken" and items[2].origin.endswith(":3")
