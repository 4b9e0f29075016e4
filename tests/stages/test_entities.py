import pytest

from pipeline.stages.clean.text_page import extract_text_page
from pipeline.stages.entities import gazetteer, rules, summarise
from tests.conftest import seed_files


@pytest.fixture(scope="module")
def gaz():
    return gazetteer.load()


def _tags(text, gaz):
    return {(m.text, m.label, m.canonical) for m in rules.tag(text, gaz)}


def test_canonical_place_names(gaz):
    text = "Delegasi dari Moskow, MOSKWA dan Moskwa bertemu di Prancis dan Perancis, lalu ke Amerika Serikat (AS)."
    tags = _tags(text, gaz)
    assert ("Moskow", "LOC", "Moscow") in tags
    assert ("MOSKWA", "LOC", "Moscow") in tags
    assert ("Moskwa", "LOC", "Moscow") in tags
    assert ("Prancis", "LOC", "France") in tags
    assert ("Perancis", "LOC", "France") in tags
    assert ("Amerika Serikat", "LOC", "United States") in tags
    assert ("AS", "LOC", "United States") in tags


def test_ids_for_countries_and_cities(gaz):
    mentions = {m.text: m for m in rules.tag("Rusia dan Baku.", gaz)}
    assert mentions["Rusia"].ids == {"iso3166": "RU"}
    assert mentions["Baku"].ids == {"geonames": "587084"}


def test_ministry_and_people(gaz):
    text = ("Juru Bicara Kementerian Luar Negeri Rusia Maria Zakharova di Moskow mengatakan hal itu. "
            "\"Kami khawatir,\" kata Zakharova. Presiden Rusia Vladimir Putin juga hadir, sebut Kemlu Rusia.")
    tags = _tags(text, gaz)
    assert ("Kementerian Luar Negeri Rusia", "ORG", "Ministry of Foreign Affairs of Russia") in tags
    assert ("Kemlu Rusia", "ORG", "Ministry of Foreign Affairs of Russia") in tags
    assert ("Maria Zakharova", "PER", "Maria Zakharova") in tags
    assert ("Zakharova", "PER", "Maria Zakharova") in tags
    assert ("Vladimir Putin", "PER", "Vladimir Putin") in tags
    assert not any(t[0] == "Vladimir" for t in tags)


def test_lowercase_words_are_not_entities(gaz):
    assert _tags("as far as we know, the rusia word in lowercase is not a name", gaz) == set()


def test_offsets_point_into_the_text(gaz):
    for path in seed_files():
        text = extract_text_page(path.read_text(encoding="utf-8")).text
        mentions = rules.tag(text, gaz)
        assert len(mentions) >= 5, path.name
        for m in mentions:
            assert text[m.start:m.end] == m.text


def test_summary_counts_canonical_entities():
    ents = [{"label": "LOC", "canonical": "Moscow"}, {"label": "LOC", "canonical": "Moscow"},
            {"label": "PER", "canonical": "Maria Zakharova"}]
    assert summarise(ents) == [{"canonical": "Moscow", "label": "LOC", "count": 2},
                               {"canonical": "Maria Zakharova", "label": "PER", "count": 1}]
