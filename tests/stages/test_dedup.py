import random

import pytest

from pipeline.stages.clean.text_page import extract_text_page
from pipeline.stages.dedup import DedupStage, index_namespace
from pipeline.stages.dedup.fingerprint import Fingerprinter, normalise, similarity
from pipeline.stages.dedup.index import MemoryIndex, RedisIndex
from tests.conftest import REDIS_URL, seed_files


def fingerprinter(settings):
    d = settings.stages.dedup
    return Fingerprinter(d.num_perm, d.bands, d.shingle_words, d.min_words, d.seed)


def article(seed: int, words: int = 300) -> str:
    rng = random.Random(seed)
    vocab = [f"kata{i}" for i in range(3000)]
    return " ".join(rng.choice(vocab) for _ in range(words))


@pytest.fixture(params=["memory", "redis"])
def index(request, settings, redis_namespace):
    if request.param == "memory":
        yield MemoryIndex(settings.stages.dedup.threshold)
    else:
        idx = RedisIndex(REDIS_URL, redis_namespace, settings.stages.dedup.threshold)
        yield idx
        idx.close()


def test_normalise():
    assert normalise("  Ｈｅｌｌｏ\u00a0 WORLD\n") == "hello world"


def test_fingerprints_are_the_same_in_every_process(settings):
    fp = fingerprinter(settings)
    a = fp.fingerprint(article(1))
    b = Fingerprinter(**{k: getattr(fp, k) for k in ("num_perm", "bands", "min_words", "seed")},
                      shingle_words=fp.shingle_words).fingerprint(article(1))
    assert a == b


def test_verdicts(index, settings):
    fp = fingerprinter(settings)
    base = article(1)
    near = base.replace("kata1 ", "kataX ", 3) + " tambahan satu kalimat di akhir"
    other = article(2)
    assert index.check_and_add("a", fp.fingerprint(base))["status"] == "unique"
    exact = index.check_and_add("b", fp.fingerprint("  " + base.upper() + " "))
    assert exact == {"status": "exact_duplicate", "duplicate_of": "a", "similarity": 1.0}
    verdict = index.check_and_add("c", fp.fingerprint(near))
    assert verdict["status"] == "near_duplicate" and verdict["duplicate_of"] == "a"
    assert 0.8 <= verdict["similarity"] < 1.0
    assert index.check_and_add("d", fp.fingerprint(other))["status"] == "unique"


def test_redelivery_gets_its_earlier_verdict(index, settings):
    fp = fingerprinter(settings)
    text = article(3)
    first = index.check_and_add("x", fp.fingerprint(text))
    assert index.check_and_add("x", fp.fingerprint(text)) == first == {"status": "unique", "duplicate_of": None,
                                                                        "similarity": None}
    dup = index.check_and_add("y", fp.fingerprint(text))
    assert index.check_and_add("y", fp.fingerprint(text)) == dup
    assert dup["duplicate_of"] == "x"


def test_short_texts_only_match_exactly(index, settings):
    fp = fingerprinter(settings)
    assert index.check_and_add("s1", fp.fingerprint("Breaking news tonight"))["status"] == "unique"
    assert index.check_and_add("s2", fp.fingerprint("Breaking news tonight!"))["status"] == "unique"
    assert index.check_and_add("s3", fp.fingerprint("breaking  NEWS tonight"))["status"] == "exact_duplicate"


def test_memory_and_redis_agree_on_a_stream(settings, redis_namespace):
    fp = fingerprinter(settings)
    texts = [article(i % 7, 200) for i in range(20)]
    texts += [t + " catatan editor" for t in texts[:5]]
    memory = MemoryIndex(settings.stages.dedup.threshold)
    shared = RedisIndex(REDIS_URL, redis_namespace, settings.stages.dedup.threshold)
    for i, text in enumerate(texts):
        f = fp.fingerprint(text)
        assert memory.check_and_add(str(i), f) == shared.check_and_add(str(i), f), i
    shared.close()


def test_seeds_are_not_duplicates_of_each_other(settings):
    stage = DedupStage(settings.stages.dedup, store="memory")
    fp = stage.fingerprinter
    texts = [extract_text_page(p.read_text(encoding="utf-8")).text for p in seed_files()]
    sigs = [fp.fingerprint(t).signature for t in texts]
    for i in range(len(sigs)):
        for j in range(i + 1, len(sigs)):
            assert similarity(sigs[i], sigs[j]) < 0.3
    for i, text in enumerate(texts):
        assert stage.index.check_and_add(str(i), fp.fingerprint(text))["status"] == "unique"


def test_namespace_names_the_parameters(settings):
    assert index_namespace(settings.stages.dedup).startswith(settings.stages.dedup.namespace + ":dedup1:p128b16")
