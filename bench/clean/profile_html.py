"""Where the clean stage's HTML child spends its CPU: each step of ``extract_in_process``, timed alone.

    .venv/bin/python -m bench.clean.profile_html                   # both shared HTML sets, 3 passes
    .venv/bin/python -m bench.clean.profile_html --set aeb --passes 5

Steps, in the child's order: ``parse`` (``metadata.parse_html``), ``metadata`` (``page_metadata``),
``htmldate`` (its quick search, only for pages that declare no date), ``trafilatura fast``,
``trafilatura full`` (the retry for short or menu-like fast-mode text), ``news rules``
(``clean_article_text``). CPU time of this process (``time.process_time``), pinned to one CPU
unless ``--cpu -1``; per step the median over the passes, in ms per page and as a share of the
sum. The machine may be shared: compare shares, or runs made side by side, not absolute figures
from another time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from bench.clean.stage import HTML_FILES, ROOT, read_rows

STEPS = ("parse", "metadata", "htmldate", "trafilatura fast", "trafilatura full", "news rules")


def one_pass(rows: list[dict]) -> tuple[dict[str, float], int]:
    """CPU seconds per step over the rows, and how many pages took the full-mode retry."""
    import trafilatura

    from pipeline.stages.clean.html_page import TRAFILATURA_OPTIONS, clean_article_text, looks_incomplete
    from pipeline.stages.clean.metadata import fallback_date, page_metadata, parse_html

    spent = dict.fromkeys(STEPS, 0.0)
    retried = 0
    clock = time.process_time
    for row in rows:
        html, url = row["html"], row.get("url")
        t0 = clock()
        tree = parse_html(html)
        t1 = clock()
        spent["parse"] += t1 - t0
        if tree is None:
            continue
        meta = page_metadata(tree, url)
        t2 = clock()
        spent["metadata"] += t2 - t1
        if not meta.published:
            fallback_date(tree, url)
        t3 = clock()
        spent["htmldate"] += t3 - t2
        doc = trafilatura.bare_extraction(tree, url=url, fast=True, include_comments=False, **TRAFILATURA_OPTIONS)
        text = (doc.text if doc is not None else "") or ""
        t4 = clock()
        spent["trafilatura fast"] += t4 - t3
        if looks_incomplete(text):
            retried += 1
            full = trafilatura.bare_extraction(tree, url=url, fast=False, include_comments=False,
                                               **TRAFILATURA_OPTIONS)
            text = ((full.text if full is not None else "") or "") or text
        t5 = clock()
        spent["trafilatura full"] += t5 - t4
        clean_article_text(text, meta.title)
        spent["news rules"] += clock() - t5
    return spent, retried


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.clean.profile_html", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", nargs="+", choices=sorted(HTML_FILES), default=sorted(HTML_FILES), dest="sets")
    ap.add_argument("--passes", type=int, default=3, help="timed passes over the pages (default 3)")
    ap.add_argument("--limit", type=int, help="first N pages of each set")
    ap.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU (default: the last one allowed); -1 = no")
    args = ap.parse_args(argv)
    if not args.eval_dir.is_dir():
        ap.error(f"evaluation data not found: {args.eval_dir} (give --eval-dir)")
    if args.passes < 1:
        ap.error("--passes must be at least 1")
    if args.cpu != -1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))})
    for kind in args.sets:
        rows = read_rows(args.eval_dir / HTML_FILES[kind], args.limit)
        one_pass(rows[:1])  # warm-up: imports, caches
        passes = [one_pass(rows) for _ in range(args.passes)]
        per_step = {s: statistics.median(p[0][s] for p in passes) * 1000.0 / len(rows) for s in STEPS}
        total = sum(per_step.values())
        print(f"{kind}: {len(rows)} pages, {total:.2f} CPU-ms per page (median of {args.passes} passes; "
              f"full-mode retry on {passes[0][1]} pages; load {os.getloadavg()[0]:.1f})")
        for step in STEPS:
            print(f"  {step:<17} {per_step[step]:6.2f} ms  {100.0 * per_step[step] / total:5.1f} %")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
