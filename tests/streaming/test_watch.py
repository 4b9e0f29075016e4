"""`pipeline watch DIR` against a running `pipeline run`: files dropped into the folder reach the
sink once each, also across a restart of the watcher, and files still being written wait."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from pipeline.sinks.jsonl import read_records
from tests.conftest import ROOT, SEEDS
from tests.streaming.test_faults import run_env, start_run, wait_for_workers, wait_until

pytestmark = pytest.mark.integration


def drop(folder, name: str, data: bytes) -> None:
    """As a crawler writes: to an in-progress name first, then renamed."""
    part = folder / f"{name}.part"
    part.write_bytes(data)
    part.rename(folder / name)


def watch(tmp_path, inbox) -> subprocess.Popen:
    env = {**run_env(tmp_path), "PIPELINE__SOURCES__WATCH_STATE_DIR": str(tmp_path / "watch-state"),
           "PIPELINE__SOURCES__WATCH_SETTLE_S": "0.5", "PIPELINE__SOURCES__WATCH_POLL_S": "0.2"}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "watch", str(inbox)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stopped(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def test_files_dropped_into_a_watched_folder_reach_the_sink_once_each(tmp_path):
    seeds = sorted(SEEDS.glob("*.txt"))
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    run = start_run(tmp_path)
    try:
        wait_for_workers(tmp_path, run)
        watcher = watch(tmp_path, inbox)
        for seed in seeds[:3]:
            drop(inbox, seed.name, seed.read_bytes())
        (inbox / "half.txt.part").write_bytes(b"a file still being written")
        wait_until(lambda: len(list(read_records(out, include_open=True))) >= 3, 90, "3 files delivered")
        assert "3 files read" in stopped(watcher)
        for seed in seeds[3:]:  # while nobody watches
            drop(inbox, seed.name, seed.read_bytes())
        watcher = watch(tmp_path, inbox)  # reads only what it has not read
        wait_until(lambda: len(list(read_records(out, include_open=True))) >= len(seeds), 90,
                   f"{len(seeds)} files delivered")
        assert f"{len(seeds) - 3} files read" in stopped(watcher)
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=90)
    sources = sorted(r["source"].rsplit("/", 1)[-1] for r in read_records(out))
    assert sources == [s.name for s in seeds]  # each once; the .part file never
