"""How other commands find the broker of a running ``pipeline run``.

``pipeline run`` writes ``<run.log_dir>/run.json`` (its pid and bootstrap servers) while it runs;
``pipeline replay``, ``pipeline deadletter`` and ``pipeline topics`` use it when no broker is
configured, so they work against the embedded broker without copying its port around.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from pipeline.config import Settings


def path(settings: Settings) -> Path:
    return Path(settings.run.log_dir) / "run.json"


def write(settings: Settings, bootstrap: str) -> None:
    target = path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"pid": os.getpid(), "bootstrap_servers": bootstrap,
                                  "profile": settings.profile_name}))
    os.replace(tmp, target)


def remove(settings: Settings) -> None:
    path(settings).unlink(missing_ok=True)


def running_bootstrap(settings: Settings) -> tuple[str, str] | None:
    """``(bootstrap servers, profile)`` of a ``pipeline run`` that is alive, if any."""
    try:
        info = orjson.loads(path(settings).read_bytes())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    return info["bootstrap_servers"], info.get("profile", "embedded")


def resolve(settings: Settings, explicit: str | None = None) -> Settings:
    """Settings pointed at: ``explicit`` servers, else the configured ones, else a running pipeline's."""
    if explicit:
        return settings.with_bootstrap(explicit)
    if settings.broker.bootstrap_servers:
        return settings
    found = running_bootstrap(settings)
    if found is None:
        raise RuntimeError("no broker: set KAFKA_BOOTSTRAP_SERVERS (or --bootstrap), or start `pipeline run`")
    import dataclasses

    broker = dataclasses.replace(settings.broker, bootstrap_servers=found[0], profile=found[1])
    return dataclasses.replace(settings, broker=broker)
