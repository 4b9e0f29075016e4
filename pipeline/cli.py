"""The ``pipeline`` command."""

from __future__ import annotations

import argparse
import sys

from pipeline import __version__

LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("text", "json")


def _settings(args, **overrides):
    from pipeline import config
    from pipeline.redaction import remember_settings

    dotted = {k: v for k, v in overrides.items() if v is not None}
    settings = config.load(getattr(args, "config", None), overrides=dotted)
    remember_settings(settings)
    return settings


def _setup_logging(level: str, fmt: str = "text") -> None:
    from pipeline.monitoring.logs import setup

    setup(level, fmt)


def cmd_run(args) -> int:
    from rich.console import Console

    from pipeline.redaction import redact
    from pipeline.stages import check_plugins
    from pipeline.streaming.supervisor import Supervisor

    settings = _settings(args)
    replay = list(args.replay or [])
    if args.feeds:
        import dataclasses

        from pipeline import registry

        replay.append(f"feeds:{args.feeds}")
        if not registry.fetches(settings):  # feeds give URLs: the chain starts by fetching them
            stages = dataclasses.replace(settings.stages, chain=["fetch", *settings.stages.chain])
            settings = dataclasses.replace(settings, stages=stages)
    _setup_logging("warn", args.log_format or settings.run.log_format)
    check_plugins(settings)  # a plugin stage that does not load, or wrong options: one line, before anything starts
    console = Console(stderr=True)
    supervisor = Supervisor(settings, sink_targets=args.sink, console=console, log_level=args.log_level,
                            log_format=args.log_format, dashboard=not args.no_dashboard,
                            dashboard_port=args.dashboard_port, layout=args.layout)
    summary = supervisor.run(replay or None, exit_when_done=args.exit_when_done, rate=args.rate, loop=args.loop,
                             timeout_s=args.timeout)
    out = Console()
    for line in summary.lines():
        out.print(line, highlight=False)
    out.print(f"sink            {', '.join(redact(t) for t in supervisor.sink_targets)}", highlight=False)
    if args.exit_when_done and (summary.missing or summary.replayed == 0 and replay):
        return 1
    return 0


SECRET_KEYS = ("password", "token", "secret")


