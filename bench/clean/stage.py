"""What the clean benchmarks share: the gold sets' files, reading them, and the clean stage called
the way a worker calls it (``python -m bench.clean`` and its ``--metadata`` part both use them)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HTML_FILES = {"aeb": "extraction-aeb.jsonl.gz", "trafilatura": "extraction-trafilatura.jsonl.gz"}
TEXT_FILES = {"aeb": "textmode/textmode-aeb.jsonl.gz", "trafilatura": "textmode/textmode-trafilatura.jsonl.gz"}
FETCHED_AT = "2026-01-01T00:00:00Z"  # after every page of both sets was published


def has_rs_trafilatura() -> bool:
    """Whether rs-trafilatura (the Rust port of trafilatura, an optional baseline) is installed."""
    from importlib.util import find_spec

    return find_spec("rs_trafilatura") is not None


def read_rows(path: Path, limit: int | None) -> list[dict]:
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if limit and len(rows) >= limit:
                break
    return rows


# --- extractors: row -> extracted text -----------------------------------------------------------

class StageExtractor:
    """Our clean stage, called the way a worker calls it; a dead-lettered page counts as empty."""

    def __init__(self, body_field: str, classifier=None, classifier_of=None):
        from pipeline import config
        from pipeline.stages.clean import CleanStage

        self.body_field = body_field
        # no child recycling during a pass, so the CPU time of the child process can be read
        settings = config.load(ROOT / "config" / "pipeline.toml", env={},
                               overrides={"stages.clean.html_recycle_after": 1_000_000})
        self.stage = CleanStage(settings.stages.clean)
        if classifier is not None:
            self.stage.text_classifier = classifier
        self.classifier_of = classifier_of  # row -> the classifier that never saw that page
        from pipeline.stages.base import Context

        self.ctx = Context(worker="bench")
        self.dead_letters: dict[str, int] = {}

    def __call__(self, row: dict) -> str:
        from pipeline.records import BadInput

        event = {"id": str(row["id"]), "url": row.get("url"), "fetched_at": FETCHED_AT,
                 self.body_field: row[self.body_field]}
        if self.classifier_of is not None:
            self.stage.text_classifier = self.classifier_of(row)
        try:
            return self.stage.run(event, self.ctx)["text"]
        except BadInput as exc:
            self.dead_letters[exc.reason] = self.dead_letters.get(exc.reason, 0) + 1
            return ""

    def close(self) -> None:
        self.stage.close()
