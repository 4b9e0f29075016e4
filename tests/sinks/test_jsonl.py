import multiprocessing
import os

import orjson

from pipeline.sinks import open_sink
from pipeline.sinks.jsonl import JsonlSink


def rec(i):
    return {"id": f"r{i}", "text": f"record {i}"}


def ids_in(path):
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def test_each_id_once_even_when_written_again(tmp_path):
    path = tmp_path / "out" / "x.jsonl"
    sink = open_sink(f"jsonl:{path}")
    assert sink.write([rec(1), rec(2), rec(2)]) == 2
    assert sink.write([rec(2), rec(3)]) == 1
    sink.close()
    reopened = JsonlSink(path)  # a restarted sink knows what the file holds
    assert reopened.write([rec(1), rec(3), rec(4)]) == 1
    reopened.close()
    assert ids_in(path) == ["r1", "r2", "r3", "r4"]


def test_torn_last_line_is_repaired(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(orjson.dumps(rec(1)) + b"\n" + b'{"id": "r2", "te')  # a writer died mid-line
    sink = JsonlSink(path)
    assert sink.write([rec(2)]) == 1
    sink.close()
    assert ids_in(path) == ["r1", "r2"]


def _writer(path, start):
    sink = JsonlSink(path)
    for i in range(start, start + 300):
        sink.write([rec(i), rec(i + 1)])  # overlapping ids between the two processes
    sink.close()


def test_two_processes_on_one_file_write_each_id_once(tmp_path):
    path = tmp_path / "x.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), s)) for s in (0, 150)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ids = ids_in(path)
    assert len(ids) == len(set(ids)) == 451
    assert os.path.getsize(path) > 0
