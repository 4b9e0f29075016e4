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
  (:class:`RecentData`);
- finds records (``/api/search``: what it holds of the last ``INDEX_KEPT`` receipts, then the
  sinks' newest records, ``pipeline.sinks.lookup``) and shows one (``/record?id=ID``, ``record.html``,
  from ``/api/record``: its text with the entities marked, the time each stage took, links to the
  record it duplicates, its story and its previous version, ``pipeline.monitoring.lookup``);
- shows a dead letter's payload (``/api/letter?n=N``) and sends a letter back to the topic of the
  stage that failed (``POST /api/letter/replay``), unless its reason cannot succeed again.

``pipeline dashboard`` starts without a broker (none known yet, or one that does not answer): its
:class:`BrokerFeed` keeps trying, the page says the broker is unreachable, and the receipts and
dead letters come in once it answers. Nothing of a record reaches the page unescaped (its text is
untrusted), and the replay is a POST that a page of another site cannot make (a JSON body and this
origin only); the dashboard binds where ``monitoring.host`` says, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from pipeline import registry
from pipeline.config import Settings
from pipeline.monitoring import lookup
from pipeline.monitoring.http import TEXT, HttpServer
from pipeline.monitoring.status import StatusCollector, Target, summarise
from pipeline.monitoring.window import SlidingCounter
from pipeline.records import CANNOT_SUCCEED_AGAIN, parse_iso
from pipeline.redaction import redact
from pipeline.sinks import lookup as sink_lookup

log = logging.getLogger("pipeline.dashboard")

