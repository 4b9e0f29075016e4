"""How other commands find a running ``pipeline run``: its broker, its workers, its dashboard.

``pipeline run`` writes ``<run.log_dir>/run.json`` while it runs::

    {"pid", "bootstrap_servers", "profile", "started_at", "dashboard_url", "chain", "plugins", "sinks",
     "workers": [{"name", "stage", "index", "pid", "metrics_port", "metrics_url", "log"}]}

``pipeline replay``, ``deadletter``, ``topics``, ``status`` and ``dashboard`` use it when no broker
is configured, so they work against the embedded broker without copying its port around;
``pipeline record`` and ``pipeline dashboard`` read the run's sinks (``sinks``: its ``--sink`` targets).
Beside it, ``prometheus-targets.json`` lists the workers' metrics endpoints in Prometheus'
file-based service discovery format (deploy/monitoring/prometheus.yml reads it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.redaction import MASK, redact


def path(settings: Settings) -> Path:
    return Path(settings.run.log_dir) / "run.json"


def targets_path(settings: Settings) -> Path:
    return Path(settings.run.log_dir) / "prometheus-targets.json"


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def write(settings: Settings, bootstrap: str, workers: list[dict[str, Any]] | None = None,
          dashboard_url: str | None = None, started_at: str | None = None) -> None:
    info = {"pid": os.getpid(), "bootstrap_servers": bootstrap, "profile": settings.profile_name,
            "started_at": started_at, "dashboard_url": dashboard_url, "workers": workers or [],
            "chain": list(settings.stages.chain), "plugins": dict(settings.stages.plugins),
            "sinks": [redact(t) for t in settings.sink.targets]}  # a password never goes to disk
    _write_atomic(path(settings), orjson.dumps(info, option=orjson.OPT_INDENT_2))
    groups = [{"targets": [w["metrics_url"].split("://", 1)[-1]],
               "labels": {"pipeline_worker": w["name"]}}
              for w in workers or [] if w.get("metrics_url")]
    _write_atomic(targets_path(settings), orjson.dumps(groups, option=orjson.OPT_INDENT_2))


def remove(settings: Settings) -> None:
    path(settings).unlink(missing_ok=True)
    targets_path(settings).unlink(missing_ok=True)


def running_info(settings: Settings) -> dict[str, Any] | None:
    """The run file of a ``pipeline run`` that is alive, if any."""
    try:
        info = orjson.loads(path(settings).read_bytes())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


def resolve(settings: Settings, explicit: str | None = None) -> Settings:
    """Settings pointed at: ``explicit`` servers, else the configured ones, else a running pipeline's
    (with its chain and its sinks)."""
    if explicit:
        return settings.with_bootstrap(explicit)
    if settings.broker.bootstrap_servers:
        return settings
    info = running_info(settings)
    if info is None or "bootstrap_servers" not in info:
        raise RuntimeError("no broker: set KAFKA_BOOTSTRAP_SERVERS (or --bootstrap), or start `pipeline run`")
    import dataclasses

    broker = dataclasses.replace(settings.broker, bootstrap_servers=info["bootstrap_servers"],
                                 profile=info.get("profile", "embedded"))
    # the stages that run (a chain set for that run only, by PIPELINE__STAGES__CHAIN, say)
    stages = dataclasses.replace(settings.stages, chain=info.get("chain") or settings.stages.chain,
                                 plugins=info.get("plugins") or settings.stages.plugins)
    resolved = dataclasses.replace(settings, broker=broker, stages=stages)
    return resolved.with_sinks(_unmasked(info["sinks"], settings)) if info.get("sinks") else resolved


def run_sinks(settings: Settings) -> list[str]:
    """The sinks of the live ``pipeline run`` here, else the configured ones."""
    info = running_info(settings)
    return _unmasked(info["sinks"], settings) if info and info.get("sinks") else list(settings.sink.targets)


def _unmasked(targets: list[str], settings: Settings) -> list[str]:
    """The run file's sink targets, each with the password it hides where this process knows it (a
    configured target, ``DATABASE_URL``, ``sink.postgres_url`` that reads the same once masked);
    one it does not know stays masked (a lookup says it cannot read it)."""
    known = [*settings.sink.targets, *(f"postgres:{dsn}" for dsn in (os.environ.get("DATABASE_URL"),
                                                                      settings.sink.postgres_url) if dsn)]
    return [next((k for k in known if redact(k) == t), t) if MASK in t else t for t in targets]
