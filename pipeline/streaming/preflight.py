"""Checks made before anything starts: what would stop a run later (a sink that cannot open, a
server that does not answer) is found in a few seconds, one line per problem, instead of after the
broker and the workers started. ``pipeline run`` refuses to start on any; ``pipeline doctor`` prints
them with the effective configuration."""

from __future__ import annotations

import errno
import logging
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import sinks
from pipeline.config import Settings
from pipeline.redaction import redact

TIMEOUT_S = 3.0  # per server asked


class PreflightFailed(Exception):
    """Problems found before start-up; each is one line for the operator."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Check:
    """One thing checked: ``what`` (e.g. "sink jsonl:out"), ``problems`` (empty when fine)."""

    what: str
    problems: list[str] = field(default_factory=list)


def require_redis(url: str, what: str, hint: str) -> None:
    """Raise :class:`PreflightFailed` when the Redis at ``url`` does not answer."""
    found = _redis_check(url, what, hint)
    if found:
        raise PreflightFailed(found)


def _redis_check(url: str, what: str, hint: str) -> list[str]:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as exc:
        return [f"{what} {redact(url)} does not answer ({redact(str(exc))}); {hint}"]
    return []


def _broker_check(bootstrap: str) -> list[str]:
    """At least one bootstrap server accepts a connection (the client finds the others itself)."""
    reasons = []
    for server in (s.strip() for s in bootstrap.split(",") if s.strip()):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=TIMEOUT_S):
                return []
        except (OSError, ValueError) as exc:
            reasons.append(f"{server}: {exc}")
    return [f"no broker answers at {bootstrap} ({'; '.join(reasons)}); start it, or leave "
            "broker.bootstrap_servers empty (and KAFKA_BOOTSTRAP_SERVERS unset) for the embedded broker"]


def _idempotence_check(settings: Settings) -> list[str]:
    """The external broker gives a producer an id (InitProducerId), which the profile's
    ``idempotent_producer`` needs: a broker that refuses it would stop every worker as it starts."""
    import asyncio

    from aiokafka.errors import KafkaError

    from pipeline.streaming import faust_adapter

    async def probe() -> tuple[str, BaseException] | None:
        """What failed: ("connect", error) connecting or authenticating, ("id", error) getting the
        producer id; None when nothing did."""
        with tempfile.TemporaryDirectory(prefix="pipeline-preflight-") as datadir:
            producer = faust_adapter.make_app(settings, "preflight", Path(datadir)).producer._new_producer()
            step = "connect"
            try:
                await asyncio.wait_for(producer.client.bootstrap(), TIMEOUT_S * 3)
                step = "id"
                await asyncio.wait_for(producer.start(), TIMEOUT_S * 3)
                return None
            except (KafkaError, TimeoutError) as exc:
                return step, exc
            finally:
                await producer.stop()

    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its own log line of a refusal would only repeat the problem below
    try:
        failed = asyncio.run(probe())
    finally:
        quiet.setLevel(level)
    if failed is None:
        return []
    step, exc = failed
    why = f"{type(exc).__name__}: {redact(str(exc)) or 'no answer'}"
    if step == "connect":
        return [f"a producer cannot connect to the broker at {settings.broker.bootstrap_servers} ({why}); check "
                "broker.security_protocol and the SASL or SSL settings"]
    name = settings.profile_name
    return [f"the broker at {settings.broker.bootstrap_servers} gives no producer id to an idempotent producer "
            f"({why}); set profiles.{name}.idempotent_producer = false "
            f"(PIPELINE__PROFILES__{name.upper()}__IDEMPOTENT_PRODUCER=false)"]


def cannot_listen(host: str, port: int, what: str, change: str, exc: OSError) -> str:
    """The one line for ``what`` failing to listen on ``host:port``: which port, why, and what
    changes it (``change``: the setting, variable or flag)."""
    why = "it is taken (another process listens there)" if exc.errno == errno.EADDRINUSE \
        else (exc.strerror or str(exc))
    return f"{what} cannot listen on {host}:{port}: {why}; {change}"


def listen_problems(host: str, port: int, what: str, change: str) -> list[str]:
    """[] when ``host:port`` can be listened on now (port 0, any free port, always can); else the
    line of :func:`cannot_listen`. The servers set ``SO_REUSEADDR`` too, so a port left in
    TIME_WAIT by a process that just ended counts as free, as it is for them."""
    if not port:
        return []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:  # taken, a privileged port, an address not of this machine
        return [cannot_listen(host, port, what, change, exc)]
    return []


def require_listen(host: str, port: int, what: str, change: str) -> None:
    """Raise :class:`PreflightFailed` when ``host:port`` cannot be listened on."""
    found = listen_problems(host, port, what, change)
    if found:
        raise PreflightFailed(found)


def source_checks(sources: Iterable) -> list[Check]:
    """The addresses the sources will listen on (``Source.listens_on``: an HTTP ingest endpoint),
    free now: a taken one is found before the broker and the workers start, not after."""
    out = []
    for source in sources:
        for host, port, change in source.listens_on():
            out.append(Check(f"source {source} on {host}:{port}",
                             listen_problems(host, port, f"source {source}", change)))
    return out


def require_sources(sources: Iterable) -> None:
    """Raise :class:`PreflightFailed` when a source cannot listen where it will (see :func:`source_checks`)."""
    found = [p for check in source_checks(sources) for p in check.problems]
    if found:
        raise PreflightFailed(found)


def checks(settings: Settings, sink_targets: list[str] | None = None, sources: Iterable = ()) -> list[Check]:
    """Everything a run needs from outside this process: its sinks, the dedup index's Redis when it
    is not the embedded one, the broker when it is external, and the ports its sources listen on."""
    out = []
    for target in sink_targets or settings.sink.targets:
        out.append(Check(f"sink {redact(target)}", sinks.check_targets([target], settings.sink)))
    store = settings.stages.dedup.store
    if store != "memory" and not settings.uses_embedded_index:
        out.append(Check(f"dedup index {redact(store)}", _redis_check(
            store, "the dedup index", 'start Redis, or set stages.dedup.store = "embedded" '
            "(PIPELINE__STAGES__DEDUP__STORE=embedded) to let `pipeline run` start one")))
    if not settings.uses_embedded_broker:
        found = _broker_check(settings.broker.bootstrap_servers)
        if not found and settings.profile.idempotent_producer:
            found = _idempotence_check(settings)
        out.append(Check(f"broker {settings.broker.bootstrap_servers}", found))
    return out + source_checks(sources)


def problems(settings: Settings, sink_targets: list[str] | None = None, sources: Iterable = ()) -> list[str]:
    return [p for check in checks(settings, sink_targets, sources) for p in check.problems]


def require(settings: Settings, sink_targets: list[str] | None = None, sources: Iterable = ()) -> None:
    """Raise :class:`PreflightFailed` when anything a run needs is missing."""
    found = problems(settings, sink_targets, sources)
    if found:
        raise PreflightFailed(found)
