"""The German lexicon check of model mentions (pipeline/stages/entities/nouns.py): no broker, no model."""

import gzip

import pytest

from pipeline.stages.entities import EntitiesStage, nouns
from pipeline.stages.entities.rules import Mention
from pipeline.stages.entities.taggers import CrfModel, RulesOnly, SpacyPipeline


@pytest.fixture(scope="module")
def lexicon():
    found = nouns.load("de")
    assert found is not None, "pipeline/stages/entities/lexicons/de.tsv.gz is missing (python -m training.lexicons)"
    return found


def _model(text: str, span: str, label: str, nth: int = 0) -> Mention:
    start = -1
    for _ in range(nth + 1):
        start = text.index(span, start + 1)
    return Mention(start, start + len(span), span, label, "", {}, "model")


def _refined(lexicon, text: str, *mentions: tuple) -> list[tuple[str, str]]:
    got = lexicon.refine(text, [_model(text, *mention) for mention in mentions])
    for m in got:
        assert text[m.start:m.end] == m.text
    return [(m.text, m.label) for m in got]


def test_the_lexicon_file_is_sorted_and_small():
    path = nouns.LEXICONS / "de.tsv.gz"
    assert path.stat().st_size < 1_000_000
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        forms = [line.split("\t", 1)[0] for line in fh]
    assert forms == sorted(forms) and len(forms) > 100_000


def test_word_kinds(lexicon):
    assert lexicon.kind("Zeitung") == nouns._NOUN  # a noun in the lexicon
    assert lexicon.kind("Landtagswahlkampf") == nouns._COMPOUND  # ends in "Kampf" after "Landtagswahl"
    assert lexicon.kind("Google-Schwesterfirma") == nouns._NOUN  # the head after the hyphen decides
    assert lexicon.kind("Hamburg") == nouns._NAME  # a place, though it ends in "Burg"
    assert lexicon.kind("SPD") == nouns._NAME  # an acronym
    assert lexicon.kind("Sie") == nouns._FUNCTION
    assert lexicon.kind("Kieler") == nouns._ADJECTIVE  # of a place
    assert lexicon.kind("Ärztlicher") == nouns._ADJECTIVE
    assert lexicon.kind("Duesenfeld") == nouns._NAME  # "Feld" after an unknown word: a name
    assert lexicon.kind("und") == nouns._LOWER


def test_common_nouns_go_and_titles_are_cut_from_names(lexicon):
    text = ("Der Bundesverkehrsminister Andreas Scheuer sprach über den Landtagswahlkampf. "
            "Uber-Konkurrent Lyft startet. Verstöße der AfD wurden bekannt. Die Kosten der Gratiszeitung stiegen.")
    got = _refined(lexicon, text, ("Bundesverkehrsminister Andreas Scheuer", "PER"), ("Landtagswahlkampf", "PER"),
                   ("Uber-Konkurrent Lyft", "PER"), ("Verstöße der AfD", "ORG"), ("Kosten der Gratiszeitung", "ORG"))
    assert got == [("Andreas Scheuer", "PER"), ("Lyft", "PER"), ("AfD", "ORG")]


def test_organisations_keep_a_noun_after_a_name(lexicon):
    text = "Die Europäischen Union und die Frankfurter Buchmesse luden ein, auch die Schweizer Werbeagentur."
    got = _refined(lexicon, text, ("Europäischen Union", "ORG"), ("Frankfurter Buchmesse", "ORG"),
                   ("Schweizer Werbeagentur", "PER"))
    assert got == [("Europäischen Union", "ORG"), ("Frankfurter Buchmesse", "ORG")]


def test_a_surname_that_looks_like_a_noun_stays_after_a_first_name(lexicon):
    text = "Die Zeitung sprach mit Ansgar Weltermann. Siemens-Chef Luisa Neubauer widersprach. Später kam Neubauer."
    got = _refined(lexicon, text, ("Ansgar Weltermann", "PER"), ("Siemens-Chef Luisa Neubauer", "PER"),
                   ("Neubauer", "PER", 1))
    assert got == [("Ansgar Weltermann", "PER"), ("Luisa Neubauer", "PER"), ("Neubauer", "PER")]


def test_names_end_where_a_lower_case_word_or_conjunction_starts(lexicon):
    text = "Gestern kam Lutz S. aus Kiel. Es sprachen Kaeser und Siemens. Gregor Tobias Sie sagte nichts."
    got = _refined(lexicon, text, ("Lutz S. aus Kiel", "PER"), ("Kaeser und Siemens", "ORG"),
                   ("Gregor Tobias Sie", "PER"))
    assert got == [("Lutz S.", "PER"), ("Kaeser", "ORG"), ("Gregor Tobias", "PER")]


