import random

import pytest

from pipeline.stages.base import Context
from pipeline.stages.clean.text_page import extract_text_page
from pipeline.stages.dedup import DedupStage, index_namespace, index_params
from pipeline.stages.dedup import index as index_module
from pipeline.stages.dedup.fingerprint import (
    Fingerprinter,
    estimate_jaccard,
    matches,
    min_matches,
    normalise,
    words_of,
)
from pipeline.stages.dedup.index import Entry, IndexParams, MemoryIndex, RedisIndex
from tests.conftest import REDIS_URL, seed_files


def fingerprinter(settings):
    d = settings.stages.dedup
    return Fingerprinter(d.num_perm, d.bands, d.band_rows, d.shingle_words, d.min_words, d.seed)


def article(seed: int, words: int = 300) -> str:
    rng = random.Random(seed)
    vocab = [f"kata{i}" for i in range(3000)]
    return " ".join(rng.choice(vocab) for _ in range(words))


def params(settings, **changes) -> IndexParams:
    base = index_params(settings.stages.dedup)
    return IndexParams(**{**base.__dict__, **changes})


@pytest.fixture(params=["memory", "redis"])
def make_index(request, settings):
    made = []
    # only the Redis variant needs (and skips without) the tests' Redis
    redis_namespace = request.getfixturevalue("redis_namespace") if request.param == "redis" else None

    def make(**changes):
        p = params(settings, **changes)
        if request.param == "memory":
            return MemoryIndex(p)
        idx = RedisIndex(REDIS_URL, f"{redis_namespace}:{len(made)}", p)
        made.append(idx)
        return idx

    yield make
    for idx in made:
        idx.close()


def check(index, fp, record_id, text, day=20000):
    return index.check_and_add_many([Entry(record_id, fp.fingerprint(text), day)])[0]


def test_normalise_and_words():
    assert normalise("  Ｈｅｌｌｏ\u00a0 WORLD\n") == "hello world"
    assert words_of(normalise("“Kami khawatir,” kata—Peskov. (AS) 'ok'")) == [b"kami", b"khawatir", b"kata",
                                                                              b"peskov", b"as", b"ok"]


def test_estimate_corrects_for_chance_agreement():
    assert estimate_jaccard(512, 512) == 1.0
    assert estimate_jaccard(0, 512) == 0.0
    assert estimate_jaccard(128, 512) == 0.0  # a quarter of 2-bit values agree by chance
    k = min_matches(0.8, 512)
    assert estimate_jaccard(k, 512) >= 0.8 > estimate_jaccard(k - 1, 512)


def test_matches_counts_equal_two_bit_values():
    assert matches(b"\x00\x00", b"\x00\x00") == 8
    assert matches(b"\x00", b"\x01") == 3
    assert matches(b"\x00", b"\x03") == 3
    assert matches(b"\x00", b"\xff") == 0
    assert matches(bytes([0b11100100]), bytes([0b11100100])) == 4


def test_fingerprints_are_the_same_in_every_process(settings):
    a = fingerprinter(settings).fingerprint(article(1))
    b = fingerprinter(settings).fingerprint(article(1))
    assert a == b and len(a.signature) == 128 and len(a.bands) == 16  # 512 two-bit values


def test_quotes_dashes_and_case_do_not_change_the_fingerprint(settings):
    fp = fingerprinter(settings)
    text = 'He said "the plan - agreed in May - is final" and left. ' * 5
    edited = 'He said “the plan — agreed in May — is final” and left. ' * 5
    assert matches(fp.fingerprint(text).signature, fp.fingerprint(edited.upper()).signature) == 512


def test_verdicts(make_index, settings):
    index, fp = make_index(), fingerprinter(settings)
    base = article(1)
    near = base.replace("kata1 ", "kataX ", 3) + " tambahan satu kalimat di akhir"
    assert check(index, fp, "a", base)["status"] == "unique"
    assert check(index, fp, "b", "  " + base.upper() + " ") == {"status": "exact_duplicate", "duplicate_of": "a",
                                                                  "similarity": 1.0}
    verdict = check(index, fp, "c", near)
    assert verdict["status"] == "near_duplicate" and verdict["duplicate_of"] == "a"
    assert 0.8 <= verdict["similarity"] < 1.0
    assert check(index, fp, "d", article(2))["status"] == "unique"


