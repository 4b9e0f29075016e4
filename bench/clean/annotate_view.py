"""Annotation aid for ``metadata_gold.jsonl``: what a reader sees near the top of each AEB page.

    .venv/bin/python -m bench.clean.annotate_view --start 0 --count 20

Prints, per page (in the annotation order: ids shuffled with a fixed seed, see README), the
visible headline candidates (``<h1>``, then ``<h2>`` when there is no h1), the visible byline and
date candidates (short texts of elements whose class or id says byline/author/date/time, ``<time>``
elements), and, only to confirm, what the page declares for machines (``<title>``, og:title,
JSON-LD headline/author/datePublished, meta author and date). It does not call the clean stage or
any extractor: the annotator reads these and decides.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVAL = ROOT.parent / "shared" / "eval"
SEED = "metadata-gold-2026"


def annotation_order(ids: list[str]) -> list[str]:
    """The ids in a fixed pseudo-random order (sha1 of seed + id): any prefix is a random sample."""
    return sorted(ids, key=lambda i: hashlib.sha1(f"{SEED}:{i}".encode()).hexdigest())


def split_of(page_id: str) -> str:
    """'dev' or 'test', half and half by a hash of the id (rules were written looking at dev only)."""
    return "dev" if int(hashlib.sha1(f"split:{page_id}".encode()).hexdigest(), 16) % 2 == 0 else "test"


def _t(el) -> str:
    return re.sub(r"\s+", " ", el.text_content()).strip()


def rendered_top(text: str, gold: str, before: int = 9) -> list[str]:
    """The rendered-text lines a reader sees just above the article's first paragraph."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    first = gold.strip().split("\n")[0][:40]
    at = next((i for i, ln in enumerate(lines) if first and first in ln), None)
    if at is None:
        return ["(first gold line not found in the rendered text)"] + lines[:before]
    return lines[max(0, at - before):at + 1]


def show(row: dict, rendered: str | None = None) -> None:
    from lxml import html as lh

    tree = lh.fromstring(row["html"])
    for bad in tree.xpath("//script[not(@type='application/ld+json')]|//style|//noscript"):
        bad.drop_tree()
    print(f"=== {row['id'][:12]} {row['url']}")
    print("  gold body starts:", row["gold_text"][:140].replace("\n", " / "))
    if rendered:
        for ln in rendered_top(rendered, row["gold_text"]):
            print("  R|", ln[:120])
    heads = [_t(h) for h in tree.xpath("//h1")][:4] or [("h2: " + _t(h)) for h in tree.xpath("//h2")][:3]
    for h in heads:
        print("  H1:", h[:200])
    seen = set()
    for el in tree.xpath("//*[@class or @id or @itemprop or @rel]"):
        attrs = " ".join(el.get(a, "") for a in ("class", "id", "itemprop", "rel")).lower()
        if not re.search(r"byline|author|writer|date|time|posted|published|credit|contributor", attrs):
            continue
        text = _t(el)
        if not text or len(text) > 160 or text in seen:
            continue
        seen.add(text)
        print(f"  V[{attrs[:30]}]:", text)
        if len(seen) >= 4:
            break
    for el in tree.xpath("//time")[:3]:
        print("  TIME:", _t(el)[:80], el.get("datetime"))
    title = tree.find(".//title")
    print("  M title:", _t(title)[:160] if title is not None else None)
    for meta in tree.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").lower()
        if key in ("og:title", "author", "article:published_time", "article:author", "og:site_name",
                   "parsely-author", "byl", "date", "pubdate"):
            print(f"  M {key}:", (meta.get("content") or "")[:160])
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        raw = script.text or ""
        for key in ("headline", "datePublished"):
            m = re.search(rf'"{key}"\s*:\s*"([^"]{{0,160}})', raw)
            if m:
                print(f"  LD {key}:", m.group(1))
        m = re.search(r'"author"\s*:\s*(\[?\{[^\]]{0,300}|"[^"]{0,100}")', raw)
        if m:
            print("  LD author:", re.findall(r'"name"\s*:\s*"([^"]+)"', m.group(1)) or m.group(1)[:80])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=10)
    args = ap.parse_args()
    with gzip.open(EVAL / "extraction-aeb.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = {r["id"]: r for r in map(json.loads, f)}
    with gzip.open(EVAL / "textmode" / "textmode-aeb.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = {r["id"]: r["text"] for r in map(json.loads, f)}
    order = annotation_order(list(rows))
    for page_id in order[args.start:args.start + args.count]:
        show(rows[page_id], texts.get(page_id))


if __name__ == "__main__":
    main()
