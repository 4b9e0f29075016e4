"""The ``slovnet:`` tagger (Russian news NER from the weights the natasha wheel ships): offsets, edge cases,
the stage around it, and the fallback when it cannot load. The model is loaded once for the module."""

import dataclasses
import importlib.metadata

import pytest

from pipeline.records import accept_raw, new_record, utc_now
from pipeline.stages.base import Context
from pipeline.stages.entities import EntitiesStage, slovnet_ner
from pipeline.stages.entities.taggers import Registry

NEWS = ("«Газпром» и Минфин России договорились о новых условиях, сообщил „Коммерсантъ“.\n"
        "В Москве Владимир Путин встретился с Эммануэлем Макроном; пресс-секретарь Кремля Дмитрий Песков "
        "рассказал агентству РИА Новости, что переговоры продлятся до вечера.\n\n"
        "Ранее (в понедельник) глава МИД Сергей Лавров прилетел в Анкару!")


@pytest.fixture(scope="module")
def tagger():
    return slovnet_ner.SlovnetNer("ner_news_v1")


def _check_offsets(text, mentions):
    for m in mentions:
        assert m.text == text[m.start:m.end], m
        assert m.text == m.text.strip() and "\n" not in m.text, m
        assert m.label in ("PER", "LOC", "ORG") and m.source == "model"
    spans = sorted((m.start, m.end) for m in mentions)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)), "overlapping spans"


def test_russian_news_entities_with_exact_offsets(tagger):
    mentions = tagger.tag(NEWS, "ru")
    _check_offsets(NEWS, mentions)
    got = {(m.text, m.label) for m in mentions}
    assert {("Владимир Путин", "PER"), ("Дмитрий Песков", "PER"), ("Сергей Лавров", "PER"),
            ("Москве", "LOC"), ("Анкару", "LOC"), ("Газпром", "ORG")} <= got
    # quotes stay outside the span: «Газпром» -> Газпром
    gazprom = next(m for m in mentions if m.text == "Газпром")
    assert NEWS[gazprom.start - 1] == "«" and NEWS[gazprom.end] == "»"


def test_tokens_keep_their_offsets_in_any_text(tagger):
    text = "  «Ёлки»\tи\u00a0„ёж“…  Путин—Макрон\r\n\n(МИД)  "
    tokens = slovnet_ner.tokenize(text)
    assert [t.text for t in tokens][:3] == ["«", "Ёлки", "»"]
    for t in tokens:
        assert text[t.start:t.end] == t.text and not t.text.isspace()
    _check_offsets(text, tagger.tag(text, "ru"))


def test_an_entity_never_runs_across_a_line_break(tagger):
    text = "Министр Сергей\nЛавров\nМосква"
    mentions = tagger.tag(text, "ru")
    _check_offsets(text, mentions)


def test_empty_and_blank_text_give_no_entities(tagger):
    assert tagger.tag("", "ru") == []
    assert tagger.tag(" \n\t ", "ru") == []


def test_latin_script_text_is_tagged_without_error(tagger):
    text = "Foreign Minister Sergei Lavrov met Emmanuel Macron in Paris on Monday, Reuters reported."
    _check_offsets(text, tagger.tag(text, "ru"))


def test_a_long_document_gives_each_piece_the_entities_it_has_alone(tagger):
    # 150 sentences in paragraphs; 150 clauses in one line without a sentence end (cut every 120 tokens)
    for piece, sep, copies in (("В Москве Владимир Путин встретился с Эммануэлем Макроном.", "\n\n", 150),
                               ("в Москве Владимир Путин встретился с Эммануэлем Макроном", ", ", 150)):
        alone = {(m.start, m.end, m.label) for m in tagger.tag(piece)}
        assert alone
        text = sep.join([piece] * copies)
        mentions = tagger.tag(text)
        _check_offsets(text, mentions)
        step = len(piece) + len(sep)
        assert {(m.start % step, m.end % step, m.label) for m in mentions} >= alone
        assert 0.9 * len(alone) * copies <= len(mentions) <= len(alone) * copies + copies // 10


