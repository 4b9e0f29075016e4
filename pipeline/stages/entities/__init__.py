"""Entities stage: people, organisations and places in the cleaned text, with canonical names."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.config import EntitiesSettings
from pipeline.stages.base import Context, Stage
from pipeline.stages.entities import gazetteer, rules

TAGGER_NAME = "rules+gazetteer/1"


def summarise(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct canonical entities with their mention counts, most mentioned first."""
    counts = Counter((e["label"], e["canonical"]) for e in entities)
    return [{"canonical": canonical, "label": label, "count": n}
            for (label, canonical), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][1]))]


class EntitiesStage(Stage):
    name = "entities"

    def __init__(self, settings: EntitiesSettings):
        super().__init__()
        self.settings = settings
        self.gazetteer = gazetteer.load()

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        mentions = rules.tag(record.get("text") or "", self.gazetteer)[: self.settings.max_entities]
        entities = [m.as_dict() for m in mentions]
        record["entities"] = entities
        record["entity_summary"] = summarise(entities)
        record["entities_tagger"] = TAGGER_NAME
        self.stats.extra["entities"] += len(entities)
        return record
