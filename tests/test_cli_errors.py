"""Bad invocations fail fast: one line naming the problem, exit code 2, and nothing started or
left running (no broker, no worker: the checks come before anything starts). How fast is not
asserted here (a loaded machine would make that flaky): the checks run before anything slow does,
which the absent broker folder shows."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SEEDS

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    """A loopback port nothing listens on (taken from the kernel, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def invoke(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run ``pipeline ARGS`` in a session of its own; (exit code, stderr, seconds). Fails when any
    process of that session is still alive after the command exits."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("PIPELINE__") and k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    environ.update(env or {})
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=environ,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        elapsed = time.monotonic() - t0
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything it started and left behind
            left_behind = True
        except ProcessLookupError:
            left_behind = False
    assert not left_behind, f"`pipeline {' '.join(args)}` left processes running"
    return proc.returncode, err.decode(errors="replace"), elapsed


BAD = {
    "unknown sink kind": (["run", "--sink", "csv:out/x"], {}, "unknown sink kind 'csv'"),
    "parquet without a folder": (["run", "--sink", "parquet:"], {}, "parquet sink needs a folder"),
    "postgres without a DSN": (["run", "--sink", "postgres:"], {}, "needs a connection string"),
    "postgres not answering": (["run", "--sink", "postgres:postgresql://127.0.0.1:{port}/x"], {},
                               "PostgreSQL at postgresql://127.0.0.1:{port}/x cannot be used"),
    "sink folder under a file": (["run", "--sink", "jsonl:{file}/out"], {}, "is not a folder"),
    "replay of a missing file": (["run", "--replay", "missing.jsonl"], {}, "no such file or folder: missing.jsonl"),
    "external broker not answering": (["run"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:{port}"},
                                      "no broker answers at 127.0.0.1:{port}"),
    "external index not answering": (["run"], {"PIPELINE__STAGES__DEDUP__STORE": "redis://127.0.0.1:{port}/0"},
                                     "the dedup index redis://127.0.0.1:{port}/0 does not answer"),
    "negative partitions": (["run"], {"PIPELINE__TOPICS__PARTITIONS": "-3"},
                            "topics.partitions must be >= 1, got -3 (set by PIPELINE__TOPICS__PARTITIONS"),
    "a key that does not exist": (["run"], {"PIPELINE__DEDUP__THRESHOLD": "0.85"},
                                  "unknown key(s) in [root]: dedup (set by PIPELINE__DEDUP__THRESHOLD"),
    "a value out of range": (["run"], {"PIPELINE__STAGES__DEDUP__THRESHOLD": "1.5"},
                             "(set by PIPELINE__STAGES__DEDUP__THRESHOLD='1.5')"),
    "enrich a missing file": (["enrich", "/nonexistent.jsonl"], {}, "no such file or folder: /nonexistent.jsonl"),
    "enrich a URL": (["enrich", "https://example.com/article"], {}, "is a URL, not a file"),
    "enrich with an index not answering": (["enrich", "--dedup-store", "redis://127.0.0.1:{port}/0", str(SEEDS)], {},
                                           "does not answer"),
    "dead letters since no time": (["deadletter", "list", "--since", "the day before"], {}, "not a time"),
    "an unknown option": (["run", "--bogus"], {}, "unrecognized arguments: --bogus"),
    "an unknown stage": (["enrich", "--stages", "nope", str(SEEDS)], {}, "unknown stage(s): nope"),
    "status of no running pipeline": (["status", "--once"], {"PIPELINE__RUN__LOG_DIR": "{file}.logs"},
                                      "no pipeline is running here (no live run file at"),
    "waiting for the end of an endless source": (["run", "--replay", "ingest:127.0.0.1:{port}", str(SEEDS),
                                                   "--exit-when-done"], {"PIPELINE__INGEST__TOKEN": "t"},
                                                  "--exit-when-done: ingest:127.0.0.1:{port} never ends by itself"),
    "an ingest endpoint without a port number": (["enrich", "ingest:localhost:http"], {"PIPELINE__INGEST__TOKEN": "t"},
                                                 "ingest:localhost:http: give ingest:PORT or ingest:HOST:PORT"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_invocation_is_one_line_and_exit_2_before_anything_starts(case, tmp_path):
    args, env, expected = BAD[case]
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    port = closed_port()
    fill = {"port": port, "file": a_file}
    args = [a.format(**fill) for a in args]
    env = {k: v.format(**fill) for k, v in env.items()}
    code, err, _ = invoke(args, tmp_path, env)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("pipeline") and expected.format(**fill) in lines[0], lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "broker").exists()  # nothing was started


def test_doctor_checks_like_run_and_says_where_each_value_came_from(tmp_path):
    port = closed_port()
    env = {"PIPELINE__TOPICS__PARTITIONS": "6", "PIPELINE__BROKER__SASL_PASSWORD": "hunter2-secret"}
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith("PIPELINE__")}, **env}
    out = subprocess.run([sys.executable, "-m", "pipeline", "doctor", "--sink",
                          f"postgres:postgresql://someone:pw-secret@127.0.0.1:{port}/x", "--sink", "jsonl:out"],
                         cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1, out.stderr
    text = out.stdout
    assert "FAIL  sink postgres:postgresql://someone:***@127.0.0.1" in text
    assert "ok    sink jsonl:out" in text
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ") and "[" in line}
    assert rows["topics.partitions"].split()[1] == "6" and "[PIPELINE__TOPICS__PARTITIONS]" in rows["topics.partitions"]
    assert "config/pipeline.toml]" in rows["topics.raw"]
    assert '"***"' in rows["broker.sasl_password"]
    assert "secret" not in text + out.stderr


def test_since_takes_times_durations_and_days():
    from datetime import UTC, datetime, timedelta

    from pipeline.cli import parse_since

    def midnight_before(days: int) -> datetime:
        return (datetime.now(UTC) - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)

    before = midnight_before(1)
    yesterday = parse_since("yesterday")
    assert yesterday in (before, midnight_before(1))  # (midnight may pass in between)
    assert parse_since("today") - yesterday == timedelta(days=1)
    assert abs((datetime.now(UTC) - parse_since("2h")) - timedelta(hours=2)) < timedelta(seconds=5)
    assert parse_since("2026-12-01T10:00:00Z") == datetime(2026, 12, 1, 10, tzinfo=UTC)


def run_cut(args: list[str], cut: str, cwd: Path) -> tuple[int, str]:
    """Run ``pipeline ARGS`` with its standard ``cut`` ("stdout" or "stderr") a pipe whose reader is
    already gone (``| head -1`` once head has left); (exit code, what the other stream received)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE__")}
    read_end, write_end = os.pipe()
    os.close(read_end)
    kept = cwd / "kept"
    try:
        with kept.open("wb") as other:
            streams = {"stdout": write_end, "stderr": other} if cut == "stdout" else {"stdout": other, "stderr": write_end}
            proc = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=environ,
                                  stdin=subprocess.DEVNULL, timeout=60, **streams)
    finally:
        os.close(write_end)
    return proc.returncode, kept.read_text()


@pytest.mark.parametrize("args", [["enrich", str(SEEDS), "--stages", "clean"], ["doctor"]], ids=["enrich", "doctor"])
def test_a_cut_output_ends_quietly_with_141(args, tmp_path):
    code, err = run_cut(args, "stdout", tmp_path)
    assert code == 141, err  # 128 + SIGPIPE, as a shell reports for any tool its reader left
    assert err == ""  # no traceback, no "Exception ignored ... BrokenPipeError" at exit


def test_a_cut_stderr_stops_enrich_and_the_records_written_stay(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"url": "https://example.com/a", "text": "Presiden Joko Widodo meresmikan jalan tol."}\n'
                      "not json\n"
                      '{"url": "https://example.com/b", "text": "Another text, after the dead letter."}\n')
    code, out = run_cut(["enrich", str(events), "--stages", "clean"], "stderr", tmp_path)
    assert code == 141
    assert [json.loads(line)["url"] for line in out.splitlines()] == ["https://example.com/a"]


TAKEN = {  # (args, environment, what the one line says); {taken}: a port another socket listens on
    "worker, --metrics-port taken": (["worker", "clean", "--bootstrap", "127.0.0.1:{port}", "--metrics-port", "{taken}"],
                                     {}, ": it is taken (another process listens there); give another with --metrics-port N"),
    "worker, the stage's configured port taken": (["worker", "clean", "--bootstrap", "127.0.0.1:{port}"],
                                                  {"PIPELINE__MONITORING__PORTS__CLEAN": "{taken}"},
                                                  ": it is taken (another process listens there); set "
                                                  "monitoring.ports.clean (PIPELINE__MONITORING__PORTS__CLEAN)"),
    "run, the ingest endpoint's port taken": (["run", "--replay", "ingest:127.0.0.1:{taken}", str(SEEDS)],
                                              {"PIPELINE__INGEST__TOKEN": "t"}, ": it is taken (another process "
                                              "listens there); give another port as ingest:HOST:PORT, or set ingest.port "
                                              "(PIPELINE__INGEST__PORT)"),
    "enrich, the ingest endpoint's port taken": (["enrich", "ingest:127.0.0.1:{taken}"],
                                                 {"PIPELINE__INGEST__TOKEN": "t"}, "(PIPELINE__INGEST__PORT)"),
    "dashboard, --port taken": (["dashboard", "--port", "{taken}", "--target", "clean=127.0.0.1:{port}"], {},
                                " for dashboard: Address already in use; give it another port "
                                "(`pipeline dashboard --help` names the option"),
}


@pytest.mark.parametrize("case", sorted(TAKEN))
def test_a_taken_port_is_one_line_naming_it_and_what_moves_it(case, tmp_path):
    args, env, expected = TAKEN[case]
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        fill = {"port": closed_port(), "taken": other.getsockname()[1]}
        code, err, seconds = invoke([a.format(**fill) for a in args], tmp_path,
                                    {k: v.format(**fill) for k, v in env.items()})
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert f"cannot listen on 127.0.0.1:{fill['taken']}" in lines[0] and expected in lines[0], lines[0]
    assert not (tmp_path / "out" / "broker").exists()  # found before anything started


def test_a_metrics_port_taken_after_the_check_is_the_same_one_line():
    """Between the worker's check and its bind another process may take the port: the same line."""
    from pipeline import config
    from pipeline.stages.base import StageStats
    from pipeline.streaming.preflight import PreflightFailed
    from pipeline.streaming.worker import start_metrics
    from tests.conftest import CONFIG

    settings = config.load(CONFIG, env={})
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        with pytest.raises(PreflightFailed) as failed:
            start_metrics(settings, "clean", "clean@test", taken, StageStats)
    (line,) = failed.value.problems
    assert line == (f"the metrics of worker clean cannot listen on 127.0.0.1:{taken}: it is taken (another process "
                    "listens there); give another with --metrics-port N (0: any free port)")
