"""Main text and metadata of a rendered-text page (visible page text, one block per line).

Such pages have no markup, so the article is found from the lines themselves:

1. a learned line classifier (``line_model``: line, block, neighbourhood and page features, two
   stacked logistic models, trained on third-party data by ``train``) gives every line the
   probability that it is article text;
2. lines at or above the model's threshold are the body, except known boilerplate lines
   ("Baca juga: ...", "Read also", comment prompts: ``boilerplate``) and runs of teasers whose
   headline runs into their summary ("...Student-AthleteA 24-year-old woman ..."), which never
   are; a short line (subhead, short quote) between two body lines stays with them;
3. the headline is the line a learned model (``title_model``, trained by ``training.clean_title``)
   scores highest among the lines before the body and its first line, reading their form, their
   place, the words they share with the article and with the URL (the rule ``_find_title`` when no
   model is packaged or it trusts no line); it becomes ``title`` and leaves the body;
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
from urllib.parse import unquote, urlsplit

from pipeline.stages.clean import title_model
from pipeline.stages.clean.boilerplate import is_boilerplate, is_credit_or_pager, starts_comments
from pipeline.stages.clean.dates import find_date as _find_date
from pipeline.stages.clean.line_model import LineClassifier, PageLines
from pipeline.stages.clean.metadata import split_authors
from pipeline.stages.clean.title_model import TitleModel

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
LABEL_GAP_MIN_WORDS = 20     # a paragraph this long after a bare "BACA JUGA:" label is still the article
TITLE_WINDOW = 40            # the headline is looked for in this many lines before the body
TITLE_MIN_WORDS = 2           # a one-word line is never a headline candidate (half the lines, few headlines)
TOPIC_WEIGHT = 8.0           # how much sharing words with the article's first lines counts for a headline
_CONTENT_WORD = re.compile(r"[^\W\d_]{4,}", re.UNICODE)
_BYLINE_START = re.compile(
    r"^(?:(?:analysis|written|posted|reported|text|words|story|publicado|escrito|ditulis|diposting)\s+(?:by|por|von|"
    r"par|oleh)|by|von|par|por|oleh|penulis|laporan|reporter|wartawan|pewarta|kontributor|author|autor|auteur|"
    r"text|texto|текст|автор|door)\b\s*[:：|]?\s*", re.IGNORECASE)
_LABEL_LINE = re.compile(r"^(?:(?:written|posted|reported)\s+by|by|von|oleh|penulis|laporan|reporter|wartawan|pewarta|"
                         r"kontributor|author|autor|auteur|text|текст|автор)\s*[:：]?$", re.IGNORECASE)
_GLUED_CREDIT = re.compile(r"[a-z][.!?)][A-Z]|\w/\w+ ?(?:Images|Getty|AFP|Reuters|AP)\b|Getty Images|\.\.\. more$")
_DATE_WORDS = re.compile(r"^(?:published|updated|posted|publiziert|aktualisiert|diterbitkan|dipublikasikan|"
                         r"diperbarui)\b", re.IGNORECASE)


@dataclass
class TextPage:
    title: str | None
    text: str
    published: str | None
    authors: list[str]
    site: str | None
    kept_lines: int
    total_lines: int


@lru_cache(maxsize=8192)
def find_date(line: str, not_after: datetime | None = None):
    """``dates.find_date``, remembered within a page (cleared for each page): the title, dateline,
    byline and body passes ask about the same lines."""
    return _find_date(line, not_after)


@lru_cache(maxsize=1)
def packaged_classifier() -> LineClassifier:
    return LineClassifier.load()


@lru_cache(maxsize=1)
def packaged_title_model() -> TitleModel | None:
    """The packaged headline model (None until one is trained: the rule alone picks the headline)."""
    if not title_model.MODEL_PATH.exists():
        return None
    return TitleModel.load(features=TITLE_FEATURES)


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def _stems(text: str) -> set[str]:
    return {w[:5] for w in _CONTENT_WORD.findall(text.casefold())}


def _title_score(text: str, words: int, boilerplate: bool, distance: int) -> float:
    """How much a line looks like the headline; ``distance``: lines between it and the body."""
    if not 3 <= words <= 30 or boilerplate:
        return 0.0
    if text.endswith((".", ":")) and not text.endswith("..."):
        return 0.0
    if _BYLINE_START.match(text) or _DATE_WORDS.match(text) or "@" in text or text.count("|") >= 2:
        return 0.0
    if _GLUED_CREDIT.search(text):
        return 0.0  # a caption run into its photo credit ("... isn't easy.Kathrin Ziegler/Getty")
    if find_date(text):
        return 0.0
    tokens = text.split()
    capitalised = sum(1 for t in tokens if t[:1].isupper() or t[:1].isdigit()) / len(tokens)
    return capitalised * min(words, 12) - 0.2 * distance


def _find_title(texts: list[str], words: list[int], boilerplate: list[bool], body_start: int) -> int | None:
    """Index of the headline by rule: the best title-like line of the TITLE_WINDOW lines before the
    body (see ``_rule_scores``)."""
    best, best_score = None, 0.0
    for i, score in _rule_scores(texts, words, boilerplate, body_start).items():
        if score > best_score:
            best, best_score = i, score
    return best


def _rule_scores(texts: list[str], words: list[int], boilerplate: list[bool], body_start: int,
                 facts: _WindowFacts | None = None) -> dict[int, float]:
    """The rule's score of each title-like line of the TITLE_WINDOW lines before the body (a line
    the page repeats, as pages repeat their headline in breadcrumbs and share boxes, gets a bonus;
    so does one sharing words with the article's first lines, or followed by a byline/dateline)."""
    facts = facts or _WindowFacts(texts, body_start)
    seen, topic = facts.seen, facts.topic
    scores = {}
    for i in range(facts.start, body_start):
        score = _title_score(texts[i], words[i], boilerplate[i], body_start - 1 - i)
        if score <= 0:
            continue
        if seen[texts[i]] > 1:
            score += 2.0
        stems = facts.stems(i)
        if stems and topic:
            shared = len(stems & topic)
            # the headline is about what the article says; a line sharing no word with it rarely is
            score += TOPIC_WEIGHT * shared / len(stems) if shared else -3.0
        if facts.meta_follows(i):
            score += 2.0  # a byline or dateline follows the headline
        scores[i] = score
    return scores


