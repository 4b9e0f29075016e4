import pytest

from pipeline.stages.base import Context
from pipeline.stages.clean.text_page import extract_text_page
from pipeline.stages.language import LanguageStage
from pipeline.stages.language.codes import normalise_code
from pipeline.stages.language.identifier import Calibration, MalayDiscriminator
from tests.conftest import seed_files

AKISMET = "This site uses Akismet to reduce spam. Learn how your comment data is processed."


@pytest.fixture(scope="module")
def stage():
    from pipeline import config
    from tests.conftest import CONFIG

    return LanguageStage(config.load(CONFIG, env={}).stages.language)


def seed_texts():
    return [extract_text_page(path.read_text(encoding="utf-8")).text for path in seed_files()]


def test_seeds_are_confidently_indonesian_and_one_span(stage):
    for text in seed_texts():
        lang = stage.identify(text)
        assert lang["code"] == "id"
        assert lang["confidence"] >= 0.9 and lang["reliable"]
        assert lang["alternatives"][0]["code"] == "id"
        spans = stage.spans(text, "id")
        assert [s["code"] for s in spans] == ["id"]
        assert spans[0]["start"] == 0 and spans[0]["end"] == len(text.split("\n"))


def test_english_line_in_indonesian_page_is_an_en_span(stage):
    lines = seed_texts()[0].split("\n")
    at = len(lines) // 2
    lines.insert(at, AKISMET)
    text = "\n".join(lines)
    lang = stage.identify(text)
    assert lang["code"] == "id"
    spans = stage.spans(text, lang["code"])
    english = [s for s in spans if s["code"] == "en"]
    assert len(english) == 1 and (english[0]["start"], english[0]["end"]) == (at, at + 1)
    assert english[0]["confidence"] >= 0.8
    # the spans cover every paragraph once, in order
    assert spans[0]["start"] == 0 and spans[-1]["end"] == len(lines)
    assert all(a["end"] == b["start"] for a, b in zip(spans, spans[1:], strict=False))


@pytest.mark.parametrize("text, code", [
    ("The government announced on Tuesday that the new budget will focus on schools and hospitals.", "en"),
    ("Le gouvernement a annoncé mardi que le nouveau budget sera consacré aux écoles et aux hôpitaux.", "fr"),
    ("Die Regierung kündigte am Dienstag an, dass sich der neue Haushalt auf Schulen konzentrieren wird.", "de"),
    ("Pemerintah mengumumkan bahwa anggaran baru akan difokuskan pada sekolah dan rumah sakit.", "id"),
    # written for this test (Javanese ngoko, Sundanese loma)
    ("Aku arep lunga menyang pasar karo ibuku sesuk esuk, amarga kulkas ing omah wis kosong.", "jv"),
    ("Wong-wong padha nonton wayang ing alun-alun kutha nganti bengi, bocah-bocah uga melu.", "jv"),
    ("Abdi badé angkat ka pasar sareng indung abdi énjing, margi di bumi tos teu aya kadaharan.", "su"),
])
def test_languages(stage, text, code):
    lang = stage.identify(text)
    assert lang["code"] == code, lang


def test_malay_discriminator_model_loads_and_separates():
    model = MalayDiscriminator.load()
    assert len(model.weights) > 1000
    malay = "Kerajaan negeri akan membina sebuah hospital baharu kerana pesakit terpaksa menunggu lama di pejabat."
    indonesian = "Pemerintah provinsi akan membangun rumah sakit baru karena pasien harus menunggu lama di kantor."
    assert model.raw_probability(malay) > model.ms_threshold > model.raw_probability(indonesian)
    assert 0.0 <= model.calibrated(model.raw_probability(malay)) <= 1.0


def test_calibration_loads_and_is_monotonic():
    calibration = Calibration.load()
    for letters in (5, 20, 100, 1000):
        values = [calibration(share / 10, letters) for share in range(11)]
        assert values == sorted(values) and 0.0 <= values[0] and values[-1] <= 1.0


@pytest.mark.parametrize("text", ["", "ok", "12 345 678", "  \n  ", "!!!"])
def test_no_letters_is_undetermined(stage, text):
    lang = stage.identify(text)
    assert lang == {"code": "und", "confidence": 0.0, "reliable": False, "alternatives": []}


@pytest.mark.parametrize("text", ["Jakarta", "uang", "boleh", "dengan", "rumah", "kantor pusat", "bisa saja"])
def test_single_words_are_never_confidently_wrong_about_indonesian(stage, text):
    lang = stage.identify(text)
    assert lang["code"] in ("und", "id", "ms") or not lang["reliable"], lang


def test_codes_are_normalised():
    assert normalise_code("jw") == "jv"
    assert normalise_code("fil") == "tl"
    assert normalise_code("zh-Hant") == "zh"
    assert normalise_code("xx-Latn") == "und"


def test_bad_text_does_not_crash(stage):
    text = "Berita \x85 hari ini \ud800 tentang \x00 ekonomi Indonesia yang tumbuh pesat tahun ini."
    lang = stage.identify(text)
    assert lang["code"] == "id"


def test_stage_sets_lang_spans_and_trace(stage):
    from pipeline.records import accept_raw, new_record, utc_now

    record = new_record(accept_raw({"text": "x"}, utc_now()))
    record["text"] = "Pemerintah mengumumkan bahwa anggaran baru akan difokuskan pada sekolah dan rumah sakit."
    out = stage.run(record, Context(worker="t"))
    assert out["lang"]["code"] == "id"
    assert out["lang"]["spans"] == [{"start": 0, "end": 1, "code": "id", "confidence": 1.0}]
    assert out["trace"][-1]["stage"] == "language"
    assert stage.stats.extra["lang_id"] >= 1
