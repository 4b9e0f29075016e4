"""The stories evaluation data and its scoring, shared by ``bench/stories`` and ``training/stories.py``:
the ECB+ dev articles, arrival orders, BCubed of the story ids given on arrival, one stream run."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from pipeline.stages.stories.model import Article, Features, StoryAssigner, StoryOptions
from pipeline.stages.stories.state import MemoryStoryState, StoryState

DEV_FILE = "stories-ecbplus-dev.jsonl.gz"
SEEDS = (1, 2, 3, 4, 5)  # one arrival order per seed


@dataclass(frozen=True)
class Doc:
    """One evaluation article: what the stage sees (``article``) and the labels it must not."""

    article: Article
    topic: int
    story: str


def load_docs(eval_dir: Path) -> list[Doc]:
    """The ECB+ dev articles; only id, title and text reach the stage."""
    with gzip.open(eval_dir / DEV_FILE, "rb") as fh:
        rows = [orjson.loads(line) for line in fh if line.strip()]
    return [Doc(Article(id=r["id"], title=r.get("title") or "", text=r.get("text") or ""), int(r["topic"]),
                str(r["story"])) for r in rows]


def arrival_order(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def bcubed(predicted: dict[str, str], gold: dict[str, str], items: Iterable[str] | None = None
           ) -> tuple[float, float, float]:
    """BCubed precision, recall and F1 of the clustering ``predicted`` (item -> cluster) against
    ``gold`` (item -> class), over ``items`` (default: all of gold; both clusterings are cut to them)."""
    keep = list(gold if items is None else items)
    if not keep:
        return 0.0, 0.0, 0.0
    by_cluster: dict[str, list[str]] = defaultdict(list)
    by_class: dict[str, list[str]] = defaultdict(list)
    for item in keep:
        by_cluster[predicted[item]].append(item)
        by_class[gold[item]].append(item)
    precision = recall = 0.0
    for item in keep:
        cluster, label = by_cluster[predicted[item]], by_class[gold[item]]
        both = sum(1 for other in cluster if gold[other] == gold[item])
        precision += both / len(cluster)
        recall += both / len(label)
    precision, recall = precision / len(keep), recall / len(keep)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def run_order(options: StoryOptions, docs: list[Doc], order: list[int], state: StoryState | None = None,
              features: list[Features] | None = None) -> dict[str, str]:
    """Article id -> story id given on arrival, with the articles arriving in ``order``."""
    assigner = StoryAssigner(options, state if state is not None else MemoryStoryState())
    out = {}
    for i in order:
        article = docs[i].article
        out[article.id] = assigner.assign(article, features[i] if features is not None else None)["id"]
    return out


def _fingerprint(paths: Iterable[Path]) -> str:
    """A hash of every file under ``paths`` (names and contents): what the stages read to tag."""
    digest = hashlib.sha256()
    for root in paths:
        for file in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(file.relative_to(root.parent)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def with_entities(docs: list[Doc], cache_dir: Path) -> list[Doc]:
    """``docs`` as production hands them to the stories stage: each article run once through the real
    language and entities stages (the configured taggers: ``crf:en-news-crf`` for English) and read
    back by the stage's own ``article_of`` (canonical names). Cached in ``cache_dir``, one file per
    fingerprint of the two stages' code and models, one entry per article keyed by a hash of its
    title and text."""
    from pipeline import config, stages
    from pipeline.stages.base import Context
    from pipeline.stages.stories import article_of

    root = Path(stages.__file__).parent
    cache = cache_dir / f"entities-{_fingerprint([root / 'language', root / 'entities'])}.json.gz"
    known: dict[str, dict] = {}
    if cache.exists():
        with gzip.open(cache, "rb") as fh:
            known = orjson.loads(fh.read())
    keys = [hashlib.sha256(f"{d.article.title}\n{d.article.text}".encode()).hexdigest()[:24] for d in docs]
    missing = [(k, d) for k, d in zip(keys, docs, strict=True) if k not in known]
    if missing:
        settings = config.load()
        language, entities = stages.build_stage("language", settings), stages.build_stage("entities", settings)
        ctx = Context(worker="bench")
        for key, d in missing:
            record = entities.process(language.process(
                {"id": d.article.id, "title": d.article.title, "text": d.article.text}, ctx), ctx)
            known[key] = {k: record.get(k) for k in ("lang", "entities", "entity_summary", "entities_tagger")}
        cache_dir.mkdir(parents=True, exist_ok=True)
        part = cache.with_suffix(".part")
        with gzip.open(part, "wb") as fh:
            fh.write(orjson.dumps(known))
        part.replace(cache)
    return [dataclasses.replace(d, article=article_of({
        "id": d.article.id, "title": d.article.title, "text": d.article.text, **known[key]}))
        for key, d in zip(keys, docs, strict=True)]
