"""The fetch stage: URL events (``pages.urls``) to raw page events (``pages.raw``).

A URL event is ``{"url": str, "changed"?: bool, "source"?: str, "feed"?: str}``. The stage fetches
the page politely and gives the raw event the clean stage reads: the final URL after redirects
(``first_url``: the one asked for), the fetch time, the bytes (``html_base64``) and the charset of
the HTTP answer. What cannot become a page is a dead letter with a reason: ``http_404`` (and
410), ``http_4xx``, ``http_5xx`` and ``http_429`` (after the retries), ``connection_failed``,
``timeout``, ``too_large``, ``not_html``, ``robots_disallowed``, ``already_fetched``,
``invalid_event``.

- **Politeness, per host**: at most ``per_host_concurrency`` requests in flight, and
  ``per_host_delay_s`` between two request starts (longer when ``robots.txt`` asks for a
  crawl-delay). ``robots.txt`` is honoured (Protego, Scrapy's parser), cached ``robots_cache_s``;
  a 4xx for it allows everything, a 5xx or no answer disallows the host for now (RFC 9309). URL
  events are keyed by host, so one host's URLs are in one partition and one worker: the limits
  hold for the whole pipeline, however many fetch workers run.
- **Retries**: 5xx, 429 and refused connections are tried ``retries`` more times with
  exponential backoff from ``retry_base_s``, waiting what ``Retry-After`` asks when it asks at most
  ``retry_max_s``. A time-out is not retried (a hanging server would hold the batch).
- **Limits**: ``timeout_s`` per request, ``max_bytes`` per body (read in chunks, cut at the
  limit), ``max_redirects``; only ``text/html`` and ``application/xhtml+xml``.
- **What it counts** (``pipeline status`` and the dashboard show them): every HTTP answer by
  status (``keyed["http_answers"]``, with ``timeout`` and ``no_answer`` for requests without
  one; retries and redirect hops count each), robots.txt answers (``keyed["robots_answers"]``),
  and, as a level, the URLs of the batch in hand still waiting per host
  (``gauges["host_waiting"]``: the host whose politeness holds the batch back).
- **Seen-set**: a URL fetched within ``seen_horizon_s`` is not fetched again unless its event
  says ``changed``; the set is shared by every fetch worker (the dedup index's Redis), or in
  memory for ``pipeline enrich``.

A batch is fetched concurrently on an event loop the stage keeps in a thread of its own (its
HTTP connections and per-host state live there between batches).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from pipeline.config import FetchSettings
from pipeline.records import INVALID_EVENT, BadInput, accept_raw, derive_id, host_of, utc_now
from pipeline.stage_metrics import CountBy
from pipeline.stages.base import Context, Result, Stage

HTML_TYPES = ("text/html", "application/xhtml+xml")


class _Retry(Exception):
    def __init__(self, reason: str, message: str, wait_s: float | None = None):
        super().__init__(message)
        self.reason, self.message, self.wait_s = reason, message, wait_s


def retry_after_s(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class _Host:
    gate: asyncio.Semaphore
    robots_lock: asyncio.Lock
    next_start: float = 0.0
    robots: Any = None  # Protego, or "allow" / "deny"
    robots_until: float = 0.0
    delay_s: float = 0.0


class MemorySeen:
    """The seen-set of one process: URL -> (the URL event that fetched it, until when)."""

    def __init__(self):
        self._seen: dict[str, tuple[str, float]] = {}

    def fetched_by(self, url: str) -> str | None:
        by, until = self._seen.get(url, ("", 0.0))
        return by if until > time.time() else None

    def remember(self, url: str, event_id: str, horizon_s: float) -> None:
        self._seen[url] = (event_id, time.time() + horizon_s)

    def close(self) -> None:
        pass


class RedisSeen:
    """The seen-set in Redis: one key per URL hash (the id of the URL event that fetched it),
    expiring after the horizon."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    @staticmethod
    def _key(url: str) -> str:
        return "news-pipeline:fetched:" + hashlib.blake2b(url.encode(), digest_size=16).hexdigest()

    def fetched_by(self, url: str) -> str | None:
        from redis import RedisError

        from pipeline.records import TemporaryFailure

        try:
            by = self.client.get(self._key(url))
        except RedisError as exc:
            raise TemporaryFailure(f"fetch: the seen-set's Redis: {exc}") from exc
        return None if by is None else by.decode()

    def remember(self, url: str, event_id: str, horizon_s: float) -> None:
        from redis import RedisError

        from pipeline.records import TemporaryFailure

        try:
            self.client.set(self._key(url), event_id.encode(), ex=max(1, int(horizon_s)))
        except RedisError as exc:
            raise TemporaryFailure(f"fetch: the seen-set's Redis: {exc}") from exc

    def close(self) -> None:
        self.client.close()


