"""The pipeline against its compute bound: throughput, transport overhead, latency, idle cost, memory.

    python -m bench.pipeline [--kind html text] [--records N] [--runs 3] [--seconds 60]
                             [--tuned clean=2] [--skip-peer] [--out DIR]

For each kind of page (the shared extraction sets' HTML, or the same pages rendered as text) and
each run:

1. compute bound: every stage function over ``--records`` events in one fresh process, no broker
   (bench/pipeline/compute.py): CPU ms per event per stage; events/s on the machine's cores =
   cores / CPU per event;
2. `pipeline run` on the embedded default broker with the default layout (one worker per stage;
   bench.idle's Run, the seed pages first): idle CPU per process over ``--idle-seconds``; then
   ``--records`` events from `pipeline replay` as fast as the broker takes them: events/s and CPU per
   event of every process between the 10th and 90th percentile of completions (an event completes
   when its receipt or its dead letter is written); then the receipts' ingestion-to-sink latency
   at 25, 50 and 75 % of that rate, ``--seconds`` each after a 10 s warm-up; then (unless
   ``--skip-peer``) the Quix Streams peer (bench/pipeline/peer.py) at saturation on the same broker;
3. the compute bound again, in the same way: this machine's speed drifts (the same code read
   20-24 CPU-ms per event within one hour), so the ratios use the mean of the two bounds around
   the default run, and the table shows their drift (after / before);
4. `pipeline run` with the tuned layout (``--tuned``) at saturation.

Transport overhead per event = CPU of every process of the run (broker, supervisor, workers and
their child processes, dedup index; not the replay client) minus the stages' own time the workers
report in each record's trace, as a share of that stage time; and the same against the compute
bound's stage CPU (which does not count a stage's waiting). The CPU and RSS of every process are
sampled every second all along (RSS over time in the plots). Medians over the runs; a table on
stdout, everything in ``--out``/pipeline.json and PNG plots there.
"""

from __future__ import annotations

import argparse
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil

from bench.common import REPO, eval_dir
from bench.idle.__main__ import load_average
from bench.pipeline.events import pages, write_events
from bench.pipeline.session import PeerSession, Session, series

DEFAULT_LAYOUT = {"clean": 1, "language": 1, "entities": 1, "dedup": 1, "sink": 1}
LEVELS = (0.25, 0.50, 0.75)
NOT_THE_RUN = ("replay",)  # the load generator, not part of the pipeline
STAGE_ROLES = ("clean-worker", "language-worker", "entities-worker", "dedup-worker")


def layout(spec: str) -> dict[str, int]:
    """Workers per stage of ``STAGE=N[,STAGE=N]``; an ``auto`` among them (``--tuned auto``) is
    `pipeline run --layout auto` with these as its floor (see :func:`auto_layout`)."""
    out = dict(DEFAULT_LAYOUT)
    for part in filter(None, spec.split(",")):
        if part.strip() == "auto":
            continue
        stage, _, count = part.partition("=")
        if stage.strip() not in out or not count.strip().isdigit():
            raise SystemExit(f"--tuned: STAGE=N[,STAGE=N] and/or auto, stages {', '.join(out)}; got {part!r}")
        out[stage.strip()] = int(count)
    return out


def auto_layout(spec: str) -> bool:
    return "auto" in (part.strip() for part in spec.split(","))