class _WindowFacts:
    """What the headline's choice asks about the lines of the title window, each computed once."""

    def __init__(self, texts: list[str], body_start: int):
        self.texts = texts
        self.start = max(0, body_start - TITLE_WINDOW)
        self.seen = Counter(texts)
        self.topic = _topic(texts, body_start)
        self._stems: dict[int, set[str]] = {}
        self._meta: dict[int, bool] = {}

    def stems(self, i: int) -> set[str]:
        found = self._stems.get(i)
        if found is None:
            found = self._stems[i] = _stems(self.texts[i])
        return found

    def is_meta(self, i: int) -> bool:
        """A dateline or a byline."""
        found = self._meta.get(i)
        if found is None:
            text = self.texts[i]
            found = self._meta[i] = _is_dateline(text) or bool(_BYLINE_START.match(text))
        return found

    def meta_follows(self, i: int) -> bool:
        return any(self.is_meta(j) for j in range(i + 1, min(i + 4, len(self.texts))))


def _topic(texts: list[str], body_start: int) -> set[str]:
    topic: set[str] = set()
    for line in texts[body_start:body_start + 4]:
        topic |= _stems(line)
    return topic


def slug_stems(url: str | None) -> set[str]:
    """The word stems of a URL's path ("/2019/11/18/thousands-of-wework-employees-laid-off/")."""
    if not url:
        return set()
    return _stems(unquote(urlsplit(url).path))  # letter runs: hyphens, slashes and digits split words


TITLE_FEATURES = ("words", "few_words", "many_words", "capitalised", "ends_period", "ends_question", "has_date",
                  "byline_start", "separator", "glued_credit", "boilerplate", "distance", "in_body", "repeated",
                  "topic_share", "no_topic", "meta_follows", "slug_share", "line_prob", "rule_score", "rule_best",
                  "after_short_line", "first_candidate")


