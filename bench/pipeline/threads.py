"""Where a record's CPU goes, per process and per thread: one `pipeline run` (default layout,
embedded default broker, dashboard on, as bench.pipeline runs it) at saturation.

    python -m bench.pipeline.threads [--kind html] [--records 600] [--warm 150] [--idle-seconds 20]
                                     [--no-dashboard] [--out DIR]

A warm-up replay of ``--warm`` events first (models loaded, JIT of the broker), then, with
``--idle-seconds``, the CPU of every process and thread over that long with no traffic while a
client asks the dashboard for its state every second (so it samples at its full rate, as it does
while records move), then ``--records`` events as fast as the broker takes them. Per process and
per thread: CPU ms per event of the saturated replay (from its start to the last completion),
and the part of it the same thread spends in as long without traffic (what costs per second, not
per record: polling, monitoring). Threads are named from ``py-spy dump`` when py-spy is
installed (``pip install py-spy``), else by their kernel name; threads that ended in between
(a worker's HTTP request threads) are in their process's figure only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import orjson

from bench.common import eval_dir, run_processes
from bench.idle.__main__ import load_average
from bench.pipeline.__main__ import DEFAULT_LAYOUT
from bench.pipeline.events import pages, write_events
from bench.pipeline.session import Session

NOT_PYTHON = ("broker", "dedup-index", "?")


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name (``py-spy dump``; empty without py-spy)."""
    spy = Path(sys.executable).with_name("py-spy")
    try:
        dump = subprocess.run([str(spy) if spy.exists() else "py-spy", "dump", "--pid", str(pid), "--nonblocking"],
                              capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(m.group(1)): m.group(2) for m in re.finditer(r'Thread (\d+) \(\w+\): "([^"]*)"', dump)}


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Native thread id -> (kernel name, CPU seconds) of every live thread of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = (stat[stat.index("(") + 1:stat.rindex(")")], (int(fields[11]) + int(fields[12])) / tick)
    return out


def by_thread(procs: list[tuple[int, str]], names: dict[int, dict[int, str]], before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per ``role/thread name`` between two readings (numbered names pooled)."""
    out: dict[str, float] = {}
    for pid, role in procs:
        for tid, (comm, t1) in after.get(pid, {}).items():
            name = names.get(pid, {}).get(tid, comm)
            name = re.sub(r"\d+", "N", name) if name.startswith(("Thread-", "asyncio_")) else name
            key = f"{role}/{name}"
            out[key] = out.get(key, 0.0) + t1 - before.get(pid, {}).get(tid, (comm, 0.0))[1]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pipeline.threads", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=("html", "text"), default="html")
    ap.add_argument("--records", type=int, default=600)
    ap.add_argument("--warm", type=int, default=150, help="events replayed first, not measured")
    ap.add_argument("--idle-seconds", type=float, default=20.0, help="0: no reading without traffic")
    ap.add_argument("--no-dashboard", action="store_true", help="`pipeline run --no-dashboard`")
    ap.add_argument("--eval-dir")
    ap.add_argument("--out", help="folder for the run and threads.json (default: a temporary one)")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-threads-"))
    out.mkdir(parents=True, exist_ok=True)
    bodies = pages(eval_dir(args.eval_dir), args.kind)
    warm = write_events(bodies, args.kind, args.warm, "warm", out / "warm.jsonl")
    events = write_events(bodies, args.kind, args.records, "sat", out / "sat.jsonl")
    result: dict = {"load_average_before": load_average(), "args": vars(args)}
    if args.no_dashboard:
        import bench.pipeline.session as session_module

        plain = session_module.Run
        session_module.Run = lambda folder, broker, extra, overrides=None: plain(folder, broker, [*extra, "--no-dashboard"],
                                                                                overrides)
    print(f"pipeline run in {out / 'run'} (load {result['load_average_before']})", flush=True)
    session = Session(out / "run", DEFAULT_LAYOUT)
    try:
        session.saturate(warm, args.warm)
        session.drain()
        procs = [(p.pid, role) for p, role, helper in run_processes(session.root) if not helper and role not in NOT_PYTHON]
        names = {pid: thread_names(pid) for pid, _ in procs}
        idle_per_s: dict[str, float] = {}
        if args.idle_seconds > 0:
            url = None if args.no_dashboard else orjson.loads((out / "run" / "logs" / "run.json").read_bytes())["dashboard_url"]
            halt = threading.Event()

            def view() -> None:  # someone has the dashboard open: it samples every second
                while url and not halt.wait(1.0):
                    try:
                        urllib.request.urlopen(url + "api/state", timeout=5).read()
                    except OSError:
                        pass

            threading.Thread(target=view, daemon=True).start()
            time.sleep(3.0)
            t0, before, roles0 = time.time(), {pid: thread_cpu(pid) for pid, _ in procs}, session.sampler.take()["cpu"]
            time.sleep(args.idle_seconds)
            t1, after, roles1 = time.time(), {pid: thread_cpu(pid) for pid, _ in procs}, session.sampler.take()["cpu"]
            halt.set()
            idle_per_s = {k: v / (t1 - t0) for k, v in by_thread(procs, names, before, after).items()}
            idle_per_s.update({k: (roles1.get(k, 0.0) - roles0.get(k, 0.0)) / (t1 - t0) for k in roles1})
        before = {pid: thread_cpu(pid) for pid, _ in procs}
        sat = session.saturate(events, args.records)
        after = {pid: thread_cpu(pid) for pid, _ in procs}
    finally:
        session.stop()
    sat.pop("ids", None)
    done = sat.get("completed", 0)
    if done < 10:
        raise SystemExit(f"only {done} of {args.records} events completed")
    seconds = sat["window"][1] - sat["window"][0]
    threads = {k: v * 1000 / done for k, v in by_thread(procs, names, before, after).items()}
    processes = {k: v for k, v in sat["cpu_ms_per_event"].items() if k not in ("replay", "?")}
    per_second = {k: v * seconds * 1000 / done for k, v in idle_per_s.items()}
    result.update({"saturation": sat, "cpu_ms_per_event": processes, "threads_ms_per_event": threads,
                   "idle_cpu_per_s": idle_per_s, "load_average_after": load_average()})
    (out / "threads.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"{done} events, {sat['events_per_s']:.1f} events/s; CPU ms per event "
          f"(and the part the same process or thread spends in as long without traffic)")
    for table in (processes, threads):
        for key, ms in sorted(table.items()):
            if ms >= 0.05:
                print(f"  {key:50s} {ms:7.2f}  ({per_second.get(key, 0.0):.2f})")
        print(f"  {'total':50s} {sum(table.values()):7.2f}  ({sum(per_second.get(k, 0.0) for k in table):.2f})")
    print(f"everything in {out / 'threads.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
