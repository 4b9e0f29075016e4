import pytest

from pipeline.stages.base import Context
from pipeline.stages.clean.text_page import extract_text_page
from pipeline.stages.language import LanguageStage
from tests.conftest import seed_files


@pytest.fixture(scope="module")
def stage():
    from pipeline import config
    from tests.conftest import CONFIG

    return LanguageStage(config.load(CONFIG, env={}).stages.language)


def test_seeds_are_indonesian(stage):
    for path in seed_files():
        lang = stage.identify(extract_text_page(path.read_text(encoding="utf-8")).text)
        assert lang["code"] == "id", path.name
        assert lang["confidence"] >= 0.75
        assert lang["alternatives"][0]["code"] == "id"


@pytest.mark.parametrize("text, code", [
    ("The government announced on Tuesday that the new budget will focus on schools and hospitals.", "en"),
    ("Le gouvernement a annoncé mardi que le nouveau budget sera consacré aux écoles et aux hôpitaux.", "fr"),
    ("Die Regierung kündigte am Dienstag an, dass sich der neue Haushalt auf Schulen konzentrieren wird.", "de"),
])
def test_other_languages(stage, text, code):
    assert stage.identify(text)["code"] == code


@pytest.mark.parametrize("text", ["", "ok", "Jakarta"])
def test_too_short_is_undetermined(stage, text):
    lang = stage.identify(text)
    assert lang == {"code": "und", "confidence": 0.0, "reliable": False, "alternatives": []}


def test_stage_sets_lang_and_trace(stage):
    from pipeline.records import accept_raw, new_record, utc_now

    record = new_record(accept_raw({"text": "x"}, utc_now()))
    record["text"] = "Pemerintah mengumumkan bahwa anggaran baru akan difokuskan pada sekolah dan rumah sakit."
    out = stage.run(record, Context(worker="t"))
    assert out["lang"]["code"] == "id"
    assert out["trace"][-1]["stage"] == "language"