def test_abbreviations_and_initials_take_their_full_stop(lexicon):
    text = "Ein Unfall ereignete sich in St. Gallen. Es sprach Philipp H. vor Gericht."
    got = _refined(lexicon, text, ("St", "LOC"), ("Philipp H", "PER"))
    assert got == [("St. Gallen", "LOC"), ("Philipp H.", "PER")]


def test_a_word_after_an_article_is_not_a_person(lexicon):
    text = "Sie sahen das Sammelsurium. Der Herausgaber sprach mit Sammelsurium, im Elsass."
    assert _refined(lexicon, text, ("Sammelsurium", "PER", 1), ("Herausgaber", "PER"), ("Elsass", "PER")) \
        == [("Elsass", "LOC")]  # a place after an article stays


def test_single_names_take_their_lexicon_label(lexicon):
    text = "Im Elsass sagte Steinmeier, Siemens liefere."
    got = _refined(lexicon, text, ("Elsass", "PER"), ("Steinmeier", "LOC"), ("Siemens", "ORG"))
    assert got == [("Elsass", "LOC"), ("Steinmeier", "PER"), ("Siemens", "ORG")]


def test_function_words_are_not_places(lexicon):
    rules = [Mention(0, 5, "Dabei", "LOC", "Dabei", {}, "gazetteer"),
             Mention(10, 16, "Berlin", "LOC", "Berlin", {}, "gazetteer")]
    assert [m.text for m in lexicon.without_function_words(rules)] == ["Berlin"]


def test_which_taggers_are_checked():
    assert CrfModel.lexicon_checked and not RulesOnly.lexicon_checked and not SpacyPipeline.lexicon_checked
    assert nouns.load("xx") is None and nouns.code_of("de-AT") == "de"


def test_the_stage_checks_german_and_says_so(settings):
    stage = EntitiesStage(settings.stages.entities)
    text = ("Der Landtagswahlkampf in Essen: Bundesverkehrsminister Andreas Scheuer besuchte die Millionenstrafe "
            "nicht. Die Gratiszeitung berichtete über Dokumenten und Mandanten. Scheuer sprach in Berlin.")
    tagged = stage.tagger.tag(text, "de")
    entities, name = tagged[0], tagged[1]
    assert name.endswith("+lexicon:de")
    got = {(e["text"], e["label"]) for e in entities}
    assert ("Andreas Scheuer", "PER") in got and ("Berlin", "LOC") in got
    for word in ("Landtagswahlkampf", "Millionenstrafe", "Gratiszeitung", "Dokumenten", "Mandanten"):
        assert not any(word in e["text"] for e in entities), (word, entities)
    english = stage.tagger.tag("Chancellor Olaf Scholz spoke in Berlin.", "en")[1]
    assert "lexicon" not in english


def test_company_names_the_lexicon_also_lists_as_nouns_stay(lexicon):
    assert lexicon.kind("Facebook") == nouns._NAME  # a noun and another name in the lexicon
    assert lexicon.kind("Altenburg") == nouns._NAME  # "-burg": how places are named
    assert lexicon.kind("Nordirland") == nouns._NAME  # "ir" is no linking element before "Land"


def test_institutions_keep_their_institution_word(lexicon):
    text = ("Die Universität Hamburg, die Süddeutschen Zeitung und das Bundesfinanzministerium äußerten sich. "
            "Die Gratiszeitung nicht.")
    got = _refined(lexicon, text, ("Universität Hamburg", "ORG"), ("Süddeutschen Zeitung", "ORG"),
                   ("Bundesfinanzministerium", "ORG"), ("Gratiszeitung", "ORG"))
    assert got == [("Universität Hamburg", "ORG"), ("Süddeutschen Zeitung", "ORG"), ("Bundesfinanzministerium", "ORG")]


def test_a_word_only_ever_after_in_or_aus_is_a_place(lexicon):
    text = "Der Unfall geschah in Lenzburg. Der Fahrer kam aus Lenzburg. Bei Relotius war es anders, sagte Relotius."
    got = _refined(lexicon, text, ("Lenzburg", "PER"), ("Relotius", "PER", 1))
    assert got == [("Lenzburg", "LOC"), ("Relotius", "PER")]