def cmd_doctor(args) -> int:
    """The checks `pipeline run` makes before it starts, then the effective configuration and where
    each value came from (secrets masked)."""
    import orjson

    from pipeline import config
    from pipeline.redaction import redact
    from pipeline.streaming import preflight

    settings = _settings(args)
    checks = preflight.checks(settings, args.sink)
    rows = []
    for dotted, value, where in config.effective(settings):
        shown = "***" if value and any(k in dotted.rsplit(".", 1)[-1] for k in SECRET_KEYS) else value
        rows.append((dotted, redact(orjson.dumps(shown, default=str).decode()), where))
    if args.json:
        print(orjson.dumps({"config_file": settings.source,
                            "checks": [{"what": c.what, "problems": c.problems} for c in checks],
                            "settings": [{"key": k, "value": orjson.loads(v), "from": w} for k, v, w in rows]},
                           option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"configuration file: {settings.source}")
        for check in checks:
            print(f"  {'ok  ' if not check.problems else 'FAIL'}  {check.what}")
            for problem in check.problems:
                print(f"        {problem}")
        if not checks:
            print("  (nothing outside this process to check: embedded broker and index, no sink)")
        print("settings (value, then where it came from):")
        width = max(len(k) for k, _, _ in rows)
        for dotted, value, where in rows:
            print(f"  {dotted:<{width}}  {value}  [{where}]")
    return 1 if any(c.problems for c in checks) else 0


def cmd_worker(args) -> int:
    from pipeline import registry
    from pipeline.streaming.worker import run_worker

    overrides = {"broker.bootstrap_servers": args.bootstrap} if args.bootstrap else {}
    settings = _settings(args, **overrides)
    if args.stage not in registry.roles(settings):
        print(f"pipeline worker: unknown stage {args.stage!r}; stages are {', '.join(registry.roles(settings))}",
              file=sys.stderr)
        return 2
    log_format = args.log_format or settings.run.log_format
    _setup_logging(args.log_level, log_format)
    return run_worker(settings, args.stage, sink_targets=args.sink, log_level=args.log_level,
                      ready_file=args.ready_file, metrics_port=args.metrics_port,
                      metrics_port_fallback=args.metrics_port_fallback, log_format=log_format)


def cmd_replay(args) -> int:
    from rich.console import Console

    from pipeline.monitoring import runfile
    from pipeline.streaming.replay import replay

    settings = runfile.resolve(_settings(args), args.bootstrap)
    stop = _stop_on_signals()  # stop between events, flush what was sent
    result = replay(args.paths, settings.broker.bootstrap_servers, settings, rate=args.rate, loop=args.loop,
                    progress=sys.stderr.isatty(), track=not args.loop, stop=stop)
    console = Console(stderr=True)
    console.print(f"replayed {result.count} events to {settings.topics.raw} in {result.seconds:.1f} s"
                  + (" (interrupted)" if result.interrupted else ""))
    for origin, error in result.rejected:
        console.print(f"[red]not sent: {origin}: {error}[/red]")
    return 1 if result.rejected else 0


def cmd_watch(args) -> int:
    from rich.console import Console

    from pipeline.monitoring import runfile
    from pipeline.sources import open_source
    from pipeline.streaming.replay import replay

    settings = runfile.resolve(_settings(args), args.bootstrap)
    source = open_source(f"watch:{args.folder}", settings)
    stop = _stop_on_signals()  # stop between events, flush what was sent
    console = Console(stderr=True)
    console.print(f"watching {source.folder} (journal {source.journal}); Ctrl-C stops")
    result = replay([source], settings.broker.bootstrap_servers, settings, progress=False, track=False, stop=stop)
    console.print(f"{source.files_read} files read, {result.count} events sent to {settings.topics.raw}")
    if result.unrecorded:
        console.print(f"[red]{result.unrecorded} files sent but not recorded in the journal (its disk failed): "
                      "they are read and sent again after a restart; the sink skips them[/red]")
    for origin, error in result.rejected:
        console.print(f"[red]not sent: {origin}: {error}[/red]")
    return 1 if result.rejected else 0


def _stop_on_signals():
    """An event set by the first SIGINT or SIGTERM (the caller stops between items and closes its
    stages); a second one interrupts at once (KeyboardInterrupt)."""
    import signal
    import threading

    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


def cmd_enrich(args) -> int:
    import threading

    import orjson

    from pipeline.enrich import OfflinePipeline, parse_stage_list
    from pipeline.sources import check_fetching, open_sources
    from pipeline.sources.base import acknowledge
    from pipeline.sources.reading import read_sources

    _setup_logging("warn")
    settings = _settings(args)
    try:
        stages = parse_stage_list(args.stages, settings)
    except ValueError as exc:
        print(f"pipeline enrich: {exc}", file=sys.stderr)
        return 2
    from pipeline.progress import track

    if not args.paths and sys.stdin.isatty():
        print("pipeline enrich: reading raw events (JSON lines) from standard input, Ctrl-D ends; "
              "give files, folders or urls:FILE to read those instead", file=sys.stderr)
    sources = open_sources(args.paths or ["-"], settings)
    check_fetching(sources, "fetch" in stages)
    from pipeline.streaming import preflight

    preflight.require_sources(sources)  # a port an endpoint cannot listen on: one line, before any stage loads
    store = args.dedup_store or settings.stages.dedup.store
    if "dedup" in stages and store.startswith(("redis://", "rediss://", "unix://")):
        from pipeline.streaming import preflight

        preflight.require_redis(store, "the dedup index", "start Redis, or leave --dedup-store out "
                                "(each run then keeps its own index in memory)")
    pipeline = OfflinePipeline(settings, stages, dedup_store=args.dedup_store)
    out = sys.stdout.buffer
    # a bar only when stderr is a terminal that does not also receive the records or dead letters
    show = sys.stderr.isatty() and not sys.stdout.isatty() and not args.no_progress
    sizes = [s.size() for s in sources] if show else [None]
    total = None if None in sizes else sum(sizes)
    dead = 0
    # an endless source (an endpoint, a feed, a watched folder) ends at a signal between items; bounded
    # ones (files, standard input, which may block in a read) are interrupted where they are
    stop = _stop_on_signals() if any(not s.bounded for s in sources) else threading.Event()
    try:
        # an endless source is read alongside the others, not before them (pipeline.sources.reading)
        items = track(read_sources(sources, stop), "enrich", total=total, enabled=show)
        current: list = [None]  # the source of the item in hand (enrich_items takes one at a time)

        def tagged():
            for source, item in items:
                if stop.is_set():  # between items: what was written stays whole
                    return
                current[0] = source
                yield item

        for item, outcome in pipeline.enrich_items(tagged()):
            if outcome.record is not None:
                out.write(orjson.dumps(outcome.record) + b"\n")
            else:
                dead += 1
                sys.stderr.buffer.write(orjson.dumps(outcome.dead_letter) + b"\n")
            if item.checkpoint and item.position is not None:  # a source that waits for its items to be out
                out.flush()
                acknowledge(current[0], item.position)
        out.flush()
    finally:
        if args.stats:
            sys.stderr.write(orjson.dumps(pipeline.stats(), option=orjson.OPT_INDENT_2).decode() + "\n")
        pipeline.close()
        for source in sources:
            source.close()
    return 130 if stop.is_set() else 0


def _selection(args):
    from pipeline.streaming.deadletters import Selection

    return Selection(stages=set(args.stage or []), reasons=set(args.reason or []),
                     since=args.since)


def cmd_deadletter_list(args) -> int:
    import orjson
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from pipeline.monitoring import runfile
    from pipeline.streaming import deadletters

    settings = runfile.resolve(_settings(args), args.bootstrap)
    letters, copies = deadletters.list_letters(settings, _selection(args))
    if args.json:
        for letter in letters:
            sys.stdout.buffer.write(orjson.dumps(letter) + b"\n")
        return 0
    shown = letters[-args.limit:] if args.limit else letters
    console = Console()
    title = f"{len(letters)} dead letters in {settings.topics.deadletter}, oldest first"
    if len(shown) < len(letters):
        title += f" (the newest {len(shown)}: --limit 0 shows all)"
    if copies:
        title += f"; {copies} {'copy' if copies == 1 else 'copies'} of a letter left out (written again after a redelivery)"
    # one line per letter at any width: time, stage and reason whole; record, url and error share the
    # rest of the line and are cut with an ellipsis
    rows = []
    for letter in shown:
        error = (letter.get("error") or "").strip().splitlines()
        rows.append(((letter.get("failed_at") or "").replace("T", " ")[5:19], letter.get("stage") or "",
                     letter.get("reason") or "", letter.get("id") or "(not an event)", deadletters.origin_of(letter),
                     error[0] if error else ""))
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, expand=True)
    for i, name in enumerate(("failed (UTC)", "stage", "reason")):
        width = max([len(r[i]) for r in rows] + [len(name)])
        table.add_column(name, no_wrap=True, min_width=width, max_width=width)
    table.add_column("record", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("url / source", no_wrap=True, overflow="ellipsis", ratio=2)
    table.add_column("error", no_wrap=True, overflow="ellipsis", ratio=3)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    counts = {}
    for letter in letters:
        key = f"{letter.get('stage')}/{letter.get('reason')}"
        counts[key] = counts.get(key, 0) + 1
    for key, n in sorted(counts.items()):
        console.print(f"  {key}: {n}", highlight=False)
    return 0


def cmd_deadletter_replay(args) -> int:
    from pipeline.monitoring import runfile
    from pipeline.streaming import deadletters

    settings = runfile.resolve(_settings(args), args.bootstrap)
    report = deadletters.replay(settings, _selection(args), from_start=args.all, dry_run=args.dry_run,
                                progress=sys.stderr.isatty(), force=args.force)
    verb = "would send" if args.dry_run else "sent"
    total = sum(report.sent.values())
    print(f"{verb} {total} dead letters back to their stages", file=sys.stderr)
    for (topic, reason), n in sorted(report.sent.items()):
        print(f"  {topic} ({reason}): {n}", file=sys.stderr)
    if report.copies:
        print(f"  left out: {report.copies} {'copy' if report.copies == 1 else 'copies'} of a letter already sent "
              "(written again after a redelivery)", file=sys.stderr)
    if report.not_replayable:
        print(f"  not replayable (payload cut at the size limit, or unknown topic): {report.not_replayable}",
              file=sys.stderr)
    for reason, n in sorted(report.cannot_succeed.items()):
        print(f"  left out: {n} {reason} (the payload itself is broken: it would fail again; --force sends "
              "them anyway)", file=sys.stderr)
    return 0


def cmd_schema(args) -> int:
    import orjson

    from pipeline.records import record_json_schema

    sys.stdout.buffer.write(orjson.dumps(record_json_schema(), option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def cmd_completion(args) -> int:
    from pipeline import completion, registry
    from pipeline.sinks import kinds

    settings = _settings(args)  # the stages and sink kinds of this configuration, plugins too
    sys.stdout.write(completion.script(build_parser(), args.shell, roles=registry.roles(settings),
                                       chain=registry.chain(settings), sink_kinds=sorted(kinds(settings.sink))))
    return 0


def cmd_topics(args) -> int:
    from pipeline.monitoring import runfile
    from pipeline.streaming.topics import ensure_topics

    settings = runfile.resolve(_settings(args), args.bootstrap)
    plan = ensure_topics(settings.broker.bootstrap_servers, settings, timeout_s=args.timeout)
    for name, parts in plan.items():
        print(f"{name}\t{parts} partitions")
    return 0


def _status_settings(args):
    from pipeline.monitoring import runfile

    settings = _settings(args)
    try:
        return runfile.resolve(settings, args.bootstrap)
    except RuntimeError:
        return settings  # no broker known: the workers' own numbers, without lag


def _which_pipeline(settings, targets_given: list[str] | None, command: str) -> str:
    """What ``status``/``dashboard`` read, in words: the run file of a live ``pipeline run``, or the
    workers named by ``--target``. Neither: a one-line error (exit 2) rather than reading whatever
    answers on the configured ports."""
    from pipeline.monitoring import runfile

    if targets_given:
        return f"the workers named by --target ({len(targets_given)})"
    info = runfile.running_info(settings)
    if info is None:
        raise FileNotFoundError(f"{command}: no pipeline is running here (no live run file at {runfile.path(settings)}): "
                          "start `pipeline run`, set PIPELINE__RUN__LOG_DIR to its log folder, or name workers "
                          "started some other way with --target URL")
    return (f"the pipeline of {runfile.path(settings)} (pid {info.get('pid')}, started {info.get('started_at') or '?'}, "
            f"broker {info.get('bootstrap_servers')})")


def cmd_status(args) -> int:
    import orjson

    from pipeline.monitoring import view
    from pipeline.monitoring.status import SEVERITY, targets_of

    settings = _status_settings(args)
    if args.once or args.json:
        which = _which_pipeline(settings, args.target, "pipeline status")
        targets = targets_of(settings, args.target)
        status = view.collect_once(settings, targets, args.window if args.window is not None else 1.0)
        if args.json:
            sys.stdout.buffer.write(orjson.dumps({**status.as_dict(), "reading": which},
                                                 option=orjson.OPT_INDENT_2) + b"\n")
        else:
            console = view.console_for()
            console.print(f"[dim]reading {which}[/dim]", highlight=False)
            console.print(view.render(status))
        return 0 if SEVERITY[status.level] < SEVERITY["behind"] else 1
    targets = targets_of(settings, args.target)
    view.live(settings, targets, args.window if args.window is not None else 10.0, follow_runfile=not args.target)
    return 0


def cmd_dashboard(args) -> int:
    import signal
    import time

    from rich.console import Console

    from pipeline.monitoring import runfile
    from pipeline.monitoring.dashboard import BrokerFeed, Dashboard, RecentData
    from pipeline.monitoring.status import expected_workers, targets_of

    base = _settings(args)
    try:
        settings = runfile.resolve(base, args.bootstrap)
    except RuntimeError:  # no broker known yet: the workers' numbers and the sinks, until one answers
        settings = base
    which = _which_pipeline(settings, args.target, "pipeline dashboard")
    targets = targets_of(settings, args.target)
    recent = RecentData()
    dashboard = Dashboard(settings, targets, recent, port=args.port, fallback=args.port is None,
                          expected=expected_workers(settings, targets))
    # receipts and dead letters once the broker answers (the page says so until then)
    dashboard.feed = BrokerFeed(lambda: runfile.resolve(base, args.bootstrap), recent, args.lookback,
                                on_broker=dashboard.set_broker)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # before the address is out: whoever reads it may stop us at once
    Console(stderr=True).print(f"dashboard {dashboard.url} (Ctrl-C to stop), reading {which}", highlight=False)
    try:
        while True:
            time.sleep(2.0)
            if not args.target and runfile.running_info(settings):
                dashboard.set_targets(targets_of(settings))
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.close()
    return 0


def cmd_record(args) -> int:
    """Where a record is (sinks, dead letters, still in a topic) and its content, by id or URL."""
    import orjson

    from pipeline.monitoring import lookup, runfile
    from pipeline.redaction import redact

    key = args.key.strip()
    if not key:
        print("pipeline record: give a record id or a URL (see `pipeline record --help`)", file=sys.stderr)
        return 2
    settings = _settings(args)
    try:
        settings = runfile.resolve(settings, args.bootstrap)
    except RuntimeError:
        pass  # no broker known: the sinks only (the result says the topics were not read)
    targets = args.sink or runfile.run_sinks(settings)
    result = lookup.find(settings, key, targets, topics=not args.no_topics, timeout_s=args.timeout)
    if not result.found:
        where = ", ".join(redact(t) for t in targets)
        notes = "; ".join(result.notes) or ("topics not read (--no-topics)" if args.no_topics else "")
        print(f"pipeline record: {key} not found in {where}"
              + (" nor in the topics" if result.topics_read else "") + (f" ({notes})" if notes else ""),
              file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(lookup.text(result))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit code 2 (argparse's own prints the usage too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def parse_since(text: str):
    """An ISO-8601 time, a duration back from now ("90s", "15m", "2h", "3d"), "today" or
    "yesterday" (midnight UTC)."""
    from datetime import UTC, datetime, timedelta

    from pipeline.records import parse_iso

    value = text.strip().lower()
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if value in ("today", "yesterday"):
        return midnight - timedelta(days=1 if value == "yesterday" else 0)
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if len(value) > 1 and value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return now - timedelta(**{units[value[-1]]: float(value[:-1])})
    try:
        return parse_iso(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (give an ISO-8601 time, 2h, 3d, today or yesterday)") from None


def _examples(*pairs: tuple[str, str]) -> str:
    """An ``--help`` epilog: each example a comment line, then the command as it is typed."""
    lines = ["examples:"]
    for what, command in pairs:
        lines += [f"  # {what}", f"  {command}"]
    return "\n".join(lines)


def _command(sub, name: str, text: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` starts with ``text`` and ends with its examples, line breaks kept."""
    return sub.add_parser(name, help=text, description=text, epilog=examples,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    from pipeline import completion

    parser = OneLineParser(prog="pipeline", description="Streaming ingestion pipeline for news pages.",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_examples(
                               ("the seed pages through every stage, then exit",
                                "pipeline run --replay seeds/ --exit-when-done"),
                               ("the same stages in this process, no broker: records on stdout",
                                "pipeline enrich seeds/ --stages clean,language"),
                               ("every command has examples of its own",
                                "pipeline deadletter list --help")))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", help="configuration file (default: config/pipeline.toml)").complete = completion.FILE
    sub = parser.add_subparsers(dest="command", required=True)

    run = _command(sub, "run", "start broker (if none configured), topics and all stage workers", _examples(
        ("the five seed pages through every stage (embedded broker and index), then exit",
         "pipeline run --replay seeds/ --exit-when-done"),
        ("the same, the records also in Parquet files under out/parquet",
         "pipeline run --replay seeds/ --exit-when-done --sink jsonl:out/enriched --sink parquet:out/parquet"),
        ("a continuous pipeline fed the seeds over and over, 5 pages a second; Ctrl-C stops it",
         "pipeline run --replay seeds/ --loop --rate 5"),
        ("take raw events pushed to POST /ingest on 127.0.0.1:8470, with the bearer token change-me",
         "PIPELINE__INGEST__TOKEN=change-me pipeline run --replay ingest:")))
    run.add_argument("--replay", nargs="+", metavar="PATH",
                     help="replay these files/folders/JSONL once started").complete = completion.FILE
    run.add_argument("--exit-when-done", action="store_true",
                     help="exit once every replayed event reached the sink or the dead-letter topic")
    run.add_argument("--feeds", metavar="FILE", help="poll the RSS/Atom feeds and sitemaps listed in FILE (one a line; "
                     "re-read while running) and fetch their new articles (adds the fetch stage)"
                     ).complete = completion.FILE
    run.add_argument("--rate", type=float, help="replay at most N events per second")
    run.add_argument("--loop", action="store_true", help="replay the paths over and over (not with --exit-when-done)")
    run.add_argument("--sink", action="append", metavar="KIND:LOCATION",
                     help="sink target(s), e.g. jsonl:out/x.jsonl").complete = completion.SINK_TARGET
    run.add_argument("--timeout", type=float, default=300.0, help="with --exit-when-done: give up after S seconds")
    run.add_argument("--log-level", choices=LOG_LEVELS, help="log level of the worker processes")
    run.add_argument("--log-format", choices=LOG_FORMATS, help="worker logs as text or JSON lines (run.log_format)")
    run.add_argument("--dashboard-port", type=int, help="port of the web dashboard (monitoring.dashboard_port)")
    run.add_argument("--no-dashboard", action="store_true", help="serve no web dashboard")
    run.add_argument("--layout", choices=("fixed", "auto"),
                     help="workers per stage: run.workers (fixed), or more where a stage falls behind and a core "
                          "is spare (auto; run.workers is the floor) (default: run.layout)")
    run.set_defaults(func=cmd_run)

    worker = _command(sub, "worker", "run one stage worker (a Faust app in its own consumer group)", _examples(
        ("one more clean worker for the pipeline whose Kafka answers at 127.0.0.1:9092 (metrics on a free port)",
         "pipeline worker clean --bootstrap 127.0.0.1:9092 --metrics-port 0"),
        ("a sink worker writing to PostgreSQL",
         "pipeline worker sink --bootstrap 127.0.0.1:9092 --sink postgres:postgresql://127.0.0.1:5432/test"),
        ("logs as JSON lines, metrics on any free port (the broker of KAFKA_BOOTSTRAP_SERVERS)",
         "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 pipeline worker language --log-format json --metrics-port 0")))
    worker.add_argument("stage", help="a stage of stages.chain, or sink").complete = completion.STAGE
    worker.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config / KAFKA_BOOTSTRAP_SERVERS)")
    worker.add_argument("--sink", action="append", metavar="KIND:LOCATION",
                        help="for the sink worker: target(s)").complete = completion.SINK_TARGET
    worker.add_argument("--log-level", choices=LOG_LEVELS, default="warn")
    worker.add_argument("--log-format", choices=LOG_FORMATS, help="text or JSON lines (default: run.log_format)")
    worker.add_argument("--ready-file",
                        help="touch this file once the worker has its partitions").complete = completion.FILE
    worker.add_argument("--metrics-port", type=int,
                        help="serve /metrics, /healthz, /readyz here (default: monitoring.ports; 0: any free port)")
    worker.add_argument("--metrics-port-fallback", action="store_true",
                        help="take a free port when the metrics port is in use (written next to --ready-file)")
    worker.set_defaults(func=cmd_worker)

    replay = _command(sub, "replay", "send raw events from files to the raw topic", _examples(
        ("the seed pages into the running `pipeline run` (its broker from out/logs/run.json)",
         "pipeline replay seeds/"),
        ("over and over, 2 pages a second, until Ctrl-C", "pipeline replay seeds/ --rate 2 --loop"),
        ("one raw event from standard input",
         """echo '{"url": "https://example.com/a", "text": "Hello there."}' | pipeline replay -""")))
    replay.add_argument("paths", nargs="+", metavar="PATH",
                        help="files, folders, JSONL files, or - for stdin").complete = completion.FILE
    replay.add_argument("--rate", type=float, help="at most N events per second")
    replay.add_argument("--loop", action="store_true", help="replay over and over until interrupted")
    replay.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config / KAFKA_BOOTSTRAP_SERVERS)")
    replay.set_defaults(func=cmd_replay)

    watch = _command(sub, "watch", "ingest files as they appear in a folder, each once, until stopped", _examples(
        ("send what lands in out/incoming to the running `pipeline run`; Ctrl-C stops",
         "mkdir -p out/incoming && pipeline watch out/incoming"),
        ("then, in another terminal", "cp seeds/*.txt out/incoming/"),
        ("the same for a pipeline whose Kafka answers at 127.0.0.1:9092",
         "pipeline watch out/incoming --bootstrap 127.0.0.1:9092")))
    watch.add_argument("folder", help="the folder (pages, text, JSONL and WARC files; subfolders too)"
                       ).complete = completion.FOLDER
    watch.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config, or the running `pipeline run`)")
    watch.set_defaults(func=cmd_watch)

    enrich = _command(sub, "enrich", "run the stages in this process, no broker; JSONL records to stdout", _examples(
        ("every stage over the seed pages, records to a file", "pipeline enrich seeds/ > out/seeds.jsonl"),
        ("only the main text, title and metadata of each page", "pipeline enrich seeds/ --stages clean"),
        ("the language and entities of one text (no clean stage: the text is taken as it is)",
         """echo '{"text": "Presiden Joko Widodo meresmikan jalan tol di Semarang, Jawa Tengah."}' """
         "| pipeline enrich --stages language,entities"),
        ("the stages' counters on stderr at the end", "pipeline enrich seeds/ --stats > /dev/null")))
    enrich.add_argument("paths", nargs="*", metavar="PATH",
                        help="files, folders, JSONL files; - or nothing: stdin").complete = completion.FILE
    enrich.add_argument("--stages", help="comma-separated subset of clean,language,entities,dedup"
                        ).complete = completion.STAGE_LIST
    enrich.add_argument("--dedup-store", default="memory", help="memory (default) or a redis:// URL")
    enrich.add_argument("--stats", action="store_true", help="print stage counters to stderr at the end")
    enrich.add_argument("--no-progress", action="store_true", help="no progress bar on the terminal")
    enrich.set_defaults(func=cmd_enrich)

    topics = _command(sub, "topics", "create the pipeline's topics on a running broker", _examples(
        ("the topics of the configuration on a Kafka at 127.0.0.1:9092",
         "pipeline topics --bootstrap 127.0.0.1:9092"),
        ("12 partitions each, replicated three times (a cluster of three brokers)",
         "PIPELINE__TOPICS__PARTITIONS=12 PIPELINE__TOPICS__REPLICATION_FACTOR=3 pipeline topics "
         "--bootstrap 127.0.0.1:9092")))
    topics.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config / KAFKA_BOOTSTRAP_SERVERS)")
    topics.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the broker's answers (default 30)")
    topics.set_defaults(func=cmd_topics)

    doctor = _command(sub, "doctor", "check sinks, Redis, PostgreSQL and the broker as `run` would, and print "
                                     "the effective configuration with where each value came from", _examples(
        ("the checks and the settings of config/pipeline.toml", "pipeline doctor"),
        ("whether this PostgreSQL would take the records", "pipeline doctor --sink postgres:postgresql://127.0.0.1:5432/test"),
        ("where a value set in the environment comes from, as JSON",
         "PIPELINE__TOPICS__PARTITIONS=8 pipeline doctor --json")))
    doctor.add_argument("--sink", action="append", metavar="KIND:LOCATION",
                        help="check these sink targets instead of the configured ones (repeatable)"
                        ).complete = completion.SINK_TARGET
    doctor.add_argument("--json", action="store_true", help="one JSON document")
    doctor.set_defaults(func=cmd_doctor)

    schema = _command(sub, "schema", "the JSON Schema of an enriched record (from pipeline/records.py)", _examples(
        ("the schema, to a file", "pipeline schema > out/record.schema.json"),
        ("the fields of a record",
         """pipeline schema | python3 -c 'import json, sys; print(*json.load(sys.stdin)["properties"])'""")))
    schema.set_defaults(func=cmd_schema)

    status = _command(sub, "status", "every stage of a running pipeline: workers, rates, lag, latency, health",
                      _examples(
        ("live, for the running `pipeline run` (Ctrl-C ends)", "pipeline status"),
        ("once, for scripts: exit code 1 when a stage is behind, failing or down", "pipeline status --once --json"),
        ("workers started elsewhere, by their metrics endpoints",
         "pipeline status --once --target clean=127.0.0.1:9110 --target sink=127.0.0.1:9150")))
    status.add_argument("--once", action="store_true", help="print once and exit (exit code 1 when behind or down)")
    status.add_argument("--json", action="store_true", help="one JSON document (implies --once)")
    status.add_argument("--window", type=float,
                        help="seconds of rates and latency (default: 10 live, 1 with --once)")
    status.add_argument("--target", action="append", metavar="[STAGE=]HOST:PORT",
                        help="a worker's metrics endpoint (repeatable; default: the running `pipeline run`'s "
                             "workers, else monitoring.ports)")
    status.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config, or the running pipeline)")
    status.set_defaults(func=cmd_status)

    dash = _command(sub, "dashboard", "serve the web dashboard for a running pipeline", _examples(
        ("a dashboard of the running `pipeline run` on port 9200", "pipeline dashboard --port 9200"),
        ("of workers started elsewhere, with the last ten minutes of records and dead letters",
         "pipeline dashboard --target clean=127.0.0.1:9110 --target sink=127.0.0.1:9150 "
         "--bootstrap 127.0.0.1:9092 --lookback 600")))
    dash.add_argument("--port", type=int, help="port (default: monitoring.dashboard_port, else a free one)")
    dash.add_argument("--target", action="append", metavar="[STAGE=]HOST:PORT",
                      help="a worker's metrics endpoint (repeatable; default as for `pipeline status`)")
    dash.add_argument("--lookback", type=float, default=3600.0,
                      help="read receipts and dead letters of this many seconds back (default: one hour)")
    dash.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config, or the running pipeline)")
    dash.set_defaults(func=cmd_dashboard)

    record = _command(sub, "record", "where a record is (sinks, dead letters, still in a topic) and its "
                                     "content, by its id or its URL (every version of the page)", _examples(
        ("the page that `pipeline replay --help`'s last example sent: where it is, and its content",
         "pipeline record https://example.com/a"),
        ("what the sinks hold of it, every version in full, as one JSON document",
         "pipeline record https://example.com/a --no-topics --json"),
        ("look in a Parquet folder only", "pipeline record https://example.com/a --sink parquet:out/parquet --no-topics")))
    record.add_argument("key", metavar="ID|URL", help="a record id, or a page's URL")
    record.add_argument("--json", action="store_true", help="one JSON document: every version, copy, dead letter "
                                                             "and message in full")
    record.add_argument("--sink", action="append", metavar="KIND:LOCATION",
                        help="look in these sinks (default: the running `pipeline run`'s, else sink.targets)").complete = completion.SINK_TARGET
    record.add_argument("--no-topics", action="store_true", help="the sinks only: read no topic")
    record.add_argument("--timeout", type=float, default=10.0, help="seconds to read the topics (default 10)")
    record.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config, or the running pipeline)")
    record.set_defaults(func=cmd_record)

    dead = _command(sub, "deadletter", "list dead letters, or send them back to their stage", _examples(
        ("the dead letters of the last two hours", "pipeline deadletter list --since 2h"),
        ("what would go back to the stages, sending nothing", "pipeline deadletter replay --dry-run")))
    dead_sub = dead.add_subparsers(dest="deadletter_command", required=True)
    dead_examples = {
        "list": _examples(
            ("every dead letter of the running pipeline, oldest first", "pipeline deadletter list"),
            ("those of the clean stage since midnight (UTC)", "pipeline deadletter list --stage clean --since today"),
            ("every field as JSON lines, for one reason",
             "pipeline deadletter list --reason no_main_text --json")),
        "replay": _examples(
            ("count what would be sent back, send nothing", "pipeline deadletter replay --dry-run"),
            ("the language stage's time-outs, after raising its time limit",
             "pipeline deadletter replay --stage language --reason timeout"),
            ("everything from the start of the topic, broken payloads too",
             "pipeline deadletter replay --all --force")),
    }
    for name, func, text in (("list", cmd_deadletter_list, "show dead letters (stage, reason, time, id, error)"),
                             ("replay", cmd_deadletter_replay, "re-send dead letters to the stage that failed")):
        cmd = _command(dead_sub, name, text, dead_examples[name])
        cmd.add_argument("--stage", action="append", help="only this stage (repeatable)").complete = completion.STAGE
        cmd.add_argument("--reason", action="append", help="only this reason code (repeatable)")
        cmd.add_argument("--since", type=parse_since,
                         help="only dead letters from this time on: ISO-8601, 2h, 3d, today, yesterday")
        cmd.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config, or the running pipeline)")
        cmd.set_defaults(func=func)
        if name == "list":
            cmd.add_argument("--json", action="store_true", help="JSON lines, every field")
            cmd.add_argument("--limit", type=int, default=200, help="rows in the table (0: all)")
        else:
            cmd.add_argument("--all", action="store_true",
                             help="from the beginning of the topic (default: only those not replayed before)")
            cmd.add_argument("--dry-run", action="store_true", help="count, send nothing")
            cmd.add_argument("--force", action="store_true",
                             help="also send letters whose payload cannot succeed (malformed_json, invalid_event, "
                                  "empty_body, undecodable)")

    comp = _command(sub, "completion", "print the shell completion script for bash or zsh", _examples(
        ("bash: completion in every new shell",
         "pipeline completion bash > ~/.pipeline-completion.bash && "
         "echo 'source ~/.pipeline-completion.bash' >> ~/.bashrc"),
        ("zsh: a completion function in the first folder of $fpath (then start a new shell)",
         """pipeline completion zsh > "${fpath[1]}/_pipeline\""""),
        ("bash, in this shell only", 'source <(pipeline completion bash)')))
    comp.add_argument("shell", choices=completion.SHELLS)
    comp.set_defaults(func=cmd_completion)
    return parser


class _LastClientError:
    """Remembers the newest error the Kafka client logged: it says why a connection failed (e.g.
    refused credentials) where the exception it raises afterwards only says it gave up."""

    def __init__(self):
        import logging

        self.messages: list[str] = []
        handler = logging.Handler(level=logging.ERROR)
        handler.emit = self._emit
        logging.getLogger("kafka").addHandler(handler)

    def _emit(self, record) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a log record that cannot be formatted
            return
        if message not in self.messages:
            self.messages = (self.messages + [message])[-4:]

    @property
    def message(self) -> str:
        return "; ".join(self.messages)


#: the exit status when the reader of our output went away (`pipeline enrich seeds/ | head -1`):
#: 128 + SIGPIPE, what a shell reports for any Unix tool its reader left. Not 0: not everything was
#: written (with `set -o pipefail` a script sees that `enrich` did not deliver all its records).
EXIT_OUTPUT_CUT = 141


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here a reader that left is seen, not as "Exception ignored" at exit
    except BrokenPipeError:
        return _output_cut()


def _output_cut() -> int:
    """Our standard output (or error) is a pipe whose reader left: end quietly, as a Unix tool
    does. The broken stream is pointed at /dev/null, so that what is still buffered for it goes
    nowhere at exit instead of raising again; a stream that still works keeps what it was given."""
    import os
    import select

    poll = select.poll()
    for fd in (1, 2):
        poll.register(fd, 0)  # POLLERR is always reported: the pipe has no reader any more
    broken = [fd for fd, events in poll.poll(0) if events & select.POLLERR]
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in broken or [1]:
        os.dup2(devnull, fd)
    os.close(devnull)
    return EXIT_OUTPUT_CUT


def _main(argv: list[str] | None) -> int:
    from pipeline import redaction

    redaction.install()  # no password or token leaves this process in its output
    args = build_parser().parse_args(argv)
    redaction.remember_texts(getattr(args, "sink", None) or [])
    from pipeline.config import ConfigError
    from pipeline.registry import UnknownStage
    from pipeline.sinks import UnknownSink
    from pipeline.sources import UnknownSource
    from pipeline.streaming.preflight import PreflightFailed

    client_error = _LastClientError()

    try:
        return args.func(args)
    except PreflightFailed as exc:
        for problem in exc.problems:
            print(f"pipeline: {problem}", file=sys.stderr)
        return 2
    except (ConfigError, UnknownStage) as exc:
        print(f"pipeline: configuration error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, UnknownSource, UnknownSink) as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # start-up failures the user can act on (broker, index, workers)
        print(f"pipeline: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        import errno

        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
            raise
        # a server of this command cannot listen where it was told to (`pipeline dashboard --port N`)
        print(f"pipeline: {exc.strerror or exc}; give it another port (`pipeline {args.command} --help` names "
              "the option, 0 for any free port)", file=sys.stderr)
        return 2
    except Exception as exc:
        from kafka.errors import KafkaError

        if not isinstance(exc, KafkaError):
            raise
        # e.g. refused credentials, no broker at the configured address
        cause = f" (the client's errors: {client_error.message})" if client_error.message else ""
        print(f"pipeline: Kafka: {type(exc).__name__}: {exc}{cause}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
