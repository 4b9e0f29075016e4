"""Operations against a real `pipeline run`: every worker's metrics and health endpoints, JSON logs,
`pipeline status --once --json`, the web dashboard in a real headless Chromium, `pipeline
dashboard`, and a real Prometheus server scraping every worker with deploy/monitoring's rules.

One continuous `pipeline run` (subprocess) serves the whole module; each test replays what it
needs with `pipeline replay`, which finds the broker through the run file, as a user's would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from pipeline.monitoring.http import free_port
from pipeline.monitoring.scrape import WorkerSample, scrape
from tests.conftest import ROLES, ROOT, SEEDS, copy_formatted_broker
from tests.streaming.conftest import FREE_PORTS

pytestmark = pytest.mark.integration

MONITORING = ROOT / "deploy" / "monitoring"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class LiveRun:
    proc: subprocess.Popen
    env: dict[str, str]
    tmp: Path

    @property
    def log_dir(self) -> Path:
        return self.tmp / "logs"

    @property
    def info(self) -> dict:
        return orjson.loads((self.log_dir / "run.json").read_bytes())

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=self.env,
                                text=True, **kwargs)

    def scrape(self, stage: str) -> WorkerSample:
        (worker,) = [w for w in self.info["workers"] if w["stage"] == stage]
        return scrape(worker["metrics_url"])

    def wait_delivered(self, at_least: float, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.scrape("sink").records_out >= at_least:
                return
            time.sleep(0.2)
        raise AssertionError(f"the sink did not reach {at_least} records in {timeout_s} s")


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitoring")
    copy_formatted_broker(tmp / "broker")
    env = dict(os.environ)
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("PIPELINE_CONFIG", None)
    env.update({"PIPELINE__STAGES__DEDUP__STORE": "embedded",
                "PIPELINE__EMBEDDED_INDEX__DIR": str(tmp / "dedup-index"),
                "PIPELINE__EMBEDDED_BROKER__DATA_DIR": str(tmp / "broker"),
                "PIPELINE__STAGES__DEDUP__NAMESPACE": f"test-{uuid.uuid4().hex[:12]}",
                "PIPELINE__RUN__LOG_DIR": str(tmp / "logs"), **FREE_PORTS})
    out = open(tmp / "run.out", "wb")  # noqa: SIM115 - the subprocess writes to it until the end
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--sink", f"jsonl:{tmp / 'out'}",
                             "--log-format", "json", "--log-level", "info"],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    run = LiveRun(proc, env, tmp)
    deadline = time.monotonic() + 90
    try:
        while True:
            assert proc.poll() is None, (tmp / "run.out").read_text()
            try:
                info = run.info
                if info.get("dashboard_url") and len(info["workers"]) == 5 and all(
                        w["metrics_url"] for w in info["workers"]):
                    break
            except (OSError, orjson.JSONDecodeError):
                pass
            assert time.monotonic() < deadline, "pipeline run did not publish its workers in 90 s"
            time.sleep(0.2)
        yield run
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _replay_file(tmp: Path, events: list[dict]) -> Path:
    path = tmp / f"events-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def test_every_worker_serves_metrics_health_and_readiness_and_logs_json(live_run):
    workers = live_run.info["workers"]
    assert sorted(w["stage"] for w in workers) == sorted(ROLES)
    assert len({w["metrics_port"] for w in workers}) == 5
    for w in workers:
        assert _get(w["metrics_url"] + "/healthz") == (200, "ok\n")
        assert _get(w["metrics_url"] + "/readyz") == (200, "ok\n")
        sample = scrape(w["metrics_url"])
        assert sample.ok and sample.stage == w["stage"] and sample.pid == w["pid"] and sample.ready
        assert sample.memory_bytes > 10e6 and sample.assigned == 4
    before = live_run.scrape("sink").records_out
    bad = _replay_file(live_run.tmp, [{"id": "bad-event-1", "text": "   "}])
    result = live_run.cli("replay", str(SEEDS), str(bad))
    assert result.returncode == 0, result.stderr
    live_run.wait_delivered(before + 5)

    clean, language, entities, dedup, sink = (live_run.scrape(stage) for stage in ROLES)
    assert clean.records_in >= 6 and clean.dead_letters["empty_body"] >= 1
    assert language.languages["id"] >= 5
    assert entities.entity_labels["LOC"] > 0 and entities.top_entities
    assert sum(dedup.dedup.values()) >= 5
    assert sink.end_to_end.count >= 5 and 0 < sink.end_to_end.quantile(0.5) < 30
    assert all(s.processing.count >= 5 for s in (clean, language, entities, dedup, sink))
    # the broker's offsets, corrected by what the consumers saw, agree once everything is through
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(live_run.scrape(s).lag.get(k) for s in ROLES
                                              for k in live_run.scrape(s).lag):
        time.sleep(0.5)
    assert all(v == 0 for s in ROLES for v in live_run.scrape(s).lag.values())

    # structured logs: one JSON object per line, and the dead letter with its stage and record id
    lines = [line for line in (live_run.log_dir / "clean-0.log").read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    letter = [e for e in entries if e["message"].startswith("dead letter")]
    assert letter and letter[0]["record_id"] == "bad-event-1" and letter[0]["stage"] == "clean"
    assert letter[0]["reason"] == "empty_body"


def test_status_once_json_reports_every_stage(live_run):
    result = live_run.cli("replay", str(SEEDS))
    assert result.returncode == 0, result.stderr
    result = live_run.cli("status", "--once", "--json", "--window", "1")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert [s["stage"] for s in status["stages"]] == list(ROLES)
    for stage in status["stages"]:
        assert stage["workers_up"] == stage["workers_expected"] == stage["workers_ready"] == 1
        assert stage["records_in"] >= 5 and stage["lag"] is not None and stage["p99_ms"] is not None
        assert len(stage["partitions"]) == 4
        assert stage["level"] in ("ok", "idle", "warn")
    assert status["level"] in ("ok", "idle", "warn") and status["verdict"]
    assert status["end_to_end_p99_s"] is not None and "one batch short" in status["lag_note"]
    assert {w["name"] for w in status["workers"]} == {f"{s}-0" for s in ROLES}
    # the terminal view of the same
    result = live_run.cli("status", "--once")
    assert result.returncode == 0, result.stderr
    for stage in ROLES:
        assert re.search(rf"^{stage}\s+1/1", result.stdout, re.MULTILINE), result.stdout


def _chromium_or_skip():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: install the Debian package chromium (scripts/bootstrap does as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the Python package playwright is not installed (pip install -e '.[test]')")
    return sync_playwright


def test_dashboard_in_headless_chromium_moves_during_a_replay(live_run, tmp_path):
    sync_playwright = _chromium_or_skip()
    url = live_run.info["dashboard_url"]
    replay = live_run.popen("replay", str(SEEDS), "--loop", "--rate", "8",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
            try:
                page = browser.new_page()
                errors = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(url)
                try:
                    page.wait_for_function("() => Number(document.getElementById('delivered-count').textContent"
                                           ".replace(/,/g, '')) >= 3", timeout=30000)
                except Exception:
                    page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
                    raise AssertionError(f"{tmp_path / 'failed.png'}: {page.inner_text('header')} "
                                         f"{_get(url + 'api/state')[1][:3000]} {errors}") from None
                first = int(page.inner_text("#delivered-count").replace(",", ""))
                time.sleep(4)
                page.wait_for_function("() => document.querySelectorAll('#records tbody tr td.wrap').length >= 6")
                second = int(page.inner_text("#delivered-count").replace(",", ""))
                assert second > first, (first, second)  # the numbers move
                rows = page.locator("#stages tbody tr").all_inner_texts()
                assert [r.split()[0] for r in rows] == list(ROLES)
                assert all("1/1" in r for r in rows)
                assert float(page.inner_text("#delivered-rate")) > 0
                # the charts are drawn: coloured pixels on the throughput canvas
                coloured = page.evaluate("""() => {
                    const c = document.getElementById('chart-throughput');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let n = 0;
                    for (let i = 0; i < d.length; i += 4) if (d[i + 3] && Math.abs(d[i] - d[i + 2]) > 80) n++;
                    return n; }""")
                assert coloured > 50
                assert "id" in page.inner_text("#languages")
                assert page.locator("#entities .bar").count() >= 5
                titles = page.locator("#records tbody tr").all_inner_texts()
                assert any("Armenia" in t or "Azerbaijan" in t or "Karabakh" in t for t in titles), titles
                assert page.inner_text("#verdict")
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"dashboard screenshot: {shot}")
                assert shot.stat().st_size > 20000
                assert not errors, errors
            finally:
                browser.close()
    finally:
        replay.send_signal(signal.SIGINT)
        replay.wait(timeout=30)


def test_pipeline_dashboard_command_serves_the_last_hour(live_run):
    live_run.wait_delivered(5)
    proc = live_run.popen("dashboard", "--port", "0", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = proc.stderr.readline()
        found = re.search(r"dashboard (http://\S+/)", line)
        assert found, line
        deadline = time.monotonic() + 30
        while True:
            status, body = _get(found.group(1) + "api/state")
            state = json.loads(body) if status == 200 else {}
            if state.get("status") and state["data"]["delivered"] >= 5:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.3)
        assert state["data"]["records"][0]["title"]
        assert [s["stage"] for s in state["status"]["stages"]] == list(ROLES)
        status, html = _get(found.group(1))
        assert status == 200 and "<canvas" in html and "http" not in html.split("<script>")[1].split("fetch(")[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def _prometheus_or_skip() -> str:
    binary = shutil.which("prometheus")
    if not binary:
        pytest.skip("no prometheus binary: install the Debian package prometheus (scripts/bootstrap does as root)")
    return binary


def _query(base: str, expr: str) -> dict:
    status, body = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", (expr, body)
    return answer["data"]


def test_a_real_prometheus_scrapes_every_worker_and_runs_the_rules(live_run, tmp_path):
    import yaml

    binary = _prometheus_or_skip()
    promtool = shutil.which("promtool")
    assert promtool, "the Debian package prometheus ships promtool"
    checked = subprocess.run([promtool, "check", "rules", str(MONITORING / "alerts.yml")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout + checked.stderr, checked
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(MONITORING / "alerts.yml")]
    job = config["scrape_configs"][0]
    job.update(scrape_interval="1s", scrape_timeout="1s")
    del job["static_configs"]  # the ports this run's workers really got, as prometheus.yml describes
    job["file_sd_configs"] = [{"files": [str(live_run.log_dir / "prometheus-targets.json")],
                               "refresh_interval": "1s"}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port("127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    try:
        live_run.cli("replay", str(SEEDS))
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            status, body = _get(f"{base}/api/v1/targets") if _ready(base) else (0, "")
            targets = json.loads(body)["data"]["activeTargets"] if status == 200 else []
            if len(targets) == 5 and all(t["health"] == "up" for t in targets):
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.5)
        ports = {w["name"]: w["metrics_port"] for w in live_run.info["workers"]}
        assert {t["labels"]["pipeline_worker"]: int(t["labels"]["instance"].rsplit(":", 1)[1])
                for t in targets} == ports
        info = _query(base, "news_pipeline_worker_info")["result"]
        assert sorted(r["metric"]["stage"] for r in info) == sorted(ROLES)
        # the recording rules evaluate (rates need two scrapes), and every rule is healthy
        while len(_query(base, "stage:news_pipeline_records_in:rate1m")["result"]) < 5:
            assert time.monotonic() < deadline + 30
            time.sleep(0.5)
        status, body = _get(f"{base}/api/v1/rules")
        groups = json.loads(body)["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert {g["name"] for g in groups} == {"news-pipeline-records", "news-pipeline-alerts"}
        assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
        firing = [r["name"] for r in rules if r["type"] == "alerting" and r["state"] == "firing"]
        assert firing == []
        # every query of the Grafana dashboard runs against the real server
        dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                _query(base, target["expr"])
        lag = _query(base, "stage:news_pipeline_consumer_lag:sum")["result"]
        assert sorted(r["metric"]["stage"] for r in lag) == sorted(ROLES)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _ready(base: str) -> bool:
    try:
        return _get(f"{base}/-/ready")[0] == 200
    except OSError:
        return False


# --- finding a record: `pipeline record`, the dashboard's search, record page and dead letters -----------

def _versions_of_a_page(token: str) -> tuple[dict, dict]:
    """Two fetches of one page (a seed's text; the second edits a paragraph: version 2, a near
    duplicate of the first) whose title carries markup that must stay text on every page."""
    text = sorted(SEEDS.glob("*.txt"))[0].read_text()
    title, _, body = text.partition("\n")
    text = f"{title} <img src=x onerror=window.__xss=1> {token}\n{body}"
    url = f"https://news.example/{token}"
    edited = text.replace("Pada Selasa (29/9), pertumpahan darah", "Hingga Rabu (30/9), pertumpahan darah")
    assert edited != text
    return {"url": url, "text": text}, {"url": url, "text": edited}


def test_pipeline_record_finds_a_record_in_the_sink_and_says_when_it_is_not_found(live_run):
    token = f"rec{uuid.uuid4().hex[:10]}"
    url = f"https://news.example/{token}"
    before = live_run.scrape("sink").records_out
    event = {"url": url, "text": sorted(SEEDS.glob("*.txt"))[1].read_text().replace("\n", f" {token}\n", 1)}
    assert live_run.cli("replay", str(_replay_file(live_run.tmp, [event]))).returncode == 0
    live_run.wait_delivered(before + 1)

    found = live_run.cli("record", url, "--timeout", "10")
    assert found.returncode == 0, found.stderr
    assert re.search(r"^record [0-9a-f]{32}$", found.stdout, re.MULTILINE), found.stdout
    assert f"jsonl:{live_run.tmp / 'out'}" in found.stdout and token in found.stdout
    assert re.search(r"^  trace +clean .* ms · language", found.stdout, re.MULTILINE), found.stdout
    assert "topics not read" not in found.stdout and "in flight" not in found.stdout
    record_id = re.search(r"^record ([0-9a-f]{32})$", found.stdout, re.MULTILINE).group(1)

    as_json = live_run.cli("record", record_id, "--json", "--timeout", "10")
    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["found"] and answer["topics_read"] and answer["letters"] == [] and answer["in_flight"] == []
    (version,) = answer["versions"]
    assert version["record"]["url"] == url and version["record"]["lang"]["code"] == "id"
    assert [t["stage"] for t in version["record"]["trace"]][:2] == ["clean", "language"]

    missing = live_run.cli("record", f"no-such-record-{token}", "--timeout", "10")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "not found in jsonl:" in missing.stderr, missing.stderr
    assert "nor in the topics" in missing.stderr


def test_record_page_search_and_dead_letters_in_headless_chromium(live_run, tmp_path):
    """Search a record, open its page (text with entities marked, time per stage, dedup and version
    links), open dead letters' payloads, replay one. Screenshots go to $PIPELINE_SCREENSHOTS (default:
    this test's tmp_path)."""
    sync_playwright = _chromium_or_skip()
    shots = Path(os.environ.get("PIPELINE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    url = live_run.info["dashboard_url"]
    token = f"pg{uuid.uuid4().hex[:10]}"
    first, second = _versions_of_a_page(token)
    no_text = {"id": f"nomain-{token}", "url": f"https://news.example/menu-{token}",
               "html": "<html><head><title>menu</title></head><body><nav><a href='/'>Home</a></nav></body></html>"}
    empty = {"id": f"empty-{token}", "text": "   "}
    before = live_run.scrape("sink").records_out
    assert live_run.cli("replay", str(_replay_file(live_run.tmp, [first, no_text, empty]))).returncode == 0
    live_run.wait_delivered(before + 1)
    assert live_run.cli("replay", str(_replay_file(live_run.tmp, [second]))).returncode == 0
    live_run.wait_delivered(before + 2)

    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            # the search: text and filters, over what the dashboard holds and the JSONL sink
            form = page.locator("#search-form")
            form.locator("input[name=q]").fill(token)
            form.locator("input[name=lang]").fill("id")
            form.locator("input[name=entity]").fill("peskov")
            form.locator("button").click()
            page.wait_for_function("() => document.querySelectorAll('#results tbody a.record-link').length >= 2")
            rows = page.locator("#results tbody tr").all_inner_texts()
            assert len(rows) == 2 and all(token in r and "<img" in r for r in rows), rows
            page.locator("#search").screenshot(path=str(shots / "search.png"))
            form.locator("input[name=entity]").fill("no such entity anywhere")
            form.locator("button").click()
            page.wait_for_function("() => document.querySelector('#results tbody').innerText.includes('nothing matches')")
            form.locator("input[name=entity]").fill("peskov")
            form.locator("button").click()
            page.wait_for_function("() => document.querySelectorAll('#results tbody a.record-link').length >= 2")

            # the newest version's page
            page.locator("#results tbody a.record-link").first.click()
            page.wait_for_selector("#record-title")
            assert page.inner_text("#record-title").endswith(f"<img src=x onerror=window.__xss=1> {token}")
            assert page.evaluate("window.__xss") is None  # the page's markup stayed text
            marks = page.locator("#text mark.ent")
            assert marks.count() >= 10
            assert "Rusia" in marks.all_inner_texts() and page.locator("#text mark.ent-PER").count() >= 1
            stages = [r.split("\t")[0] for r in page.locator("#trace-table tbody tr").all_inner_texts()]
            assert stages[:4] == ["clean", "language", "entities", "dedup"], stages
            assert page.inner_text("#dedup-status") in ("near_duplicate", "exact_duplicate")
            where = page.inner_text("#where")
            assert f"jsonl:{live_run.tmp / 'out'}" in where, where
            record = page.inner_text("#record")
            previous = re.search(r"previous version ([0-9a-f]{32})", record)
            assert previous and "version\n2 (changed" in record.replace("\t", "\n"), record
            page.wait_for_selector("#versions-card:not([hidden])")
            assert page.locator("#versions li").count() == 2
            page.screenshot(path=str(shots / "record.png"), full_page=True)
            assert page.get_attribute("#duplicate-of", "href").startswith("record?id=")  # the dedup link
            # the version link leads to the first fetch
            page.locator("#previous-version").click()
            page.wait_for_function(f"() => location.search.includes('{previous.group(1)}') && "
                                   "document.getElementById('record-title')")
            assert "version\n1 (" in page.inner_text("#record").replace("\t", "\n")
            # the topics too: the record is in the sink, in flight nowhere, no dead letter
            page.locator("#read-topics").click()
            page.wait_for_function("() => document.getElementById('where').innerText.includes('Read the topics again')")
            assert "in flight" not in page.inner_text("#where")

            # dead letters: their payloads, a replay of the one that can succeed again, none of the other
            page.goto(url)
            page.wait_for_function(f"() => document.getElementById('letters').innerText.includes('empty-{token}') && "
                                   f"document.getElementById('letters').innerText.includes('nomain-{token}')",
                                   timeout=30000)
            links = {}
            for name in ("nomain", "empty"):
                row = page.locator("#letters tbody tr", has_text=f"{name}-{token}")
                links[name] = row.locator("a.letter-link").get_attribute("href")
            assert "not replayable" in page.locator("#letters tbody tr", has_text=f"empty-{token}").inner_text()
            page.goto(url + links["empty"])
            page.wait_for_selector("pre.payload")
            assert json.loads(page.inner_text("pre.payload")) == empty
            assert page.locator("button.replay").is_disabled()
            assert "empty_body" in page.inner_text("#letters")
            page.goto(url + links["nomain"])
            page.wait_for_selector("pre.payload")
            assert json.loads(page.inner_text("pre.payload"))["id"] == no_text["id"]
            page.locator("button.replay").click()
            page.wait_for_selector(".sent")
            assert "sent to pages.raw" in page.inner_text(".sent")
            page.screenshot(path=str(shots / "dead-letter.png"), full_page=True)
            print(f"screenshots: {shots / 'search.png'}, {shots / 'record.png'}, {shots / 'dead-letter.png'}")
            assert not errors, errors
        finally:
            browser.close()
    # the replayed letter went through the clean stage again, and failed the same way
    deadline = time.monotonic() + 30
    while True:
        letters = json.loads(_get(url + "api/state")[1])["data"]["letters"]
        if sum(d["id"] == no_text["id"] for d in letters) >= 2:
            break
        assert time.monotonic() < deadline, letters
        time.sleep(0.3)
    assert all((shots / name).stat().st_size > 10000 for name in ("search.png", "record.png", "dead-letter.png"))


def test_the_dashboard_starts_without_a_broker_and_picks_it_up(live_run):
    import threading

    from pipeline import config
    from pipeline.monitoring import runfile
    from pipeline.monitoring.dashboard import BrokerFeed, Dashboard, RecentData
    from tests.conftest import CONFIG

    live_run.wait_delivered(1)
    settings = runfile.resolve(config.load(CONFIG, env=live_run.env))
    back = threading.Event()  # the broker "answers" from then on
    closed = settings.with_bootstrap(f"127.0.0.1:{free_port('127.0.0.1')}")
    recent = RecentData()
    board = Dashboard(settings.with_bootstrap(""), [], recent, port=0, sample_now=False)
    board.feed = BrokerFeed(lambda: settings if back.is_set() else closed, recent, 3600,
                            on_broker=board.set_broker, retry_s=0.2)
    try:
        deadline = time.monotonic() + 20
        while "does not answer" not in (board.feed.error or ""):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        state = json.loads(_get(board.url + "api/state")[1])
        assert "does not answer" in state["broker_error"] and state["data"]["delivered"] == 0
        back.set()
        while board.feed.error is not None or recent.delivered == 0:  # the last hour's receipts come in
            assert time.monotonic() < deadline + 30, board.feed.error
            time.sleep(0.1)
        state = json.loads(_get(board.url + "api/state")[1])
        assert state["broker_error"] is None and state["data"]["delivered"] > 0
        assert board.settings.broker.bootstrap_servers == settings.broker.bootstrap_servers
    finally:
        board.close()


def test_bench_pipeline_sampler_and_follower_see_the_run(live_run, tmp_path):
    """bench.pipeline's measuring parts against the live run (no figure is checked, only what
    they see): the sampler names every process of the run by its role, with CPU and memory, and
    the CPU of the stage workers grows while a replay goes through; the follower reads the
    replayed events' receipts with their latency."""
    import psutil

    from bench.pipeline.session import DONE_TOPICS, Follower, Sampler, replay, stop_process

    sampler = Sampler(psutil.Process(live_run.proc.pid))
    first = sampler.take()
    roles = {"supervisor", "broker", "dedup-index", *(f"{role}-worker" for role in ROLES)}
    assert roles <= set(first["cpu"]) and roles <= set(first["rss_mib"])
    assert all(first["rss_mib"][role] > 1 for role in roles)
    follower = Follower(live_run.info["bootstrap_servers"], DONE_TOPICS)
    follower.start()
    try:
        t0 = time.time()
        events = _replay_file(tmp_path, [{"url": f"https://bench.example/smoke/{i}", "text": text}
                                         for i, text in enumerate(p.read_text() for p in sorted(SEEDS.iterdir()))])
        feeder = replay(events, live_run.info["bootstrap_servers"])
        deadline = time.monotonic() + 60
        while len(follower.since(t0, DONE_TOPICS)) < 5:
            assert time.monotonic() < deadline, "the replayed events did not complete in 60 s"
            time.sleep(0.2)
        stop_process(feeder)
    finally:
        follower.stop()
    receipts = [s for s in follower.since(t0, ("pages.delivered",))]
    assert len(receipts) == 5 and all(s[2] and s[3] is not None and s[3] >= 0 for s in receipts)
    second = sampler.take()
    assert all(second["cpu"][f"{stage}-worker"] > first["cpu"][f"{stage}-worker"]
               for stage in ("clean", "language", "entities", "dedup"))
    middle = sampler.cpu_at((first["t"] + second["t"]) / 2)
    assert all(first["cpu"][role] <= middle[role] <= second["cpu"][role] for role in roles)
