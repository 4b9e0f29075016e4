"""End to end on the real embedded broker with one real worker process per stage."""

from __future__ import annotations

import base64
import random
import time
from pathlib import Path

import orjson
import pytest

from pipeline import config
from pipeline.enrich import OfflinePipeline
from pipeline.records import encode
from pipeline.sources.files import read_paths
from tests.conftest import CONFIG, SEEDS
from tests.streaming.test_dedup_workers import story

pytestmark = pytest.mark.integration

RELATED = ["Kremlin Risih Joe Biden", "Jokowi Tak Serius Dukung RK-Suswono", "Putin Berencana Kunjungi China"]


def _comparable(record: dict) -> dict:
    """A record without what differs by design between runs: the trace (workers, timings) and the
    time the event entered the pipeline."""
    return {k: v for k, v in record.items() if k not in ("trace", "ingested_at")}


def test_seeds_flow_through_every_stage_and_match_offline_enrich(running):
    items = list(read_paths([str(SEEDS)]))
    sent, payloads = running.replay_items(items)
    running.wait(sent)

    records = running.sink_records()
    pids = running.worker_pids()
    streamed = []
    for s in sent:
        assert len(records[s.id]) == 1
        record = records[s.id][0]
        streamed.append(record)
        assert record["schema"] == "news-pipeline/record/1"
        assert record["lang"]["code"] == "id"
        assert len(record["text"].split()) > 150
        assert not any(headline in record["text"] for headline in RELATED)
        assert len(record["entities"]) >= 5
        assert record["dedup"] == {"status": "unique", "duplicate_of": None, "similarity": None}
        # one trace entry per stage, each from its own worker process
        assert [t["stage"] for t in record["trace"]] == ["clean", "language", "entities", "dedup"]
        trace_pids = {t["stage"]: int(t["worker"].rsplit(":", 1)[1]) for t in record["trace"]}
        assert trace_pids == {stage: pids[f"{stage}-0"] for stage in trace_pids}

    # while the workers run, every stage commits what it handled (its commit loop sleeps while no
    # record is acknowledged, and wakes when one is): nothing waits for any stage
    deadline = time.monotonic() + 15
    while any((waiting := running.supervisor.waiting()).values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert waiting and not any(waiting.values()), waiting

    # `pipeline enrich` gives the same records for the same events (fresh in-memory dedup index)
    offline = OfflinePipeline(config.load(CONFIG), dedup_store="memory")
    try:
        for payload, record in zip(payloads, streamed, strict=True):
            outcome = offline.enrich_payload(payload)
            assert outcome.record is not None
            assert _comparable(outcome.record) == _comparable(record)
    finally:
        offline.close()


def test_second_replay_gives_exact_duplicates_of_the_first(running):
    first_by_source = {r[0]["source"]: r[0]["id"] for r in running.sink_records().values()}
    assert len(first_by_source) == 5
    sent, _ = running.replay_items(list(read_paths([str(SEEDS)])))
    running.wait(sent)
    records = running.sink_records()
    for s in sent:
        record = records[s.id][0]
        assert s.id not in first_by_source.values()  # a second fetch is a new record
        assert record["dedup"]["status"] == "exact_duplicate"
        assert record["dedup"]["duplicate_of"] == first_by_source[record["source"]]


def test_redelivered_event_keeps_its_verdict_and_is_written_once(running):
    item = next(iter(read_paths([str(SEEDS / "002_1ca96d3d8bd197b0.txt")])))
    sent, payloads = running.replay_items([item])
    running.wait(sent)
    verdict = running.sink_records()[sent[0].id][0]["dedup"]
    # the very same message again, as after a crash before the commit
    again = running.send(running.settings.topics.raw, [(sent[0].id.encode(), payloads[0])])
    deadline_receipts = 2
    deadline = time.monotonic() + 60
    while running.tracker.snapshot().receipts[sent[0].id] < deadline_receipts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.tracker.snapshot().receipts[again[0].id] == 2
    lines = running.sink_records()[sent[0].id]
    assert len(lines) == 1
    assert lines[0]["dedup"] == verdict
    assert verdict["duplicate_of"] != sent[0].id


def test_malformed_events_are_dead_lettered_while_good_ones_flow(running):
    pids_before = running.worker_pids()
    raw_topic = running.settings.topics.raw
    bad = [
        (b"bad-json", b"{this is not json"),
        (None, b"\xff\xfe\xfa binary garbage"),
        (None, b"[1, 2, 3]"),
        (b"no-body", orjson.dumps({"url": "https://example.com/x"})),
        (b"empty", orjson.dumps({"text": "   "})),
        (b"wrong-type", orjson.dumps({"text": {"nested": True}})),
        (b"bad-time", orjson.dumps({"text": "Some text here.", "fetched_at": "last Tuesday"})),
        (b"bad-b64", orjson.dumps({"html_base64": "%%%not base64%%%"})),
        (None, b""),
    ]
    good_items = list(read_paths([str(SEEDS / "000_f67f3eff65664d6b.txt"), str(SEEDS / "004_fd9e39576350c628.txt")]))
    from pipeline.streaming.replay import prepare

    good = [prepare(i) for i in good_items]
    mixed = [bad[0], good[0], *bad[1:5], good[1], *bad[5:]]
    sent = running.send(raw_topic, mixed)
    # a record that is valid JSON but not a record, put straight onto a later stage's topic
    sent_later = running.send(running.settings.topics.language, [(b"not-a-record", orjson.dumps({"id": "x"}))])
    running.wait(sent)

    records = running.sink_records()
    good_ids = {key.decode() for key, _ in good}
    assert good_ids <= set(records)

    import time

    deadline = time.monotonic() + 30
    letters = []
    while time.monotonic() < deadline:
        letters = running.dead_letters()
        if any(letter.get("topic") == running.settings.topics.language for letter in letters):
            break
        time.sleep(0.2)
    raw_positions = {(s.partition, s.offset) for s, m in zip(sent, mixed, strict=True) if m not in good}
    from_raw = {(d["partition"], d["offset"]): d for d in letters if d["topic"] == raw_topic}
    assert raw_positions <= set(from_raw)
    reasons = {from_raw[p]["reason"] for p in raw_positions}
    assert reasons == {"malformed_json", "invalid_event", "empty_body", "undecodable"}
    for position in raw_positions:
        letter = from_raw[position]
        assert letter["stage"] == "clean" and letter["error"] and letter["schema"] == "news-pipeline/deadletter/1"
        assert "payload" in letter or "payload_base64" in letter
    by_key = {d.get("id"): d for d in letters}
    assert base64.b64decode(next(d for d in from_raw.values() if "payload_base64" in d)["payload_base64"])
    assert by_key["bad-json"]["payload"] == "{this is not json"
    later = [d for d in letters if d["topic"] == running.settings.topics.language]
    assert later and later[0]["stage"] == "entities" and later[0]["reason"] == "invalid_event"
    assert sent_later
    # no worker crashed or was restarted
    assert running.worker_pids() == pids_before
    assert all(w.proc.poll() is None and w.restarts == 0 for w in running.supervisor.workers)


def test_the_clean_workers_html_parsers_compute_on_one_numeric_thread(running):
    """The worker pins numeric libraries to one thread in itself (tests/streaming/test_worker_threads.py)
    and in the processes it starts: the clean stage's HTML parsers, seen from outside."""
    import psutil

    from pipeline.sources.base import SourceItem
    from pipeline.streaming.worker import NUMERIC_THREAD_VARIABLES

    body = "<p>Hujan deras sejak pagi membuat sejumlah ruas jalan di Jakarta tergenang air.</p>" * 20
    page = {"url": "https://news.example/banjir", "html": f"<html><body><article>{body}</article></body></html>"}
    sent, _ = running.replay_items([SourceItem("threads", event=page)])
    running.wait(sent)
    parsers = psutil.Process(running.worker_pids()["clean-0"]).children(recursive=True)
    assert parsers  # the process pool's server and its parser
    for child in parsers:
        environment = child.environ()
        assert {name: environment.get(name) for name in NUMERIC_THREAD_VARIABLES} == \
            dict.fromkeys(NUMERIC_THREAD_VARIABLES, "1")


def test_the_auto_layout_reads_every_stage_of_a_live_pipeline(running):
    """`--layout auto` measures the real processes and the broker: every stage with its workers,
    its source topic's partitions and its backlog (the seeds sent between two measurements are
    all finished, so no backlog is left), and a quiet pipeline changes nothing."""
    from pipeline import registry
    from pipeline.sources.base import SourceItem

    supervisor = running.supervisor
    supervisor.layout = "auto"
    try:
        assert supervisor.adapt_layout(now=True) is None  # the first window starts
        # an HTML page: its parse costs the clean worker tens of CPU-ms, which the process clock
        # (10 ms ticks) sees; a short text page may cost it less than one tick beside an idle worker's
        body = "<p>Hujan deras sejak pagi membuat sejumlah ruas jalan di Jakarta tergenang air.</p>" * 200
        page = {"url": "https://news.example/layout", "html": f"<html><body><article>{body}</article></body></html>"}
        sent, _ = running.replay_items([SourceItem("layout", event=page)])
        running.wait(sent)
        deadline = time.monotonic() + 15  # the workers commit what they finished every 0.5 s
        first = None
        while True:
            assert supervisor.adapt_layout(now=True) is None
            loads = {load.stage: load for load in supervisor.layout_loads}
            first = first or loads
            if all(load.lag == 0 for load in loads.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        supervisor.layout = "fixed"
    assert set(loads) == set(registry.roles(running.settings))
    for stage, load in loads.items():
        topic = registry.stage_topics(running.settings, stage).source
        assert (load.workers, load.max_workers, load.lag) == (1, running.settings.topics.partitions_of(topic), 0), load
        assert load.cpu_cores >= 0 and load.demand_cores >= load.cpu_cores
    assert first["clean"].cpu_cores > 0  # it cleaned the page in the first window


def malformed_events(rng: random.Random) -> list[tuple[bytes | None, bytes]]:
    """1,000+ bad events of every kind the issue names."""
    bad: list[tuple[bytes | None, bytes]] = []
    for _ in range(250):  # not JSON at all
        bad.append((None, bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))))
    for i in range(150):  # JSON, but invalid UTF-8 inside
        bad.append((f"u{i}".encode(), b'{"text": "abc \xff\xfe\xfd"}'))
    for _ in range(150):  # wrong types
        field, value = rng.choice([("text", 123), ("text", ["a"]), ("html", {"x": 1}), ("url", 5),
                                   ("fetched_at", 12345), ("id", 7), ("text", None)])
        event = {"text": "Some text of a page.", field: value}
        if value is None:
            event = {"text": None}
        bad.append((None, orjson.dumps(event)))
    for i in range(150):  # missing fields
        bad.append((None, orjson.dumps(rng.choice([{}, {"url": "https://x.example/"}, {"id": f"m{i}"},
                                                   {"fetched_at": "2026-01-01T00:00:00Z"}]))))
    for _ in range(150):  # empty strings
        bad.append((None, orjson.dumps(rng.choice([{"text": ""}, {"html": ""}, {"text": "   \n "},
                                                   {"html_base64": ""}]))))
    for _ in range(100):  # not an object, or an invalid value
        bad.append((None, rng.choice([b"[]", b"null", b"42", b'"text"', b"", b"{", b'{"text": "x", "fetched_at":'
                                                                                  b' "yesterday"}'])))
    for _ in range(50):  # pages with no article in them: pathological, deeply nested HTML
        bad.append((None, orjson.dumps({"html": "<div>" * 10_000 + "</div>" * 10_000})))
    for _ in range(3):  # 20 MB bodies
        bad.append((None, b'{"text": "' + b"a" * (20 << 20) + b'"}'))
    return bad


