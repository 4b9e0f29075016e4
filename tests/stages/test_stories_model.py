"""The stories model and its states, without a broker: starts and joins, near duplicates, the quiet
period, redeliveries, expiry, and the same answers from memory, Redis and several Redis workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.stages.stories.model import Article, Story, StoryAssigner, StoryOptions, Vector
from pipeline.stages.stories.state import MemoryStoryState, RedisStoryState
from training.stories_data import bcubed

DAY0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

QUAKE = ("A strong earthquake struck Lisbon on Monday morning, collapsing old buildings in the Alfama district. "
         "Rescue teams searched the rubble for survivors while aftershocks shook Portugal's capital.")
QUAKE_2 = ("Rescue teams in Lisbon kept searching collapsed buildings in Alfama after the earthquake, "
           "as aftershocks rattled the Portuguese capital and survivors were pulled from the rubble.")
FOOTBALL = ("Real Madrid beat Sevilla three goals to one at the Bernabeu on Saturday, with a late header "
            "deciding a match that had been level for most of the second half.")
ELECTION = ("Voters in Finland elected a new parliament on Sunday; the opposition party won the most seats "
            "and its leader promised talks on a coalition government within the week.")


#: earlier articles on other subjects: the idf is learned from the stream, so a stream of two
#: articles would weigh every word they share at almost nothing
BACKGROUND = [
    "The central bank left interest rates unchanged and said inflation should ease later this year.",
    "Medieval manuscripts went on show at the national library, drawing long queues.",
    "Heavy snow closed mountain roads in the north, and schools in several villages stayed shut.",
    "The company reported higher quarterly profits on strong sales of its electric bicycles.",
    "Scientists described a new species of frog found in the cloud forests of the Andes.",
    "The city council approved a plan to add cycle lanes and plant trees along the river.",
]


def article(id_: str, text: str, title: str = "", when: datetime | None = DAY0, **kw) -> Article:
    return Article(id=id_, title=title, text=text, when=when, **kw)


def stream() -> list[Article]:
    """A few articles over three days: two stories and a near duplicate."""
    return [
        article("q1", QUAKE, "Earthquake strikes Lisbon", outlet="a.example", lang="en",
                entities=("Lisbon", "Alfama", "Portugal")),
        article("f1", FOOTBALL, "Real Madrid beat Sevilla", DAY0 + timedelta(hours=2), outlet="b.example"),
        article("q2", QUAKE_2, "Lisbon rescuers search rubble", DAY0 + timedelta(hours=5), outlet="c.example",
                lang="pt", entities=("Lisbon", "Alfama")),
        article("e1", ELECTION, "Finland votes", DAY0 + timedelta(days=1)),
        article("q3", "Copy of the quake report, reworded by an aggregator.", "Quake in Lisbon",
                DAY0 + timedelta(days=1), duplicate_of="q1", outlet="d.example"),
        article("f2", FOOTBALL.replace("Saturday", "the weekend"), "Madrid win at home", DAY0 + timedelta(days=2)),
    ]


def assign_all(assigner: StoryAssigner, articles: list[Article]) -> list[dict]:
    return [assigner.assign(a) for a in articles]


def primed(assigner: StoryAssigner) -> StoryAssigner:
    """``assigner`` after the background articles (dated a week before the stories)."""
    for i, text in enumerate(BACKGROUND):
        assigner.assign(article(f"bg{i}", text, when=DAY0 - timedelta(days=7)))
    return assigner


@pytest.fixture
def assigner() -> StoryAssigner:
    return primed(StoryAssigner(StoryOptions(), MemoryStoryState()))


def test_starts_and_joins(assigner):
    answers = {a.id: assigner.assign(a) for a in stream()}
    assert answers["q1"]["status"] == "started" and answers["q1"]["id"] == "q1"
    assert answers["q1"]["similarity"] is None  # nothing to compare with
    assert answers["f1"]["status"] == "started" and answers["f1"]["id"] == "f1"
    assert answers["q2"]["status"] == "joined" and answers["q2"]["id"] == "q1"
    assert answers["q2"]["similarity"] >= StoryOptions().threshold
    assert answers["e1"]["status"] == "started"
    assert answers["f2"] == {**answers["f2"], "status": "joined", "id": "f1"}


def test_summary(assigner):
    answers = {a.id: assigner.assign(a) for a in stream()}
    summary = answers["q3"]["summary"]
    assert summary["articles"] == 3
    assert summary["first_seen"] == "2026-03-02T08:00:00Z"
    assert summary["last_seen"] == "2026-03-03T08:00:00Z"
    assert summary["outlets"] == ["a.example", "c.example", "d.example"]
    assert summary["languages"] == ["en", "pt"]
    assert summary["top_entities"][:2] == ["Lisbon", "Alfama"]  # three mentions (with q3's), then two
    assert summary["title"] in {"Earthquake strikes Lisbon", "Lisbon rescuers search rubble"}


def test_near_duplicate_joins_its_original_at_once(assigner):
    answers = {a.id: assigner.assign(a) for a in stream()}
    assert answers["q3"]["id"] == "q1"
    assert answers["q3"]["status"] == "joined"
    assert answers["q3"]["similarity"] is None  # joined as a duplicate, not by similarity


def test_duplicate_of_an_unknown_original_is_compared_as_usual(assigner):
    answer = assigner.assign(article("x", QUAKE, duplicate_of="never-seen"))
    assert answer["status"] == "started" and answer["id"] == "x"


def test_quiet_period_closes_a_story(assigner):
    assigner.assign(article("q1", QUAKE, "Earthquake strikes Lisbon"))
    later = assigner.assign(article("q2", QUAKE_2, "Lisbon rescuers", DAY0 + timedelta(days=2)))
    assert later["id"] == "q1"  # within quiet_days (3) of the story's last article
    months = assigner.assign(article("q9", QUAKE, "Earthquake strikes Lisbon", DAY0 + timedelta(days=90)))
    assert months["status"] == "started" and months["id"] == "q9"
    before = assigner.assign(article("q0", QUAKE_2, "Lisbon quake", DAY0 - timedelta(days=30)))
    assert before["status"] == "started"  # long before the story started: not that story either


def test_same_answer_when_delivered_again(assigner):
    articles = stream()
    first = assign_all(assigner, articles)
    assert assign_all(assigner, articles) == first
    assert assigner.assign(articles[0])["summary"]["articles"] == 1  # the answer it had, not the story now


def test_closed_stories_expire_and_memory_stays_bounded():
    options = StoryOptions(quiet_days=1, expire_days=2, max_terms=20)
    state = MemoryStoryState()
    assigner = StoryAssigner(options, state)
    primed(assigner)
    assigner.assign(article("q1", QUAKE))
    assigner.assign(article("f1", FOOTBALL))
    assert {"q1", "f1"} <= set(state.stories)
    assert all(len(Story.decode(raw).terms) <= 20 for raw in state.stories.values())
    assigner.assign(article("e1", ELECTION, when=DAY0 + timedelta(days=5)))
    assert "q1" not in state.stories and "f1" not in state.stories and "e1" in state.stories
    assert not any(story in {"q1", "f1"} for posting in state.postings.values() for story in posting)


def test_undated_articles_never_close(assigner):
    assert assigner.assign(article("q1", QUAKE, when=None))["summary"]["first_seen"] is None
    assert assigner.assign(article("q2", QUAKE_2, when=None))["id"] == "q1"


def test_canonical_entities_weigh_by_their_mentions_whole_or_as_the_words_of_their_names():
    import math

    text = "Tara Reid checked into Promises. Reid's rep spoke."
    rehab = article("r1", text, entities=("Tara Reid", "Promises", "Reid"), mentions=(3, 2, 1))

    def entity_block(options: StoryOptions, a: Article) -> dict[int, float]:
        f = StoryAssigner(options, MemoryStoryState()).features(a)
        return {t: w for t, w in zip(f.terms.tolist(), f.entities.tolist(), strict=True) if w}

    whole = entity_block(StoryOptions(name_words=False), rehab)
    assert sorted(whole.values()) == pytest.approx(sorted(1 + math.log(c) for c in (3, 2, 1)))
    words = entity_block(StoryOptions(name_words=True), rehab)  # tara 3, promises 2, reid 3 + 1
    assert sorted(words.values()) == pytest.approx(sorted(1 + math.log(c) for c in (3, 2, 4)))
    # the words are the stand-in's terms: an article without entities meets them
    stand_in = entity_block(StoryOptions(), article("r2", "Reid left Promises on Monday."))
    assert len(set(words) & set(stand_in)) == 2  # reid, promises (not monday, nor tara)
    assert not set(whole) & set(stand_in)
    with pytest.raises(ValueError, match="2 mention counts for 3 entities"):
        StoryAssigner(StoryOptions(), MemoryStoryState()).features(article("r3", text, entities=rehab.entities,
                                                                           mentions=(1, 2)))


def test_the_year_the_texts_mention_and_the_publication_year_weigh_the_similarity():
    """A story's own centroid compared with it (cosine 1): times ``year_match`` for an article whose
    text mentions most the year its story's texts mention most, whatever the publication years;
    ``year_mismatch`` for one published in another year than the story's articles; else untouched."""
    assigner = primed(StoryAssigner(StoryOptions(year_match=1.5, year_mismatch=0.5), MemoryStoryState()))
    assigner.assign(article("q1", f"{QUAKE} The last quake this strong hit the city in 1969.", "Lisbon quake"))
    story = Story.decode(assigner.state.stories["q1"])  # as stored
    assert (story.year(), story.text_year()) == (DAY0.year, 1969)
    own = Vector(story.terms, story.weights)
    sims = [assigner.similarities(own, [story], None, year, text_year=text_year)[0]
            for year, text_year in ((DAY0.year, 1969), (2023, None), (2023, 1969), (DAY0.year, 2020), (None, None))]
    assert sims == pytest.approx([1.5, 0.5, 0.75, 1.0, 1.0])
    # the year it was published, mentioned most, tells no event from another; undated, it is the text's year
    own_year = f"{QUAKE} The worst of {DAY0.year} so far; in {DAY0.year} the city had been spared."
    assert assigner.features(article("q2", own_year)).text_year is None
    assert assigner.features(article("q3", own_year, when=None)).text_year == DAY0.year


