"""A watched folder (``watch:DIR``): files are read once they settle, each once across restarts,
in-progress names never; no broker (the sender's acknowledgements are played by the test)."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime

import orjson

from pipeline.sources.folder import WatchedFolderSource
from tests.conftest import SEEDS
from tests.sources.playback import collect


def settled(path, age_s=10.0):
    old = time.time() - age_s
    os.utime(path, (old, old))


def test_each_settled_file_once_across_restarts_and_never_a_file_in_progress(tmp_path):
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    (inbox / "sub").mkdir(parents=True)
    seed = sorted(SEEDS.glob("*.txt"))[0]
    (inbox / "a.txt").write_bytes(seed.read_bytes())
    (inbox / "sub" / "events.jsonl").write_bytes(
        b"".join(orjson.dumps({"text": f"Kabar nomor {i} dari kota.", "url": f"https://x.example/{i}"}) + b"\n"
                 for i in range(3)))
    (inbox / "b.html.part").write_bytes(b"<html>half")
    (inbox / ".hidden.txt").write_bytes(b"not for us")
    (inbox / "fresh.txt").write_bytes(b"still being written")  # modified just now: not settled
    for path in (inbox / "a.txt", inbox / "sub" / "events.jsonl", inbox / "b.html.part", inbox / ".hidden.txt"):
        settled(path)
    source = WatchedFolderSource(str(inbox), str(state), poll_s=0.05, settle_s=1.5)
    items = collect(source, 1.0, until=4)
    assert [i.origin.rsplit("/", 1)[-1] for i in items] == ["a.txt", "events.jsonl:1", "events.jsonl:2",
                                                             "events.jsonl:3"]
    assert [i.checkpoint for i in items] == [True, False, False, True]
    # the fetch time is the file's: a file read again after a crash gives the same ids
    mtime = (inbox / "a.txt").stat().st_mtime
    assert abs(datetime.fromisoformat(items[0].event["fetched_at"]).timestamp() - mtime) < 1e-3
    time.sleep(1.2)  # fresh.txt settles; a.txt is not read again
    assert [i.origin.rsplit("/", 1)[-1] for i in collect(source, 20, until=1)] == ["fresh.txt"]

    restarted = WatchedFolderSource(str(inbox), str(state), poll_s=0.05, settle_s=1.5)
    assert collect(restarted, 0.3) == []  # the journal remembers every file
    (inbox / "a.txt").write_bytes(seed.read_bytes() + b"\nKoreksi: judul diperbarui.\n")
    settled(inbox / "a.txt", 5.0)
    (inbox / "c.txt").write_bytes(b"Berita baru hari ini di kota.")
    settled(inbox / "c.txt", 3.0)
    again = collect(restarted, 20, until=2)
    assert [i.origin.rsplit("/", 1)[-1] for i in again] == ["a.txt", "c.txt"]  # new content of a.txt, then c.txt


def test_a_file_not_acknowledged_is_read_again_after_a_restart_with_the_same_ids(tmp_path):
    from datetime import UTC, datetime

    from pipeline.records import accept_raw

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "events.jsonl").write_bytes(b"".join(orjson.dumps({"text": f"Kabar {i}.", "source": "feed"}) + b"\n"
                                                  for i in range(2)))
    settled(inbox / "events.jsonl")
    crashed = WatchedFolderSource(str(inbox), str(tmp_path / "state"), poll_s=0.05, settle_s=1.0)
    first = list(_take(crashed, 2))  # the sender died before the file's checkpoint was acknowledged
    second = collect(WatchedFolderSource(str(inbox), str(tmp_path / "state"), poll_s=0.05, settle_s=1.0), 20, until=2)
    ids = [[accept_raw(i.event, datetime.now(UTC)).id for i in items] for items in (first, second)]
    assert len(ids[1]) == 2 and ids[0] == ids[1]


def _take(source, n):
    stop = threading.Event()
    for k, item in enumerate(source.items(stop=stop)):
        yield item
        if k + 1 == n:
            stop.set()
            return


def test_a_full_disk_under_the_journal_loses_nothing_and_leaves_no_half_line(tmp_path, small_disk, caplog):
    """The journal's disk fills: the sender is told (an error in the log, once), the journal keeps
    only whole lines, and the entries it could not take are written with the next acknowledgement
    once there is room; a file never journaled is read again after a restart, under the same ids."""
    from pipeline.sources.base import acknowledge
    from tests.conftest import fill

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (inbox / name).write_text(f"Berita {name} hari ini di kota, dengan beberapa kalimat lagi.")
        settled(inbox / name)
    state = small_disk / "state"
    source = WatchedFolderSource(str(inbox), str(state), poll_s=0.05, settle_s=1.0)
    items = collect(source, 20, acknowledge=False, until=3)
    assert acknowledge(source, items[0].position)  # a.txt journaled
    size = source.journal.stat().st_size  # fill its last page, so the next line needs a new one
    source.journal.open("ab").write(b'{"pad": "' + b"x" * (4096 - size % 4096 - 12) + b'"}\n')
    filler = fill(small_disk, leave_bytes=0)
    with caplog.at_level("ERROR", logger="pipeline.sources"):
        assert not acknowledge(source, items[1].position)
        assert not acknowledge(source, items[2].position)
    assert caplog.text.count("could not record") == 1 and "No space left on device" in caplog.text
    lines = source.journal.read_bytes().splitlines()
    assert len(lines) == 2 and orjson.loads(lines[0])["name"] == "a.txt"  # whole lines only
    restarted = WatchedFolderSource(str(inbox), str(state), poll_s=0.05, settle_s=1.0)
    assert [i.origin.rsplit("/", 1)[-1] for i in collect(restarted, 20, acknowledge=False, until=2)] == ["b.txt", "c.txt"]
    filler.unlink()
    c = WatchedFolderSource(str(inbox), str(tmp_path / "other-state"), poll_s=0.05, settle_s=1.0)
    assert acknowledge(source, collect(c, 20, acknowledge=False, until=1)[0].position)  # any acknowledgement now: all in
    assert [orjson.loads(line).get("name") for line in source.journal.read_bytes().splitlines()] == \
        ["a.txt", None, "b.txt", "c.txt", "a.txt"]
    assert collect(WatchedFolderSource(str(inbox), str(state), poll_s=0.05, settle_s=1.0), 0.3) == []
