"""Main text and metadata of a rendered-text page (visible page text, one block per line).

Such pages have no markup, so the article is found from the lines themselves:

1. each line gets features (words, closing punctuation, boilerplate phrases, repeats);
2. the article body is the contiguous run of lines with the best total score (paragraph-like
   lines score by their length, short and boilerplate lines cost), so menus before it and
   related-headline lists after it fall away;
3. inside that run, boilerplate lines ("Baca juga: ...") are dropped, and short lines that sit
   between paragraphs (subheads, short quotes) are kept;
4. the headline is the best title-like line before the body; date, author and site come from
   the lines around the headline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from pipeline.stages.clean.boilerplate import is_boilerplate
from pipeline.stages.clean.dates import find_date

_CLOSING = set('.!?"”’\'»)…')
_WORD = re.compile(r"\w+", re.UNICODE)
_AUTHOR_LABEL = re.compile(
    r"(?:^|\|\s*|\s)(?:laporan|penulis|reporter|wartawan|oleh|pewarta|kontributor|by|von|par|por|written by|"
    r"author)\s*[:：]?\s*(?P<name>[^|•\n]{3,60}?)\s*(?:\||•|$)", re.IGNORECASE)
_NAME = re.compile(r"^[A-ZÀ-Ý][\w'’.\-]+(?:\s+[A-ZÀ-Ý][\w'’.\-]+){0,4}$")
_SITE_DATELINE = re.compile(
    r"^(?:[A-ZÀ-Ý][\w .'-]{1,30},\s*)?(?P<site>[A-Z][\w.+-]*(?:\s[A-Z][\w.+-]*){0,2}\.(?:com|co\.id|id|net|org|"
    r"co|tv|news|my|sg)|[A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+){0,2})\s+[-–—]\s+\S", re.UNICODE)

MIN_PARAGRAPH_WORDS = 10
SHORT_LINE_COST = 4.0
BOILERPLATE_COST = 6.0


@dataclass
class Line:
    text: str
    words: int
    closes: bool
    boilerplate: bool
    repeated: bool
    date: str | None

    @property
    def paragraph(self) -> bool:
        return (self.words >= MIN_PARAGRAPH_WORDS and self.closes and not self.boilerplate
                and not self.repeated)

    @property
    def score(self) -> float:
        if self.paragraph:
            return float(self.words)
        if self.boilerplate:
            return -BOILERPLATE_COST
        return -SHORT_LINE_COST


@dataclass
class TextPage:
    title: str | None
    text: str
    published: str | None
    authors: list[str]
    site: str | None
    kept_lines: int
    total_lines: int


def _lines(raw: str, not_after: datetime | None) -> list[Line]:
    texts = [re.sub(r"\s+", " ", ln).strip() for ln in raw.splitlines()]
    texts = [t for t in texts if t]
    counts: dict[str, int] = {}
    for t in texts:
        counts[t.lower()] = counts.get(t.lower(), 0) + 1
    out = []
    for t in texts:
        found = find_date(t, not_after) if len(t) < 160 else None
        out.append(Line(
            text=t,
            words=len(_WORD.findall(t)),
            closes=t[-1] in _CLOSING,
            boilerplate=is_boilerplate(t),
            repeated=counts[t.lower()] > 1,
            date=found[0] if found else None,
        ))
    return out


def _best_span(lines: list[Line]) -> tuple[int, int]:
    """Indices [start, end) of the contiguous run of lines with the highest total score."""
    best, best_span = 0.0, (0, 0)
    run, start = 0.0, 0
    for i, line in enumerate(lines):
        if run <= 0:
            run, start = 0.0, i
        run += line.score
        if run > best:
            best, best_span = run, (start, i + 1)
    return best_span


def _title_score(line: Line, position: int) -> float:
    if line.boilerplate or line.date or not 3 <= line.words <= 30:
        return 0.0
    if line.text.endswith((".", ":")) and not line.text.endswith("..."):
        return 0.0
    tokens = line.text.split()
    capitalised = sum(1 for t in tokens if t[:1].isupper() or t[:1].isdigit()) / len(tokens)
    return capitalised * min(line.words, 12) + (2.0 if line.repeated else 0.0) - 0.3 * position


def _authors(lines: list[Line]) -> list[str]:
    found: list[str] = []
    for i, line in enumerate(lines):
        for m in _AUTHOR_LABEL.finditer(line.text):
            name = m.group("name").strip(" -–,")
            if name and len(name.split()) <= 6 and not find_date(name):
                found.append(name.title() if name.isupper() else name)
        # "Shintaloka Pradita Sicca" followed by a line "Penulis" (Kompas style)
        if line.text.lower() in {"penulis", "author", "reporter"} and i > 0:
            prev = lines[i - 1].text
            if _NAME.match(prev) and not lines[i - 1].date:
                found.append(prev)
    return list(dict.fromkeys(found))


def extract_text_page(raw: str, not_after: datetime | None = None) -> TextPage:
    lines = _lines(raw, not_after)
    start, end = _best_span(lines)
    head = lines[:start]
    title_idx = None
    if head:
        scores = [_title_score(line, i) for i, line in enumerate(head)]
        top = max(range(len(head)), key=scores.__getitem__)
        if scores[top] > 0:
            title_idx = top
    title = head[title_idx].text if title_idx is not None else None
    if title is None and start < end and lines[start].words <= 30 and not lines[start].closes:
        title, start = lines[start].text, start + 1

    body: list[str] = []
    for line in lines[start:end]:
        if line.boilerplate or (title and line.text == title):
            continue
        if not line.paragraph and line.date and line.words <= 12:
            continue  # a stray date/time line inside the article
        body.append(line.text)

    # Metadata lives around the headline: a few lines before the body (and the body's first line).
    meta_zone = head[(title_idx or 0):] + lines[start:start + 1]
    published = next((line.date for line in meta_zone if line.date), None)
    site = None
    for line in meta_zone:
        m = _SITE_DATELINE.match(line.text)
        if m:
            site = m.group("site")
            break
    return TextPage(title=title, text="\n".join(body), published=published, authors=_authors(meta_zone),
                    site=site, kept_lines=len(body), total_lines=len(lines))
