"""Main text and metadata of a rendered-text page (visible page text, one block per line).

Such pages have no markup, so the article is found from the lines themselves:

1. a learned line classifier (``line_model``: line, block, neighbourhood and page features, two
   stacked logistic models, trained on third-party data by ``train``) gives every line the
   probability that it is article text;
2. lines at or above the model's threshold are the body, except known boilerplate lines
   ("Baca juga: ...", "Read also", comment prompts: ``boilerplate``) and runs of teasers whose
   headline runs into their summary ("...Student-AthleteA 24-year-old woman ..."), which never
   are; a short line (subhead, short quote) between two body lines stays with them;
3. the headline is the best title-like line before the body (or its first line); it becomes
   ``title`` and leaves the body;
4. date, author and site come from the lines around the headline ("RABU, 20 SEPTEMBER 2023 |
   06:12 WIB | LAPORAN: RENI ERINA", "Kompas.com - 01/10/2020, 15:32 WIB", "Penulis" lines); such
   date/byline lines inside the body are dropped from it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from pipeline.stages.clean.boilerplate import is_boilerplate, is_credit_or_pager, starts_comments
from pipeline.stages.clean.dates import find_date
from pipeline.stages.clean.line_model import LineClassifier, PageLines

_WORD = re.compile(r"\w+", re.UNICODE)
_AUTHOR_LABEL = re.compile(
    r"(?:^|\|\s*|\s)(?:laporan|penulis|reporter|wartawan|oleh|pewarta|kontributor|by|von|par|por|written by|"
    r"author)\s*[:：]?\s*(?P<name>[^|•\n]{3,60}?)\s*(?:\||•|$)", re.IGNORECASE)
_NAME = re.compile(r"^[A-ZÀ-Ý][\w'’.\-]+(?:\s+[A-ZÀ-Ý][\w'’.\-]+){0,4}$")
_SITE_DATELINE = re.compile(
    r"^(?:[A-ZÀ-Ý][\w .'-]{1,30},\s*)?(?P<site>[A-Z][\w.+-]*(?:\s[A-Z][\w.+-]*){0,2}\.(?:com|co\.id|id|net|org|"
    r"co|tv|news|my|sg)|[A-Z][A-Za-z]+(?:\s[A-Z][A-Za-z]+){0,2})\s+[-–—]\s+\S", re.UNICODE)
_AUTHOR_WORDS = {"penulis", "author", "reporter", "editor", "pewarta", "wartawan"}
_AUTHOR_KEYS = ("laporan", "penulis", "reporter", "wartawan", "oleh", "pewarta", "kontributor", "by", "von",
                "par", "por", "author", "editor")

META_LINES_AFTER_TITLE = 8   # date and byline lines sit right under the headline
SUBHEAD_MAX_WORDS = 14
COMMENTS_HEADING_MAX_WORDS = 20  # "Top Rated Comments", "[ 167 comments ]", "NAME on DATE at TIME said:"
EDGE_FRAGMENT_WORDS = 2      # a first or last body line this short, without a full stop, is dropped
_SENTENCE_END = (".", "!", "?", "…", '"', "”", "’", "»", ")")
TITLE_WINDOW = 40            # the headline is looked for in this many lines before the body


@dataclass
class TextPage:
    title: str | None
    text: str
    published: str | None
    authors: list[str]
    site: str | None
    kept_lines: int
    total_lines: int


@lru_cache(maxsize=1)
def packaged_classifier() -> LineClassifier:
    return LineClassifier.load()


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def _title_score(text: str, words: int, boilerplate: bool, distance: int) -> float:
    """How much a line looks like the headline; ``distance``: lines between it and the body."""
    if not 3 <= words <= 30 or boilerplate:
        return 0.0
    if text.endswith((".", ":")) and not text.endswith("..."):
        return 0.0
    if find_date(text):
        return 0.0
    tokens = text.split()
    capitalised = sum(1 for t in tokens if t[:1].isupper() or t[:1].isdigit()) / len(tokens)
    return capitalised * min(words, 12) - 0.2 * distance


def _find_title(texts: list[str], words: list[int], boilerplate: list[bool], body_start: int) -> int | None:
    """Index of the headline: the best title-like line of the TITLE_WINDOW lines before the body (a
    line the page repeats, as pages repeat their headline in breadcrumbs and share boxes, gets a
    bonus)."""
    seen = Counter(texts)
    best, best_score = None, 0.0
    for i in range(max(0, body_start - TITLE_WINDOW), body_start):
        score = _title_score(texts[i], words[i], boilerplate[i], body_start - 1 - i)
        if score > 0 and seen[texts[i]] > 1:
            score += 2.0
        if score > best_score:
            best, best_score = i, score
    return best


def _authors(lines: list[str]) -> list[str]:
    found: list[str] = []
    for i, line in enumerate(lines):
        lowered = line.lower()
        if not any(key in lowered for key in _AUTHOR_KEYS):
            continue
        for m in _AUTHOR_LABEL.finditer(line):
            name = m.group("name").strip(" -–,")
            if name and len(name.split()) <= 6 and not find_date(name):
                found.append(name.title() if name.isupper() else name)
        # "Shintaloka Pradita Sicca" followed by a line "Penulis" (Kompas style)
        if line.lower().strip(" :") in _AUTHOR_WORDS and i > 0:
            prev = lines[i - 1]
            if _NAME.match(prev) and not find_date(prev):
                found.append(prev)
    return list(dict.fromkeys(found))


def _is_meta_line(text: str, not_after: datetime | None) -> bool:
    """A dateline or byline ("Kompas.com - 01/10/2020, 15:32 WIB", "Penulis"), not article text."""
    words = _words(text)
    if words > 14:
        return False
    if text.lower().strip(" :") in _AUTHOR_WORDS:
        return True
    return find_date(text, not_after) is not None and words <= 12


def extract_text_page(raw: str, not_after: datetime | None = None,
                      classifier: LineClassifier | None = None) -> TextPage:
    page = PageLines.split(raw)
    texts = page.texts
    if not texts:
        return TextPage(None, "", None, [], None, 0, 0)
    model = classifier or packaged_classifier()
    probs = model.probabilities(page)
    boilerplate = page.furniture or [is_boilerplate(t) or is_credit_or_pager(t) for t in texts]
    keep = [p >= model.threshold and not b for p, b in zip(probs.tolist(), boilerplate, strict=True)]
    # teasers whose headline runs into their summary, two or more in a row: a list of other articles
    teasers = page.teasers or [False] * len(texts)
    for i, glued in enumerate(teasers):
        if glued and ((i > 0 and teasers[i - 1]) or (i + 1 < len(texts) and teasers[i + 1])):
            keep[i] = False
    # a short line between body lines (subhead, short quote, list item) belongs to the article
    words = page.word_counts or [_words(t) for t in texts]
    for i in range(1, len(texts) - 1):
        if not keep[i] and keep[i - 1] and keep[i + 1] and words[i] <= SUBHEAD_MAX_WORDS \
                and not boilerplate[i]:
            keep[i] = True
    kept = [i for i, k in enumerate(keep) if k]
    # readers' comments are not the article: the body ends where they begin
    if kept:
        for i in range(kept[0] + 1, kept[-1] + 1):  # a heading after the last body line changes nothing
            if words[i] <= COMMENTS_HEADING_MAX_WORDS and starts_comments(texts[i]):
                kept = [k for k in kept if k < i]
                break
    # the body neither starts nor ends with a stray fragment (an image's leftover letter, a label)
    while kept and words[kept[0]] <= EDGE_FRAGMENT_WORDS and not texts[kept[0]].endswith(_SENTENCE_END):
        kept.pop(0)
    while kept and words[kept[-1]] <= EDGE_FRAGMENT_WORDS and not texts[kept[-1]].endswith(_SENTENCE_END):
        kept.pop()
    body_start = kept[0] if kept else len(texts)

    title_idx = _find_title(texts, words, boilerplate, body_start)
    if title_idx is None and kept and words[kept[0]] <= 30 and not texts[kept[0]].endswith("."):
        title_idx = kept[0]
    title = texts[title_idx] if title_idx is not None else None

    meta_start = title_idx if title_idx is not None else max(body_start - 3, 0)
    meta_zone = texts[meta_start:max(meta_start + META_LINES_AFTER_TITLE, body_start + 1)]
    published = None
    for line in meta_zone:
        if _words(line) <= 14 and not line.endswith("."):  # a dateline, not a sentence that names a day
            found = find_date(line, not_after)
            if found:
                published = found[0]
                break
    site = None
    for line in meta_zone:
        m = _SITE_DATELINE.match(line)
        if m:
            site = m.group("site")
            break

    body = []
    zone_end = meta_start + len(meta_zone)
    for i in kept:
        line = texts[i]
        if title is not None and line == title:
            continue
        if meta_start <= i < zone_end and _is_meta_line(line, not_after):
            continue  # the dateline / byline under the headline
        if words[i] <= 8 and find_date(line, not_after) and not line.endswith("."):
            continue  # a stray date/time line inside the article
        body.append(line)
    return TextPage(title=title, text="\n".join(body), published=published, authors=_authors([ln for ln in meta_zone if _words(ln) <= 16]),
                    site=site, kept_lines=len(body), total_lines=len(texts))
