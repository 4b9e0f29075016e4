"""Dedup stage: exact and near-duplicate verdicts over everything the pipeline has seen."""

from __future__ import annotations

from typing import Any

from pipeline.config import DedupSettings
from pipeline.stages.base import Context, Stage
from pipeline.stages.dedup.fingerprint import Fingerprinter
from pipeline.stages.dedup.index import open_index


def index_namespace(settings: DedupSettings) -> str:
    """Signatures made with other parameters are not comparable: they live under another name."""
    return (f"{settings.namespace}:dedup1:p{settings.num_perm}b{settings.bands}"
            f"w{settings.shingle_words}s{settings.seed}")


class DedupStage(Stage):
    name = "dedup"

    def __init__(self, settings: DedupSettings, store: str | None = None):
        super().__init__()
        self.settings = settings
        self.fingerprinter = Fingerprinter(settings.num_perm, settings.bands, settings.shingle_words,
                                           settings.min_words, settings.seed)
        self.index = open_index(store or settings.store, index_namespace(settings), settings.threshold)

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        fp = self.fingerprinter.fingerprint(record.get("text") or "")
        verdict = self.index.check_and_add(record["id"], fp)
        record["dedup"] = verdict
        self.stats.extra[f"dedup_{verdict['status']}"] += 1
        return record

    def close(self) -> None:
        self.index.close()