def test_options_are_checked():
    with pytest.raises(ValueError):
        StoryOptions(quiet_days=5, expire_days=2)
    with pytest.raises(ValueError):
        StoryOptions(entity_weight=1.5)


def test_bcubed():
    predicted = {"a": "1", "b": "1", "c": "2"}
    gold = {"a": "x", "b": "y", "c": "y"}
    p, r, f = bcubed(predicted, gold)
    assert (p, r, f) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert bcubed(gold, gold) == (1.0, 1.0, 1.0)
    assert bcubed(predicted, gold, ["b", "c"]) == pytest.approx((1.0, 0.5, 2 / 3))


@pytest.fixture
def redis_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_memory_and_redis_give_the_same_answers(redis_client, redis_namespace):
    articles = stream()
    memory = assign_all(primed(StoryAssigner(StoryOptions(), MemoryStoryState())), articles)
    shared = primed(StoryAssigner(StoryOptions(), RedisStoryState(redis_client, prefix=redis_namespace)))
    assert assign_all(shared, articles) == memory
    assert assign_all(shared, articles) == memory  # delivered again


def test_two_redis_workers_give_the_answers_of_one(redis_client, redis_namespace):
    articles = [article(f"bg{i}", text, when=DAY0 - timedelta(days=7)) for i, text in enumerate(BACKGROUND)]
    articles += stream()
    one = assign_all(StoryAssigner(StoryOptions(), MemoryStoryState()), articles)
    workers = [StoryAssigner(StoryOptions(), RedisStoryState(redis_client, prefix=redis_namespace)) for _ in range(2)]
    alternating = [workers[i % 2].assign(a) for i, a in enumerate(articles)]
    assert alternating == one
    restarted = StoryAssigner(StoryOptions(), RedisStoryState(redis_client, prefix=redis_namespace))
    assert assign_all(restarted, articles) == one  # a restarted worker resumes with what was decided


