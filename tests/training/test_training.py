"""The training code (``training/``, outside the package): deterministic, and the research
network runs in numpy beside the CRF."""

import pytest

from pipeline.stages.clean.line_model import PageLines
from pipeline.stages.entities import crf
from training import entities_data as data


def test_training_labels_from_gold_text_and_snippets():
    from training import clean as train

    page = PageLines.split("Home\nNews\n\nThe council approved the river plan on Monday after a debate.\n\n"
                           "Related: Floods in the north\n\nShare")
    labels = train.aeb_labels(page, "The council approved the river plan on Monday after a debate.")
    assert labels.tolist() == [0, 0, 1, 0, 0]
    labels, weights = train.snippet_labels(page, ["river plan on Monday"], ["Floods in the north"],
                                           silver="The council approved the river plan on Monday after a debate.\nNews")
    assert labels.tolist() == [0, 1, 1, 0, 0]  # "News" is silver-positive: a line of trafilatura's output
    assert weights[2] == train.GOLD_WEIGHT and weights[3] == train.GOLD_WEIGHT
    assert weights[0] == train.SILVER_WEIGHT


def test_training_is_deterministic():
    pytest.importorskip("sklearn")
    import numpy as np

    from training import clean as train

    def pages():
        out = []
        for k in range(12):
            text = ("Home\nNews\nSport\n\n" + "\n\n".join(
                f"Paragraph {i} of story {k} tells what the council decided about the river and the bridge."
                for i in range(5)) + "\n\nFollow us\nContact")
            lines = PageLines.split(text)
            labels = np.array([1.0 if t.startswith("Paragraph") else 0.0 for t in lines.texts])
            out.append(train.TrainingPage("aeb" if k % 2 else "trafilatura", str(k), lines, labels,
                                          np.ones(len(labels))))
        return out

    first = train.train_classifier(pages())
    second = train.train_classifier(pages())
    assert np.array_equal(first.second.w1, second.second.w1)
    probs = first.probabilities(pages()[0].lines)
    assert probs[3:8].min() > 0.5 > probs[:3].max()


def test_seed_ensemble_is_one_network_averaging_the_members_logits():
    pytest.importorskip("sklearn")
    import numpy as np

    from training import clean as train

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 6)) * [1, 2, 3, 4, 5, 6] + 10
    y = (x[:, 0] + 0.5 * x[:, 1] > 15).astype(float)
    w = np.ones(len(y))
    merged = train.fit_perceptron(x, y, w, hidden=4, epochs=5, ensemble=3)
    assert merged.w1.shape == (6, 12)
    logits = []
    for k in range(3):
        one = train._fit_one(x, y, w, merged.mean, merged.scale, 4, 5, train.SEED + k)
        p = one.predict(x)
        logits.append(np.log(p / (1 - p)))
    expected = 1 / (1 + np.exp(-np.mean(logits, axis=0)))
    assert np.allclose(merged.predict(x), expected, atol=1e-5)
    # predict (standardisation folded into float32 weights) computes the textbook formula
    hidden = np.maximum(((x - merged.mean) / merged.scale) @ merged.w1 + merged.b1, 0.0)
    assert np.allclose(merged.predict(x), 1 / (1 + np.exp(-(hidden @ merged.w2 + merged.b2))), atol=1e-5)


def test_constrained_viterbi_gives_valid_iob2():
    import numpy as np

    from training import entities_nn as neural

    rng = np.random.default_rng(0)
    for _ in range(300):
        probs = rng.dirichlet(np.full(len(neural.TAGS), 0.3), size=int(rng.integers(1, 10)))
        tags = neural.viterbi(probs)
        assert tags == neural._viterbi(probs, len(probs))  # the argmax shortcut changes nothing
        for prev, cur in zip(["O", *tags], tags, strict=False):
            assert not cur.startswith("I-") or prev[2:] == cur[2:]


