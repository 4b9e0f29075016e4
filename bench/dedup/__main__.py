"""Near-duplicate benchmark: quality on variants of real articles, throughput, index memory.

    .venv/bin/python -m bench.dedup                       # quality + throughput (memory and Redis)
    .venv/bin/python -m bench.dedup --memory-records 1000000   # + Redis bytes per indexed record

Quality: every article (originals, shuffled) goes through the dedup stage's logic first, then
their variants (shuffled), in batches as a worker takes them. A variant is found when it is
marked a duplicate of its own article (or of another variant of it). Recall is reported per
variant kind, over the variants whose true Jaccard similarity (of the exact shingle sets) with
their article reaches the threshold, and over all of them; precision over every record marked
a duplicate (an article marked a duplicate of another article counts as right only if the two
really are that similar).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from bench.common import Progress, eval_dir
from bench.dedup.corpus import load_articles
from bench.dedup.variants import KINDS, make_variants
from pipeline import config
from pipeline.stages.base import Context
from pipeline.stages.dedup import DedupStage
from pipeline.stages.dedup.fingerprint import normalise, words_of

BATCH = 200


def shingle_set(fingerprinter, text: str) -> frozenset[int]:
    words = words_of(normalise(text))
    return frozenset(hash(s) for s in fingerprinter.shingles(words))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass
class Rates:
    wall: float  # records per second of wall time
    cpu: float  # records per CPU-second of this process (the worker's own core)
    server_cpu_us: float  # Redis server CPU microseconds per record (0 for the in-process index)


def _redis_cpu(index) -> float:
    if not hasattr(index, "client"):
        return 0.0
    info = index.client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def run_stream(settings, store: str, records: list[dict]) -> tuple[list[dict], Rates]:
    """Verdicts for ``records`` in order through a fresh index, and the dedup logic's rates."""
    stage = DedupStage(settings, store=store)
    if hasattr(stage.index, "clear"):
        stage.index.clear()
    ctx = Context(worker="bench")
    out = []
    batches = [[dict(r) for r in records[i:i + BATCH]] for i in range(0, len(records), BATCH)]
    with Progress(f"dedup ({store.split('@')[-1]})", total=len(records)) as bar:
        server0, cpu0, wall0 = _redis_cpu(stage.index), time.process_time(), time.perf_counter()
        for batch in batches:
            out.extend(stage.process_many(batch, [ctx] * len(batch)))
            bar.advance(len(batch))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    server = _redis_cpu(stage.index) - server0
    if hasattr(stage.index, "clear"):
        stage.index.clear()
    stage.close()
    n = len(records)
    return [r["dedup"] for r in out], Rates(n / wall, n / cpu, server * 1e6 / n)


def with_namespace(dedup_settings, namespace: str):
    import dataclasses

    return dataclasses.replace(dedup_settings, namespace=namespace)


