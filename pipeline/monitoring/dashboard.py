"""The web dashboard: one page on localhost, served by ``pipeline run`` and ``pipeline dashboard``.

The page (``dashboard.html``: plain HTML, CSS and a little JavaScript that draws its own charts on
canvas; nothing from a CDN) asks ``/api/state`` every second. The server behind it:

- samples the workers' /metrics and the broker's offsets every ``monitoring.sample_interval_s``
  (:class:`~pipeline.monitoring.status.StatusCollector`) and keeps 15 minutes of points for the
  throughput, lag and latency charts;
- listens to the delivery-receipt and dead-letter topics (through the
  :class:`~pipeline.streaming.tracker.DeliveryTracker`) for the newest records, the newest dead
  letters, the newest article updates (a refetched URL whose text changed), the top active
  stories with their newest articles, the language mix and the top entities of the last hour
  (:class:`RecentData`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from importlib import resources
from typing import Any

import orjson

from pipeline import registry
from pipeline.config import Settings
from pipeline.monitoring.http import TEXT, HttpServer
from pipeline.monitoring.status import StatusCollector, Target, summarise
from pipeline.monitoring.window import SlidingCounter

log = logging.getLogger("pipeline.dashboard")

KEEP_POINTS_S = 900.0  # the charts show the last 15 minutes
RATE_WINDOW_S = 10.0  # records/s and latency quantiles over the last 10 s
NEWEST = 15
STORIES_KEPT = 500  # stories the dashboard follows (the least recently active are forgotten)
STORY_ARTICLES = 5  # newest articles shown per story
HTML = "text/html; charset=utf-8"
JSON = "application/json"


class RecentData:
    """What the receipts and dead letters say: newest of each, language and entity counts of the
    last hour. A listener of the DeliveryTracker (called on its thread); thread-safe."""

    def __init__(self, newest: int = NEWEST, window_s: float = 3600.0):
        self.records: deque[dict[str, Any]] = deque(maxlen=newest)
        self.letters: deque[dict[str, Any]] = deque(maxlen=newest)
        self.updates: deque[dict[str, Any]] = deque(maxlen=newest)  # records whose version is "changed"
        self.stories: dict[str, dict[str, Any]] = {}  # story id -> its newest summary and articles
        self.window_s = window_s
        self.languages = SlidingCounter(window_s, 60.0, clock=time.time)
        self.entities = SlidingCounter(window_s, 60.0, clock=time.time)
        self.dedup = SlidingCounter(window_s, 60.0, clock=time.time)
        self.delivered = 0  # receipts: records the sink wrote, or skipped because they were written before
        self.skipped_written = 0
        self.dead = 0
        self._lock = threading.Lock()

    def __call__(self, kind: str, message: dict[str, Any], at: float) -> None:
        if kind == "receipt":
            self._receipt(message, at)
        else:
            self._letter(message, at)

    def _receipt(self, r: dict[str, Any], at: float) -> None:
        entities = [e for e in r.get("entities") or [] if isinstance(e, dict) and e.get("canonical")]
        with self._lock:
            self.delivered += 1
            skipped = r.get("outcome") == "skipped_written"
            self.skipped_written += skipped
            self.records.appendleft({
                "at": at, "id": r.get("id"), "title": r.get("title"), "site": r.get("site"), "url": r.get("url"),
                "lang": r.get("lang"), "dedup": r.get("dedup_status"), "latency_ms": r.get("latency_ms"),
                "entities": [e["canonical"] for e in entities[:3]], "skipped_written": skipped,
            })
            self._story(r, at, skipped)
            version = r.get("version")
            if isinstance(version, dict) and version.get("status") == "changed" and not skipped:
                self.updates.appendleft({
                    "at": at, "id": r.get("id"), "title": r.get("title"), "site": r.get("site"), "url": r.get("url"),
                    "number": version.get("number"), "previous_id": version.get("previous_id"),
                    "title_changed": bool(version.get("title_changed")),
                    "added": version.get("paragraphs_added") or 0, "removed": version.get("paragraphs_removed") or 0,
                    "edited": version.get("paragraphs_edited") or 0,
                })
        self.languages.add([r.get("lang") or "none"], at=at)
        self.dedup.add([r.get("dedup_status") or "none"], at=at)
        mentions: dict[tuple[str, str], int] = {}
        for e in entities:
            key = (str(e.get("label")), str(e["canonical"]))
            mentions[key] = mentions.get(key, 0) + int(e.get("count") or 1)
        if mentions:
            self.entities.add(mentions, at=at)

    def _story(self, r: dict[str, Any], at: float, skipped: bool) -> None:
        """Follow the story of a receipt's record (called under the lock)."""
        story = r.get("story")
        if not isinstance(story, dict) or not story.get("id") or skipped:
            return
        held = self.stories.pop(story["id"], None) or {"articles_newest": deque(maxlen=STORY_ARTICLES)}
        if int(story.get("articles") or 0) >= int(held.get("articles") or 0):
            held.update({k: story.get(k) for k in ("id", "title", "articles", "outlets", "languages", "first_seen",
                                                   "last_seen")})
        held["at"] = at
        held["articles_newest"].appendleft({"id": r.get("id"), "title": r.get("title"), "site": r.get("site"),
                                            "url": r.get("url"), "lang": r.get("lang"), "status": story.get("status")})
        self.stories[story["id"]] = held  # the most recently active last
        while len(self.stories) > STORIES_KEPT:
            self.stories.pop(next(iter(self.stories)))

    def top_stories(self, n: int = 8, now: float | None = None) -> list[dict[str, Any]]:
        """The stories active within the window with the most articles, newest activity first on ties."""
        now = time.time() if now is None else now
        with self._lock:
            active = [dict(s, articles_newest=list(s["articles_newest"])) for s in self.stories.values()
                      if s["at"] >= now - self.window_s]
        active.sort(key=lambda s: (-(s.get("articles") or 0), -s["at"]))
        return active[:n]

    def _letter(self, letter: dict[str, Any], at: float) -> None:
        error = (letter.get("error") or "").strip().splitlines()
        with self._lock:
            self.dead += 1
            self.letters.appendleft({
                "at": at, "failed_at": letter.get("failed_at"), "stage": letter.get("stage"),
                "reason": letter.get("reason"), "id": letter.get("id"),
                "error": (error[-1] if error else "")[:240],
            })

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            records, letters, updates = list(self.records), list(self.letters), list(self.updates)
            delivered, skipped, dead = self.delivered, self.skipped_written, self.dead
        return {
            "delivered": delivered, "written": delivered - skipped, "skipped_written": skipped, "dead_letters": dead, "records": records, "letters": letters,
            "updates": updates, "stories": self.top_stories(),
            "languages": self.languages.top(12),
            "dedup": dict(self.dedup.totals()),
            "entities": [{"label": label, "name": name, "mentions": n}
                         for (label, name), n in self.entities.top(15)],
        }


