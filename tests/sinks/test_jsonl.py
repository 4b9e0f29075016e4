import multiprocessing
import os
import time

import pytest

from pipeline.records import TemporaryFailure
from pipeline.sinks.jsonl import JsonlSink, read_records
from pipeline.sinks.staging import IdLog, Staging


def rec(i):
    return {"id": f"r{i}", "text": f"record {i}", "fetched_at": "2026-11-21T00:00:00Z"}


def staged(folder, roll_bytes, roll_seconds):
    """The JSONL sink's part files, as the sink runner keeps them."""
    return Staging(JsonlSink(folder), roll_bytes, roll_seconds)


def ids(folder, include_open=False):
    return [r["id"] for r in read_records(folder, include_open)]


def test_each_id_once_per_partition_file_even_when_written_again(tmp_path):
    sink = staged(tmp_path, roll_bytes=1 << 20, roll_seconds=3600)
    assert sink.write([rec(1), rec(2), rec(2)], partition=0) == {"r1", "r2"}
    assert sink.write([rec(2), rec(3)], partition=0) == {"r3"}
    assert ids(tmp_path) == []  # nothing finished yet: readers see only whole files
    assert ids(tmp_path, include_open=True) == ["r1", "r2", "r3"]
    sink.close()
    again = staged(tmp_path, roll_bytes=1 << 20, roll_seconds=3600)  # a restarted worker continues the file
    assert again.write([rec(1), rec(3), rec(4)], partition=0) == {"r4"}
    again.finish({0})
    again.close()
    assert ids(tmp_path) == ["r1", "r2", "r3", "r4"]
    assert not list(tmp_path.glob("*.part"))


def test_rolls_by_size_and_age(tmp_path):
    sink = staged(tmp_path, roll_bytes=200, roll_seconds=0.3)
    sink.write([rec(1)], partition=1)
    assert sink.due() == set()
    sink.write([rec(i) for i in range(2, 6)], partition=1)
    sink.write([rec(9)], partition=2)
    assert sink.due() == {1}  # over 200 bytes
    time.sleep(0.35)
    assert sink.due() == {1, 2}  # and now old enough
    finished = sink.finish({1, 2})
    assert sorted(p.name.split("-")[1] for p in finished) == ["p001", "p002"]
    sink.write([rec(10)], partition=1)  # a new file for the partition
    sink.finish({1})
    assert sorted(ids(tmp_path)) == sorted(["r1", "r2", "r3", "r4", "r5", "r9", "r10"])
    sink.close()


def test_torn_last_line_is_repaired(tmp_path):
    part = tmp_path / "enriched-p000-20260101T000000000000.jsonl.part"
    part.write_bytes(b'{"id": "r1", "text": "x"}\n{"id": "r2", "te')  # a worker died mid-line
    sink = staged(tmp_path, roll_bytes=1 << 20, roll_seconds=3600)
    assert len(sink.write([rec(1), rec(2)], partition=0)) == 1
    sink.finish({0})
    assert ids(tmp_path) == ["r1", "r2"]


def _hold(folder, ready, done):
    sink = staged(folder, roll_bytes=1 << 20, roll_seconds=3600)
    sink.write([rec(1)], partition=0)
    ready.set()
    done.wait(30)
    sink.close()


def test_a_partition_file_has_one_writer(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(str(tmp_path), ready, done))
    other.start()
    assert ready.wait(30)
    sink = staged(tmp_path, roll_bytes=1 << 20, roll_seconds=3600)
    with pytest.raises(TemporaryFailure, match="held by another sink process"):
        sink.write([rec(2)], partition=0)
    done.set()
    other.join(30)
    assert len(sink.write([rec(1), rec(2)], partition=0)) == 1  # after the other left, it continues its file
    sink.close()
    assert os.path.exists(tmp_path)


def test_older_leftover_part_files_are_finished_at_start(tmp_path):
    (tmp_path / "enriched-p003-20260101T000000000000.jsonl.part").write_bytes(b'{"id": "a"}\n')
    (tmp_path / "enriched-p003-20260102T000000000000.jsonl.part").write_bytes(b'{"id": "b"}\n')
    staged(tmp_path, roll_bytes=1 << 20, roll_seconds=3600).close()
    assert ids(tmp_path) == ["a"]
    assert ids(tmp_path, include_open=True) == ["a", "b"]


def test_a_record_coming_again_after_its_file_was_finished_is_not_written_twice(tmp_path):
    """An upstream worker that crashed before committing sends its batch again, as new messages."""
    sink = staged(tmp_path, roll_bytes=1 << 20, roll_seconds=3600)
    sink.write([rec(1), rec(2)], partition=0)
    sink.finish({0})
    assert sink.write([rec(2), rec(3)], partition=0) == {"r3"}
    sink.close()
    restarted = staged(tmp_path, roll_bytes=1 << 20, roll_seconds=3600)  # the id log outlives the process
    assert restarted.write([rec(1), rec(3), rec(4)], partition=0) == {"r4"}
    restarted.finish({0})
    restarted.close()
    assert sorted(ids(tmp_path)) == ["r1", "r2", "r3", "r4"]


def test_the_id_log_keeps_a_window(tmp_path):
    log = IdLog(tmp_path / "p000.ids", window=3)
    log.add([bytes([i]) * 16 for i in range(5)])
    assert bytes([1]) * 16 not in log and bytes([4]) * 16 in log
    log.add([bytes([9]) * 16] * 20)  # the file is compacted past four windows
    log.close()
    assert (tmp_path / "p000.ids").stat().st_size <= 4 * 3 * 16
    again = IdLog(tmp_path / "p000.ids", window=3)
    assert bytes([9]) * 16 in again and bytes([3]) * 16 in again


def test_the_id_log_takes_its_whole_window_from_the_start(tmp_path):
    """Placeholders fill what the ids do not (its memory does not grow as records come); they
    never match an id, never reach the file, and the first ids written push them out."""
    log = IdLog(tmp_path / "p000.ids", window=4)
    assert len(log.keys) == len(log.order) == 4
    assert not any(bytes([0]) * 16 in log or bytes([0]) + n.to_bytes(15, "big") in log for n in range(4))
    log.add([bytes([7]) * 16] * 20)  # one id, 20 times: compacted, while 3 placeholders remain
    assert len(log.keys) == 4 and bytes([7]) * 16 in log
    log.close()
    assert (tmp_path / "p000.ids").read_bytes() == bytes([7]) * 16
    again = IdLog(tmp_path / "p000.ids", window=4)
    assert len(again.keys) == 4 and bytes([7]) * 16 in again
