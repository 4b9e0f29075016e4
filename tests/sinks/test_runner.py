"""The sink runner (partitions, rolls, offsets) with sinks found by kind, and a sink of your own
registered by configuration alone (``tests/toy_sink.py``); no broker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline import config
from pipeline.sinks import UnknownSink, local_folder, open_sinks
from pipeline.sinks.jsonl import read_records
from pipeline.sinks.runner import SinkRunner
from tests.conftest import CONFIG, ROOT
from tests.toy_sink import ENV, rows


def rec(i, lang="id"):
    return {"id": f"r{i}", "url": f"https://news.example/{i}", "text": "satu dua tiga " * i,
            "lang": {"code": lang}, "fetched_at": "2026-12-05T00:00:00Z"}


def settings(**env):
    return config.load(CONFIG, env={**ENV, "PIPELINE__SINK__ROLL_SECONDS": "0", **env}).sink


def test_a_sink_of_your_own_runs_beside_the_file_sinks_each_id_once(tmp_path):
    targets = [f"tally:{tmp_path / 'tally.sqlite'}", f"jsonl:{tmp_path / 'files'}"]
    runner = SinkRunner(open_sinks(targets, settings()), settings())
    assert runner.names == targets
    assert runner.write([rec(1), rec(2)], partition=0) == {targets[0]: {"r1", "r2"}, targets[1]: {"r1", "r2"}}
    # ids are the message keys: a record coming again comes in its partition
    assert runner.write([rec(2), rec(3, "en")], partition=0) == {targets[0]: {"r3"}, targets[1]: {"r3"}}
    assert runner.write([rec(4)], partition=1) == {targets[0]: {"r4"}, targets[1]: {"r4"}}
    for offset in (0, 1):
        runner.handled(0, offset)
    runner.handled(1, 0)
    assert runner.rolls_due()
    # a part file is finished only once every offset it holds is committed (next offset to read)
    assert len(runner.roll({0: 1, 1: 1})) == 1 and [r["id"] for r in read_records(tmp_path / "files")] == ["r4"]
    assert len(runner.roll({0: 2})) == 1
    runner.close({})
    assert sorted(r["id"] for r in read_records(tmp_path / "files")) == ["r1", "r2", "r3", "r4"]
    assert [r[:3] for r in rows(str(tmp_path / "tally.sqlite"))] == [
        ("r1", "https://news.example/1", "id"), ("r2", "https://news.example/2", "id"),
        ("r3", "https://news.example/3", "en"), ("r4", "https://news.example/4", "id")]
    # a restarted worker: every sink still knows what it wrote
    again = SinkRunner(open_sinks(targets, settings()), settings())
    assert again.write([rec(1), rec(5)], partition=0) == {targets[0]: {"r5"}, targets[1]: {"r5"}}
    again.close({})


def test_partitions_released_uncommitted_are_left_to_their_next_owner(tmp_path):
    target = f"jsonl:{tmp_path}"
    runner = SinkRunner(open_sinks([target], settings()), settings())
    runner.write([rec(1)], partition=2)
    runner.handled(2, 7)
    runner.release({2}, {2: 7})  # offset 7 is not committed: the part file stays open for the next owner
    assert list(read_records(tmp_path)) == [] and len(list(tmp_path.glob("*.part"))) == 1
    nxt = SinkRunner(open_sinks([target], settings()), settings())
    assert nxt.write([rec(1), rec(5)], partition=2) == {target: {"r5"}}
    nxt.handled(2, 8)
    nxt.close({2: 9})
    assert [r["id"] for r in read_records(tmp_path)] == ["r1", "r5"] and not list(tmp_path.glob("*.part"))


def test_a_part_file_left_for_a_partition_that_gets_no_record_again_is_finished_by_its_next_owner(tmp_path):
    """A sink killed after its last transaction committed leaves a part file; the partition may
    never get another record (the end of a run, a quiet partition)."""
    target = f"jsonl:{tmp_path}"
    killed = SinkRunner(open_sinks([target], settings()), settings())
    killed.write([rec(1), rec(2)], partition=1)
    killed.release({1}, {})  # what a SIGKILL leaves: the part file, unfinished
    nxt = SinkRunner(open_sinks([target], settings()), settings())
    nxt.adopt({0, 1})
    nxt.close({})
    assert [r["id"] for r in read_records(tmp_path)] == ["r1", "r2"] and not list(tmp_path.glob("*.part"))
    # its ids joined the id log: the same records delivered again are not written twice
    again = SinkRunner(open_sinks([target], settings()), settings())
    assert again.write([rec(1), rec(2)], partition=1) == {target: set()}
    again.close({})


def test_sink_kinds_are_checked_in_one_line(tmp_path):
    s = settings()
    assert local_folder(f"jsonl:{tmp_path}", s) == tmp_path and local_folder("parquet:x", s).name == "x"
    assert local_folder("postgres:", s) is None and local_folder(f"tally:{tmp_path}/t", s) is None
    with pytest.raises(UnknownSink, match="unknown sink kind 'nope'.*known: jsonl, parquet, postgres"):
        open_sinks(["nope:x"], s)
    with pytest.raises(UnknownSink, match="jsonl is built in"):
        open_sinks([f"jsonl:{tmp_path}"], settings(PIPELINE__SINK__PLUGINS='{jsonl = "tests.toy_sink:TallySink"}'))
    with pytest.raises(UnknownSink, match="not a Sink or a FileSink"):
        open_sinks(["bad:x"], settings(PIPELINE__SINK__PLUGINS='{bad = "tests.toy_sink:rows"}'))
    with pytest.raises(UnknownSink, match="cannot load"):
        open_sinks(["gone:x"], settings(PIPELINE__SINK__PLUGINS='{gone = "tests.no_such_module:Sink"}'))


def test_pipeline_run_with_an_unknown_sink_says_so_in_one_line(tmp_path):
    from tests.streaming.test_faults import run_env

    result = subprocess.run([sys.executable, "-m", "pipeline", "run", "--no-dashboard", "--sink",
                             "nope:postgresql://u:secret@h/db", "--replay", "seeds", "--exit-when-done"],
                            cwd=ROOT, env=run_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pipeline: unknown sink kind 'nope' in 'nope:postgresql://u:***@h/db'; known: jsonl, parquet, postgres, postgresql"]
