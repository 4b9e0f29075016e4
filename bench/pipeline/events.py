"""The shared evaluation sets' pages as raw events, and the CPU time of a process with its children."""

from __future__ import annotations

from pathlib import Path

import orjson
import psutil

from bench.common import read_jsonl_gz

SETS = {"text": ("textmode/textmode-aeb.jsonl.gz", "textmode/textmode-trafilatura.jsonl.gz"),
        "html": ("extraction-aeb.jsonl.gz", "extraction-trafilatura.jsonl.gz")}


def pages(eval_path: Path, kind: str) -> list[str]:
    """Every page body of ``kind`` ("html", or "text": the pages rendered as text) in the shared sets."""
    out = [row[kind] for name in SETS[kind] for row in read_jsonl_gz(eval_path / name) if row.get(kind)]
    if not out:
        raise SystemExit(f"no {kind} pages in {eval_path}")
    return out


def event(kind: str, body: str, tag: str, i: int) -> dict:
    """A raw event without id or fetch time: each replay gives it new ones (a new record)."""
    return {"url": f"https://bench.example/{tag}/{i}", kind: body}


def write_events(bodies: list[str], kind: str, n: int, tag: str, target: Path) -> Path:
    """``n`` events cycling through ``bodies`` into the JSONL file ``target``."""
    with open(target, "wb") as out:
        for i in range(n):
            out.write(orjson.dumps(event(kind, bodies[i % len(bodies)], tag, i)) + b"\n")
    return target


def cpu_with_children(proc: psutil.Process) -> float:
    """CPU seconds (user + system) of ``proc`` and every live descendant, each with the children
    it reaped: the clean stage's HTML parsers are replaced every ``html_recycle_after`` pages, and
    one that ended is reaped by its parent (a forkserver, itself a child), not by this process."""
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total
