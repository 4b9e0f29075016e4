"""``ingest:`` (``pipeline run --replay ingest:``): raw events pushed over HTTP.

``POST /ingest`` takes one raw event (``application/json``) or many (``application/x-ndjson``,
one per line) and answers:

- ``202`` ``{"ids": [...]}`` once every event of the request is durably in the raw topic (the
  sender flushed and the broker acknowledged; see ``SourceItem.checkpoint``);
- ``400`` ``{"errors": [{"line", "reason", "error"}]}`` when any line is not a valid raw event
  (nothing of that request is taken);
- ``401`` without ``Authorization: Bearer <ingest.token>``;
- ``413`` for a body over ``ingest.max_body_bytes``;
- ``429`` with ``Retry-After`` when the pipeline is too far behind: more than
  ``ingest.max_lag_records`` raw events wait for the first stage, or more than
  ``ingest.max_pending_events`` wait here to be sent;
- ``503`` when the broker has not confirmed the events within ``ingest.ack_timeout_s`` (they may
  still arrive: send the request again with the same ``id`` or ``fetched_at`` fields, and the
  sink writes each record once).

``GET /openapi.json`` describes the API (OpenAPI 3.1), ``GET /healthz`` answers ok. The server
(aiohttp) runs in a thread of its own while a replay (``pipeline run --replay ingest:``) reads
the source; it refuses to start without a token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import itertools
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipeline.config import IngestSettings
from pipeline.records import BadInput, accept_raw, utc_now
from pipeline.sources.base import Source, SourceItem

log = logging.getLogger("pipeline.sources.ingest")

NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson", "application/json-lines")


@dataclass
class _Request:
    events: list[dict[str, Any]]
    token: str
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future = field(repr=False)


def openapi(max_body_bytes: int) -> dict[str, Any]:
    """The API's OpenAPI 3.1 description (served at /openapi.json)."""
    event = {
        "type": "object",
        "description": "A raw event: one body field (html, html_base64 or text); the rest optional.",
        "properties": {name: {"type": "string"} for name in
                       ("id", "url", "source", "fetched_at", "charset", "html", "html_base64", "text")},
    }
    errors = {"type": "object", "required": ["errors"], "properties": {"errors": {
        "type": "array", "items": {"type": "object", "required": ["line", "reason", "error"], "properties": {
            "line": {"type": "integer", "minimum": 1}, "reason": {"type": "string"}, "error": {"type": "string"}}}}}}
    message = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}

    def answer(description: str, schema: dict | None = None, headers: dict | None = None) -> dict:
        out: dict[str, Any] = {"description": description}
        if schema:
            out["content"] = {"application/json": {"schema": schema}}
        if headers:
            out["headers"] = headers
        return out

    return {
        "openapi": "3.1.0",
        "info": {"title": "news-pipeline ingest", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": {"RawEvent": event}},
        "security": [{"bearer": []}],
        "paths": {
            "/ingest": {"post": {
                "summary": "Send raw events to the pipeline",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RawEvent"}},
                    "application/x-ndjson": {"schema": {"type": "string", "description":
                                                        "one RawEvent as JSON per line"}}}},
                "responses": {
                    "202": answer("Every event is durably in the raw topic", {
                        "type": "object", "required": ["ids"],
                        "properties": {"ids": {"type": "array", "items": {"type": "string"}}}}),
                    "400": answer("Some line is not a valid raw event; nothing was taken", errors),
                    "401": answer("No or a wrong bearer token", message),
                    "413": answer(f"The body is larger than {max_body_bytes} bytes", message),
                    "415": answer("Neither application/json nor application/x-ndjson", message),
                    "429": answer("The pipeline is too far behind; try again later", message,
                                  {"Retry-After": {"schema": {"type": "integer"}}}),
                    "503": answer("The broker did not confirm the events in time", message),
                }}},
            "/healthz": {"get": {"security": [], "responses": {"200": {"description": "ok"}}}},
            "/openapi.json": {"get": {"security": [], "responses": {"200": {"description": "this document"}}}},
        },
    }


