"""The CRF models scored and decoded in numpy (``linear_chain``, ``features.ChainScorer``) give CRFsuite's tags."""

import itertools

import numpy as np
import pytest

from pipeline.stages.entities import crf, linear_chain
from pipeline.stages.entities.features import ChainScorer
from pipeline.stages.entities.tokens import sentences

TEXTS = {
    "id": "Juru Bicara Kemlu Rusia Maria Zakharova di Moskow, Senin (3/4). \"Kami khawatir,\" kata Zakharova.\n"
          "Presiden Joko Widodo bertemu PM Malaysia di Istana Bogor, Jawa Barat.\nJakarta\nBACA JUGA: Ekonomi",
    "en": "The mayor Sadiq Khan visited London on Monday. \"It is 'fine',\" said Ms. O'Neil of AT&T in New York.\n"
          "Apple Inc. and the U.S. Department of State met in Paris.\nReuters\nBy John Smith and Mary Jones",
    "pt": "O presidente Lula visitou São Paulo e o Rio de Janeiro. A Petrobras anunciou lucros em Lisboa.\nPorto",
    "de": "Bundeskanzler Olaf Scholz traf in Berlin den französischen Präsidenten. Die Deutsche Bahn streikt.",
}
CASES = [("id-news-crf", "id", "id"), ("en-news-crf", "en", "en"), ("multi-crf", "pt", "pt"),
         ("multi-crf", "de", "de"), ("multi-crf", None, "en")]


def _words(tagger, text):
    return [[t.text for t in s] for s in sentences(text, tagger.tokenize(text))]


def test_the_weights_are_those_crfsuite_reads_from_the_model_file():
    tagger = crf.load("en-news-crf")
    weights = tagger.weights
    assert list(weights.labels) == tagger.tagger.labels()
    info = tagger.tagger.info()  # CRFsuite's own dump (weights printed to 6 decimals)
    label = {name: i for i, name in enumerate(weights.labels)}
    for (attr, name), w in itertools.islice(info.state_features.items(), 0, None, 97):
        assert weights.state[weights.attributes[attr], label[name]] == pytest.approx(w, abs=1e-6)
    for (a, b), w in info.transitions.items():
        assert weights.transitions[label[a], label[b]] == pytest.approx(w, abs=1e-6)
    assert not weights.state[weights.zero_row].any()
    assert frozenset(weights.attributes) == tagger.known


@pytest.mark.parametrize(("model", "lang", "text"), CASES)
def test_each_tokens_scores_are_the_weights_of_its_attributes(model, lang, text):
    tagger = crf.load(model)
    weights = tagger.weights
    sents = _words(tagger, TEXTS[text]) + [["Jakarta"], ["Sadiq", "Khan"], ["(", "AP", ")"]]
    scores = ChainScorer(tagger.extractor_for(lang), weights).scores(sents)
    expected = [weights.score(attrs) for words in sents for attrs in tagger._items(words, lang)]
    assert scores.shape == (sum(map(len, sents)), len(weights.labels))
    np.testing.assert_allclose(scores, np.array(expected), rtol=0, atol=1e-9)


@pytest.mark.parametrize(("model", "lang", "text"), CASES)
def test_tags_are_crfsuites_with_a_full_and_an_overflowing_token_cache(model, lang, text, monkeypatch):
    tagger = crf.load(model)
    sents = _words(tagger, TEXTS[text]) + [["Jakarta"], [], ["Sadiq", "Khan", "\x00", "London"]]
    expected = [tagger.tagger.tag(tagger._items(words, lang)) if words else [] for words in sents]
    assert tagger.tag_many(sents, lang) == expected
    monkeypatch.setattr(ChainScorer, "CACHE_SIZE", 5)  # every document clears it
    tagger._scorers.clear()
    for _ in range(2):
        assert tagger.tag_many(sents, lang) == expected
        (scorer,) = tagger._scorers.values()
        assert len(scorer._index) <= len({w for words in sents for w in words})  # this document's tokens only
    tagger._scorers.clear()


def test_viterbi_finds_the_best_sequence_and_gives_ties_to_the_lowest_label():
    rng = np.random.default_rng(7)
    transitions = rng.normal(size=(3, 3))
    lengths = [4, 1, 3, 4, 2]
    scores = rng.normal(size=(sum(lengths), 3))
    paths = linear_chain.viterbi(scores, lengths, transitions)
    start = 0
    for n, path in zip(lengths, paths, strict=True):
        s = scores[start:start + n]
        start += n

        def total(seq, s=s):
            return sum(s[t, y] for t, y in enumerate(seq)) + sum(transitions[a, b] for a, b in itertools.pairwise(seq))

        best = max(itertools.product(range(3), repeat=n), key=total)  # the first of equal maxima
        assert tuple(path.tolist()) == best
    flat = linear_chain.viterbi(np.zeros((5, 3)), [2, 3], np.zeros((3, 3)))
    assert [p.tolist() for p in flat] == [[0, 0], [0, 0, 0]]
    assert linear_chain.viterbi(np.zeros((0, 3)), [], transitions) == []


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    bad = tmp_path / "model.crfsuite"
    bad.write_bytes(b"not a model at all" * 4)
    with pytest.raises(ValueError, match="not a CRFsuite"):
        linear_chain.read_weights(bad)
    bad.write_bytes(b"lCRF" + bytes(4) + b"FOMC" + bytes(12))  # a header cut short
    with pytest.raises(ValueError, match="damaged CRFsuite model"):
        linear_chain.read_weights(bad)


def test_an_unreadable_model_file_falls_back_to_rules(tmp_path, monkeypatch):
    import shutil

    from pipeline.stages.entities.taggers import Registry

    broken = tmp_path / "en-news-crf"
    shutil.copytree(crf.MODELS_DIR / "en-news-crf", broken)
    data = (broken / "model.crfsuite").read_bytes()
    (broken / "model.crfsuite").write_bytes(data[: len(data) // 3])  # cut short: the features chunk runs off the end
    monkeypatch.setattr(crf, "MODELS_DIR", tmp_path)
    crf.load.cache_clear()
    try:
        registry = Registry({"en": "crf:en-news-crf"})
        assert registry.tagger_for("en").name == "rules"
        assert "damaged CRFsuite model" in registry.fallbacks["crf:en-news-crf"]
    finally:
        crf.load.cache_clear()
