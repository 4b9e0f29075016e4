"""Stories benchmark: BCubed quality of the story id each article gets on arrival (ECB+ dev set),
cross-validated over topics; docs/s and memory; the same through Redis.

    .venv/bin/python -m bench.stories                                   # memory state
    .venv/bin/python -m bench.stories --redis redis://127.0.0.1:6391/0  # + Redis state (identical?)
    .venv/bin/python -m bench.stories --open-stories 100000             # only throughput, 100,000 open stories

Quality: the 772 articles arrive in 5 random orders (fixed seeds); only id, title and text reach
the stage (never topic, story or url), as production hands them over: run once through the real
language and entities stages (canonical entities, read by the stage's own ``article_of``; cached in
bench/.cache/stories, keyed by the stages' code and models and each article's text; ``--stand-in``:
no entities, the model's capitalised-words stand-in). Grouped cross-validation over topics (GroupKFold, 5 folds):
for each fold the parameters of the grid with the best mean F1 over the orders on the training
topics' articles are chosen, then scored on the held-out topics' articles. Every article is in
every run (the stream is the whole set); a fold's score counts only its articles (BCubed over that
subset), so labels of held-out topics never choose anything. Then the final parameters (best mean
F1 on all topics) per order, and the defaults of ``StoryOptions``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import itertools
import math
import os
import random
import re
import statistics
import time
import tracemalloc
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import xxhash
from sklearn.model_selection import GroupKFold

from bench.common import CACHE, Progress, eval_dir
from pipeline.stages.stories.model import Article, StoryAssigner, StoryOptions
from pipeline.stages.stories.state import MemoryStoryState, RedisStoryState
from pipeline.streaming.worker import BATCH_MAX
from training.stories_data import SEEDS, arrival_order, bcubed, load_docs, run_order, with_entities

#: the parameters searched by cross-validation (everything else: the defaults)
#: (title_weight 2.5 and name_words on, chosen in every fold of the earlier grids, are the defaults' values)
GRID: dict[str, list] = {
    "threshold": [0.15, 0.18, 0.21, 0.24],
    "entity_weight": [0.3, 0.5],
    "size_exponent": [0.0, 0.2, 0.4],
    "year_match": [1.0, 1.4, 1.8],
}
#: options whose first grid value turns them off: the CV is also printed with each held at it (what it adds)
ABLATE = ("year_match",)
#: options that change an article's features (computed once per combination of their values)
FEATURE_OPTIONS = ("name_words", "entity_tokens", "bigrams", "month_names", "df_bits")


def _mean3(scores: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return tuple(statistics.mean(s[k] for s in scores) for k in range(3))  # type: ignore[return-value]


def _fmt(prf: tuple[float, float, float]) -> str:
    return f"P {prf[0]:.4f}  R {prf[1]:.4f}  F1 {prf[2]:.4f}"


def cross_validate(docs, orders, folds: int) -> tuple[dict, StoryOptions]:
    """Runs every grid point over every order; prints the folds and the CV mean; returns the
    predictions by grid point and the final options (best mean F1 on all topics)."""
    base = StoryOptions()
    gold = {d.article.id: d.story for d in docs}
    points = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    preds = {}
    features: dict[tuple, list] = {}
    with Progress("stories grid", total=len(points) * len(orders), unit="runs") as bar:
        for i, point in enumerate(points):
            options = dataclasses.replace(base, **point)
            key = tuple(getattr(options, name) for name in FEATURE_OPTIONS)
            if key not in features:
                features[key] = [StoryAssigner(options, MemoryStoryState()).features(d.article) for d in docs]
            preds[i] = [run_order(options, docs, order, features=features[key]) for order in orders]
            bar.advance(len(orders))

    def score(i: int, items: list[str] | None) -> tuple[float, float, float]:
        return _mean3([bcubed(p, gold, items) for p in preds[i]])

    print(f"grid ({len(points)} points): " + ", ".join(f"{k} {v}" for k, v in GRID.items()))
    groups = [d.topic for d in docs]
    splits = list(GroupKFold(n_splits=folds).split(docs, groups=groups))

    def held_out_scores(allowed: list[int], show: bool) -> list[tuple[float, float, float]]:
        """Per fold: the allowed point best on the training topics, scored on the held-out ones."""
        held_out = []
        for k, (train, test) in enumerate(splits):
            train_ids = [docs[j].article.id for j in train]
            test_ids = [docs[j].article.id for j in test]
            best = max(allowed, key=lambda i: (score(i, train_ids)[2], -i))
            result = score(best, test_ids)
            held_out.append(result)
            if show:
                topics = sorted({docs[j].topic for j in test})
                print(f"  fold {k + 1}: held-out topics {topics}; chosen {points[best]}; train F1 "
                      f"{score(best, train_ids)[2]:.4f}; held-out {_fmt(result)}")
        return held_out

    held_out = held_out_scores(list(range(len(points))), show=True)
    print(f"CV mean over {folds} folds (held-out topics, mean of {len(orders)} orders): {_fmt(_mean3(held_out))}")
    for name in ABLATE:
        off = GRID[name][0]
        without = held_out_scores([i for i, p in enumerate(points) if p[name] == off], show=False)
        print(f"  the same CV with {name} {off} (off) at every point: {_fmt(_mean3(without))}; per fold "
              + ", ".join(f"{s[2]:.4f}" for s in without))
    final = max(range(len(points)), key=lambda i: (score(i, None)[2], -i))
    print(f"final parameters (best on all topics): {points[final]}")
    for seed, p in zip(SEEDS, preds[final], strict=False):
        print(f"  order seed {seed}: {_fmt(bcubed(p, gold))}")
    print(f"  mean of {len(orders)} orders: {_fmt(score(final, None))}")
    return preds, dataclasses.replace(base, **points[final])


def quality_of_defaults(docs, orders) -> list[dict[str, str]]:
    gold = {d.article.id: d.story for d in docs}
    options = StoryOptions()
    preds = [run_order(options, docs, order) for order in orders]
    print("StoryOptions defaults: " + ", ".join(f"{k} {getattr(options, k)}" for k in GRID))
    for seed, p in zip(SEEDS, preds, strict=False):
        print(f"  order seed {seed}: {_fmt(bcubed(p, gold))}")
    print(f"  mean of {len(orders)} orders: {_fmt(_mean3([bcubed(p, gold) for p in preds]))}")
    return preds


def throughput(docs, order, runs: int) -> None:
    """Docs/s of assign (features included) with the memory state, median of ``runs``; the peak of
    Python allocations over one run (tracemalloc) and the stored bytes per story."""
    rates = []
    for _ in range(runs):
        state = MemoryStoryState()
        t0 = time.process_time()
        run_order(StoryOptions(), docs, order, state=state)
        rates.append(len(order) / (time.process_time() - t0))
    tracemalloc.start()
    state = MemoryStoryState()
    run_order(StoryOptions(), docs, order, state=state)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sizes = [len(raw) for raw in state.stories.values()]
    print(f"memory state: {statistics.median(rates):.0f} docs per CPU-second (median of {runs} runs: "
          + ", ".join(f"{r:.0f}" for r in rates) + f"); peak traced memory {peak / 2**20:.1f} MiB over one run "
          f"({len(sizes)} stories, {statistics.mean(sizes):.0f} bytes per stored story on average, "
          f"{max(sizes)} at most)")


def in_batches(assigner: StoryAssigner, articles: list[Article]) -> list[dict]:
    """The answers of ``articles`` given in batches of ``BATCH_MAX`` (what a stories worker takes at
    most at once from its topic), in order."""
    return [answer for k in range(0, len(articles), BATCH_MAX)
            for answer in assigner.assign_many(articles[k:k + BATCH_MAX])]


def redis_run(url: str, docs, orders, memory_preds: list[dict[str, str]]) -> None:
    """The defaults through RedisStoryState for every order: identical to the memory state?"""
    import redis

    client = redis.Redis.from_url(url)
    identical = True
    rates = []
    for order, expected in zip(orders, memory_preds, strict=True):
        state = RedisStoryState(client, prefix=f"bench-stories-{uuid.uuid4().hex[:8]}")
        t0, c0 = time.perf_counter(), time.process_time()
        articles = [docs[i].article for i in order]  # decided in the stage's batches
        got = {a.id: answer["id"] for a, answer in zip(articles, in_batches(StoryAssigner(StoryOptions(), state),
                                                                            articles), strict=True)}
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rates.append((len(order) / wall, len(order) / cpu))
        identical &= got == expected
        stories = len(set(got.values()))
        keys = state.memory_bytes()
        df_bytes = int(client.memory_usage(f"{state.prefix}:df", samples=0) or 0)
        state.clear()
    print(f"Redis state ({url}): assignments identical to the memory state in all {len(orders)} orders: "
          f"{'yes' if identical else 'NO'}")
    print(f"  {statistics.median(r[0] for r in rates):.0f} docs/s wall, {statistics.median(r[1] for r in rates):.0f} "
          f"docs per CPU-second of this process (median of {len(orders)} orders)")
    print(f"  Redis memory of the last run: {(keys - df_bytes) / stories:.0f} bytes per story ({stories} stories, "
          f"answers of its {len(docs)} articles included) + {df_bytes / 2**20:.1f} MiB document frequencies")
    client.close()


# --- throughput with many open stories (issue 18: >= 1,000 records/s per core, 100,000 open) ----------

SENTENCE = re.compile(r"(?<=[.!?])\s+")
SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "an", "is", "ber", "go", "nu", "pra", "zel", "ho",
             "fi", "mar", "te", "qua", "ly", "os", "wen", "dra", "ki", "bal", "ur", "sen", "jo", "tri", "em", "vo")
NAMES_PER_STORY = 3  # synthetic entity names of a story (person, place, organisation)
POOL_SENTENCES = 40  # sentences a synthetic story's articles are drawn from


def synthetic_name(story: int, salt: int) -> str:
    """A made-up two-word name for (story, salt): each word three syllables chosen by a hash of
    (story, salt, word), so that a word is shared by about one name in 32**3 = 32,768 (a surname is
    rare, like the words of real names), and two names are the same about once in 2**30."""
    words = []
    for part in range(2):
        x = xxhash.xxh3_64_intdigest(f"{story}/{salt}/{part}".encode())
        words.append("".join(SYLLABLES[(x >> (5 * i)) & 31] for i in range(3)).capitalize())
    return f"{words[0]} {words[1]}{('son', 'ville', 'tec')[salt % 3]}"


class SyntheticStories:
    """Articles of made-up stories written with real text: story ``k`` has its own pool of
    ``POOL_SENTENCES`` sentences drawn at random from all ECB+ dev articles (seeded by ``k``) and
    ``NAMES_PER_STORY`` made-up names of its own; each of its articles is about ``size`` characters
    of sentences drawn at random from its pool (so two articles of a story share most sentences, as
    reports of one event share facts and wording), its names put in its title and in every third
    sentence (what sets the story apart, as the entities of a real event do)."""

    def __init__(self, docs, size: int = 3000):
        self.sentences = [s for d in docs for s in SENTENCE.split(d.article.text.replace("\n", " ")) if len(s) > 30]
        self.titles = [d.article.title for d in docs if d.article.title]
        self.size = size

    def article(self, story: int, variant: int, when: datetime) -> Article:
        pool = random.Random(story).sample(self.sentences, POOL_SENTENCES)
        rng = random.Random(f"{story}-{variant}")
        names = [synthetic_name(story, s) for s in range(NAMES_PER_STORY)]
        parts, length = [], 0
        while length < self.size:
            sentence = rng.choice(pool)
            if len(parts) % 3 == 0:
                sentence = f"{names[len(parts) // 3 % len(names)]} said: {sentence}"
            parts.append(sentence)
            length += len(sentence) + 1
        title = f"{names[0]}: {random.Random(story).choice(self.titles)}"
        return Article(id=f"synthetic-{story}-{variant}", title=title, text=" ".join(parts), when=when,
                       lang="en", outlet=f"outlet{rng.randrange(50)}.example")


def _redis_cpu(client) -> float:
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_stories_run(docs, open_stories: int, batch: int, runs: int, redis_url: str | None) -> list[dict]:
    """Fills the state with ``open_stories`` stories (one synthetic article each, all dated within
    the last two days, so all open), then measures docs per CPU-second of ``assign_many`` in the
    stage's batches (features included) on ``runs`` runs of ``batch`` new ~3 KB articles, one after
    the other on the same state: half new articles of open stories (chosen at random), half first
    articles of new stories. The fill decides too, with a threshold no similarity reaches (every
    article starts its story) and no candidates compared. With Redis, the CPU of redis-server (INFO
    cpu) counts with this process's. Returns the answers of the measured runs."""
    options = StoryOptions()
    fill_options = dataclasses.replace(options, threshold=math.inf, candidates=0, join_model="")
    synthetic = SyntheticStories(docs)
    start = datetime(2026, 1, 10, tzinfo=UTC)
    client = None
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        state = RedisStoryState(client, prefix=f"bench-stories-open-{uuid.uuid4().hex[:8]}")
        redis_before = int(client.info("memory")["used_memory"])
    else:
        state = MemoryStoryState()
        gc.collect()
        rss_before = _rss_bytes()
    name = "Redis" if redis_url else "memory"
    filler = StoryAssigner(fill_options, state)
    t0, c0 = time.perf_counter(), time.process_time()
    r0 = _redis_cpu(client) if client else 0.0
    with Progress(f"fill {name} state", total=open_stories, unit="stories") as bar:
        for k0 in range(0, open_stories, 1000):
            stories = range(k0, min(k0 + 1000, open_stories))
            in_batches(filler, [synthetic.article(k, 0, start + timedelta(seconds=172800 * k / open_stories))
                                for k in stories])
            bar.advance(len(stories))
    fill_wall, fill_cpu = time.perf_counter() - t0, time.process_time() - c0
    fill_server = _redis_cpu(client) - r0 if client else 0.0
    if client:
        used = int(client.info("memory")["used_memory"]) - redis_before
        df_bytes = sum(int(client.memory_usage(f"{state.prefix}:{key}", samples=0) or 0) for key in ("dflog", "dfsnap"))
        memory = (f"Redis used_memory grew {used / 2**20:.0f} MiB: {(used - df_bytes) / open_stories:.0f} bytes per "
                  f"open story (its story, postings, live entry and its article's answer) + "
                  f"{df_bytes / 2**20:.0f} MiB document frequencies (log {client.llen(f'{state.prefix}:dflog')} "
                  f"entries and snapshot); the worker's own copy {state.df.small.nbytes / 2**20:.0f} MiB")
    else:
        gc.collect()
        rss = _rss_bytes() - rss_before
        stored = statistics.mean(len(raw) for raw in state.stories.values())
        memory = (f"process RSS grew {rss / 2**20:.0f} MiB: {rss / open_stories:.0f} bytes per open story (its "
                  f"story, postings, live entry, its article's answer and the document frequencies); "
                  f"{stored:.0f} bytes per encoded story")
    print(f"{name} state: {open_stories} open stories filled in {fill_wall:.0f} s "
          f"({open_stories / (fill_cpu + fill_server):.0f} per CPU-second); {memory}")
    assigner = StoryAssigner(options, state)
    rng = random.Random(7)
    results, given = [], []
    for run in range(runs):
        articles, expected = [], []  # the story each should join (None: it starts one)
        for i in range(batch):
            when = start + timedelta(days=2, seconds=60 * (run * batch + i) / batch)
            if i % 2:
                story = rng.randrange(open_stories)
                articles.append(synthetic.article(story, 1 + run * batch + i, when))
                expected.append(f"synthetic-{story}-0")
            else:
                articles.append(synthetic.article(open_stories + run * batch + i, 0, when))
                expected.append(None)
        t0, c0 = time.perf_counter(), time.process_time()
        r0 = _redis_cpu(client) if client else 0.0
        answers = in_batches(assigner, articles)
        given += answers
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        server = _redis_cpu(client) - r0 if client else 0.0
        statuses = Counter(a["status"] for a in answers)
        # own: an article of an open story joined that story; apart: a new story's first article started
        # a story (every synthetic story is an event of its own)
        own = sum(1 for a, e in zip(answers, expected, strict=True) if e is not None and a["id"] == e)
        apart = sum(1 for a, e in zip(answers, expected, strict=True) if e is None and a["status"] == "started")
        size = statistics.mean(len(a.text) for a in articles)
        results.append((batch / (cpu + server), batch / wall, cpu, server, statuses, size,
                        own / (batch // 2), apart / (batch - batch // 2)))
    rates = [r[0] for r in results]
    print(f"  assign with ~{open_stories} open stories: {statistics.median(rates):.0f} docs per CPU-second "
          f"(median of {runs} runs of {batch} articles: " + ", ".join(f"{r:.0f}" for r in rates) + "); "
          f"{statistics.median(r[1] for r in results):.0f} docs/s wall")
    for rate, _, cpu, server, statuses, size, own, apart in results:
        print(f"    {rate:.0f} per CPU-second: {cpu:.2f} s CPU here + {server:.2f} s redis-server; "
              f"{dict(statuses)}; text {size:.0f} characters on average; articles of an open story that joined it "
              f"{own:.1%}, first articles of a new story kept apart from the open ones {apart:.1%}")
    if client:
        state.clear()
        client.close()
    return given


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stories", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", help="shared evaluation data (default ../shared/eval)")
    parser.add_argument("--orders", type=int, default=len(SEEDS), help="arrival orders (seeds 1..n)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds, grouped by topic")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs")
    parser.add_argument("--redis", help="also run through RedisStoryState at this URL")
    parser.add_argument("--skip-cv", action="store_true", help="only the defaults, throughput and Redis")
    parser.add_argument("--open-stories", type=int, metavar="N",
                        help="only the throughput of assign with N synthetic open stories (memory state, and Redis with --redis)")
    parser.add_argument("--batch", type=int, default=2000, help="articles per run with --open-stories")
    parser.add_argument("--stand-in", action="store_true",
                        help="ECB+ articles without entities (the model's stand-in), not through the entities stage")
    args = parser.parse_args(argv)
    docs = load_docs(eval_dir(args.eval_dir))
    if args.open_stories:
        memory = open_stories_run(docs, args.open_stories, args.batch, args.runs, None)
        if args.redis:
            shared = open_stories_run(docs, args.open_stories, args.batch, args.runs, args.redis)
            print(f"Redis answers of the {len(shared)} articles measured identical to the memory state's: "
                  f"{'yes' if shared == memory else 'NO'}")
        return 0
    if not args.stand_in:
        docs = with_entities(docs, CACHE / "stories")
    orders = [arrival_order(len(docs), seed) for seed in range(1, args.orders + 1)]
    print(("stand-in entities (capitalised words); " if args.stand_in else "canonical entities of the entities stage; ")
          + f"{len(docs)} articles, {len({d.story for d in docs})} stories, {len({d.topic for d in docs})} topics; "
          f"{len(orders)} arrival orders")
    if not args.skip_cv:
        cross_validate(docs, orders, args.folds)
    memory_preds = quality_of_defaults(docs, orders)
    throughput(docs, orders[0], args.runs)
    if args.redis:
        redis_run(args.redis, docs, orders, memory_preds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