def test_workers_that_start_late_or_fall_behind_load_the_snapshot_and_answer_as_one(redis_client, redis_namespace):
    """The document frequencies come from a log each worker applies; every 4 versions one is saved
    as a snapshot and the log before it (but for 2 entries) is dropped. A worker that starts after
    that, or that was away for longer, loads the snapshot; all answer as one memory state does."""
    articles = [article(f"bg{i}", text, when=DAY0 - timedelta(days=7)) for i, text in enumerate(BACKGROUND)]
    articles += stream() + [article(f"x{i}", f"{BACKGROUND[i % 6]} Report number {i}.", when=DAY0 + timedelta(days=2))
                            for i in range(12)]
    one = assign_all(StoryAssigner(StoryOptions(), MemoryStoryState()), articles)

    def worker() -> StoryAssigner:
        return StoryAssigner(StoryOptions(), RedisStoryState(redis_client, prefix=redis_namespace, snapshot_every=4,
                                                             log_margin=2))

    first = worker()
    answers = [first.assign(a) for a in articles[:10]]
    assert first.state.snapshots_saved >= 2 and redis_client.llen(f"{redis_namespace}:dflog") < 10
    late, away = worker(), worker()
    answers += [late.assign(a) for a in articles[10:14]]  # starts after two snapshots: loads the last one
    assert late.state.snapshots_loaded == 1
    answers += [first.assign(a) for a in articles[14:20]]  # the first worker carries on past another snapshot
    away.assign(articles[0])  # answered already: no counters needed
    answers += [away.assign(a) for a in articles[20:]]
    assert away.state.snapshots_loaded == 1 and answers == one