def quality(args, settings) -> None:
    d = settings.stages.dedup
    stage = DedupStage(d, store="memory")
    fp = stage.fingerprinter
    articles = load_articles(eval_dir(args.eval_dir))
    variants = make_variants(articles, args.per_article, args.seed)
    rng = random.Random(args.seed)
    # --urls: every variant is a refetch of its article's URL (the article versions path: a read
    # and a compare-and-set per record); without, no record has a URL and versions are not asked
    where = (lambda article_id: {"url": f"https://bench.example/{article_id}"}) if args.urls else (lambda _: {})
    originals = [{"id": a.id, "text": a.text, **where(a.id)} for a in articles]
    rng.shuffle(originals)
    copies = [{"id": v.id, "text": v.text, **where(v.original)} for v in variants]
    rng.shuffle(copies)
    day = "2026-11-21T00:00:00Z"
    stream = [{**r, "fetched_at": day} for r in originals + copies]
    print(f"articles {len(articles)}, variants {len(variants)} ({args.per_article} per article), seed {args.seed}, "
          f"threshold {d.threshold}, {d.num_perm} permutations (2 bits kept), {d.bands} bands of {d.band_rows}, "
          f"{d.shingle_words}-word shingles")

    shingles = {a.id: shingle_set(fp, a.text) for a in articles}
    shingles.update({v.id: shingle_set(fp, v.text) for v in variants})
    true_j = {v.id: jaccard(shingles[v.id], shingles[v.original]) for v in variants}

    # hard negatives: each article's most similar other article
    ids = [a.id for a in articles]
    nearest = []
    for i, a in enumerate(ids):
        best = max((jaccard(shingles[a], shingles[b]), b) for j, b in enumerate(ids) if j != i)
        nearest.append(best[0])
    nearest.sort()
    print(f"hard negatives: nearest other article per article, true Jaccard median {statistics.median(nearest):.3f}, "
          f"p99 {nearest[int(0.99 * len(nearest))]:.3f}, max {nearest[-1]:.3f}; "
          f"{sum(1 for x in nearest if x >= d.threshold)} articles have a real duplicate in the corpus")

    stores = ["memory"] + ([args.redis] if args.redis else [])
    verdicts_by_store = {}
    for store in stores:
        ns_settings = with_namespace(d, f"bench-{uuid.uuid4().hex[:8]}")
        verdicts, _ = run_stream(ns_settings, store, stream)
        verdicts_by_store[store] = verdicts
    if len(stores) > 1:
        same = verdicts_by_store[stores[0]] == verdicts_by_store[stores[1]]
        print(f"memory and Redis index verdicts identical: {same}")
    verdicts = dict(zip([r["id"] for r in stream], verdicts_by_store["memory"], strict=True))

    cluster = {a.id: a.id for a in articles} | {v.id: v.original for v in variants}
    by_kind = defaultdict(list)
    for v in variants:
        got = verdicts[v.id]
        found = got["status"] != "unique" and cluster.get(got["duplicate_of"]) == v.original
        by_kind[v.kind].append((true_j[v.id], found, got["status"]))
    print()
    print(f"{'kind':18} {'variants':>8} {'J>=thr':>7} {'recall(J>=thr)':>15} {'recall(all)':>12} {'median J':>9}")
    hi_total = hi_found = 0
    for kind in KINDS:
        rows = by_kind.get(kind, [])
        if not rows:
            continue
        hi = [r for r in rows if r[0] >= d.threshold]
        hi_total += len(hi)
        hi_found += sum(1 for r in hi if r[1])
        rec_hi = sum(1 for r in hi if r[1]) / len(hi) if hi else float("nan")
        rec_all = sum(1 for r in rows if r[1]) / len(rows)
        print(f"{kind:18} {len(rows):8d} {len(hi):7d} {rec_hi:15.3f} {rec_all:12.3f} "
              f"{statistics.median(r[0] for r in rows):9.3f}")

    flagged = [(rid, v) for rid, v in verdicts.items() if v["status"] != "unique"]
    right = 0
    wrong_examples = []
    for rid, v in flagged:
        dup = v["duplicate_of"]
        if cluster.get(rid) == cluster.get(dup):
            right += 1
        elif jaccard(shingles[rid], shingles[dup]) >= d.threshold:
            right += 1  # two corpus articles that really are near-identical
        else:
            wrong_examples.append((rid, dup, round(jaccard(shingles[rid], shingles[dup]), 3)))
    originals_flagged = sum(1 for rid, _ in flagged if rid in shingles and "~" not in rid)
    print()
    print(f"recall on variants with true Jaccard >= {d.threshold}: {hi_found / max(1, hi_total):.4f} "
          f"({hi_found}/{hi_total})")
    print(f"precision over all {len(flagged)} records marked duplicates: {right / max(1, len(flagged)):.4f}"
          f" (articles marked duplicates of other articles: {originals_flagged}; wrong: {len(wrong_examples)})")
    for example in wrong_examples[:5]:
        print("  wrong:", example)

    # throughput of the dedup logic (fingerprint + lookup + insert), one process
    print()
    print(f"throughput of fingerprint + lookup + insert, batches of {BATCH}, median of {args.runs} runs "
          "(records per CPU-second of this process = one core's rate; wall rate depends on machine load):")
    for store in stores:
        runs = []
        for _ in range(args.runs):
            ns_settings = with_namespace(d, f"bench-{uuid.uuid4().hex[:8]}")
            runs.append(run_stream(ns_settings, store, stream)[1])
        cpu = statistics.median(r.cpu for r in runs)
        wall = statistics.median(r.wall for r in runs)
        server = statistics.median(r.server_cpu_us for r in runs)
        extra = f", Redis server {server:.0f} us CPU per record" if server else ""
        print(f"  {store:30s} {cpu:7.0f} records/CPU-s  {wall:7.0f} records/s wall{extra}")
    cpus = []
    for _ in range(args.runs):
        t0 = time.process_time()
        for r in stream:
            fp.fingerprint(r["text"])
        cpus.append(len(stream) / (time.process_time() - t0))
    print(f"  {'fingerprints alone':30s} {statistics.median(cpus):7.0f} records/CPU-s")