def test_redelivery_gets_its_earlier_verdict(make_index, settings):
    index, fp = make_index(), fingerprinter(settings)
    text = article(3)
    near = text + " dan satu kalimat lagi di akhir berita ini"
    first = check(index, fp, "x", text)
    dup = check(index, fp, "y", text)
    near_verdict = check(index, fp, "z", near)
    assert near_verdict["status"] == "near_duplicate"
    for _ in range(2):
        assert check(index, fp, "x", text) == first == {"status": "unique", "duplicate_of": None, "similarity": None}
        assert check(index, fp, "y", text) == dup == {"status": "exact_duplicate", "duplicate_of": "x",
                                                      "similarity": 1.0}
        assert check(index, fp, "z", near) == near_verdict


def test_hex_and_free_form_ids_come_back_as_given(make_index, settings):
    index, fp = make_index(), fingerprinter(settings)
    hex_id = "0123456789abcdef0123456789abcdef"
    check(index, fp, hex_id, article(4))
    check(index, fp, "feed-42/story 7 ✓", article(5))
    assert check(index, fp, "b", article(4))["duplicate_of"] == hex_id
    assert check(index, fp, "c", article(5) + " dan seterusnya")["duplicate_of"] == "feed-42/story 7 ✓"


def test_short_texts_only_match_exactly(make_index, settings):
    index, fp = make_index(), fingerprinter(settings)
    assert check(index, fp, "s1", "Breaking news tonight")["status"] == "unique"
    assert check(index, fp, "s2", "Breaking news tonight!")["status"] == "unique"
    assert check(index, fp, "s3", "breaking  NEWS tonight")["status"] == "exact_duplicate"


def test_records_past_the_horizon_are_forgotten(make_index, settings):
    index, fp = make_index(horizon_days=30), fingerprinter(settings)
    text = article(6)
    assert check(index, fp, "old", text, day=20000)["status"] == "unique"
    assert check(index, fp, "month-later", text, day=20029)["duplicate_of"] == "old"
    assert check(index, fp, "much-later", text, day=20031)["status"] == "unique"
    assert check(index, fp, "copy", text + " lagi", day=20031)["duplicate_of"] == "much-later"


