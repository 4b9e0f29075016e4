"""Stories benchmark: BCubed quality of the story id each article gets on arrival (ECB+ dev set),
cross-validated over topics; docs/s and memory; the same through Redis.

    .venv/bin/python -m bench.stories                                   # memory state
    .venv/bin/python -m bench.stories --redis redis://127.0.0.1:6391/0  # + Redis state (identical?)

Quality: the 772 articles arrive in 5 random orders (fixed seeds); only id, title and text reach
the stage (never topic, story or url). Grouped cross-validation over topics (GroupKFold, 5 folds):
for each fold the parameters of the grid with the best mean F1 over the orders on the training
topics' articles are chosen, then scored on the held-out topics' articles. Every article is in
every run (the stream is the whole set); a fold's score counts only its articles (BCubed over that
subset), so labels of held-out topics never choose anything. Then the final parameters (best mean
F1 on all topics) per order, and the defaults of ``StoryOptions``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import time
import tracemalloc
import uuid

from sklearn.model_selection import GroupKFold

from bench.common import Progress, eval_dir
from pipeline.stages.stories.model import StoryAssigner, StoryOptions
from pipeline.stages.stories.state import MemoryStoryState, RedisStoryState
from training.stories_data import SEEDS, arrival_order, bcubed, load_docs, run_order

#: the parameters searched by cross-validation (everything else: the defaults)
GRID: dict[str, list] = {
    "threshold": [0.12, 0.15, 0.18, 0.21],
    "entity_weight": [0.3, 0.5, 0.7],
    "title_weight": [1.0, 2.5],
    "year_mismatch": [1.0, 0.7],
}


def _mean3(scores: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return tuple(statistics.mean(s[k] for s in scores) for k in range(3))  # type: ignore[return-value]


def _fmt(prf: tuple[float, float, float]) -> str:
    return f"P {prf[0]:.4f}  R {prf[1]:.4f}  F1 {prf[2]:.4f}"


def cross_validate(docs, orders, folds: int) -> tuple[dict, StoryOptions]:
    """Runs every grid point over every order; prints the folds and the CV mean; returns the
    predictions by grid point and the final options (best mean F1 on all topics)."""
    base = StoryOptions()
    features = [StoryAssigner(base, MemoryStoryState()).features(d.article) for d in docs]
    gold = {d.article.id: d.story for d in docs}
    points = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    preds = {}
    with Progress("stories grid", total=len(points) * len(orders), unit="runs") as bar:
        for i, point in enumerate(points):
            options = dataclasses.replace(base, **point)
            preds[i] = [run_order(options, docs, order, features=features) for order in orders]
            bar.advance(len(orders))

    def score(i: int, items: list[str] | None) -> tuple[float, float, float]:
        return _mean3([bcubed(p, gold, items) for p in preds[i]])

    print(f"grid ({len(points)} points): " + ", ".join(f"{k} {v}" for k, v in GRID.items()))
    groups = [d.topic for d in docs]
    held_out = []
    for k, (train, test) in enumerate(GroupKFold(n_splits=folds).split(docs, groups=groups)):
        train_ids = [docs[j].article.id for j in train]
        test_ids = [docs[j].article.id for j in test]
        best = max(range(len(points)), key=lambda i: (score(i, train_ids)[2], -i))
        result = score(best, test_ids)
        held_out.append(result)
        topics = sorted({docs[j].topic for j in test})
        print(f"  fold {k + 1}: held-out topics {topics}; chosen {points[best]}; train F1 "
              f"{score(best, train_ids)[2]:.4f}; held-out {_fmt(result)}")
    print(f"CV mean over {folds} folds (held-out topics, mean of {len(orders)} orders): {_fmt(_mean3(held_out))}")
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


def redis_run(url: str, docs, orders, memory_preds: list[dict[str, str]]) -> None:
    """The defaults through RedisStoryState for every order: identical to the memory state?"""
    import redis

    client = redis.Redis.from_url(url)
    identical = True
    rates = []
    for order, expected in zip(orders, memory_preds, strict=True):
        state = RedisStoryState(client, prefix=f"bench-stories-{uuid.uuid4().hex[:8]}")
        t0, c0 = time.perf_counter(), time.process_time()
        got = run_order(StoryOptions(), docs, order, state=state)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stories", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", help="shared evaluation data (default ../shared/eval)")
    parser.add_argument("--orders", type=int, default=len(SEEDS), help="arrival orders (seeds 1..n)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds, grouped by topic")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs")
    parser.add_argument("--redis", help="also run through RedisStoryState at this URL")
    parser.add_argument("--skip-cv", action="store_true", help="only the defaults, throughput and Redis")
    args = parser.parse_args(argv)
    docs = load_docs(eval_dir(args.eval_dir))
    orders = [arrival_order(len(docs), seed) for seed in range(1, args.orders + 1)]
    print(f"{len(docs)} articles, {len({d.story for d in docs})} stories, {len({d.topic for d in docs})} topics; "
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