def test_an_emptied_state_or_one_of_an_older_version_is_noticed(redis_client, redis_namespace):
    worker = StoryAssigner(StoryOptions(), RedisStoryState(redis_client, prefix=redis_namespace))
    for a in stream()[:3]:
        worker.assign(a)
    for key in redis_client.scan_iter(match=f"{redis_namespace}:*"):
        redis_client.delete(key)  # Redis restarted empty: the worker's counters are ahead of it
    fresh = StoryAssigner(StoryOptions(), MemoryStoryState())
    assert [worker.assign(a) for a in stream()] == [fresh.assign(a) for a in stream()]
    assert worker.state.snapshots_loaded == 1
    redis_client.hset(f"{redis_namespace}:old:meta", mapping={"v": 7, "docs": 7})  # the first format had none
    old = StoryAssigner(StoryOptions(), RedisStoryState(redis_client, prefix=f"{redis_namespace}:old"))
    with pytest.raises(RuntimeError, match="written by an older version"):
        old.assign(stream()[0])


def test_a_worker_that_read_before_another_committed_decides_again(redis_client, redis_namespace):
    state = RedisStoryState(redis_client, prefix=redis_namespace)
    slow = primed(StoryAssigner(StoryOptions(), state))
    fast = StoryAssigner(StoryOptions(), RedisStoryState(redis_client, prefix=redis_namespace))
    begin = state.begin

    def begin_then_lose_the_race(*args, **kwargs):
        view = begin(*args, **kwargs)
        if not slow.retries:
            fast.assign(article("q1", QUAKE, "Earthquake strikes Lisbon"))
        return view

    state.begin = begin_then_lose_the_race
    answer = slow.assign(article("q2", QUAKE_2, "Lisbon rescuers search rubble"))
    assert slow.retries == 1
    assert answer["id"] == "q1" and answer["status"] == "joined"