def test_fuzz_1000_malformed_events_mixed_with_good_ones(running):
    """1,000+ malformed events of every kind (three of 20 MB among them) mixed with 100 good ones:
    every bad one is a dead letter with a reason and an error, every good one reaches the sink and
    no worker crashes or restarts. (The earlier tests' dead letters are told apart by where they come
    from.)"""
    rng = random.Random(5)
    bad = malformed_events(rng)
    good = [(f"good-{i:03d}".encode(), encode({"id": f"good-{i:03d}", "fetched_at": "2026-11-21T00:00:00Z",
                                                "text": story(2000 + i)})) for i in range(100)]
    mixed = [(k, v, True) for k, v in bad] + [(k, v, False) for k, v in good]
    rng.shuffle(mixed)
    pids = running.worker_pids()

    def where(letter: dict) -> tuple:
        return letter["stage"], letter["topic"], letter["partition"], letter["offset"]

    earlier = {where(d) for d in running.dead_letters()}
    sent = running.send(running.settings.topics.raw, [(k, v) for k, v, _ in mixed])
    running.wait(sent, timeout_s=300)
    letters = [d for d in running.dead_letters() if where(d) not in earlier]
    records = running.sink_records()
    restarts = sum(w.restarts for w in running.supervisor.workers)
    alive = all(w.proc.poll() is None for w in running.supervisor.workers)
    assert running.worker_pids() == pids
    raw = running.settings.topics.raw
    bad_positions = {(s.partition, s.offset) for s, m in zip(sent, mixed, strict=True) if m[2]}
    lettered = {(d["partition"], d["offset"]): d for d in letters if d["topic"] == raw}
    reasons: dict[str, int] = {}
    for position in bad_positions:
        reasons[lettered[position]["reason"]] = reasons.get(lettered[position]["reason"], 0) + 1
    print(f"\nfuzz: {len(bad)} bad events -> {len(bad_positions & set(lettered))} dead letters {reasons}; "
          f"{len(good)} good -> {sum(1 for k, _ in good if k.decode() in records)} in the sink; restarts {restarts}; "
          f"{len(letters) - len({where(d) for d in letters})} letters twice")
    if len(letters) > len({where(d) for d in letters}):  # why a letter came twice, for the record
        logs = Path(running.settings.run.log_dir)
        print("".join(line for log in sorted(logs.glob("*.log")) for line in log.open(errors="replace")
                      if any(sign in line for sign in ("Revoking", "Got error produce", "Heartbeat", "retrying"))))
    assert len(bad) >= 1000
    assert bad_positions <= set(lettered)
    assert all(lettered[p]["reason"] and lettered[p]["error"] for p in bad_positions)
    assert {k.decode() for k, _ in good} <= set(records)
    # nothing good was dead-lettered (at least once: a letter may come twice, after a redelivery)
    assert {(d["topic"], d["partition"], d["offset"]) for d in letters} == {(raw, *p) for p in bad_positions}
    assert restarts == 0 and alive


def test_records_handed_on_in_pieces_flow_once_and_as_offline(tmp_path):
    """``run.piece_ms``: the language and entities workers hand their batches on in pieces; every
    record still arrives once, the same as `pipeline enrich` makes it."""
    from tests.streaming.conftest import running_pipeline

    items = list(read_paths([str(SEEDS)]))
    with running_pipeline(tmp_path, PIPELINE__RUN__PIECE_MS="1") as pipeline:
        assert config.load(CONFIG).run.piece_ms == 1.0
        sent, payloads = pipeline.replay_items(items)
        pipeline.wait(sent)
        records = pipeline.sink_records()
        assert sorted(records) == sorted(s.id for s in sent)
        assert all(len(copies) == 1 for copies in records.values())
        offline = OfflinePipeline(config.load(CONFIG), dedup_store="memory")
        try:
            for s, payload in zip(sent, payloads, strict=True):
                outcome = offline.enrich_payload(payload)
                assert _comparable(outcome.record) == _comparable(records[s.id][0])
        finally:
            offline.close()
