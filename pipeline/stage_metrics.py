"""What a stage counts in the records it passes on, declared once on the stage class.

A stage lists its findings as ``record_metrics`` (plain data, no Prometheus here); its worker
exports each as a Prometheus metric (``pipeline/monitoring/metrics.py``), so a stage of your own
gets its own metrics without a change anywhere else::

    class WordCountStage(Stage):
        record_metrics = (SizeOf("words_per_record", "Words per record.", "word_count", (50, 200, 800)),)

A *path* names a value of the record: ``lang.code`` (a field of an object), ``entities[].label``
(the field of every item of a list), ``entity_summary[]`` (every item).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CountBy:
    """A counter ``news_pipeline_<name>_total{stage, <label>}``: one per value found at ``path``
    (``missing`` when a record has none there)."""

    name: str
    help: str
    label: str
    path: str
    missing: str = "none"


@dataclass(frozen=True)
class SizeOf:
    """A histogram ``news_pipeline_<name>{stage}`` of the number at ``path`` (of its length, for a
    list); records without one are not observed."""

    name: str
    help: str
    path: str
    buckets: tuple[float, ...]


@dataclass(frozen=True)
class TopOf:
    """A gauge ``news_pipeline_<name>{stage, <labels>}``: the ``n`` most frequent keys of the last
    ``window_s`` among the objects at ``path``; the key is the values of ``keys`` (named ``labels``
    in the metric), each object weighs its ``weight`` field (1 without one)."""

    name: str
    help: str
    path: str
    keys: tuple[str, ...]
    labels: tuple[str, ...]
    weight: str | None = None
    n: int = 20
    window_s: float = 3600.0


RecordMetric = CountBy | SizeOf | TopOf


def values(record: Any, path: str) -> Iterator[Any]:
    """Every value at ``path`` in ``record`` (None where an object has no such field)."""
    head, _, rest = path.partition(".")
    many = head.endswith("[]")
    value = record.get(head.removesuffix("[]")) if isinstance(record, dict) else None
    if many:
        for item in value if isinstance(value, list) else ():
            yield from (values(item, rest) if rest else (item,))
    elif rest:
        yield from values(value, rest)
    else:
        yield value


__all__ = ["CountBy", "RecordMetric", "SizeOf", "TopOf", "values"]