def test_memory_and_redis_agree_on_a_stream(settings, redis_namespace):
    fp = fingerprinter(settings)
    rng = random.Random(7)
    texts = [article(i % 9, 150 + 10 * (i % 5)) for i in range(40)]
    texts += [t + " catatan editor " * (i % 3) for i, t in enumerate(texts[:15])]
    ids = [f"{i:032x}" if i % 4 else f"rec-{i}" for i in range(len(texts))]
    order = list(range(len(texts))) + rng.sample(range(len(texts)), 10)  # with redeliveries
    p = params(settings)
    memory, shared = MemoryIndex(p), RedisIndex(REDIS_URL, redis_namespace, p)
    batch = [Entry(ids[i], fp.fingerprint(texts[i]), 20000 + i // 10) for i in order]
    got_memory = memory.check_and_add_many(batch)
    got_redis = shared.check_and_add_many(batch[:23]) + shared.check_and_add_many(batch[23:])
    shared.close()
    assert got_memory == got_redis
    assert {v["status"] for v in got_memory} == {"unique", "exact_duplicate", "near_duplicate"}


def test_expired_chunks_are_dropped_and_their_entries_swept(settings, redis_namespace, monkeypatch):
    monkeypatch.setattr(index_module, "CHUNK_BITS", 2)  # 4 slots per chunk, to see it happen
    p = params(settings, horizon_days=2, capacity=40)
    idx, fp = RedisIndex(REDIS_URL, redis_namespace, p), fingerprinter(settings)
    for day in range(10):
        idx.check_and_add_many([Entry(f"d{day}-{i}", fp.fingerprint(article(100 + 4 * day + i)), 20000 + day)
                                for i in range(4)])
    for _ in range(30):  # more batches move the sweep cursor over every bucket
        idx.check_and_add_many([Entry("last", fp.fingerprint(article(999)), 20009)])
    chunks = {int(k.rsplit(b":", 1)[1]) for k in idx.client.scan_iter(match=f"{redis_namespace}:r:*")}
    # day d holds sequence numbers 4d+1 .. 4d+4 (chunks d and d+1); days 7-9 are within the horizon
    assert chunks == {7, 8, 9, 10}
    first_live = 7 * 4
    import struct

    for key in idx.client.scan_iter(match=f"{redis_namespace}:[eb]:*"):
        raw = idx.client.get(key)
        size = 12 if b":e:" in key else 8
        seqs = [struct.unpack_from("<I", raw, off + size - 4)[0] for off in range(0, len(raw), size)]
        assert seqs and all(seq >= first_live for seq in seqs), key
    idx.close()


def test_seeds_are_not_duplicates_of_each_other(settings):
    stage = DedupStage(settings.stages.dedup, store="memory")
    ctx = Context(worker="t")
    records = []
    for i, path in enumerate(seed_files()):
        text = extract_text_page(path.read_text(encoding="utf-8")).text
        records.append({"schema": "news-pipeline/record/1", "id": f"seed{i}", "text": text,
                        "fetched_at": "2026-11-21T00:00:00Z", "trace": []})
    results = stage.run_many(records, [ctx] * len(records))
    assert [r["dedup"]["status"] for r in results] == ["unique"] * 5
    sigs = [stage.fingerprinter.fingerprint(r["text"]).signature for r in records]
    assert max(estimate_jaccard(matches(a, b), 512) for i, a in enumerate(sigs) for b in sigs[i + 1:]) < 0.3
    assert stage.stats.extra["dedup_unique"] == 5


def test_bad_fetch_time_is_a_dead_letter_not_a_failed_batch(settings):
    stage = DedupStage(settings.stages.dedup, store="memory")
    good = {"schema": "news-pipeline/record/1", "id": "g", "text": article(1), "fetched_at": "2026-11-21T00:00:00Z"}
    bad = {**good, "id": "b", "fetched_at": "soon"}
    results = stage.run_many([bad, good], [Context(worker="t")] * 2)
    assert results[0].reason == "invalid_event"
    assert results[1]["dedup"]["status"] == "unique"


def test_namespace_changes_with_the_parameters(settings):
    import dataclasses

    d = settings.stages.dedup
    assert index_namespace(d).startswith(d.namespace + ":")
    assert index_namespace(d) != index_namespace(dataclasses.replace(d, shingle_words=5))


def _wipe(namespace: str) -> None:
    """What an empty restart of Redis does to one namespace: every key gone."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        client.delete(key)
    client.close()


def test_an_index_that_lost_its_memory_says_index_reset_to_every_worker(settings, redis_namespace):
    p, fp = params(settings), fingerprinter(settings)
    one, two = RedisIndex(REDIS_URL, redis_namespace, p), RedisIndex(REDIS_URL, redis_namespace, p)
    assert check(one, fp, "a", article(1))["status"] == "unique"
    assert check(two, fp, "b", article(2))["status"] == "unique"
    _wipe(redis_namespace)
    # the first worker after the loss notices the new epoch; a repeat of "a" cannot be recognised
    assert check(one, fp, "a2", article(1))["status"] == "index_reset"
    assert one.resets_seen == 1
    # the other worker notices too, and a duplicate found after the reset is still one
    assert check(two, fp, "a3", article(1))["status"] == "exact_duplicate"
    assert check(two, fp, "c", article(3))["status"] == "index_reset"
    # a worker that starts after the reset learns it from the index
    three = RedisIndex(REDIS_URL, redis_namespace, p)
    assert check(three, fp, "d", article(4))["status"] == "index_reset"
    for idx in (one, two, three):
        idx.close()


def test_a_fresh_index_is_not_a_reset(settings, redis_namespace):
    p, fp = params(settings), fingerprinter(settings)
    idx = RedisIndex(REDIS_URL, redis_namespace, p)
    assert [check(idx, fp, f"r{i}", article(i))["status"] for i in range(3)] == ["unique"] * 3
    assert idx.resets_seen == 0 and idx.stored_epoch()
    idx.close()


def test_the_embedded_index_folder_remembers_its_epoch_across_runs(settings, redis_namespace, tmp_path):
    """`pipeline run` notes the embedded index's epoch in its folder; an index that comes back
    without it (data lost) is marked reset before any worker starts."""
    import dataclasses

    from pipeline.streaming.supervisor import Supervisor

    dedup = dataclasses.replace(settings.stages.dedup, namespace=redis_namespace)
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    s = dataclasses.replace(settings, stages=dataclasses.replace(settings.stages, dedup=dedup),
                            embedded_index=dataclasses.replace(settings.embedded_index, dir=str(index_dir)))
    supervisor = Supervisor(s)
    supervisor.dedup_store = REDIS_URL
    ns = index_namespace(dedup)
    p, fp = index_params(dedup), fingerprinter(settings)
    idx = RedisIndex(REDIS_URL, ns, p)
    assert check(idx, fp, "a", article(1))["status"] == "unique"
    supervisor._remember_index_epoch()
    assert (index_dir / "epoch").read_text().strip() == idx.stored_epoch()
    supervisor._check_index_epoch()  # the same index: nothing to say
    assert check(RedisIndex(REDIS_URL, ns, p), fp, "b", article(2))["status"] == "unique"
    _wipe(ns)
    supervisor._check_index_epoch()
    assert check(RedisIndex(REDIS_URL, ns, p), fp, "a2", article(1))["status"] == "index_reset"
    idx.close()
