"""The fetch stage against a local site of many hosts: pages per second, and whether the per-host
limits held.

    python -m bench.fetch [--hosts 20] [--pages 30] [--delay 0.1] [--concurrency 2] [--runs 3]

Each run starts ``--hosts`` HTTP servers on 127.0.0.1 (one port is one host; every answer takes
50 ms; ``tests/news_site.py``), then gives the fetch stage every host's ``--pages`` articles as URL
events, in batches of 200 interleaved across hosts, as the worker would take them. The bound the
politeness sets is ``hosts / delay`` pages per second. Each server records every request, so the
run reports, over all hosts, the most requests in flight at once on one host and the shortest
gap between two request starts on one host, against the configured limits.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pipeline.config import FetchSettings
from pipeline.records import utc_now
from pipeline.stages.base import Context
from pipeline.stages.fetch import FetchStage


def run_once(hosts: int, pages: int, delay: float, concurrency: int) -> dict:
    from tests.news_site import Host

    site = [Host() for _ in range(hosts)]
    settings = FetchSettings(per_host_concurrency=concurrency, per_host_delay_s=delay, seen_store="memory",
                             max_in_flight=max(32, hosts * concurrency))
    stage = FetchStage(settings)
    events = [{"url": f"{host.url}/article/{n}"} for n in range(pages) for host in site]
    ctx = Context("bench-fetch", utc_now())
    t0 = time.perf_counter()
    fetched = 0
    try:
        for start in range(0, len(events), 200):
            batch = events[start:start + 200]
            results = stage.run_many(batch, [ctx] * len(batch))
            fetched += sum(not isinstance(r, Exception) for r in results)
    finally:
        seconds = time.perf_counter() - t0
        stage.close()
        for host in site:
            host.close()
    gaps = [b - a for host in site for a, b in zip(host.page_starts(), host.page_starts()[1:], strict=False)]
    return {"pages": fetched, "of": len(events), "seconds": seconds, "pages_per_s": fetched / seconds,
            "max_in_flight": max(h.max_in_flight for h in site), "min_gap_s": min(gaps) if gaps else None}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fetch")
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--pages", type=int, default=30, help="articles per host")
    parser.add_argument("--delay", type=float, default=0.1, help="stages.fetch.per_host_delay_s")
    parser.add_argument("--concurrency", type=int, default=2, help="stages.fetch.per_host_concurrency")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bound = args.hosts / args.delay
    rates = []
    for run in range(1, args.runs + 1):
        r = run_once(args.hosts, args.pages, args.delay, args.concurrency)
        rates.append(r["pages_per_s"])
        print(f"run {run}: {r['pages']}/{r['of']} pages in {r['seconds']:.1f} s = {r['pages_per_s']:.1f} pages/s "
              f"(politeness bound {bound:.0f}); most in flight on one host {r['max_in_flight']} "
              f"(limit {args.concurrency}); shortest gap between request starts on one host "
              f"{r['min_gap_s']:.3f} s (limit {args.delay:g} s)", flush=True)
    print(f"median {statistics.median(rates):.1f} pages/s over {args.runs} runs; {statistics.median(rates) / bound:.2f} "
          f"of the bound {bound:.0f} pages/s ({args.hosts} hosts, {args.delay:g} s apart)")


if __name__ == "__main__":
    main()