class IngestSource(Source):
    """``ingest:`` or ``ingest:HOST:PORT`` (else ``ingest.host``/``ingest.port``)."""

    kind = "ingest"
    bounded = False

    @classmethod
    def open(cls, argument: str, settings: Any) -> IngestSource:
        from pipeline.sources import UnknownSource

        options = settings.ingest
        if argument:
            host, _, port = argument.rpartition(":")
            if not port.isdigit() or int(port) > 65535:
                raise UnknownSource(f"ingest:{argument}: give ingest:PORT or ingest:HOST:PORT (a port number, "
                                    "0 for any free one), or ingest: for ingest.host and ingest.port")
            options = dataclasses.replace(options, host=host or options.host, port=int(port))
        if not options.token:
            raise UnknownSource("ingest: set ingest.token (PIPELINE__INGEST__TOKEN) before accepting pushed events")
        return cls(options, settings)

    def __init__(self, options: IngestSettings, settings: Any = None):
        """``options``: the ``[ingest]`` settings; ``settings``: the pipeline's (for the raw
        topic's lag; None: no lag check)."""
        self.options = options
        self.host, self.port, self.token = options.host, options.port, options.token
        self.settings = settings
        self.queue: queue.Queue[_Request] = queue.Queue()
        self.pending_events = 0  # accepted, not yet confirmed by the broker
        self._waiting: dict[str, _Request] = {}
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._lag: tuple[float, int | None] = (0.0, None)
        self._probe = None
        self.ready = threading.Event()  # the server listens, or could not (``_listen_error``)
        self._listen_error: OSError | None = None
        self.counts: dict[int, int] = {}  # answers by status

    MOVE = "give another port as ingest:HOST:PORT, or set ingest.port (PIPELINE__INGEST__PORT)"

    def listens_on(self) -> list[tuple[str, int, str]]:
        return [(self.host, self.port, self.MOVE)]

    # --- the sending side (the replay's thread) --------------------------------------------------

    def items(self, after: str | None = None, stop: threading.Event | None = None) -> Iterator[SourceItem]:
        stop = stop or threading.Event()
        server = threading.Thread(target=self._serve, args=(stop,), name="ingest-http", daemon=True)
        server.start()
        if not self.ready.wait(15):
            raise RuntimeError(f"ingest: the HTTP server did not start on {self.host}:{self.port}")
        if self._listen_error is not None:  # taken since the check before start-up, or never checked
            raise RuntimeError(f"ingest: cannot listen on {self.host}:{self.port}: "
                               f"{self._listen_error.strerror or self._listen_error}; {self.MOVE}")
        while not stop.is_set():
            try:
                request = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            last = len(request.events) - 1
            for n, event in enumerate(request.events):
                yield SourceItem(f"ingest:{request.token}:{n + 1}", event=event,
                                 position=request.token if n == last else None, checkpoint=n == last)
        server.join(10)

    def acknowledge(self, position: str) -> None:
        with self._lock:
            request = self._waiting.pop(position, None)
        if request is not None:
            request.loop.call_soon_threadsafe(_settle, request.done)

    # --- the HTTP side ---------------------------------------------------------------------------

    def _serve(self, stop: threading.Event) -> None:
        from aiohttp import web

        async def main() -> None:
            app = web.Application(client_max_size=self.options.max_body_bytes)
            app.router.add_post("/ingest", self._ingest)
            async def description(request):
                return web.json_response(openapi(self.options.max_body_bytes))

            async def healthz(request):
                return web.Response(text="ok\n")

            app.router.add_get("/openapi.json", description)
            app.router.add_get("/healthz", healthz)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            try:
                await site.start()
            except OSError as exc:
                self._listen_error = exc
                self.ready.set()
                await runner.cleanup()
                return
            self.port = site._server.sockets[0].getsockname()[1]  # the port, when 0 asked for any
            log.info("ingest on http://%s:%d/ingest", self.host, self.port)
            self.ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.2)
            await runner.cleanup()

        asyncio.run(main())

    def _answer(self, status: int, body: dict, headers: dict | None = None):
        from aiohttp import web

        self.counts[status] = self.counts.get(status, 0) + 1
        return web.json_response(body, status=status, headers=headers, dumps=lambda o: orjson.dumps(o).decode())

    async def _ingest(self, request):
        from aiohttp import web

        given = request.headers.get("Authorization", "")
        if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), self.token.encode())):
            self.counts[401] = self.counts.get(401, 0) + 1
            return web.json_response({"error": "a bearer token is needed (Authorization: Bearer ...)"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="ingest"'})
        if (request.content_length or 0) > self.options.max_body_bytes:
            return self._answer(413, {"error": f"the body is over {self.options.max_body_bytes} bytes"})
        behind = self._behind()
        if behind:
            return self._answer(429, {"error": behind}, {"Retry-After": str(self.options.retry_after_s)})
        kind = (request.content_type or "").lower()
        if kind != "application/json" and kind not in NDJSON_TYPES:
            return self._answer(415, {"error": f"send application/json or application/x-ndjson, not {kind!r}"})
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._answer(413, {"error": f"the body is over {self.options.max_body_bytes} bytes"})
        lines = [body] if kind == "application/json" else body.split(b"\n")
        events, errors = [], []
        for number, line in enumerate(lines, 1):
            if kind != "application/json" and not line.strip():
                continue
            event, error = _event(line)
            if error:
                errors.append({"line": number, **error})
            else:
                events.append(event)
        if not events and not errors:
            errors.append({"line": 1, "reason": "empty_body", "error": "no event in the body"})
        if errors:
            return self._answer(400, {"errors": errors})
        loop = asyncio.get_running_loop()
        sent = _Request(events, str(next(self._tokens)), loop, loop.create_future())
        with self._lock:
            self._waiting[sent.token] = sent
            self.pending_events += len(events)
        self.queue.put(sent)
        try:
            await asyncio.wait_for(asyncio.shield(sent.done), self.options.ack_timeout_s)
        except TimeoutError:
            with self._lock:
                self._waiting.pop(sent.token, None)
            return self._answer(503, {"error": f"the broker did not confirm the events within {self.options.ack_timeout_s:g} s"})
        finally:
            with self._lock:
                self.pending_events -= len(events)
        return self._answer(202, {"ids": [e["id"] for e in events]})

    def _behind(self) -> str | None:
        if self.pending_events >= self.options.max_pending_events:
            return f"{self.pending_events} events wait to be sent (ingest.max_pending_events {self.options.max_pending_events})"
        lag = self._raw_lag()
        if lag is not None and lag > self.options.max_lag_records:
            return f"{lag} raw events wait for the first stage (ingest.max_lag_records {self.options.max_lag_records})"
        return None

    def _raw_lag(self) -> int | None:
        """Raw events not yet read by the first stage's consumer group (asked at most every 2 s)."""
        at, lag = self._lag
        if self.settings is None or time.monotonic() - at < 2.0:
            return lag
        self._lag = (time.monotonic(), lag)
        try:
            lag = self._ask_lag()
        except Exception as exc:  # noqa: BLE001 - no verdict from the broker: do not refuse for it
            log.debug("ingest: lag unknown: %r", exc)
            lag = None
        self._lag = (time.monotonic(), lag)
        return lag

    def _ask_lag(self) -> int | None:
        from pipeline import registry
        from pipeline.monitoring import runfile
        from pipeline.monitoring.lag import OffsetsProbe

        if self._probe is None:
            settings = runfile.resolve(self.settings, None)
            if not settings.broker.bootstrap_servers:
                return None
            self._probe = OffsetsProbe(settings.broker.bootstrap_servers, timeout_s=2.0,
                                       options=settings.broker.client_options())
        first = registry.chain(self.settings)[0]
        topic = self.settings.topics.raw
        partitions = list(range(self.settings.topics.partitions_of(topic)))
        lags = self._probe.group_lag(registry.consumer_group(self.settings, first), topic, partitions)
        return sum(lag.lag or 0 for lag in lags)

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()

    def __str__(self) -> str:
        return f"ingest:{self.host}:{self.port}"


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(True)


def _event(line: bytes) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """A raw event with its id and fetch time settled, or the reason it is not one."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return None, {"reason": "malformed_json", "error": str(exc)}
    if not isinstance(event, dict):
        return None, {"reason": "invalid_event", "error": f"a raw event is a JSON object, not {type(event).__name__}"}
    try:
        raw = accept_raw(event, utc_now())
    except BadInput as exc:
        return None, {"reason": exc.reason, "error": exc.message}
    event["id"], event["fetched_at"] = raw.id, raw.fetched_at
    return event, None