def test_tags_are_read_as_slovnet_reads_them():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-ORG", "I-PER", "B-LOC"]
    assert slovnet_ner.bio_spans(tags) == [(0, 2, "PER"), (5, 7, "ORG"), (7, 8, "LOC")]
    assert slovnet_ner.bio_spans([]) == [] and slovnet_ner.bio_spans(["O", "I-PER"]) == []


def test_pieces_keep_every_token_and_cut_at_sentence_ends_but_not_after_initials():
    line = " ".join(f"слово и ещё {i}" for i in range(100))  # 400 tokens, no sentence end, no line break
    text = f"Первая строка. Вторая фраза!\n{line}\nВ. Путин и С. Лавров прибыли в г. Москва. Потом"
    tokens = slovnet_ner.tokenize(text)
    parts = slovnet_ner.pieces(text, tokens)
    assert [t for p in parts for t in p] == tokens
    assert [t.text for t in parts[0]] == ["Первая", "строка", "."]
    assert [t.text for t in parts[1]] == ["Вторая", "фраза", "!"]
    assert [t.text for t in parts[-2]][:8] == ["В", ".", "Путин", "и", "С", ".", "Лавров", "прибыли"]
    assert [t.text for t in parts[-2]][-4:] == ["г", ".", "Москва", "."] and [t.text for t in parts[-1]] == ["Потом"]
    middle = parts[2:-2]
    assert [len(p) for p in middle] == [slovnet_ner.MAX_PIECE_TOKENS] * 3 + [400 - 3 * slovnet_ner.MAX_PIECE_TOKENS]


def test_initials_stay_with_the_surname(tagger):
    text = "Глава МИД России С. Лавров встретился в Анкаре с министром."
    people = {m.text for m in tagger.tag(text) if m.label == "PER"}
    assert "С. Лавров" in people


def _record(text, lang):
    rec = new_record(accept_raw({"url": "https://example.com/ru", "text": text}, utc_now()))
    rec["text"] = text
    rec["lang"] = {"code": lang, "confidence": 0.99}
    return rec


def test_the_stage_runs_it_for_russian_with_the_gazetteer_after_it(settings, tagger):
    assert settings.stages.entities.taggers["ru"] == "slovnet:ner_news_v1"
    stage = EntitiesStage(settings.stages.entities)
    out = stage.run(_record(NEWS, "ru"), Context(worker="test"))
    assert out["entities_tagger"] == f"{tagger.name}+rules"
    assert tagger.name.startswith("slovnet:ner_news_v1/natasha-")
    assert (out["entities_lang"], out["entities_lang_source"]) == ("ru", "lang")
    for e in out["entities"]:
        assert out["text"][e["start"]:e["end"]] == e["text"]
    people = {e["text"] for e in out["entities"] if e["label"] == "PER"}
    assert {"Владимир Путин", "Дмитрий Песков", "Сергей Лавров"} <= people
    assert any(e["source"] == "model" for e in out["entities"])
    # another language is untouched: German still gets the multilingual CRF
    assert stage.tagger.registry.tagger_for("de").name.startswith("crf:multi-crf/")


def test_an_unknown_model_or_a_missing_package_falls_back_to_rules(settings, monkeypatch):
    cfg = dataclasses.replace(settings.stages.entities, taggers={"ru": "slovnet:no_such_model"})
    stage = EntitiesStage(cfg)
    out = stage.run(_record("Переговоры в Париже и Берлине.", "ru"), Context(worker="test"))
    assert out["entities_tagger"] == "rules"
    assert "no_such_model" in stage.tagger.registry.fallbacks["slovnet:no_such_model"]
    monkeypatch.setattr(slovnet_ner, "DATA_PACKAGE", "no-such-data-package-here")
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        slovnet_ner.data_file("model/slovnet_ner_news_v1.tar")
    assert Registry({"ru": "slovnet:ner_news_v1"}).spec_for("ru-RU") == "slovnet:ner_news_v1"