def test_ensembled_network_runs_in_numpy(tmp_path):
    """The optional network (not shipped) is averaged with the CRF without torch: a network with
    random weights of the right shapes, beside a copy of the committed CRF."""
    import gzip
    import json
    import shutil
    import sys

    import numpy as np

    from training import entities_nn as neural

    shutil.copytree(crf.MODELS_DIR / crf.DEFAULT_MODEL, tmp_path / "m")
    rng = np.random.default_rng(0)
    vocab = {"words": ["<pad>", "<unk>", "joko", "widodo", "ke", "medan"], "chars": ["<pad>", "<unk>", *"abcdefghijklmnopqrstuvwxyz"],
             "shapes": ["<pad>", "<unk>", "Xx", "x"], "gaz": ["<pad>", "<unk>", "LOC"], "clusters": 0}
    we, cc, se, ge, hidden = 8, 6, 3, 2, 10
    dims = we + cc + se + ge + neural.N_DENSE
    weights = {"word_emb": rng.normal(size=(6, we)), "char_emb": rng.normal(size=(28, 4)),
               "char_conv_w": rng.normal(size=(12, cc)), "char_conv_b": np.zeros(cc),
               "shape_emb": rng.normal(size=(4, se)), "gaz_emb": rng.normal(size=(3, ge)),
               "proj_w": rng.normal(size=(dims, hidden)), "proj_b": np.zeros(hidden),
               "out_w": rng.normal(size=(hidden, len(neural.TAGS))), "out_b": np.zeros(len(neural.TAGS))}
    for k in range(len(neural.DILATIONS)):
        weights[f"conv{k}_w"] = rng.normal(size=(3 * hidden, hidden)) * 0.1
        weights[f"conv{k}_b"] = np.zeros(hidden)
    np.savez_compressed(tmp_path / "m" / "nn.npz", **{k: v.astype(np.float16) for k, v in weights.items()})
    meta = {"domains": ["idner-news-2k"], "base_domain": "idner-news-2k", "vocab": vocab, "crf_weight": 0.6}
    with gzip.open(tmp_path / "m" / "nn.json.gz", "wt", encoding="utf-8") as fh:
        json.dump(meta, fh)

    tagger = neural.EnsembleTagger(crf.CrfTagger(tmp_path / "m", domain="idner-news-2k"))
    assert tagger.crf_weight == 0.6
    probs = tagger.nn.probs_many([["Joko", "Widodo", "ke", "Medan"], ["Bank", "Indonesia"]], "idner-news-2k")
    assert [p.shape for p in probs] == [(4, 7), (2, 7)]
    assert abs(float(probs[0].sum()) - 4) < 1e-4
    tags = tagger.tag_tokens(["Presiden", "Joko", "Widodo", "terbang", "ke", "Medan", "."])
    assert len(tags) == 7
    for prev, cur in zip(["O", *tags], tags, strict=False):
        assert not cur.startswith("I-") or prev[2:] == cur[2:]
    assert "torch" not in sys.modules


def test_word_clusters_are_learnt_deterministically():
    pytest.importorskip("sklearn")
    from training import entities_clusters as clusters

    days = ["Senin", "Selasa", "Rabu", "Kamis"]
    places = ["Jakarta", "Medan", "Bandung", "Surabaya"]
    sents = [["Pada", d, "ia", "pergi", "ke", p, "."] for d in days for p in places] * 3
    first = clusters.learn(sents, n_clusters=4, min_count=3, dim=4)
    assert first == clusters.learn(sents, n_clusters=4, min_count=3, dim=4)
    assert len({first[d.lower()] for d in days}) == 1 and len({first[p.lower()] for p in places}) == 1
    assert first["senin"] != first["jakarta"]


# --- data helpers ----------------------------------------------------------------------------------

def test_label_mapping_and_spans():
    tags = data.map_tags(["B-PPL", "I-PPL", "O", "B-EVT", "I-EVT", "B-IND", "I-PLC"], data.LABEL_MAPS["nerp"])
    assert tags == ["B-PER", "I-PER", "O", "O", "O", "B-ORG", "B-LOC"]
    assert data.spans(tags) == {(0, 2, "PER"), (5, 6, "ORG"), (6, 7, "LOC")}


