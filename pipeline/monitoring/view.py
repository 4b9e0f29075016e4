"""``pipeline status``: the live terminal view (rich), or one JSON document for scripts."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipeline import registry
from pipeline.config import Settings
from pipeline.monitoring.status import PipelineStatus, StatusCollector, Target, expected_workers, summarise

STYLE = {"ok": "green", "idle": "dim", "starting": "yellow", "warn": "yellow", "behind": "red",
         "failing": "red", "down": "bold red"}


def _n(value, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _rate(value) -> str:
    return "–" if value is None else f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def _ms(value) -> str:
    if value is None:
        return "–"
    return f"{value:,.1f} ms" if value < 1000 else f"{value / 1000:,.2f} s"


def _s(value) -> str:
    return "–" if value is None else _ms(value * 1000)


def _mb(value) -> str:
    return f"{value / 1048576:,.0f} MB" if value else "–"


def render(status: PipelineStatus) -> Group:
    headline = Text(status.verdict, style=f"bold {STYLE.get(status.level, '')}")
    table = Table(expand=False, pad_edge=False, box=None, header_style="bold dim")
    for name, justify in (("stage", "left"), ("workers", "right"), ("in/s", "right"), ("out/s", "right"),
                          ("waiting", "right"), ("p50", "right"), ("p99", "right"), ("dead letters", "right"),
                          ("cpu", "right"), ("memory", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    table.add_column("health", overflow="fold")
    for s in status.stages:
        lag = _n(s.lag)
        if s.lag_change:
            lag += f" ({'+' if s.lag_change > 0 else ''}{s.lag_change:,})"
        if s.broker_short_by:
            lag += "*"
        dead = _n(s.dead_letters) + (f" ({_rate(s.dead_per_s)}/s)" if s.dead_per_s else "")
        table.add_row(s.stage, f"{s.workers_ready}/{s.workers_expected}", _rate(s.in_per_s), _rate(s.out_per_s), lag,
                      _ms(s.p50_ms), _ms(s.p99_ms), dead,
                      "–" if s.cpu_percent is None else f"{s.cpu_percent:.0f}%", _mb(s.memory_bytes),
                      Text(s.verdict, style=STYLE.get(s.level, "")))
    lines = [headline, table]
    e2e = f"end-to-end (ingestion to sink) p50 {_s(status.end_to_end_p50_s)}, p99 {_s(status.end_to_end_p99_s)}"
    if status.end_to_end_window:
        e2e += f" ({status.end_to_end_window})"
    lines.append(Text(e2e))
    sink = status.stages[-1] if status.stages else None
    if sink is not None and sink.skipped_written:
        lines.append(Text(f"sink: {sink.records_out - sink.skipped_written:,.0f} records written, "
                          f"{sink.skipped_written:,.0f} skipped (already written: sent again, not written again)"))
    if status.fetcher:
        lines.append(Text(fetcher_line(status.fetcher)))
    down = [w for w in status.workers if not w.up]
    for w in down:
        lines.append(Text(f"worker {w.name} ({w.url}) does not answer: {w.error}", style="red"))
    if status.broker_error:
        lines.append(Text(f"broker: {status.broker_error}", style="red"))
    short = sum(s.broker_short_by for s in status.stages)
    if short:
        lines.append(Text(f"* the broker's end offsets were {short:,} records short of what the workers saw; "
                          "the larger figure is shown", style="dim"))
    window = f"rates over the last {status.window_s:.0f} s; " if status.window_s else ""
    lines.append(Text(f"{window}{status.lag_note}.", style="dim"))
    return Group(*lines)


def fetcher_line(f: dict) -> str:
    """One line on the fetch stage: rates, the mix of HTTP answers, robots blocks, hosts waiting."""
    parts = [f"{f['stage']}: {_rate(f['pages_per_s'])} pages/s from {_rate(f['requests_per_s'])} HTTP requests/s"]
    if f["answers"]:
        parts.append("answers " + ", ".join(f"{k} ×{v:,.0f}" for k, v in list(f["answers"].items())[:8]))
    parts.append(f"robots.txt blocked {f['robots_blocked']:,.0f}")
    if f["already_fetched"]:
        parts.append(f"{f['already_fetched']:,.0f} fetched already")
    if f["hosts_waiting"]:
        top = ", ".join(f"{h['host'].split('://')[-1]} {h['waiting']:,.0f}" for h in f["hosts_waiting"][:5])
        parts.append(f"URLs waiting per host in the batch: {top}"
                     + (f" (+{f['hosts_waiting_total'] - 5} hosts)" if f["hosts_waiting_total"] > 5 else ""))
    return "; ".join(parts)


def console_for(stream=None) -> Console:
    """A console at least 132 columns wide when the output is not a terminal (a pipe, a file)."""
    console = Console(file=stream)
    if not console.is_terminal:
        console = Console(file=stream, width=max(132, console.width))
    return console


def collect_once(settings: Settings, targets: list[Target], window_s: float) -> PipelineStatus:
    collector = StatusCollector(settings, targets)
    try:
        first = collector.sample()
        time.sleep(window_s)
        collector.sample(broker_error=first.lag_error if collector.probe is not None else "")
        return summarise(collector.history(), settings.monitoring.health, expected_workers(settings, targets),
                         window_s=window_s, stall_after_s=settings.monitoring.stall_after_s,
                         roles=registry.roles(settings))
    finally:
        collector.close()


def live(settings: Settings, targets: list[Target], window_s: float, console: Console | None = None,
         follow_runfile: bool = True) -> None:
    """Redraw every ``monitoring.sample_interval_s`` until Ctrl-C (``follow_runfile``: pick up the
    workers of a restarted ``pipeline run``)."""
    from pipeline.monitoring import runfile

    console = console or console_for()
    collector = StatusCollector(settings, targets, keep_s=max(window_s, settings.monitoring.health.lag_growing_s) + 5)
    interval = settings.monitoring.sample_interval_s
    try:
        with Live(console=console, auto_refresh=False, transient=False) as screen:
            while True:
                started = time.monotonic()
                if follow_runfile and runfile.running_info(settings):  # a new `pipeline run` has new ports
                    from pipeline.monitoring.status import targets_of

                    fresh = targets_of(settings)
                    if fresh:
                        collector.set_targets(fresh)
                collector.sample()
                status = summarise(collector.history(), settings.monitoring.health,
                                   expected_workers(settings, collector.targets), window_s=window_s,
                                   stall_after_s=settings.monitoring.stall_after_s,
                                   roles=registry.roles(settings))
                screen.update(render(status), refresh=True)
                time.sleep(max(0.05, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        pass
    finally:
        collector.close()
