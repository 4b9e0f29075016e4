"""The stages, one folder each. Which exist and in what order is ``pipeline/registry.py``; this
builds one from the configuration."""

from __future__ import annotations

import dataclasses
import gc
import importlib

from pipeline import registry
from pipeline.config import ConfigError, Settings, build_section
from pipeline.stages.base import Context, Stage
from pipeline.stages.pool import ProcessPoolStage, usable_cores

__all__ = ["Context", "Stage", "build_stage", "check_plugins", "plugin_options", "stage_factory", "stage_processes"]


def stage_factory(name: str, settings: Settings):
    """What builds stage ``name`` (its class), loaded but not called: its ``record_metrics`` are
    known before its models load."""
    spec = registry.spec(settings, name)
    module, _, attr = spec.factory.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise registry.UnknownStage(f"stage {name!r}: cannot load {spec.factory} ({exc})") from None


def plugin_options(name: str, factory, settings: Settings):
    """The options of plugin stage ``name``: its ``plugin_options`` table, checked against the
    ``Options`` dataclass its class declares (a plain dict when it declares none)."""
    raw = settings.stages.plugin_options.get(name, {})
    declared = getattr(factory, "Options", None)
    if declared is None or not dataclasses.is_dataclass(declared):
        return raw
    return build_section(declared, raw, f"stages.plugin_options.{name}")


def check_plugins(settings: Settings) -> None:
    """Load every plugin stage of the chain and check its options, before anything starts
    (``UnknownStage`` or ``ConfigError``, each in one line)."""
    built_in = registry.BUILT_IN
    for name in registry.chain(settings):
        if name not in built_in:
            plugin_options(name, stage_factory(name, settings), settings)


def stage_processes(name: str, settings: Settings, factory=None) -> int:
    """The child processes ``stages.processes`` gives stage ``name`` (0: one per usable core);
    1 (run in the worker's own process) for a stage that carries state from one record to the next."""
    wanted = settings.stages.processes.get(name, 1)
    if wanted == 1:
        return 1
    factory = factory or stage_factory(name, settings)
    if not getattr(factory, "parallel_safe", False):
        raise ConfigError(f"stages.processes.{name} = {wanted}: the {name} stage carries state from one record "
                          "to the next, so it runs in its worker's own process (set it to 1 or remove it)")
    return wanted or usable_cores()


def freeze_loaded_objects() -> None:
    """Keep what the stage loaded (models, lexicons, gazetteers: some 118,000 container objects in
    an entities stage, living as long as the worker) out of Python's cyclic garbage collector. Each
    full collection walked them all again: on 600 rendered pages the entities stage spent 0.50 s of
    ~10 s in collections, 0.10 s with them frozen. Stage workers and the pool's children call it
    once their stage is built; objects made later (records, caches) are collected as before."""
    gc.collect()
    gc.freeze()


def build_stage(name: str, settings: Settings, dedup_store: str | None = None, in_processes: bool = False) -> Stage:
    """A ready stage, with the per-record limits of ``stages.limits``. ``dedup_store`` overrides
    ``stages.dedup.store`` (``pipeline enrich`` uses memory). ``in_processes``: a stage worker's,
    run in ``stages.processes`` processes (its own and children) when that is more than one (``pool.py``)."""
    spec = registry.spec(settings, name)
    factory = stage_factory(name, settings)
    processes = stage_processes(name, settings, factory) if in_processes else 1
    if spec.section is None:
        options = plugin_options(name, factory, settings)
    else:
        options = getattr(settings.stages, spec.section)
        if spec.section == "dedup" and dedup_store:
            options = dataclasses.replace(options, store=dedup_store)
        if spec.section == "fetch" and options.seen_store == "dedup":  # the seen-set lives beside the dedup index
            options = dataclasses.replace(options, seen_store=dedup_store or settings.stages.dedup.store)
        if spec.section == "stories" and options.store == "dedup":  # so does the story state
            options = dataclasses.replace(options, store=dedup_store or settings.stages.dedup.store)
    stage = factory(options)
    if not isinstance(stage, Stage):
        raise registry.UnknownStage(f"stage {name!r}: {spec.factory} made a {type(stage).__name__}, not a Stage")
    stage.name = name  # what its trace entries and dead letters say
    if processes > 1:
        stage = ProcessPoolStage(name, factory, settings, processes, stage)
    limits = settings.stages.limits
    stage.set_limits(limits.max_text_chars, limits.time_limit_s)
    return stage
