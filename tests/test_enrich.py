"""`pipeline enrich`: the stages in one process, no broker."""

import subprocess
import sys

import orjson
import pytest

from pipeline.enrich import OfflinePipeline, parse_stage_list
from pipeline.records import encode
from tests.conftest import ROOT


def run_enrich(*args, stdin: bytes | None = None):
    proc = subprocess.run([sys.executable, "-m", "pipeline", "enrich", *args], cwd=ROOT, input=stdin,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    records = [orjson.loads(line) for line in proc.stdout.splitlines()]
    dead = [orjson.loads(line) for line in proc.stderr.splitlines() if line.startswith(b"{")]
    return records, dead


def test_enrich_seeds_folder():
    records, dead = run_enrich("seeds/")
    assert dead == []
    assert [r["source"] for r in records] == [f"seeds/{p}" for p in sorted(p.name for p in (ROOT / "seeds").iterdir())]
    for r in records:
        assert r["lang"]["code"] == "id" and r["entities"] and r["dedup"]["status"] == "unique"
        assert [t["stage"] for t in r["trace"]] == ["clean", "language", "entities", "dedup"]


def test_language_only_on_given_text_from_stdin():
    lines = b"\n".join([
        orjson.dumps({"text": "The committee approved the new budget for schools and hospitals on Tuesday."}),
        orjson.dumps({"text": "Panitia menyetujui anggaran baru untuk sekolah dan rumah sakit pada hari Selasa."}),
        b"{not json",
    ])
    records, dead = run_enrich("--stages", "language", "-", stdin=lines)
    assert [r["lang"]["code"] for r in records] == ["en", "id"]
    assert records[0]["text"] == "The committee approved the new budget for schools and hospitals on Tuesday."
    assert [t["stage"] for t in records[0]["trace"]] == ["language"]
    assert [d["reason"] for d in dead] == ["malformed_json"]


def test_stage_list_is_validated_and_ordered(settings):
    assert parse_stage_list("entities,language", settings) == ["language", "entities"]
    with pytest.raises(ValueError):
        parse_stage_list("language,sentiment", settings)


def test_bad_input_in_any_stage_becomes_a_dead_letter(settings):
    pipeline = OfflinePipeline(settings, ["language", "entities"])
    try:
        outcome = pipeline.enrich_payload(encode({"schema": "news-pipeline/record/1", "id": "r1", "text": None}))
        assert outcome.record is None
        assert outcome.dead_letter["stage"] == "language"
        assert outcome.dead_letter["reason"] == "invalid_event"
        assert orjson.loads(outcome.dead_letter["payload"])["id"] == "r1"
    finally:
        pipeline.close()
