"""The ``pipeline`` command."""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline import __version__

LOG_LEVELS = ("debug", "info", "warn", "error")


def _settings(args, **overrides):
    from pipeline import config

    dotted = {k: v for k, v in overrides.items() if v is not None}
    return config.load(getattr(args, "config", None), overrides=dotted)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, {"warn": "WARNING"}.get(level.lower(), level.upper())),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def cmd_run(args) -> int:
    from rich.console import Console

    from pipeline.streaming.supervisor import Supervisor

    settings = _settings(args)
    console = Console(stderr=True)
    supervisor = Supervisor(settings, sink_targets=args.sink, console=console, log_level=args.log_level)
    summary = supervisor.run(args.replay, exit_when_done=args.exit_when_done, rate=args.rate, loop=args.loop,
                             timeout_s=args.timeout)
    out = Console()
    for line in summary.lines():
        out.print(line, highlight=False)
    out.print(f"sink            {', '.join(supervisor.sink_targets)}", highlight=False)
    if args.exit_when_done and (summary.missing or summary.replayed == 0 and args.replay):
        return 1
    return 0


def cmd_worker(args) -> int:
    from pipeline.streaming.worker import run_worker

    _setup_logging(args.log_level)
    overrides = {"broker.bootstrap_servers": args.bootstrap} if args.bootstrap else {}
    settings = _settings(args, **overrides)
    return run_worker(settings, args.stage, sink_targets=args.sink, log_level=args.log_level,
                      ready_file=args.ready_file)


def cmd_replay(args) -> int:
    from rich.console import Console

    from pipeline.streaming import runfile
    from pipeline.streaming.replay import replay

    settings = runfile.resolve(_settings(args), args.bootstrap)
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # flush what was sent so far, as on Ctrl-C
    result = replay(args.paths, settings.broker.bootstrap_servers, settings, rate=args.rate, loop=args.loop,
                    progress=sys.stderr.isatty(), track=not args.loop)
    console = Console(stderr=True)
    console.print(f"replayed {result.count} events to {settings.topics.raw} in {result.seconds:.1f} s"
                  + (" (interrupted)" if result.interrupted else ""))
    for origin, error in result.rejected:
        console.print(f"[red]not sent: {origin}: {error}[/red]")
    return 1 if result.rejected else 0


def cmd_enrich(args) -> int:
    import orjson

    from pipeline.enrich import OfflinePipeline, parse_stage_list
    from pipeline.sources.files import read_paths

    _setup_logging("warn")
    settings = _settings(args)
    try:
        stages = parse_stage_list(args.stages)
    except ValueError as exc:
        print(f"pipeline enrich: {exc}", file=sys.stderr)
        return 2
    pipeline = OfflinePipeline(settings, stages, dedup_store=args.dedup_store)
    out = sys.stdout.buffer
    dead = 0
    try:
        for _, outcome in pipeline.enrich_items(read_paths(args.paths or ["-"])):
            if outcome.record is not None:
                out.write(orjson.dumps(outcome.record) + b"\n")
            else:
                dead += 1
                sys.stderr.buffer.write(orjson.dumps(outcome.dead_letter) + b"\n")
        out.flush()
    finally:
        if args.stats:
            sys.stderr.write(orjson.dumps(pipeline.stats(), option=orjson.OPT_INDENT_2).decode() + "\n")
        pipeline.close()
    return 0


def _selection(args):
    from pipeline.records import parse_iso
    from pipeline.streaming.deadletters import Selection

    return Selection(stages=set(args.stage or []), reasons=set(args.reason or []),
                     since=parse_iso(args.since) if args.since else None)


def cmd_deadletter_list(args) -> int:
    import orjson
    from rich.console import Console
    from rich.table import Table

    from pipeline.streaming import deadletters, runfile

    settings = runfile.resolve(_settings(args), args.bootstrap)
    letters = deadletters.list_letters(settings, _selection(args))
    if args.json:
        for letter in letters:
            sys.stdout.buffer.write(orjson.dumps(letter) + b"\n")
        return 0
    table = Table(title=f"{len(letters)} dead letters in {settings.topics.deadletter}")
    for column in ("failed at", "stage", "reason", "record id", "error"):
        table.add_column(column, overflow="fold")
    for letter in letters[-args.limit:] if args.limit else letters:
        error = (letter.get("error") or "").strip().splitlines()
        table.add_row(letter.get("failed_at") or "", letter.get("stage") or "", letter.get("reason") or "",
                      letter.get("id") or "-", (error[0] if error else "")[:120])
    console = Console()
    console.print(table)
    counts = {}
    for letter in letters:
        key = f"{letter.get('stage')}/{letter.get('reason')}"
        counts[key] = counts.get(key, 0) + 1
    for key, n in sorted(counts.items()):
        console.print(f"  {key}: {n}", highlight=False)
    return 0


