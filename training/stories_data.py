"""The stories evaluation data and its scoring, shared by ``bench/stories`` and ``training/stories.py``:
the ECB+ dev articles, arrival orders, BCubed of the story ids given on arrival, one stream run."""

from __future__ import annotations

import gzip
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