def memory_run(args, settings) -> None:
    """Index ``n`` distinct synthetic articles in Redis; report bytes per indexed record."""
    import dataclasses

    import redis

    n = args.memory_records
    d = dataclasses.replace(settings.stages.dedup, namespace=f"bench-mem-{uuid.uuid4().hex[:8]}", capacity=n,
                            horizon_days=0)
    stage = DedupStage(d, store=args.redis)
    client = redis.Redis.from_url(args.redis)
    before = int(client.info("memory")["used_memory"])
    rng = random.Random(args.seed)
    vocab = [f"w{i}" for i in range(50_000)]
    ctx = Context(worker="bench")
    t0 = time.perf_counter()
    statuses = defaultdict(int)
    for start in range(0, n, BATCH):
        size = min(BATCH, n - start)
        batch = [{"id": f"{start + k:032x}", "text": " ".join(rng.choices(vocab, k=rng.randint(150, 600))),
                  "fetched_at": "2026-11-21T00:00:00Z"} for k in range(size)]
        for r in stage.process_many(batch, [ctx] * size):
            statuses[r["dedup"]["status"]] += 1
        if start and start % 100_000 == 0:
            print(f"  {start:,} records, {start / (time.perf_counter() - t0):.0f}/s", file=sys.stderr)
    seconds = time.perf_counter() - t0
    used = int(client.info("memory")["used_memory"]) - before
    keys = stage.index.memory_bytes()
    print(f"memory run: {n:,} records indexed in {seconds:.0f} s ({n / seconds:.0f}/s); verdicts {dict(statuses)}")
    print(f"  Redis used_memory grew by {used / n:.0f} bytes per record; MEMORY USAGE of the namespace's keys "
          f"{keys / n:.0f} bytes per record ({keys / 2**20:.0f} MiB)")
    if not args.keep:
        stage.index.clear()
    stage.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dedup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", help="shared evaluation data (default ../shared/eval)")
    parser.add_argument("--per-article", type=int, default=4, help="variants per article (kinds drawn at random)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--runs", type=int, default=3, help="throughput runs per index kind")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="Redis for the shared index ('' to skip)")
    parser.add_argument("--memory-records", type=int, default=0, help="also index this many records in Redis")
    parser.add_argument("--keep", action="store_true", help="keep the memory run's keys in Redis")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--urls", action="store_true", help="records have URLs, variants their article's "
                        "(measures the article versions' cost)")
    args = parser.parse_args(argv)
    settings = config.load()
    if not args.skip_quality:
        quality(args, settings)
    if args.memory_records:
        memory_run(args, settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