def test_the_seed_pages_form_their_two_events():
    """The five seed pages (Indonesian) through the real chain: the 2020 Nagorno-Karabakh war (000,
    001, 003) and the September 2023 offensive (002, 004) in the arrival order of the directory. With
    three articles counted every word they share used to weigh nothing (cold start): the idf prior
    lets them join; the dates they give ("Selasa (29/9)", publication dates) keep the events apart."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PIPELINE__STAGES__CHAIN": '["clean","language","entities","dedup","stories"]'}
    out = subprocess.run([sys.executable, "-m", "pipeline", "enrich", str(root / "seeds"), "--no-progress"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    story = {json.loads(line)["source"].rsplit("/", 1)[-1][:3]: json.loads(line)["story"]["id"]
             for line in out.splitlines() if line.strip()}
    assert len(story) == 5
    assert story["000"] == story["001"] == story["003"]
    assert story["002"] == story["004"] != story["000"]


def batch_stream() -> list[Article]:
    """A dated stream over ten days in which stories close and expire (expire_days 2 below), with a
    redelivery and near duplicates whose original comes in the same batch or an earlier one."""
    texts = [QUAKE, QUAKE_2, FOOTBALL, ELECTION, *BACKGROUND]
    articles = [article(f"n{i}", f"{texts[i % len(texts)]} Update {i}.", when=DAY0 + timedelta(hours=5 * i))
                for i in range(30)]
    articles.insert(4, article("d1", "A copy of the first report.", duplicate_of="n0", when=DAY0 + timedelta(hours=9)))
    articles.insert(12, articles[7])  # delivered again, in the same batch
    articles.insert(20, article("d2", "A copy.", duplicate_of="n1", when=DAY0 + timedelta(days=9)))  # its story gone
    articles.insert(25, article("d3", "A copy of a copy.", duplicate_of="d1", when=DAY0 + timedelta(days=2)))
    return articles


def test_batches_give_the_answers_of_one_by_one(redis_client, redis_namespace):
    """``assign_many`` on Redis (a few round trips per batch, decisions made locally in order) gives
    what ``assign`` on the memory state gives one article at a time, whatever the batches, while
    stories expire inside a batch; a worker whose batch was overtaken by another's commit decides
    again; batches delivered again get the answers they had."""
    options = StoryOptions(quiet_days=1, expire_days=2)
    articles = batch_stream()
    memory = StoryAssigner(options, MemoryStoryState())
    one = [memory.assign(a) for a in articles]
    assert any(a["status"] == "joined" for a in one) and len(memory.state.stories) < len({a["id"] for a in one})
    for size in (1, 4, len(articles)):
        state = RedisStoryState(redis_client, prefix=f"{redis_namespace}:{size}")
        batches = StoryAssigner(options, state)
        got = [a for k in range(0, len(articles), size) for a in batches.assign_many(articles[k:k + size])]
        assert got == one
        assert batches.assign_many(articles) == one  # delivered again
    # two workers: the second commits while the first is between its read and its first commit
    state = RedisStoryState(redis_client, prefix=f"{redis_namespace}:race")
    first, second = StoryAssigner(options, state), StoryAssigner(options, RedisStoryState(redis_client,
                                                                                           prefix=state.prefix))
    read_many = state.read_many

    def read_then_lose_the_race(*args, **kwargs):
        read = read_many(*args, **kwargs)
        if not first.retries:
            second.assign_many(articles[:3])
        return read

    state.read_many = read_then_lose_the_race
    assert first.assign_many(articles[:20]) == one[:20] and first.retries == 1
    assert second.assign_many(articles[20:]) == one[20:]