def code_state() -> dict:
    """The commit measured, and the files of pipeline/ changed beside it (other work in the same
    checkout changes what a run measures)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"head": git("rev-parse", "--short", "HEAD"), "changed": git("status", "--porcelain", "pipeline").splitlines()}


def compute(kind: str, n: int, eval_path: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.pipeline.compute", kind, str(n), str(eval_path)], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"compute bound failed:\n{done.stderr[-3000:]}")
    return orjson.loads(done.stdout.strip().splitlines()[-1])


def overhead(sat: dict, stage_ms: dict[str, float], compute_ms: float, chain: list[str]) -> dict:
    """Transport figures of one saturation result (ms per event and shares)."""
    cpu = {r: v for r, v in sat["cpu_ms_per_event"].items() if r not in NOT_THE_RUN and not r.startswith("peer-")
           and r != "?"}
    total = sum(cpu.values())
    traced = sum(stage_ms.get(s, 0.0) for s in chain)
    workers = sum(v for r, v in cpu.items() if r.endswith("-worker"))
    out = {"cpu_ms_per_event": total, "stage_ms_traced": traced, "by_role": cpu,
           "transport_ms": total - traced, "transport_share": (total - traced) / traced if traced else None,
           "transport_vs_compute_ms": total - compute_ms,
           "transport_vs_compute_share": (total - compute_ms) / compute_ms if compute_ms else None,
           # beside the broker: what the processes of the stages (and the sink) spend on transport
           "client_transport_vs_compute_ms": sum(cpu.get(r, 0.0) for r in STAGE_ROLES) - compute_ms,
           "workers_ms": workers}
    return out


def peer_overhead(sat: dict, compute_ms: float) -> dict:
    cpu = sat["cpu_ms_per_event"]
    peers = sum(v for r, v in cpu.items() if r.startswith("peer-"))
    broker = cpu.get("broker", 0.0)
    traced = sum(sat.get("stage_ms", {}).values())
    return {"cpu_ms_per_event": peers + broker, "peer_processes_ms": peers, "broker_ms": broker,
            "stage_ms_traced": traced, "transport_ms": peers + broker - traced,
            "transport_share": (peers + broker - traced) / traced if traced else None,
            "transport_vs_compute_ms": peers + broker - compute_ms,
            "transport_vs_compute_share": (peers + broker - compute_ms) / compute_ms if compute_ms else None,
            "client_transport_vs_compute_ms": peers - compute_ms}


def session_record(session: Session, phases: dict) -> dict:
    return {"started": session.started, "phases": phases, "samples": session.sampler.samples,
            "series": series(list(session.follower.seen), session.started)}


def one_run(kind: str, bodies: list[str], args, out: Path, run: int, eval_path: Path, chain: list[str]) -> dict:
    result: dict = {"run": run, "load_average_before": load_average(), "code": code_state()}
    changed = f"; changed beside it: {' '.join(result['code']['changed'])}" if result["code"]["changed"] else ""
    print(f"[{kind} run {run + 1}] compute bound over {args.records} events (load {load_average()}; "
          f"HEAD {result['code']['head']}{changed})", flush=True)
    result["compute"] = c = compute(kind, args.records, eval_path)
    print(f"  {c['cpu_ms_per_event']:.1f} CPU-ms per event ("
          + ", ".join(f"{k} {v['cpu_ms_per_event']:.1f}" for k, v in c["stages"].items())
          + f"): {c['bound_events_per_s']:.1f} events/s on {c['cores']} cores", flush=True)
    sat_events = write_events(bodies, kind, args.records, f"sat-{run}", out / f"{kind}-sat-{run}.jsonl")

    folder = out / f"{kind}-default-{run}"
    print(f"[{kind} run {run + 1}] pipeline run, default layout ({folder})", flush=True)
    session = Session(folder, DEFAULT_LAYOUT)
    phases: dict[str, list[float]] = {}
    default: dict = {}
    try:
        if not args.skip_idle:
            t = time.time()
            default["idle"] = session.idle(args.settle, args.idle_seconds)
            phases["idle"] = [t + args.settle, time.time()]
            print("  idle % of a core: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(default["idle"].items())),
                  flush=True)
        t = time.time()
        sat = session.saturate(sat_events, args.records)
        phases["saturation"] = [t, time.time()]
        default["saturation"] = sat
        rate = sat.get("events_per_s", 0.0)
        print(f"  saturation {rate:.1f} events/s ({rate / c['bound_events_per_s']:.2f} of the bound)", flush=True)
        default["latency"] = []
        for level in LEVELS if rate else ():
            r = rate * level
            n = int(r * (10 + args.seconds) * 1.2) + 10
            events = write_events(bodies, kind, n, f"lat-{run}-{int(level * 100)}", out / f"{kind}-lat-{run}.jsonl")
            t = time.time()
            lat = session.latency(events, r, 10.0, args.seconds)
            phases[f"{int(level * 100)} %"] = [t, time.time()]
            lat["level"] = level
            default["latency"].append(lat)
            print(f"  {level:.0%} load ({r:.1f}/s): got {lat['events_per_s']:.1f}/s, latency p50/p95/p99 "
                  f"{lat.get('p50_ms', 0):.0f}/{lat.get('p95_ms', 0):.0f}/{lat.get('p99_ms', 0):.0f} ms", flush=True)
    finally:
        session.stop()
    default["saturation"]["stage_ms"] = session.stage_ms(default["saturation"].pop("ids", []))
    default["session"] = session_record(session, phases)
    result["default"] = default
    result["compute_after"] = after = compute(kind, args.records, eval_path)
    print(f"[{kind} run {run + 1}] compute bound again: {after['cpu_ms_per_event']:.1f} CPU-ms per event "
          f"({after['cpu_ms_per_event'] / c['cpu_ms_per_event']:.2f} of the first)", flush=True)

    if not args.skip_peer:
        folder = out / f"{kind}-peer-{run}"
        print(f"[{kind} run {run + 1}] Quix Streams peer on the embedded default broker ({folder})", flush=True)
        try:
            session = PeerSession(folder, chain)
        except Exception as exc:  # noqa: BLE001 - the peer's failure is a finding, not the end of the bench
            result["peer"] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  the peer did not start: {exc}", flush=True)
        else:
            try:
                session.wait_ready()
                t = time.time()
                peer = session.measure(sat_events, args.records)
                print(f"  saturation {peer.get('events_per_s', 0):.1f} events/s", flush=True)
            except Exception as exc:  # noqa: BLE001 - as above
                peer = {"error": f"{type(exc).__name__}: {exc}"}
                print(f"  the peer failed: {exc}", flush=True)
                t = time.time()
            finally:
                session.stop()
            peer["session"] = session_record(session, {"saturation": [t, time.time()]})
            result["peer"] = peer

    folder = out / f"{kind}-tuned-{run}"
    print(f"[{kind} run {run + 1}] pipeline run, tuned layout {args.tuned} ({folder})", flush=True)
    session = Session(folder, layout(args.tuned), auto=auto_layout(args.tuned))
    try:
        t = time.time()
        sat = session.saturate(sat_events, args.records)
        tuned = {"saturation": sat}
        print(f"  saturation {sat.get('events_per_s', 0):.1f} events/s "
              f"({sat.get('events_per_s', 0) / c['bound_events_per_s']:.2f} of the bound)", flush=True)
    finally:
        session.stop()
    sat["stage_ms"] = session.stage_ms(sat.pop("ids", []))
    tuned["session"] = session_record(session, {"saturation": [t, time.time()]})
    result["tuned"] = tuned
    return result


def derive(run: dict, chain: list[str]) -> dict:
    """The figures of one run the table shows."""
    c, after = run["compute"], run.get("compute_after")
    cms = c["cpu_ms_per_event"] if after is None else (c["cpu_ms_per_event"] + after["cpu_ms_per_event"]) / 2
    bound = c["cores"] * 1000 / cms
    d = run["default"]
    f: dict = {"compute_ms": cms, "bound": bound,
               "compute_drift": after["cpu_ms_per_event"] / c["cpu_ms_per_event"] if after else None}
    for name, part in (("default", d), ("tuned", run["tuned"])):
        sat = part["saturation"]
        if "events_per_s" in sat:
            f[f"{name}_rate"] = sat["events_per_s"]
            f[f"{name}_steady_rate"] = sat.get("steady_events_per_s")
            f[f"{name}_ratio"] = sat["events_per_s"] / bound
            o = overhead(sat, sat["stage_ms"], cms, chain)
            f[f"{name}_cpu_ms"] = o["cpu_ms_per_event"]
            # on a shared machine the run gets only part of the cores: how many it used, and the
            # share of its CPU that was the stages' own work (compute bound CPU / the run's CPU)
            f[f"{name}_cores_used"] = o["cpu_ms_per_event"] * sat["events_per_s"] / 1000
            f[f"{name}_cpu_efficiency"] = cms / o["cpu_ms_per_event"] if o["cpu_ms_per_event"] else None
            f[f"{name}_transport_share"] = o["transport_share"]
            f[f"{name}_transport_vs_compute_share"] = o["transport_vs_compute_share"]
            f[f"{name}_client_transport_ms"] = o["client_transport_vs_compute_ms"]
            f[f"{name}_broker_ms"] = o["by_role"].get("broker", 0.0)
            f[f"{name}_supervisor_ms"] = o["by_role"].get("supervisor", 0.0)
            f[f"{name}_sink_ms"] = o["by_role"].get("sink-worker", 0.0)
            f[f"{name}_index_ms"] = o["by_role"].get("dedup-index", 0.0)
    for lat in d.get("latency", []):
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            if q in lat:
                f[f"lat{int(lat['level'] * 100)}_{q}"] = lat[q]
    for role, v in d.get("idle", {}).items():
        f[f"idle_{role}"] = v
    peer = run.get("peer") or {}
    if "events_per_s" in peer:
        o = peer_overhead(peer, cms)
        f["peer_rate"] = peer["events_per_s"]
        f["peer_steady_rate"] = peer.get("steady_events_per_s")
        f["peer_ratio"] = peer["events_per_s"] / bound
        f["peer_cpu_ms"] = o["cpu_ms_per_event"]
        f["peer_cores_used"] = o["cpu_ms_per_event"] * peer["events_per_s"] / 1000
        f["peer_cpu_efficiency"] = cms / o["cpu_ms_per_event"] if o["cpu_ms_per_event"] else None
        f["peer_transport_share"] = o["transport_share"]
        f["peer_transport_vs_compute_share"] = o["transport_vs_compute_share"]
        f["peer_client_transport_ms"] = o["client_transport_vs_compute_ms"]
        f["peer_broker_ms"] = o["broker_ms"]
    rss = {}
    for s in d["session"]["samples"]:
        for role, mib in s["rss_mib"].items():
            if role in NOT_THE_RUN:
                continue
            lo, hi = rss.get(role, (mib, mib))
            rss[role] = (min(lo, mib), max(hi, mib))
    f["rss"] = {role: {"first": next(s["rss_mib"][role] for s in d["session"]["samples"] if role in s["rss_mib"]),
                       "last": next(s["rss_mib"][role] for s in reversed(d["session"]["samples"])
                                    if role in s["rss_mib"]), "max": hi} for role, (lo, hi) in rss.items()}
    return f


ROWS = [
    ("compute bound: CPU ms per event, all stages (mean of before and after)", "compute_ms", "{:.1f}"),
    ("compute bound: events/s on the cores", "bound", "{:.1f}"),
    ("  its drift: CPU per event after the default run / before", "compute_drift", "{:.2f}"),
    ("streaming, default layout: events/s, replay start to last", "default_rate", "{:.1f}"),
    ("  events/s between 10 and 90 % of completions", "default_steady_rate", "{:.1f}"),
    ("  ratio to the compute bound", "default_ratio", "{:.2f}"),
    ("  CPU ms per event, every process", "default_cpu_ms", "{:.1f}"),
    ("  cores the run used", "default_cores_used", "{:.2f}"),
    ("  compute-bound CPU / the run's CPU", "default_cpu_efficiency", "{:.2f}"),
    ("  transport share of traced stage time", "default_transport_share", "{:.0%}"),
    ("  transport share of compute-bound CPU", "default_transport_vs_compute_share", "{:.0%}"),
    ("  stage workers' CPU beyond the bound, ms", "default_client_transport_ms", "{:.1f}"),
    ("  broker CPU ms per event", "default_broker_ms", "{:.2f}"),
    ("  supervisor CPU ms per event", "default_supervisor_ms", "{:.2f}"),
    ("  sink worker CPU ms per event", "default_sink_ms", "{:.2f}"),
    ("  dedup index CPU ms per event", "default_index_ms", "{:.2f}"),
    ("streaming, tuned layout: events/s, replay start to last", "tuned_rate", "{:.1f}"),
    ("  events/s between 10 and 90 % of completions", "tuned_steady_rate", "{:.1f}"),
    ("  ratio to the compute bound", "tuned_ratio", "{:.2f}"),
    ("  cores the run used", "tuned_cores_used", "{:.2f}"),
    ("  compute-bound CPU / the run's CPU", "tuned_cpu_efficiency", "{:.2f}"),
    ("  transport share of traced stage time", "tuned_transport_share", "{:.0%}"),
    ("  transport share of compute-bound CPU", "tuned_transport_vs_compute_share", "{:.0%}"),
    ("latency at 25 %: p50 / p95 / p99 ms", ("lat25_p50_ms", "lat25_p95_ms", "lat25_p99_ms"), "{:.0f}"),
    ("latency at 50 %: p50 / p95 / p99 ms", ("lat50_p50_ms", "lat50_p95_ms", "lat50_p99_ms"), "{:.0f}"),
    ("latency at 75 %: p50 / p95 / p99 ms", ("lat75_p50_ms", "lat75_p95_ms", "lat75_p99_ms"), "{:.0f}"),
    ("idle: % of one core, all processes", "idle_total", "{:.1f}"),
    ("Quix Streams peer: events/s, replay start to last", "peer_rate", "{:.1f}"),
    ("  events/s between 10 and 90 % of completions", "peer_steady_rate", "{:.1f}"),
    ("  ratio to the compute bound", "peer_ratio", "{:.2f}"),
    ("  CPU ms per event (peer processes + broker)", "peer_cpu_ms", "{:.1f}"),
    ("  cores it used", "peer_cores_used", "{:.2f}"),
    ("  compute-bound CPU / its CPU", "peer_cpu_efficiency", "{:.2f}"),
    ("  transport share of traced stage time", "peer_transport_share", "{:.0%}"),
    ("  transport share of compute-bound CPU", "peer_transport_vs_compute_share", "{:.0%}"),
    ("  stage processes' CPU beyond the bound, ms", "peer_client_transport_ms", "{:.1f}"),
    ("  broker CPU ms per event", "peer_broker_ms", "{:.2f}"),
]


def median_of(figures: list[dict], key: str) -> tuple[float | None, list[float]]:
    values = [f[key] for f in figures if f.get(key) is not None]
    return (statistics.median(values) if values else None), values


def table(by_kind: dict[str, list[dict]]) -> str:
    kinds = list(by_kind)
    lines = ["| | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for label, key, fmt in ROWS:
        cells = []
        for kind in kinds:
            keys = key if isinstance(key, tuple) else (key,)
            parts = []
            for k in keys:
                m, values = median_of(by_kind[kind], k)
                parts.append("-" if m is None else fmt.format(m))
            cell = " / ".join(parts)
            if not isinstance(key, tuple) and len(by_kind[kind]) > 1:
                _, values = median_of(by_kind[kind], key)
                if len(values) > 1:
                    cell += " (" + ", ".join(fmt.format(v) for v in values) + ")"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for kind in kinds:
        roles = sorted({r for f in by_kind[kind] for r in f["rss"]})
        idle_roles = sorted({k[5:] for f in by_kind[kind] for k in f if k.startswith("idle_") and k != "idle_total"})
        if idle_roles:
            lines.append(f"\n{kind}: idle CPU per process (% of one core, medians): " + ", ".join(
                f"{r} {median_of(by_kind[kind], 'idle_' + r)[0]:.1f}" for r in idle_roles))
        lines.append(f"{kind}: RSS per process over the default session (MiB, first -> last, max; last run): " + ", ".join(
            f"{r} {by_kind[kind][-1]['rss'][r]['first']:.0f} -> {by_kind[kind][-1]['rss'][r]['last']:.0f} "
            f"({by_kind[kind][-1]['rss'][r]['max']:.0f})" for r in roles if r in by_kind[kind][-1]["rss"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", nargs="+", choices=("html", "text"), default=["html", "text"])
    ap.add_argument("--records", type=int, default=1200, help="events per saturation run and compute bound")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0, help="latency measured this long per load level")
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=10.0, help="after the seed pages, before the idle window")
    ap.add_argument("--skip-idle", action="store_true")
    ap.add_argument("--tuned", default="clean=2", help="the tuned layout, workers per stage, and/or auto: `pipeline run --layout auto` with "
                    "them as the floor and run.layout_interval_s 5 (default: clean=2)")
    ap.add_argument("--skip-peer", action="store_true", help="no Quix Streams peer")
    ap.add_argument("--out", default=None, help="folder for pipeline.json, the plots and the runs' folders")
    ap.add_argument("--eval-dir", default=None)
    ap.add_argument("--report", metavar="JSON", help="only the table of an earlier run's pipeline.json")
    args = ap.parse_args(argv)
    if args.report:
        return report(Path(args.report))
    if args.records < 50 or args.runs < 1 or args.seconds <= 0:
        ap.error("--records >= 50, --runs >= 1, --seconds > 0")
    layout(args.tuned)
    eval_path = eval_dir(args.eval_dir)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-pipeline-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    from pipeline import config, registry

    settings = config.load()
    chain = registry.chain(settings)
    args.partitions = settings.topics.partitions
    machine = {"cores": psutil.cpu_count(), "cpu": platform.processor() or platform.machine(),
               "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
               "load_average_start": load_average()}
    print(f"bench.pipeline: {', '.join(args.kind)}; {args.records} events, {args.runs} runs, {args.seconds:g} s "
          f"per load level; {out}; load average {load_average()}", flush=True)
    results: dict = {"machine": machine, "args": {k: v for k, v in vars(args).items()}, "kinds": {}}
    figures: dict[str, list[dict]] = {}
    for kind in args.kind:
        bodies = pages(eval_path, kind)
        results["kinds"][kind] = {"pages": len(bodies), "runs": []}
        figures[kind] = []
        for run in range(args.runs):
            r = one_run(kind, bodies, args, out, run, eval_path, chain)
            r["figures"] = derive(r, chain)
            results["kinds"][kind]["runs"].append(r)
            figures[kind].append(r["figures"])
            for name in ("default", "tuned", "peer"):
                if "session" not in r.get(name, {}):
                    continue
                try:
                    from bench.pipeline.plots import draw

                    draw(r[name]["session"], out / f"{kind}-{name}-{run}", f"{kind}, {name} layout, run {run + 1}")
                except ImportError:
                    print("matplotlib is not installed: no plots (pip install -e '.[bench]')", flush=True)
            (out / "pipeline.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    machine["load_average_end"] = load_average()
    results["table"] = table(figures)
    (out / "pipeline.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"\nmedians of {args.runs} run(s) (values per run in brackets); machine: {machine}")
    print(results["table"])
    print(f"\n{out / 'pipeline.json'}; plots {out}/*.png")
    return 0


def report(path: Path) -> int:
    """The table of a pipeline.json again (figures derived anew from its raw measurements)."""
    from pipeline import config, registry

    try:
        results = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}") from None
    chain = registry.chain(config.load())
    figures = {kind: [derive(r, chain) for r in part["runs"]] for kind, part in results["kinds"].items()}
    print(f"machine: {results['machine']}")
    print(table(figures))
    return 0


def interrupt(signum, frame):  # SIGTERM too, and SIGINT when started in the background (ignored there)
    raise KeyboardInterrupt


if __name__ == "__main__":
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    raise SystemExit(main())
