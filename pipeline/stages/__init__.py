"""The stages, one folder each, and the factory that builds them from the configuration."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.stages.base import Context, Stage, TemporaryFailure

__all__ = ["Context", "Stage", "TemporaryFailure", "build_stage", "STAGE_ORDER"]

STAGE_ORDER = ("clean", "language", "entities", "dedup")


def build_stage(name: str, settings: Settings, dedup_store: str | None = None) -> Stage:
    """A ready stage, with the per-record limits of ``stages.limits``. ``dedup_store`` overrides
    ``stages.dedup.store`` (``pipeline enrich`` uses memory)."""
    stage = _new_stage(name, settings, dedup_store)
    limits = settings.stages.limits
    stage.set_limits(limits.max_text_chars, limits.time_limit_s)
    return stage


def _new_stage(name: str, settings: Settings, dedup_store: str | None) -> Stage:
    if name == "clean":
        from pipeline.stages.clean import CleanStage

        return CleanStage(settings.stages.clean)
    if name == "language":
        from pipeline.stages.language import LanguageStage

        return LanguageStage(settings.stages.language)
    if name == "entities":
        from pipeline.stages.entities import EntitiesStage

        return EntitiesStage(settings.stages.entities)
    if name == "dedup":
        from pipeline.stages.dedup import DedupStage

        return DedupStage(settings.stages.dedup, store=dedup_store)
    raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGE_ORDER)}")