KEEP_POINTS_S = 900.0  # the charts show the last 15 minutes
RATE_WINDOW_S = 10.0  # records/s and latency quantiles over the last 10 s
#: while no record moves (no stage reads, writes or has lag) and nobody has the page open, the
#: workers and the broker are sampled this often instead of every monitoring.sample_interval_s
IDLE_SAMPLE_S = 10.0
VIEWER_S = 60.0  # the page counts as open this long after it last asked for its data
NEWEST = 15
STORIES_KEPT = 500  # stories the dashboard follows (the least recently active are forgotten)
STORY_ARTICLES = 5  # newest articles shown per story
HTML = "text/html; charset=utf-8"
JSON = "application/json"
INDEX_KEPT = 5000  # receipts the search looks through before the sinks (about 1 KB each)
LETTERS_KEPT = 100  # dead letters held whole (payload up to records.DEADLETTER_PAYLOAD_LIMIT each)
#: entities a minute of the top-entities window keeps once it is over (its most mentioned): the
#: window's memory stays bounded however many distinct names an hour brings
ENTITIES_KEPT_PER_MINUTE = 1000
SEARCH_LIMIT = 50
#: what a search result and the index keep of a receipt (``sinks.lookup.brief`` has the same fields)
BRIEF_FIELDS = ("id", "title", "site", "url", "lang", "fetched_at", "dedup_status", "entities", "version")


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
        self.entities = SlidingCounter(window_s, 60.0, clock=time.time, max_keys=ENTITIES_KEPT_PER_MINUTE)
        self.dedup = SlidingCounter(window_s, 60.0, clock=time.time)
        self.delivered = 0  # receipts: records the sink wrote, or skipped because they were written before
        self.skipped_written = 0
        self.dead = 0
        self.index: deque[dict[str, Any]] = deque(maxlen=INDEX_KEPT)  # briefs of the newest receipts
        self.held_letters: dict[int, dict[str, Any]] = {}  # number -> the whole dead letter (newest LETTERS_KEPT)
        self.replayed: dict[int, float] = {}  # letter number -> when the dashboard sent it back
        self._letter_numbers = 0
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
            if not skipped:
                self.index.appendleft(self._brief(r, at))
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

    @staticmethod
    def _brief(r: dict[str, Any], at: float) -> dict[str, Any]:
        story = r.get("story") if isinstance(r.get("story"), dict) else None
        return {**{k: r.get(k) for k in BRIEF_FIELDS}, "at": at, "found_in": "receipts",
                "story": {"id": story.get("id"), "title": story.get("title")} if story else None}

    def _letter(self, letter: dict[str, Any], at: float) -> None:
        with self._lock:
            self.dead += 1
            self.letters.appendleft(self._hold(letter, at))

    def _hold(self, letter: dict[str, Any], at: float) -> dict[str, Any]:
        """Keep a whole dead letter under a new number (called under the lock); its summary."""
        self._letter_numbers += 1
        n = self._letter_numbers
        self.held_letters[n] = letter
        while len(self.held_letters) > LETTERS_KEPT:
            oldest = next(iter(self.held_letters))
            del self.held_letters[oldest]
            self.replayed.pop(oldest, None)  # only a held letter can be sent back from the page
        return letter_summary(letter, n, at)

    def hold(self, letters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Summaries (with numbers for their payload and replay) of dead letters read elsewhere; a
        letter held already keeps its number."""
        out = []
        with self._lock:
            for letter in letters:
                n = next((k for k, v in self.held_letters.items() if v == letter), None)
                out.append(letter_summary(letter, n, None) if n is not None else self._hold(letter, None))
        return out

    def letter(self, n: int) -> dict[str, Any] | None:
        with self._lock:
            return self.held_letters.get(n)

    def letters_of(self, ids: set[str], url: str | None = None) -> list[dict[str, Any]]:
        """The held dead letters of these record ids (or whose event has this URL), newest first."""
        from pipeline.streaming.deadletters import origin_of

        with self._lock:
            held = list(self.held_letters.items())
        return [letter_summary(letter, n, None) for n, letter in reversed(held)
                if letter.get("id") in ids or (url and origin_of(letter) == url)]

    def mark_replayed(self, n: int, undo: bool = False) -> float | None:
        """Note that letter ``n`` was sent back (``undo``: it was not after all); when it had been
        sent before, that time instead."""
        with self._lock:
            if undo:
                return self.replayed.pop(n, None)
            if n in self.replayed:
                return self.replayed[n]
            self.replayed[n] = time.time()
            return None

    def search(self, filters: sink_lookup.Filters, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
        """The newest held receipts that match, newest first (each record once)."""
        with self._lock:
            index = list(self.index)
        found, seen = [], set()
        for brief in index:
            if brief["id"] not in seen and filters.matches(brief):
                seen.add(brief["id"])
                found.append(dict(brief))
                if len(found) >= limit:
                    break
        return found

    def held(self, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            return next((dict(b) for b in self.index if b["id"] == record_id), None)

    def story(self, story_id: str) -> dict[str, Any] | None:
        with self._lock:
            held = self.stories.get(story_id)
            return dict(held, articles_newest=list(held["articles_newest"])) if held else None

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


def replay_refusal(letter: dict[str, Any], settings: Settings) -> str | None:
    """Why a dead letter cannot be sent back (as ``pipeline deadletter replay`` would leave it out),
    or None when it can."""
    from pipeline.streaming.deadletters import payload_of

    if letter.get("reason") in CANNOT_SUCCEED_AGAIN:
        return f"{letter.get('reason')}: the payload itself is broken, it would fail again"
    if payload_of(letter) is None:
        return "the payload was cut at the dead-letter size limit"
    if letter.get("topic") not in registry.topic_names(settings):
        return f"{letter.get('topic')!r} is no topic of this pipeline"
    return None


def letter_summary(letter: dict[str, Any], n: int | None, at: float | None) -> dict[str, Any]:
    """What the page lists of a dead letter (``n``: its number for the payload and the replay)."""
    from pipeline.streaming.deadletters import origin_of

    error = (letter.get("error") or "").strip().splitlines()
    return {"n": n, "at": at, "failed_at": letter.get("failed_at"), "stage": letter.get("stage"),
            "reason": letter.get("reason"), "id": letter.get("id"), "origin": origin_of(letter),
            "error": (error[-1] if error else "")[:240], "payload_bytes": letter.get("payload_bytes"),
            "can_succeed_again": letter.get("reason") not in CANNOT_SUCCEED_AGAIN}


class BrokerFeed:
    """The receipts and dead letters of ``pipeline dashboard``: a
    :class:`~pipeline.streaming.tracker.DeliveryTracker` on the broker ``resolve()`` names, made
    once that broker answers (tried every ``retry_s``), and made again when a restarted ``pipeline
    run`` moved its broker. :attr:`error` says why nothing comes in (None while the broker answers);
    ``on_broker`` learns the settings of every broker it follows."""

    def __init__(self, resolve: Callable[[], Settings], listener, lookback_s: float | None,
                 on_broker: Callable[[Settings], None] | None = None, retry_s: float = 3.0):
        self.resolve = resolve
        self.listener = listener
        self.lookback_s = lookback_s
        self.on_broker = on_broker
        self.retry_s = retry_s
        self.settings: Settings | None = None
        self.error: str | None = "connecting to the broker"
        self.tracker = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-broker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - try again; the page says why
                self.error = f"{type(exc).__name__}: {redact(str(exc))}"
            self._stop.wait(self.retry_s)

    def _step(self) -> None:
        from pipeline.streaming.tracker import DeliveryTracker

        try:
            settings = self.resolve()
        except RuntimeError as exc:  # no broker known (yet)
            self.error = str(exc)
            return
        bootstrap = settings.broker.bootstrap_servers
        if self.tracker is not None and bootstrap != self.settings.broker.bootstrap_servers:
            self.tracker.close()  # the run was restarted with a broker elsewhere
            self.tracker = None
        unreachable = lookup.broker_unreachable(bootstrap)
        self.error = unreachable
        if unreachable or self.tracker is not None:
            return
        tracker = DeliveryTracker(bootstrap, settings, lookback_s=self.lookback_s, keep_ids=False)
        tracker.listeners.append(self.listener)
        self.tracker, self.settings = tracker, settings
        if self.on_broker is not None:
            self.on_broker(settings)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.tracker is not None:
            self.tracker.close()


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
        self.feed: BrokerFeed | None = None  # `pipeline dashboard`: the broker it follows (set by the caller)
        self.server = HttpServer(m.host, m.dashboard_port if port is None else port,
                                 {"/": self._page, "/index.html": self._page, "/api/state": self._state,
                                  "/record": self._record_page, "/api/record": self._record,
                                  "/api/search": self._search, "/api/letter": self._letter,
                                  "/healthz": lambda q: (200, TEXT, b"ok\n"),
                                  "/favicon.ico": lambda q: (204, TEXT, b"")},
                                 name="dashboard", fallback=fallback, read_timeout_s=m.http_read_timeout_s,
                                 max_connections=m.http_max_connections,
                                 post_routes={"/api/letter/replay": self._replay})
        self._thread = threading.Thread(target=self._run, name="dashboard-sampler", daemon=True)
        self._started = False
        self._wake = threading.Event()  # sample now (someone opened the page while sampling was slow; close)
        self._viewed_at: float | None = None  # when the page last asked for its data (monotonic)
        self._lag_seen: dict[str, int | None] = {}  # stage -> its lag in the last sample
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

    def set_broker(self, settings: Settings) -> None:
        """Follow this broker (and these sinks) from now on: a broker that answered after the start."""
        self.settings = settings
        self.collector.set_broker(settings)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            moving = True
            try:
                self.collector.sample()
                moving = self._summarise()
            except Exception:  # noqa: BLE001 - the page shows the last good state
                log.exception("dashboard sample failed")
            self._wake.wait(max(0.05, self.pause(moving) - (time.monotonic() - started)))
            self._wake.clear()

    def pause(self, moving: bool, now: float | None = None) -> float:
        """Seconds between two samples: ``monitoring.sample_interval_s`` while records move or
        someone has the page open, else ``IDLE_SAMPLE_S`` (an idle pipeline is not asked for its
        state every second for nobody)."""
        interval = self.settings.monitoring.sample_interval_s
        now = time.monotonic() if now is None else now
        viewed = self._viewed_at is not None and now - self._viewed_at < VIEWER_S
        return interval if moving or viewed else max(interval, IDLE_SAMPLE_S)

    def _viewed(self) -> None:
        """The page or its data was asked for: sample at the full rate (at once, if it was slow)."""
        now = time.monotonic()
        if self._viewed_at is None or now - self._viewed_at >= VIEWER_S:
            self._wake.set()
        self._viewed_at = now

    def _summarise(self) -> bool:
        """The status and a chart point from the samples; whether any record moves (a stage
        reads or writes, or a lag changed since the sample before; a lag that stays put is no
        motion: idle runs here showed a lag of 1 per stage that never changed)."""
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
        lag = {s.stage: s.lag for s in status.stages}
        moved, self._lag_seen = lag != self._lag_seen, lag
        return moved or any(s.in_per_s or s.out_per_s for s in status.stages)

    def state(self) -> dict[str, Any]:
        with self._lock:
            latest, points = self.latest, list(self.points)
        return {"status": latest, "points": points, "data": self.recent.snapshot(),
                "thresholds": vars(self.settings.monitoring.health),
                "broker_error": self.feed.error if self.feed is not None else None}

    def _state(self, query: str):
        self._viewed()
        self._start_sampling()
        return 200, JSON, orjson.dumps(self.state(), option=orjson.OPT_NON_STR_KEYS)

    def _page(self, query: str):
        self._viewed()
        self._start_sampling()
        return 200, HTML, page()

    # --- records, search and dead letters ------------------------------------------------------

    def _record_page(self, query: str):
        return 200, HTML, resources.files("pipeline.monitoring").joinpath("record.html").read_bytes()

    def _search(self, query: str):
        """``q``, ``site``, ``lang``, ``entity``, ``story``, ``since``, ``until`` (ISO-8601): the newest
        matching records the dashboard holds, then the sinks' (bounded: ``sinks.lookup.search``)."""
        q = _params(query)
        try:
            filters = sink_lookup.Filters(text=q("q"), site=q("site"), lang=q("lang"), entity=q("entity"),
                                          story=q("story"), since=_time(q("since")), until=_time(q("until")))
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        found = {b["id"]: b for b in self.recent.search(filters)}
        briefs, notes = sink_lookup.search(self.settings.sink.targets, self.settings.sink, filters, SEARCH_LIMIT)
        for b in briefs:
            held = found.setdefault(b["id"], b)
            if held is not b and b["found_in"] not in held["found_in"]:
                held["found_in"] += f", {b['found_in']}"
        results = sorted(found.values(), key=lambda b: b.get("fetched_at") or "", reverse=True)[:SEARCH_LIMIT]
        return _json(200, {"results": results, "notes": notes, "held": len(self.recent.index),
                           "sinks": [redact(t) for t in self.settings.sink.targets]})

    def _record(self, query: str):
        """``id`` or ``url`` (``topics=1``: the topics too, within 5 s): where the record is, its
        content, its dead letters, the other articles of its story and the other versions of its page."""
        q = _params(query)
        key = (q("id") or q("url")).strip()
        if not key:
            return _json(400, {"error": "give ?id=RECORD_ID or ?url=URL"})
        settings = self._broker_settings()
        result = lookup.find(settings, key, settings.sink.targets, topics=q("topics") == "1", timeout_s=5.0)
        answer = result.as_dict()
        for version in answer["versions"]:
            version["copies"] = [{"sink": redact(c["sink"]), "where": c["where"]} for c in version["copies"]]
        ids = {key} | {v.id for v in result.versions}
        letters = {letter["n"]: letter for letter in self.recent.hold(result.letters)}
        for letter in self.recent.letters_of(ids, key if sink_lookup.is_url(key) else None):
            letters.setdefault(letter["n"], letter)
        answer["letters"] = sorted(letters.values(), key=lambda letter: letter.get("failed_at") or "",
                                   reverse=True)
        answer["held"] = self.recent.held(key)
        answer["found"] = bool(answer["found"] or answer["held"] or answer["letters"])
        record = result.versions[0].record if result.versions else None
        story_id = ((record or {}).get("story") or {}).get("id") or ((answer["held"] or {}).get("story") or {}).get("id")
        answer["story_articles"] = self._story_articles(story_id, exclude=key) if story_id else []
        url = (record or {}).get("url") or (answer["held"] or {}).get("url")
        answer["page_versions"] = []
        if url and not sink_lookup.is_url(key):
            others = sink_lookup.find(settings.sink.targets, settings.sink, url).copies
            answer["page_versions"] = [sink_lookup.brief(v.record) for v in lookup.versions_of(others)]
        return _json(200, answer)

    def _story_articles(self, story_id: str, exclude: str) -> list[dict[str, Any]]:
        held = self.recent.story(story_id)
        articles = {a["id"]: a for a in (held or {}).get("articles_newest", [])}
        briefs, _ = sink_lookup.search(self.settings.sink.targets, self.settings.sink,
                                       sink_lookup.Filters(story=story_id), 20)
        for b in briefs:
            articles.setdefault(b["id"], b)
        return [a for a in articles.values() if a.get("id") != exclude]

    def _letter(self, query: str):
        """``n``: a dead letter the dashboard holds, whole (its payload as text, or base64), and
        whether it can be sent back."""
        from pipeline.streaming.deadletters import payload_of

        try:
            n = int(_params(query)("n"))
        except ValueError:
            return _json(400, {"error": "give ?n=NUMBER of a dead letter on the page"})
        letter = self.recent.letter(n)
        if letter is None:
            return _json(404, {"error": f"no dead letter {n} here (the dashboard keeps the newest {LETTERS_KEPT})"})
        payload = payload_of(letter)
        return _json(200, {"letter": letter, "summary": letter_summary(letter, n, None),
                           "payload": payload.decode("utf-8", "replace") if payload is not None else None,
                           "refusal": replay_refusal(letter, self._broker_settings()),
                           "replayed_at": self.recent.replayed.get(n)})

    def _replay(self, body: bytes, headers: dict[str, str]):
        """``{"n": N}``: send dead letter N's payload back to the topic of the stage that failed on
        it, keyed by its record id, as ``pipeline deadletter replay`` does; once per letter."""
        from pipeline.streaming.deadletters import payload_of
        from pipeline.streaming.replay import make_producer

        # only from a page of this dashboard: a page elsewhere cannot send a JSON body here (that takes
        # a CORS preflight this server never allows), and the browser says where it came from
        if not headers.get("content-type", "").startswith(JSON):
            return _json(415, {"error": "send a JSON body: {\"n\": NUMBER}"})
        origin = headers.get("origin")
        if (origin and urlsplit(origin).netloc != headers.get("host")) or \
                headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return _json(403, {"error": "replay only from this dashboard's own page"})
        try:
            n = int(orjson.loads(body)["n"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return _json(400, {"error": "send {\"n\": NUMBER} of a dead letter on the page"})
        letter = self.recent.letter(n)
        if letter is None:
            return _json(404, {"error": f"no dead letter {n} here"})
        settings = self._broker_settings()
        refusal = replay_refusal(letter, settings)
        if refusal:
            return _json(409, {"error": f"not sent: {refusal}"})
        unreachable = (self.feed.error if self.feed is not None and self.feed.error else
                       lookup.broker_unreachable(settings.broker.bootstrap_servers)
                       if settings.broker.bootstrap_servers else "no broker known")
        if unreachable:
            return _json(503, {"error": f"not sent: {unreachable}"})
        before = self.recent.mark_replayed(n)
        if before is not None:
            return _json(409, {"error": f"sent already at {time.strftime('%H:%M:%S', time.localtime(before))}"})
        producer = make_producer(settings.broker.bootstrap_servers, settings)
        try:
            key = letter["id"].encode() if letter.get("id") else None
            sent = producer.send(letter["topic"], key=key, value=payload_of(letter)).get(timeout=15)
        except Exception as exc:  # noqa: BLE001 - the page says what went wrong; it may be tried again
            self.recent.mark_replayed(n, undo=True)
            return _json(502, {"error": f"not sent: {type(exc).__name__}: {redact(str(exc))}"})
        finally:
            producer.close(timeout=5)
        log.info("dead letter %s (%s) sent back to %s", letter.get("id"), letter.get("reason"), letter["topic"])
        return _json(200, {"sent": f"sent to {sent.topic} (partition {sent.partition}, offset {sent.offset})"})

    def _broker_settings(self) -> Settings:
        """The settings of the broker the dashboard follows (``pipeline dashboard``: the one that answered)."""
        return self.feed.settings if self.feed is not None and self.feed.settings is not None else self.settings

    def close(self) -> None:
        if self.feed is not None:
            self.feed.close()
        self._stop.set()
        self._wake.set()
        if self._started:
            self._thread.join(timeout=5)
        self.server.close()
        self.collector.close()


def _params(query: str) -> Callable[[str], str]:
    values = parse_qs(query, keep_blank_values=True)
    return lambda name: (values.get(name) or [""])[0]


def _time(value: str):
    return parse_iso(value) if value.strip() else None


def _json(status: int, body: dict[str, Any]):
    return status, JSON, orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS, default=str)


def page() -> bytes:
    return resources.files("pipeline.monitoring").joinpath("dashboard.html").read_bytes()