class Dashboard:
    """Samples the pipeline in a thread of its own and serves the page and its data."""

    def __init__(self, settings: Settings, targets: list[Target], recent: RecentData, port: int | None = None,
                 fallback: bool = True, expected: dict[str, int] | None = None, sample_now: bool = True):
        """``sample_now`` False: sample only once the page or its data is first asked for (a short
        ``pipeline run --exit-when-done`` pays nothing for a page nobody opens)."""
        self.settings = settings
        self.recent = recent
        self.expected = expected
        # the samples the status needs (rates, and the lag trend over lag_growing_s); the charts'
        # 15 minutes are kept as small points of their own
        self.collector = StatusCollector(settings, targets,
                                         keep_s=max(RATE_WINDOW_S, settings.monitoring.health.lag_growing_s) + 5,
                                         keep_workers_s=RATE_WINDOW_S + 5)
        self.points: deque[dict[str, Any]] = deque()
        self.latest: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        m = settings.monitoring
        self.server = HttpServer(m.host, m.dashboard_port if port is None else port,
                                 {"/": self._page, "/index.html": self._page, "/api/state": self._state,
                                  "/healthz": lambda q: (200, TEXT, b"ok\n"),
                                  "/favicon.ico": lambda q: (204, TEXT, b"")},
                                 name="dashboard", fallback=fallback, read_timeout_s=m.http_read_timeout_s,
                                 max_connections=m.http_max_connections)
        self._thread = threading.Thread(target=self._run, name="dashboard-sampler", daemon=True)
        self._started = False
        if sample_now:
            self._start_sampling()

    def _start_sampling(self) -> None:
        with self._lock:
            if self._started or self._stop.is_set():
                return
            self._started = True
        self._thread.start()

    @property
    def url(self) -> str:
        return self.server.url + "/"

    def set_targets(self, targets: list[Target]) -> None:
        self.collector.set_targets(targets)

    def _run(self) -> None:
        interval = self.settings.monitoring.sample_interval_s
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.collector.sample()
                self._summarise()
            except Exception:  # noqa: BLE001 - the page shows the last good state
                log.exception("dashboard sample failed")
            self._stop.wait(max(0.05, interval - (time.monotonic() - started)))

    def _summarise(self) -> None:
        history = self.collector.history()
        health = self.settings.monitoring.health
        status = summarise(history, health, self.expected, window_s=RATE_WINDOW_S,
                           stall_after_s=self.settings.monitoring.stall_after_s,
                           roles=registry.roles(self.settings))
        point = {"t": status.at, "e2e_p50": status.end_to_end_p50_s, "e2e_p99": status.end_to_end_p99_s,
                 "stages": {s.stage: {"in": s.in_per_s, "out": s.out_per_s, "lag": s.lag, "p99_ms": s.p99_ms}
                            for s in status.stages}}
        with self._lock:
            self.latest = status.as_dict()
            self.points.append(point)
            while self.points and self.points[0]["t"] < status.at - KEEP_POINTS_S:
                self.points.popleft()

    def state(self) -> dict[str, Any]:
        with self._lock:
            latest, points = self.latest, list(self.points)
        return {"status": latest, "points": points, "data": self.recent.snapshot(),
                "thresholds": vars(self.settings.monitoring.health)}

    def _state(self, query: str):
        self._start_sampling()
        return 200, JSON, orjson.dumps(self.state(), option=orjson.OPT_NON_STR_KEYS)

    def _page(self, query: str):
        self._start_sampling()
        return 200, HTML, page()

    def close(self) -> None:
        self._stop.set()
        if self._started:
            self._thread.join(timeout=5)
        self.server.close()
        self.collector.close()


def page() -> bytes:
    return resources.files("pipeline.monitoring").joinpath("dashboard.html").read_bytes()
