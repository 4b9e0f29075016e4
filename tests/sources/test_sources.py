"""Sources behind one interface: files by path, a source of your own by configuration alone
(``tests/toy_source.py``), each resumable after a position."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import orjson
import pytest

from pipeline import config
from pipeline.sources import Source, SourceItem, UnknownSource, open_source
from pipeline.sources.files import FilesSource
from pipeline.sources.reading import read_sources
from tests.conftest import CONFIG, ROOT, SEEDS
from tests.toy_source import ENV, CountingSource


def test_files_are_a_source_that_knows_its_size_and_resumes(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b'{"text": "a"}\n\nnot json\n{"text": "b"}\n')
    source = open_source(str(events), config.load(CONFIG, env={}))
    assert isinstance(source, FilesSource) and source.size() == 3
    items = list(source.items())
    assert [i.position for i in items] == [f"{events}:1", f"{events}:3", f"{events}:4"]
    assert items[1].event is None and items[1].payload == b"not json"
    assert [i.event for i in source.items(after=f"{events}:3")] == [{"text": "b"}]
    assert FilesSource([str(SEEDS)]).size() == len(list(FilesSource([str(SEEDS)]).items())) == 5
    with pytest.raises(FileNotFoundError):
        FilesSource([str(tmp_path / "missing")])


def test_a_source_of_your_own_is_opened_by_kind_from_configuration():
    settings = config.load(CONFIG, env=ENV)
    source = open_source("count:4", settings)
    assert isinstance(source, CountingSource) and source.size() == 4
    assert [i.position for i in source.items(after="2")] == ["3", "4"]
    # without the configuration line, "count:4" is a path like any other
    with pytest.raises(FileNotFoundError):
        open_source("count:4", config.load(CONFIG, env={}))
    broken = config.load(CONFIG, env={"PIPELINE__SOURCES__PLUGINS": '{count = "tests.nowhere:Nothing"}'})
    with pytest.raises(UnknownSource, match="cannot load"):
        open_source("count:4", broken)
    with pytest.raises(config.ConfigError, match="sources.plugins"):
        config.load(CONFIG, env={"PIPELINE__SOURCES__PLUGINS": '{count = "no-colon"}'})
    shadowing = config.load(CONFIG, env={"PIPELINE__SOURCES__PLUGINS": '{files = "x:Y"}'})
    with pytest.raises(UnknownSource, match="files is built in"):
        open_source("count:4", shadowing)


def test_pipeline_enrich_reads_a_source_of_your_own():
    result = subprocess.run([sys.executable, "-m", "pipeline", "enrich", "count:3", "--no-progress"], cwd=ROOT,
                            env={**os.environ, **ENV}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["url"] for r in records] == [f"https://news.example/{i}" for i in (1, 2, 3)]
    assert all(r["lang"]["code"] == "id" for r in records)


def test_a_missing_path_is_one_line_and_exit_code_2():
    result = subprocess.run([sys.executable, "-m", "pipeline", "enrich", "no/such/folder"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "pipeline: no such file or folder: no/such/folder"


class Endless(Source):
    """An endless source: one item, then nothing until it is stopped (an endpoint nobody pushes
    to). ``ended`` is set once its items returned."""

    kind = "endless"
    bounded = False

    def __init__(self):
        self.ended = threading.Event()

    def items(self, after=None, stop=None):
        try:
            yield SourceItem("endless:1", event={"text": "pushed"})
            stop.wait()
        finally:
            self.ended.set()


class Failing(Source):
    kind = "failing"

    def items(self, after=None, stop=None):
        yield SourceItem("failing:1", event={"text": "one"})
        raise OSError("the disk went away")


@pytest.mark.timeout(60)  # read one after another, the seeds would wait forever behind the endless source
def test_an_endless_source_is_read_alongside_the_bounded_ones_which_keep_their_order():
    endless, stop = Endless(), threading.Event()
    alone = [i.origin for i in FilesSource([str(SEEDS)]).items()]
    count = CountingSource("2")
    stream = read_sources([endless, FilesSource([str(SEEDS)]), count], stop)
    got: list[tuple[str, str]] = []
    for source, item in stream:
        got.append((source.kind, item.origin))
        if len(got) == 1 + len(alone) + 2:
            break
    # bounded sources one after another in the order given, the endless one's item whenever it came
    assert [origin for kind, origin in got if kind != "endless"] == alone + ["count:1", "count:2"]
    assert ("endless", "endless:1") in got and not endless.ended.is_set()
    stop.set()
    assert list(stream) == [] and endless.ended.wait(10)  # it ends once stopped, the endless source too

    endless, stop = Endless(), threading.Event()
    with pytest.raises(OSError, match="the disk went away"):  # an error in a source's thread is the reader's
        list(read_sources([endless, Failing()], stop))
    assert endless.ended.wait(10) and not stop.is_set()  # the other sources are stopped, not the caller's event