def title_candidates(texts: list[str], words: list[int], boilerplate: list[bool], body_start: int,
                     line_probs: list[float], url: str | None = None) -> tuple[list[int], list[list[float]]]:
    """Lines that may be the headline (the TITLE_WINDOW lines before the body and the body's first
    line) and their features (``TITLE_FEATURES``), for the learned title model."""
    facts = _WindowFacts(texts, body_start)
    seen, topic = facts.seen, facts.topic
    slug = slug_stems(url)
    rules = _rule_scores(texts, words, boilerplate, body_start, facts)
    best_rule = max(rules, key=rules.get) if rules else None
    candidates, rows = [], []
    first = True
    for i in range(facts.start, min(len(texts), body_start + 1)):
        text, n = texts[i], words[i]
        if n < TITLE_MIN_WORDS or n > 40:
            continue
        stems = facts.stems(i)
        shared = len(stems & topic) if stems and topic else 0
        tokens = text.split()
        rows.append([
            min(n, 30) / 30.0, float(n < 3), float(n > 30),
            sum(1 for t in tokens if t[:1].isupper() or t[:1].isdigit()) / max(1, len(tokens)),
            float(text.endswith((".", ":")) and not text.endswith("...")), float(text.endswith(("?", "!"))),
            float(find_date(text) is not None),
            float(bool(_BYLINE_START.match(text) or _DATE_WORDS.match(text))),
            float("|" in text or " - " in text or " – " in text or " — " in text),
            float(bool(_GLUED_CREDIT.search(text))), float(boilerplate[i]),
            max(0, body_start - 1 - i) / TITLE_WINDOW, float(i >= body_start), float(seen[text] > 1),
            shared / len(stems) if stems else 0.0, float(bool(stems and topic and not shared)),
            float(facts.meta_follows(i)),
            len(stems & slug) / len(stems) if stems and slug else 0.0,
            float(line_probs[i]), max(-5.0, min(rules.get(i, 0.0), 25.0)) / 25.0, float(i == best_rule),
            float(i > 0 and words[i - 1] <= 3), float(first),
        ])
        candidates.append(i)
        first = False
    return candidates, rows


def _is_dateline(text: str, not_after: datetime | None = None) -> bool:
    return _words(text) <= 16 and not text.endswith(".") and (
        find_date(text, not_after) is not None or bool(_DATE_WORDS.match(text) and re.search(r"\d", text)))


def _authors(lines: list[str], not_after: datetime | None = None) -> list[str]:
    """Byline names in the lines around the headline: "By A and B", "Penulis: A", "LAPORAN: A",
    "Oleh A", a label line followed by the names ("By" / "Randy Maniloff"), names followed by a
    "Penulis" line (Kompas), or a line of names right before a dateline. "Editor:" lines are not
    bylines (an editor did not write the article)."""
    for i, line in enumerate(lines):
        lowered = line.lower()
        if lowered.startswith("editor") or _words(line) > 16:
            continue
        if _LABEL_LINE.match(line.strip()):
            # "Shintaloka Pradita Sicca" / "Penulis" (Kompas: the label under the name), else "By" / "Randy Maniloff"
            for other in ([lines[i - 1]] if i > 1 and not find_date(lines[i - 1]) else []) + lines[i + 1:i + 2]:
                names = split_authors(other)
                if names:
                    return names
        if any(key in lowered for key in _AUTHOR_KEYS):
            for m in _AUTHOR_LABEL.finditer(line):
                names = split_authors(m.group("name"))
                if names and not lowered[m.start():].lstrip(" |").startswith("editor"):
                    return names
            if _BYLINE_START.match(line):
                names = split_authors(line)
                if names:
                    return names
        # "Shintaloka Pradita Sicca" followed by a line "Penulis" (Kompas style)
        if lowered.strip(" :") in {"penulis", "author", "reporter", "pewarta", "wartawan"} and i > 0:
            names = split_authors(lines[i - 1])
            if names and not find_date(lines[i - 1]):
                return names
    for i, line in enumerate(lines):
        if i == 0 or _words(line) > 12 or line.lower().startswith("editor"):
            continue  # lines[0] is the headline
        found = find_date(line, not_after)
        if found:  # "Chris Davies - Nov 19, 2019, 8:15 pm CST": names before the date
            head = line[:found[1].start()].strip(" -–—|·•,")
            candidate = head if head and _words(head) <= 6 else None
        elif _words(line) <= 8 and any(_is_dateline(t, not_after) for t in lines[max(1, i - 2):i] + lines[i + 1:i + 3]):
            candidate = line  # a line of names next to the dateline
        else:
            candidate = None
        if candidate:
            names = split_authors(candidate)
            if names and all(2 <= len(n.split()) <= 3 and "-" not in n for n in names):
                return names
    return []


def _is_dateline_candidate(line: str) -> bool:
    """A line that may be the article's dateline, not a sentence that names a day: short, or a
    labelled one ("Published ... | Updated ...", "By HNN Staff | November 18, 2019 at 2:26 PM HST -
    Updated ...")."""
    if line.endswith("."):
        return False
    words = _words(line)
    return words <= 16 or (words <= 30 and bool(_DATE_WORDS.match(line) or _BYLINE_START.match(line)))


def _is_meta_line(text: str, not_after: datetime | None) -> bool:
    """A dateline or byline ("Kompas.com - 01/10/2020, 15:32 WIB", "Penulis"), not article text."""
    words = _words(text)
    if words > 14:
        return False
    if text.lower().strip(" :") in _AUTHOR_WORDS:
        return True
    return find_date(text, not_after) is not None and words <= 12


