"""Real articles to build the near-duplicate set from: the gold texts of the AEB set and the main
texts of the trafilatura evaluation pages, each with a headline and the boilerplate lines of its
rendered page (lines of the text-mode rendering that are not in the gold text)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.common import CACHE, read_jsonl_gz

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass
class Article:
    id: str
    title: str
    paragraphs: list[str]
    boilerplate: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join([self.title, *self.paragraphs])


def _title(page: str) -> str:
    match = _TITLE.search(page[:200_000])
    return " ".join(html.unescape(match.group(1)).split()) if match else ""


def _paragraphs(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _aeb(eval_dir: Path) -> list[Article]:
    textmode = {r["id"]: r for r in read_jsonl_gz(eval_dir / "textmode" / "textmode-aeb.jsonl.gz")}
    out = []
    for row in read_jsonl_gz(eval_dir / "extraction-aeb.jsonl.gz"):
        paragraphs = _paragraphs(row["gold_text"])
        gold = set(paragraphs)
        rendered = textmode.get(row["id"], {}).get("text", "")
        boiler = [line for line in _paragraphs(rendered) if line not in gold]
        out.append(Article(f"aeb-{row['id']}", _title(row["html"]), paragraphs, boiler))
    return out


def _trafilatura_set(eval_dir: Path) -> list[Article]:
    """Main texts of the trafilatura evaluation pages, extracted once and cached."""
    cache = CACHE / "dedup-trafilatura-articles.jsonl"
    if cache.exists():
        return [Article(**orjson.loads(line)) for line in cache.read_bytes().splitlines()]
    import trafilatura

    textmode = {r["id"]: r for r in read_jsonl_gz(eval_dir / "textmode" / "textmode-trafilatura.jsonl.gz")}
    out = []
    for row in read_jsonl_gz(eval_dir / "extraction-trafilatura.jsonl.gz"):
        doc = trafilatura.bare_extraction(row["html"], url=row.get("url"), with_metadata=True,
                                          include_comments=False)
        if doc is None or not doc.text:
            continue
        paragraphs = _paragraphs(doc.text)
        gold = set(paragraphs)
        rendered = textmode.get(row["id"], {}).get("text", "")
        out.append(Article(f"traf-{row['id']}", doc.title or _title(row["html"]), paragraphs,
                           [line for line in _paragraphs(rendered) if line not in gold]))
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(b"".join(orjson.dumps(a.__dict__) + b"\n" for a in out))
    return out


def load_articles(eval_dir: Path, min_words: int = 80) -> list[Article]:
    articles = _aeb(eval_dir) + _trafilatura_set(eval_dir)
    return [a for a in articles if len(" ".join(a.paragraphs).split()) >= min_words and len(a.paragraphs) >= 2]