def open_seen(store: str):
    if store == "memory":
        return MemorySeen()
    if store.startswith(("redis://", "rediss://", "unix://")):
        return RedisSeen(store)
    raise ValueError(f"stages.fetch.seen_store: {store!r} is not memory or a redis:// URL (\"embedded\" is "
                     "the index server `pipeline run` starts: run the fetch worker under it)")


class FetchStage(Stage):
    name = "fetch"
    accepts_raw_events = True  # it takes URL events, and makes raw events
    # one host's URLs share a partition: 200 of them at a 1 s crawl-delay would hold a batch for
    # over 3 minutes, near Kafka's max.poll.interval.ms (300 s); 20 take 20 s
    batch_max = 20
    batches_by_time = False  # a batch's URLs are fetched concurrently, each host at its own pace
    record_metrics = (CountBy("fetch_statuses", "HTTP answers of the fetch stage, by status.", "status",
                              "fetch_status"),)

    def __init__(self, settings: FetchSettings):
        super().__init__()
        self.settings = settings
        self.seen = open_seen(settings.seen_store)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fetch-loop", daemon=True)
        self._thread.start()
        self.hosts: dict[str, _Host] = {}
        self._session = None
        self._in_flight: asyncio.Semaphore | None = None
        self._waiting: dict[str, int] = {}  # host -> URLs of the batch in hand not done yet

    # --- the stage interface (the worker's thread) -----------------------------------------------

    def process_many(self, records: list[dict[str, Any]], contexts: list[Context]) -> list[Result]:
        results: list[Result] = []
        todo: list[tuple[int, str]] = []
        for i, event in enumerate(records):
            url = event.get("url")
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                results.append(BadInput(INVALID_EVENT, f"a URL event needs an http(s) 'url', got {str(url)[:200]!r}"))
                continue
            # the same URL event again (redelivered after a crash before its page was passed on) is
            # fetched again; another event for a URL fetched within the horizon is not
            by = None if event.get("changed") else self.seen.fetched_by(url)
            if by is not None and (not event.get("id") or by != event["id"]):
                self.stats.extra["already_fetched"] += 1
                results.append(BadInput("already_fetched", f"{url} was fetched within the last "
                                        f"{self.settings.seen_horizon_s:g} s and its event does not say it changed"))
                continue
            results.append(None)  # type: ignore[arg-type]
            todo.append((i, url))
        if todo:
            future = asyncio.run_coroutine_threadsafe(self._fetch_all([url for _, url in todo]), self.loop)
            fetched = future.result()
            for (i, url), outcome in zip(todo, fetched, strict=True):
                if isinstance(outcome, Exception):
                    results[i] = outcome
                    continue
                self.seen.remember(url, str(records[i].get("id") or ""), self.settings.seen_horizon_s)
                results[i] = self._raw_event(records[i], url, outcome)
        return results

    def _raw_event(self, event: dict[str, Any], url: str, page: dict[str, Any]) -> dict[str, Any]:
        raw = {"url": page["url"], "fetched_at": page["fetched_at"],
               "html_base64": base64.b64encode(page["body"]).decode("ascii"),
               "source": event.get("source") or event.get("feed") or "fetch",
               "fetch_status": str(page["status"]), "trace": list(event.get("trace") or [])}
        if page["url"] != url:
            raw["first_url"] = url
        if page.get("charset"):
            raw["charset"] = page["charset"]
        # one URL event, one page: fetched again after a redelivery, it keeps its id (the sink skips it)
        raw["id"] = derive_id(event["id"], "", "fetched") if event.get("id") else accept_raw(raw, utc_now()).id
        return raw

    def close(self) -> None:
        async def shut():
            if self._session is not None:
                await self._session.close()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.seen.close()

    # --- fetching (the stage's event loop) -------------------------------------------------------

    async def _client(self):
        import aiohttp

        if self._session is None:
            s = self.settings
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(self._headers_sent)
            self._session = aiohttp.ClientSession(
                trace_configs=[trace], headers={"User-Agent": s.user_agent, "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"},
                timeout=aiohttp.ClientTimeout(total=s.timeout_s),
                connector=aiohttp.TCPConnector(limit=s.max_in_flight, limit_per_host=s.per_host_concurrency))
            self._in_flight = asyncio.Semaphore(s.max_in_flight)
        return self._session

    def _host(self, url: str) -> _Host:
        key = host_of(url)
        host = self.hosts.get(key)
        if host is None:
            host = self.hosts[key] = _Host(asyncio.Semaphore(self.settings.per_host_concurrency), asyncio.Lock(),
                                           delay_s=self.settings.per_host_delay_s)
        return host

    async def _polite(self, host: _Host):
        """Wait for the host's gate and its delay since the last request went out."""
        await host.gate.acquire()
        while (now := time.monotonic()) < host.next_start:
            await asyncio.sleep(host.next_start - now)
        host.next_start = now + host.delay_s

    async def _headers_sent(self, session, context, params) -> None:
        """A request left: the next one to its host waits the delay from now (a connection that
        took its time to open must not bring two requests closer together at the host)."""
        host = self.hosts.get(host_of(str(params.url)))
        if host is not None:
            host.next_start = max(host.next_start, time.monotonic() + host.delay_s)

    async def _fetch_all(self, urls: list[str]) -> list[dict[str, Any] | Exception]:
        await self._client()
        return await asyncio.gather(*(self._fetch(url) for url in urls))

    def _wait_count(self, key: str, change: int) -> None:
        n = self._waiting.get(key, 0) + change
        if n > 0:
            self._waiting[key] = n
        else:
            self._waiting.pop(key, None)
        self.stats.gauges["host_waiting"] = dict(self._waiting)  # a new dict: scrapes read it from another thread

    async def _fetch(self, url: str) -> dict[str, Any] | Exception:
        s = self.settings
        host = self._host(url)
        key = host_of(url)
        self._wait_count(key, 1)
        try:
            if s.robots and not await self._allowed(url, host):
                return BadInput("robots_disallowed", f"{url}: disallowed for {s.user_agent!r} by robots.txt")
            for attempt in range(s.retries + 1):
                try:
                    return await self._get(url, host)
                except _Retry as retry:
                    wait = retry.wait_s if retry.wait_s is not None else s.retry_base_s * (2 ** attempt)
                    if attempt == s.retries or wait > s.retry_max_s:
                        why = f" (Retry-After {retry.wait_s:g} s is over retry_max_s)" if wait > s.retry_max_s else \
                            f" after {s.retries + 1} tries"
                        return BadInput(retry.reason, retry.message + why)
                    await asyncio.sleep(wait)
            raise AssertionError("unreachable")
        except BadInput as exc:
            return exc
        finally:
            self._wait_count(key, -1)

    async def _get(self, url: str, host: _Host) -> dict[str, Any]:
        """One fetch of ``url``, following redirects hop by hop: each hop waits for its host's
        politeness and asks that host's robots.txt."""
        s = self.settings
        current = url
        for hop in range(s.max_redirects + 1):
            if hop:
                host = self._host(current)
                if s.robots and not await self._allowed(current, host):
                    raise BadInput("robots_disallowed", f"{url}: redirected to {current}, disallowed by robots.txt")
            answer = await self._request(current, host)
            if isinstance(answer, str):  # a redirect: where to
                current = answer
                continue
            return answer
        raise BadInput("http_4xx", f"{url}: more than {s.max_redirects} redirects")

    async def _request(self, url: str, host: _Host) -> dict[str, Any] | str:
        """One request: the page, or the URL a redirect points to."""
        import aiohttp

        s = self.settings
        await self._polite(host)
        try:
            async with self._in_flight, self._session.get(url, allow_redirects=False) as answer:
                status = answer.status
                self.stats.count("http_answers", str(status))
                if status in (301, 302, 303, 307, 308) and answer.headers.get("Location"):
                    return urljoin(url, answer.headers["Location"])
                if status == 429 or status >= 500:
                    reason = "http_429" if status == 429 else "http_5xx"
                    raise _Retry(reason, f"{url}: HTTP {status}", retry_after_s(answer.headers.get("Retry-After")))
                if status in (404, 410):
                    raise BadInput("http_404", f"{url}: HTTP {status}")
                if status >= 300:
                    raise BadInput("http_4xx", f"{url}: HTTP {status}")
                kind = (answer.content_type or "").lower()
                if kind not in HTML_TYPES:
                    raise BadInput("not_html", f"{url}: Content-Type {kind or 'none'}, not HTML")
                if (answer.content_length or 0) > s.max_bytes:
                    raise BadInput("too_large", f"{url}: {answer.content_length:,} bytes; the limit is {s.max_bytes:,}")
                body = bytearray()
                async for chunk in answer.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > s.max_bytes:
                        raise BadInput("too_large", f"{url}: over {s.max_bytes:,} bytes (stages.fetch.max_bytes)")
                return {"url": url, "status": status, "body": bytes(body), "charset": answer.charset,
                        "fetched_at": utc_now().isoformat().replace("+00:00", "Z")}
        except TimeoutError:
            self.stats.count("http_answers", "timeout")
            raise BadInput("timeout", f"{url}: no whole answer within {s.timeout_s:g} s") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            self.stats.count("http_answers", "no_answer")
            raise _Retry("connection_failed", f"{url}: {type(exc).__name__}: {exc}") from None
        except aiohttp.ClientError as exc:
            raise BadInput("http_4xx", f"{url}: {type(exc).__name__}: {exc}") from None
        finally:
            host.gate.release()

    async def _allowed(self, url: str, host: _Host) -> bool:
        s = self.settings
        async with host.robots_lock:  # one robots.txt request per host, whatever waits for it
            if host.robots is None or time.monotonic() > host.robots_until:
                await self._read_robots(url, host)
        if host.robots == "deny":
            raise BadInput("robots_disallowed", f"{url}: robots.txt did not answer; the host counts as "
                                                "disallowed for now (RFC 9309)")
        return host.robots == "allow" or host.robots.can_fetch(url, s.user_agent)

    async def _read_robots(self, url: str, host: _Host) -> None:
        """Ask the host for its robots.txt: a 4xx allows everything; a 5xx, a 429 or no answer
        disallows the host for a minute (RFC 9309); a crawl-delay longer than ours is kept."""
        from protego import Protego

        s = self.settings
        parts = urlsplit(url)
        await self._polite(host)
        try:
            async with self._in_flight, self._session.get(f"{parts.scheme}://{parts.netloc}/robots.txt") as answer:
                self.stats.count("robots_answers", str(answer.status))
                if answer.status >= 500 or answer.status == 429:
                    host.robots = "deny"
                elif answer.status >= 400:
                    host.robots = "allow"
                else:
                    host.robots = Protego.parse((await answer.read()).decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - unreachable robots.txt (time-out, refused): no fetching for now
            self.stats.count("robots_answers", "no_answer")
            host.robots = "deny"
        finally:
            host.gate.release()
        host.robots_until = time.monotonic() + (s.robots_cache_s if host.robots != "deny" else 60.0)
        if not isinstance(host.robots, str):
            delay = max(s.per_host_delay_s, float(host.robots.crawl_delay(s.user_agent) or 0.0))
            host.next_start += max(0.0, delay - host.delay_s)  # the next request waits the crawl-delay already
            host.delay_s = delay
