"""Progress bars of the long commands: count, rate and time left, only on a terminal."""

import io
import time

from rich.console import Console

from pipeline.progress import progress_bar, track


def test_bar_shows_count_rate_and_time_left_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140, color_system=None)
    with progress_bar("enrich", "pages", console=console, transient=False) as bar:
        task = bar.add_task("enrich", total=10)
        for _ in range(4):
            time.sleep(0.02)
            bar.advance(task)
        bar.refresh()
    text = out.getvalue()
    assert "enrich" in text and "4/10" in text and "pages/s" in text and "left" in text


def test_track_passes_every_item_through_and_stays_silent_off_a_terminal(capsys):
    assert list(track(range(5), "replay", enabled=False)) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""
