"""The stages, one folder each. Which exist and in what order is ``pipeline/registry.py``; this
builds one from the configuration."""

from __future__ import annotations

import dataclasses
import importlib

from pipeline import registry
from pipeline.config import Settings
from pipeline.stages.base import Context, Stage

__all__ = ["Context", "Stage", "build_stage"]


def build_stage(name: str, settings: Settings, dedup_store: str | None = None) -> Stage:
    """A ready stage, with the per-record limits of ``stages.limits``. ``dedup_store`` overrides
    ``stages.dedup.store`` (``pipeline enrich`` uses memory)."""
    spec = registry.spec(settings, name)
    module, _, attr = spec.factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise registry.UnknownStage(f"stage {name!r}: cannot load {spec.factory} ({exc})") from None
    if spec.section is None:
        options = settings.stages.plugin_options.get(name, {})
    else:
        options = getattr(settings.stages, spec.section)
        if spec.section == "dedup" and dedup_store:
            options = dataclasses.replace(options, store=dedup_store)
    stage = factory(options)
    if not isinstance(stage, Stage):
        raise registry.UnknownStage(f"stage {name!r}: {spec.factory} made a {type(stage).__name__}, not a Stage")
    stage.name = name  # what its trace entries and dead letters say
    limits = settings.stages.limits
    stage.set_limits(limits.max_text_chars, limits.time_limit_s)
    return stage