def cmd_deadletter_replay(args) -> int:
    from pipeline.streaming import deadletters, runfile

    settings = runfile.resolve(_settings(args), args.bootstrap)
    report = deadletters.replay(settings, _selection(args), from_start=args.all, dry_run=args.dry_run)
    verb = "would send" if args.dry_run else "sent"
    total = sum(report.sent.values())
    print(f"{verb} {total} dead letters back to their stages", file=sys.stderr)
    for (topic, reason), n in sorted(report.sent.items()):
        print(f"  {topic} ({reason}): {n}", file=sys.stderr)
    if report.not_replayable:
        print(f"  not replayable (payload cut at the size limit, or unknown topic): {report.not_replayable}",
              file=sys.stderr)
    return 0


def cmd_topics(args) -> int:
    from pipeline.streaming import runfile
    from pipeline.streaming.topics import ensure_topics

    settings = runfile.resolve(_settings(args), args.bootstrap)
    plan = ensure_topics(settings.broker.bootstrap_servers, settings)
    for name, parts in plan.items():
        print(f"{name}\t{parts} partitions")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description="Streaming ingestion pipeline for news pages.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", help="configuration file (default: config/pipeline.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start broker (if none configured), topics and all stage workers")
    run.add_argument("--replay", nargs="+", metavar="PATH", help="replay these files/folders/JSONL once started")
    run.add_argument("--exit-when-done", action="store_true",
                     help="exit once every replayed event reached the sink or the dead-letter topic")
    run.add_argument("--rate", type=float, help="replay at most N events per second")
    run.add_argument("--loop", action="store_true", help="replay the paths over and over (not with --exit-when-done)")
    run.add_argument("--sink", action="append", metavar="KIND:LOCATION", help="sink target(s), e.g. jsonl:out/x.jsonl")
    run.add_argument("--timeout", type=float, default=300.0, help="with --exit-when-done: give up after S seconds")
    run.add_argument("--log-level", choices=LOG_LEVELS, help="log level of the worker processes")
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser("worker", help="run one stage worker (a Faust app in its own consumer group)")
    worker.add_argument("stage", choices=("clean", "language", "entities", "dedup", "sink"))
    worker.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config / KAFKA_BOOTSTRAP_SERVERS)")
    worker.add_argument("--sink", action="append", metavar="KIND:LOCATION", help="for the sink worker: target(s)")
    worker.add_argument("--log-level", choices=LOG_LEVELS, default="warn")
    worker.add_argument("--ready-file", help="touch this file once the worker has its partitions")
    worker.set_defaults(func=cmd_worker)

    replay = sub.add_parser("replay", help="send raw events from files to the raw topic")
    replay.add_argument("paths", nargs="+", metavar="PATH", help="files, folders, JSONL files, or - for stdin")
    replay.add_argument("--rate", type=float, help="at most N events per second")
    replay.add_argument("--loop", action="store_true", help="replay over and over until interrupted")
    replay.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config / KAFKA_BOOTSTRAP_SERVERS)")
    replay.set_defaults(func=cmd_replay)

    enrich = sub.add_parser("enrich", help="run the stages in this process, no broker; JSONL records to stdout")
    enrich.add_argument("paths", nargs="*", metavar="PATH", help="files, folders, JSONL files; - or nothing: stdin")
    enrich.add_argument("--stages", help="comma-separated subset of clean,language,entities,dedup")
    enrich.add_argument("--dedup-store", default="memory", help="memory (default) or a redis:// URL")
    enrich.add_argument("--stats", action="store_true", help="print stage counters to stderr at the end")
    enrich.set_defaults(func=cmd_enrich)

    topics = sub.add_parser("topics", help="create the pipeline's topics on a running broker")
    topics.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config / KAFKA_BOOTSTRAP_SERVERS)")
    topics.set_defaults(func=cmd_topics)

    dead = sub.add_parser("deadletter", help="list dead letters, or send them back to their stage")
    dead_sub = dead.add_subparsers(dest="deadletter_command", required=True)
    for name, func, text in (("list", cmd_deadletter_list, "show dead letters (stage, reason, time, id, error)"),
                             ("replay", cmd_deadletter_replay, "re-send dead letters to the stage that failed")):
        cmd = dead_sub.add_parser(name, help=text)
        cmd.add_argument("--stage", action="append", help="only this stage (repeatable)")
        cmd.add_argument("--reason", action="append", help="only this reason code (repeatable)")
        cmd.add_argument("--since", help="only dead letters from this ISO-8601 time on")
        cmd.add_argument("--bootstrap", help="Kafka bootstrap servers (default: config, or the running pipeline)")
        cmd.set_defaults(func=func)
        if name == "list":
            cmd.add_argument("--json", action="store_true", help="JSON lines, every field")
            cmd.add_argument("--limit", type=int, default=200, help="rows in the table (0: all)")
        else:
            cmd.add_argument("--all", action="store_true",
                             help="from the beginning of the topic (default: only those not replayed before)")
            cmd.add_argument("--dry-run", action="store_true", help="count, send nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.config import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"pipeline: configuration error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # start-up failures the user can act on (broker, index, workers)
        print(f"pipeline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