def test_the_short_form_convention_is_read_from_the_annotation():
    from training.entities_data import MIN_SHORT_FORMS, Sentence, short_form_labels

    inside = Sentence("a", ["Mahkamah", "Konstitusi", "(MK)", "memutuskan"], ["B-ORG", "I-ORG", "I-ORG", "O"], "x")
    inside_spaced = Sentence("b", ["Partai", "X", "(", "PX", ")", "menang"],
                             ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "O"], "x")
    apart = Sentence("c", ["Partai", "X", "(", "PX", ")"], ["B-ORG", "I-ORG", "O", "B-ORG", "O"], "x")
    person = Sentence("d", ["Joko", "Widodo", "(Jokowi)"], ["B-PER", "I-PER", "B-PER"], "x")
    nickname = Sentence("e", ["(Jokowi)", "datang"], ["B-PER", "O"], "x")  # a bracketed name alone is no short form
    assert short_form_labels([inside] * MIN_SHORT_FORMS + [inside_spaced] * 3 + [apart] * 5 + [person, nickname] * 3) \
        == ["ORG"]
    assert short_form_labels([inside] * 3 + [apart] * 5) == []
    assert short_form_labels([inside] * (MIN_SHORT_FORMS - 1)) == []  # too few to say


def test_place_heads_are_read_from_the_annotation():
    from training.entities_data import MIN_PLACE_HEADS, Sentence, place_heads

    village = Sentence("a", ["Desa", "Gondang", "terdiri"], ["B-LOC", "I-LOC", "O"], "x")
    outside = Sentence("b", ["Desa", "Wates", "itu"], ["O", "B-LOC", "O"], "x")
    person = Sentence("c", ["Pak", "Hadi", "datang"], ["O", "B-PER", "O"], "x")
    assert place_heads([village] * MIN_PLACE_HEADS + [outside] + [person] * 20) == ["Desa"]
    assert place_heads([village] * MIN_PLACE_HEADS + [outside] * 3) == []  # under 80 % of its uses
    assert place_heads([village] * (MIN_PLACE_HEADS - 1)) == []


def test_truecase_uses_casing_of_cased_sets():
    cased = [data.Sentence("a", ["Kata", "ketua", "PKB", "di", "Jakarta"], ["O", "O", "B-ORG", "O", "B-LOC"], "x")]
    table = data.casing_table(cased)
    lower = data.Sentence("b", ["kata", "pkb", "di", "jakarta", "budi"], ["O", "B-ORG", "O", "B-LOC", "B-PER"], "nerp")
    (out,) = data.truecase([lower], table)
    assert out.tokens == ["Kata", "PKB", "di", "Jakarta", "Budi"]




def test_multilingual_training_helpers():
    from training import entities_multi as multi

    sent = data.Sentence("1", ["习近平", "在", "北京", "ABC"], ["B-PER", "O", "B-LOC", "B-ORG"], "uner-gsdsimp.zh")
    chars = multi.to_chars(sent)
    assert chars.tokens == ["习", "近", "平", "在", "北", "京", "ABC"]
    assert chars.tags == ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "B-ORG"]
    assert multi.model_args(["multi", "--out", "/tmp/x", "--score", "--c1", "0.3", "--results=r.jsonl"]) == \
        ["multi", "--c1", "0.3"]
    assert multi.lang_of("uner-bosque.pt") == "pt"