@dataclass
class PageReading:
    """A rendered page's lines as the stage reads them: each line's text, words, boilerplate flag
    and article-text probability, the body lines kept, and where the body starts."""
    texts: list[str]
    words: list[int]
    boilerplate: list[bool]
    probs: list[float]
    kept: list[int]
    body_start: int


def read_page(raw: str, classifier: LineClassifier | None = None) -> PageReading | None:
    """The page's lines and its body (None: no lines)."""
    find_date.cache_clear()
    page = PageLines.split(raw)
    texts = page.texts
    if not texts:
        return None
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
    # a paragraph cut off from the body only by a bare link-list label ("BACA JUGA:", whose linked
    # headline the rendering lost) is still the article
    for i in range(2, len(texts)):
        if not keep[i] and words[i] >= LABEL_GAP_MIN_WORDS and not boilerplate[i] \
                and texts[i].endswith(_SENTENCE_END):
            j = i - 1
            while j > 0 and i - j <= 2 and boilerplate[j] and words[j] <= 3:
                j -= 1
            if j < i - 1 and keep[j]:
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
    # nor ends with a name alone (a writer's credit under the article: "• Deti Mega Purnamasari")
    if len(kept) > 1 and words[kept[-1]] <= 5 and not texts[kept[-1]].endswith(_SENTENCE_END) \
            and split_authors(texts[kept[-1]].lstrip("•·-–* ")):
        kept.pop()
    body_start = kept[0] if kept else len(texts)
    return PageReading(texts, words, boilerplate, probs.tolist(), kept, body_start)


def extract_text_page(raw: str, not_after: datetime | None = None,
                      classifier: LineClassifier | None = None, url: str | None = None,
                      title_model: TitleModel | None = None) -> TextPage:
    reading = read_page(raw, classifier)
    if reading is None:
        return TextPage(None, "", None, [], None, 0, 0)
    texts, words, boilerplate, kept, body_start = (reading.texts, reading.words, reading.boilerplate,
                                                   reading.kept, reading.body_start)
    model = title_model if title_model is not None else packaged_title_model()
    title_idx = None
    if model is not None:  # the learned headline, when it is sure enough; else the rule's
        title_idx = model.choose(*title_candidates(texts, words, boilerplate, body_start, reading.probs, url))
    if title_idx is None:
        title_idx = _find_title(texts, words, boilerplate, body_start)
    if title_idx is None and kept and words[kept[0]] <= 30 and not texts[kept[0]].endswith("."):
        title_idx = kept[0]
    title = texts[title_idx] if title_idx is not None else None

    meta_start = title_idx if title_idx is not None else max(body_start - 3, 0)
    meta_zone = texts[meta_start:max(meta_start + META_LINES_AFTER_TITLE, body_start + 1)]
    published = None
    # the first dateline after the headline, else the nearest one just before it; then the same
    # around the page's other copies of the headline (a gallery repeats it right above the body,
    # away from the dateline under the first)
    around = meta_zone + texts[max(0, meta_start - 4):meta_start][::-1]
    if title is not None:
        for i in (i for i, t in enumerate(texts) if t == title and i != title_idx):
            around += texts[i + 1:i + 1 + META_LINES_AFTER_TITLE] + texts[max(0, i - 4):i][::-1]
    for line in around:
        if _is_dateline_candidate(line):
            found = find_date(line, not_after)
            if found:
                published = found[0]
                break
    if published is None:  # a labelled dateline elsewhere ("By ... | Nov 19, 2019", "Published ..."), the first
        for line in texts:
            if (_DATE_WORDS.match(line) or _BYLINE_START.match(line)) and _is_dateline_candidate(line):
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
    # the headline leaves the body, unless it is all the body there is (a one-paragraph page)
    drop_title = title is not None and any(texts[i] != title for i in kept)
    for i in kept:
        line = texts[i]
        if drop_title and line == title:
            continue
        if meta_start <= i < zone_end and _is_meta_line(line, not_after):
            continue  # the dateline / byline under the headline
        if words[i] <= 8 and find_date(line, not_after) and not line.endswith("."):
            continue  # a stray date/time line inside the article
        body.append(line)
    return TextPage(title=title, text="\n".join(body), published=published, authors=_authors(meta_zone + texts[max(0, meta_start - 3):meta_start], not_after),
                    site=site, kept_lines=len(body), total_lines=len(texts))