def test_dev_sentences_are_folded_by_document_and_scores_pool():
    from training import entities_multi as multi

    assert multi.document_of("en_ewt:email-enronsent29_01-0003") == "en_ewt:email-enronsent29_01"
    sents = [data.Sentence(f"en_ewt:doc{d}-{i:04d}", ["x"], ["O"], "uner-ewt.en") for d in range(20) for i in range(3)]
    folds = multi.document_folds(sents, 5)
    assert folds == multi.document_folds(sents, 5)  # deterministic
    assert sorted(set(folds)) == [0, 1, 2, 3, 4] and all(folds.count(k) == 12 for k in range(5))
    by_doc = {}
    for s, f in zip(sents, folds, strict=True):
        by_doc.setdefault(multi.document_of(s.id), set()).add(f)
    assert all(len(f) == 1 for f in by_doc.values())  # a document's sentences share their fold
    a, b = data.Score.empty(), data.Score.empty()
    a.add({(0, 1, "PER")}, {(0, 1, "PER"), (2, 3, "LOC")})
    b.add({(0, 2, "ORG")}, set())
    total = multi.pooled([a, b])
    assert (total.tp["PER"], total.fp["LOC"], total.fn["ORG"]) == (1, 1, 1)
    assert total.prf()[:3] == (0.5, 0.5, 0.5)


def test_extended_features_mark_sentence_initial_frequent_words():
    from pipeline.stages.entities import gazetteer
    from pipeline.stages.entities.features import FeatureExtractor

    ex = FeatureExtractor(gazetteer.load(), word_freq={"the": 7, "london": 4}, extended=True,
                          names={"first": ["sadiq"], "last": ["khan"]})
    feats = ex.sentence(['"', "The", "mayor", "Sadiq", "Khan", "visited", "London"])
    assert "first|czf=7" in feats[1] and not any(a.startswith("first|") for a in feats[6])
    assert "nm=f" in feats[3] and "nm=l" in feats[4] and "+1nm=l" in feats[3]
    assert "mid|czf=4" in feats[6]


def test_self_labelled_keeps_the_confident_sentences_with_entities():
    from pipeline.stages.entities import crf
    from training import entities_multi as multi

    model = crf.load("en-news-crf")
    texts = [["The", "company", "said", "that", "Microsoft", "will", "open", "an", "office", "in", "Chicago", "."],
             ["It", "was", "a", "good", "day", "."], ["Microsoft", "."]]
    got = multi.self_labelled(model, texts, "en", 0.0)
    assert [s.tokens for s in got] == [texts[0]]  # the second has no entity, the third is too short
    assert got[0].tags == model.tag_tokens(texts[0], "en")
    assert "B-ORG" in got[0].tags and got[0].source == "self-trained.en"
    assert multi.self_labelled(model, texts, "en", 1.01) == []  # no sequence is that probable


def test_corenlp_teacher_labels_become_iob2_entities():
    from training import corenlp_teacher as teacher

    labels = ["PER", "PER", "O", "ORG", "LOC", "LOC", "O", "PER"]
    assert teacher.io_spans(labels) == {(0, 2, "PER"), (3, 4, "ORG"), (4, 6, "LOC"), (7, 8, "PER")}
    assert teacher.iob2(labels) == ["B-PER", "I-PER", "O", "B-ORG", "B-LOC", "I-LOC", "O", "B-PER"]
    assert teacher.io_spans(["O", "O"]) == set() and teacher.iob2([]) == []


def test_distillation_refuses_an_unknown_teacher_in_one_line(capsys):
    from training import entities_multi as multi

    assert multi.main(["en", "--teacher", "corenlp:spanish", "--out", "/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "corenlp:spanish" in err


@pytest.mark.skipif(not __import__("training.corenlp_teacher").corenlp_teacher.installed(),
                    reason="CoreNLP's jars are not in .cache/corenlp/libs (scripts/corenlp-fetch installs them)")
def test_corenlp_teacher_tags_our_tokens_one_label_each():
    from training import corenlp_teacher as teacher

    sentence = ["Angela", "Merkel", "met", "Microsoft", "executives", "in", "Paris", "."]
    with teacher.CoreNlpCrf("4class") as model:  # the smallest English model (18 MB): ~2 CPU-s to load
        labels = model.tag_tokens(sentence)
        two = model.tag_tokens(["It", "rained", ".", "Then", "Obama", "spoke", "."])  # two sentences, one line
    assert labels == ["PER", "PER", "O", "ORG", "O", "O", "LOC", "O"]
    assert len(two) == 7 and two[4] == "PER"
