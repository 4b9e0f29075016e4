"""Stories: articles about the same real-world event, grouped online as they arrive.

Every article gets one decision when it arrives, never revised (no batch re-clustering):

1. An article delivered again gets the answer it had (answers are kept ``answer_days``).
2. A near duplicate (``duplicate_of`` set by the dedup stage) joins its original's story at once.
3. Otherwise the article becomes a vector: word unigrams and bigrams of its title and text
   (sublinear term frequency, title words weighted ``title_weight`` more) and, in a block of
   their own weighted ``entity_weight``, its canonical entities (language-independent, so they
   link stories across languages; with ``name_words`` the words of their names, each weighing
   1 + ln(mentions of the names holding it), so "Tara Reid" and "Reid" meet; when the record has
   none, capitalised word sequences stand in for them). Terms are hashed into ``2**df_bits`` ids;
   the inverse document frequency of each comes from the stream itself (document frequencies kept
   in the shared state). It is compared by cosine with the centroid (sum of the members' vectors,
   cut to its ``max_terms`` heaviest terms) of a few candidate stories, found through an inverted
   index from each story's ``index_terms`` heaviest terms (the article's ``query_terms`` heaviest
   terms are looked up).
   A story that heard nothing for ``quiet_days`` before the article (or that starts more than
   that after it) is closed and not a candidate; with ``half_life_days`` the similarity also
   decays with the time between the article and the story. The most similar open story among
   those whose similarity reaches ``threshold * n ** -size_exponent`` (n: the story's articles; a
   larger story's centroid is a surer sign of its event) is joined; else the article starts a
   story of its own, whose id is the article's id. Without canonical entities, the entity block
   holds the words of the stand-in's names (``entity_tokens``: "Tara Reid" and "Reid" meet).
   The idf counts ``idf_prior`` pseudo-documents holding no term (cold start: the first articles
   of a stream can join each other). The similarity is
   multiplied by ``year_mismatch`` when the article's year (its publication year, else the year it
   mentions most) is not the story's, by ``year_match`` when the year its text mentions most is the one
   the texts of the story's articles mention most (an event signature: sibling events are often years
   apart; publication years are not used here, since an open story's are nearly always the
   article's), and by ``day_mismatch`` when every date it gives (published, or day/month in digits
   in its text) is more than ``day_window`` days from every date of the story. With ``join_model`` set, a logistic regression on a few features of each candidate
   (``JOIN_FEATURES``, weights from ``python -m training.stories``) decides instead.

The decision is made here, in Python, on what the state held at one version; the state commits it
only if nothing was committed since (else everything is read again and decided again), so the
answers are those of one sequence, whatever worker decides which article.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from itertools import chain, islice
from operator import itemgetter
from pathlib import Path

import numpy as np
import orjson
import xxhash

from pipeline.records import TemporaryFailure
from pipeline.stages.stories.state import Change, StoryState

#: a capitalised word (Latin letters) and the capitalised words right after it
CAPITALISED = re.compile(r"\b[A-ZÀ-ÖØ-Þ][\w'’.-]*(?:[ \t]+[A-ZÀ-ÖØ-Þ][\w'’.-]*)*")
FIRST_YEAR, LAST_YEAR = 1950, 2099  # the years an article is read to mention (four digits, a word of their own)
#: day and month written as digits (day first: d/m or d/m/yyyy, as Indonesian and most of the world write)
NUMERIC_DATE = re.compile(r"(?<![\d/.])(\d{1,2})/(\d{1,2})(?:/(?:\d{4}|\d{2}))?(?![\d/])")
#: English and Indonesian month names (and their short forms)
MONTHS = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "mei": 5, "jun": 6, "jul": 7, "aug": 8, "agu": 8,
          "agt": 8, "sep": 9, "okt": 10, "oct": 10, "nov": 11, "dec": 12, "des": 12}
_MONTH = (r"(Jan(?:uary|uari)?|Feb(?:ruary|ruari)?|Mar(?:ch|et)?|Apr(?:il)?|May|Mei|June?|Juni|July?|Juli"
          r"|Aug(?:ust)?|Agu(?:stus)?|Agt|Sept?(?:ember)?|Oct(?:ober)?|Okt(?:ober)?|Nov(?:ember)?|Dec(?:ember)?"
          r"|Des(?:ember)?)\.?")
MONTH_DAY = re.compile(rf"\b{_MONTH}[ \t]+(\d{{1,2}})(?!\d)")  # September 20
DAY_MONTH = re.compile(rf"(?<![\d.])(\d{{1,2}})[ \t]+{_MONTH}\b")  # 20 September
MONTH_STARTS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)  # day of the year before each month
JOIN_MODEL_FILE = Path(__file__).with_name("join_model.json")
ENTITY_PREFIX = "\x1f"  # entity terms are hashed apart from words
TRIES = 50  # decisions tried before giving up when other workers keep committing first
TERM_CACHE = 1 << 17  # words whose hashed id is remembered (two generations of this many)
#: a bigram's id mixes its two words' ids (64-bit multiply-xorshift; no string is made or hashed)
_PAIR_MULT = np.uint64(0x9E3779B97F4A7C15)
_ENTITY_SALT = np.uint64(0xC2B2AE3D27D4EB4F)  # the stand-in's entity words are hashed apart from the text's words
_MIX_MULT = np.uint64(0xFF51AFD7ED558CCD)
_SHIFT = np.uint64(33)
_LOW16 = np.uint64(0xFFFF)
_NO_TERMS = np.zeros(0, dtype=np.uint32)  # term ids are below 2**df_bits <= 2**32
_NO_WEIGHTS = np.zeros(0, dtype=np.float64)
_HASH_BASE = 0x100000001B3  # words are hashed as polynomials of their code points in this base, modulo 2**64
_HASH_INVERSE = pow(_HASH_BASE, -1, 1 << 64)


@dataclass(frozen=True)
class StoryOptions:
    """How articles are compared and how long stories and answers live."""

    threshold: float = 0.21  # cosine similarity to the centroid needed to join a story of one article (see size_exponent)
    title_weight: float = 2.5  # added to a term's (sublinear) frequency when it is in the title
    entity_weight: float = 0.3  # share of the vector's squared norm given to the entity block
    idf_offset: float = 0.0  # idf = ln((docs + 1) / (df + 1)) + idf_offset, the article itself counted
    bigrams: bool = True  # word bigrams as well as single words
    quiet_days: float = 3.0  # a story with nothing new for this long is closed
    half_life_days: float = 0.0  # similarity halves per this many days between article and story (0: off)
    expire_days: float = 7.0  # a story last seen this long before the newest article is deleted
    answer_days: float = 30.0  # how long the answer given to an article is kept (redeliveries)
    max_terms: int = 200  # terms kept in a story's centroid
    index_terms: int = 16  # a story's heaviest terms that find it (inverted index)
    query_terms: int = 16  # an article's heaviest terms looked up in the inverted index
    posting_size: int = 32  # the most recently updated stories kept per indexed term
    candidates: int = 8  # stories compared per article (those sharing the most query terms)
    df_bits: int = 22  # terms are hashed into 2**df_bits ids (document frequencies: 4 bytes each)
    max_entities: int = 32  # entity counts kept per story
    top_entities: int = 5  # entities shown in the summary
    max_outlets: int = 32  # outlets and languages kept per story
    year_mismatch: float = 0.7  # similarity factor when the article's main year is not the story's (1: off)
    year_match: float = 1.8  # similarity factor when the year the article's text mentions most is the one its story's
    #                          texts mention most (publication years aside, and a text year that is the article's own
    #                          publication year: most of a year's news mention it; 1: off)
    idf_prior: float = 10.0  # pseudo-documents holding no term: idf = ln((docs + 2 + prior) / (df + 2)) (cold start)
    join_model: str = ""  # learned join decision (JSON beside this file; trained with entity_tokens off); "": threshold
    join_probability: float = 0.0  # probability needed to join (0: the one stored with the join model)
    max_days: int = 16  # dates (day of the year) kept per story
    day_mismatch: float = 0.3  # similarity factor when the dates the article and the story give (published or
    #                            written in the text) are all more than ``day_window`` days apart (1: off)
    day_window: float = 3.0
    month_names: bool = False  # dates written with month names count too ("September 20"; else digits only)
    entity_tokens: bool = True  # without canonical entities, the entity block holds the words of the stand-in's
    #                             names, not whole names: "Tara Reid" and "Reid" share a term (off: one term per name)
    size_exponent: float = 0.4  # a story of n articles is joined from threshold * n ** -size_exponent (0: flat)
    name_words: bool = True  # canonical entities enter the entity block as the words of their names (salted as the
    #                           stand-in's), each weighing 1 + ln(mentions of the names holding it); off: one term
    #                           per name weighing 1 + ln(its mentions)

    def __post_init__(self) -> None:
        if self.expire_days < self.quiet_days:
            raise ValueError("expire_days must be at least quiet_days (a story is closed before it expires)")
        if not 1 <= self.df_bits <= 32:
            raise ValueError("df_bits must be between 1 and 32 (term ids are 32-bit)")
        if not 0.0 <= self.entity_weight <= 1.0:
            raise ValueError("entity_weight is a share of the vector: between 0 and 1")


@dataclass(frozen=True)
class Article:
    """What the stories stage reads of a record. ``when``: published (aware, or UTC; None: unknown);
    ``entities``: canonical entity names; ``mentions``: how often each is mentioned (aligned with
    ``entities``; empty: once each); ``duplicate_of``: the dedup stage's original."""

    id: str
    title: str
    text: str
    entities: tuple[str, ...] = ()
    mentions: tuple[int, ...] = ()
    lang: str | None = None
    outlet: str | None = None
    when: datetime | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True, eq=False)
class Features:
    """An article's terms before weighting by idf: every term id it has (``terms``: its words and
    word bigrams, title terms and entity terms; sorted, distinct) and, aligned with them, the
    sublinear frequency ``1 + ln(count)`` in the text (0: not in it), whether the term is in the
    title, and the entity block's sublinear frequency; the entity names it mentions (for the
    story's summary), its year (published, else the year it mentions most: ties the latest; None: none),
    and the year its text mentions most (``text_year``, dated or not; not its publication year)."""

    terms: np.ndarray
    words: np.ndarray
    title: np.ndarray  # bool
    entities: np.ndarray
    names: tuple[str, ...]
    year: int | None = None
    days: tuple[int, ...] = ()  # days of the year the article is dated or mentions
    text_year: int | None = None  # the year its title and text mention most (ties: the latest; None when it is
    #                               the year it was published)


@dataclass(frozen=True, eq=False)
class Vector:
    """An article's unit vector: term ids (sorted, distinct) and their weights (0 for the terms
    that weigh nothing: no idf left, or in no block)."""

    terms: np.ndarray
    weights: np.ndarray

    def heaviest(self, k: int) -> list[int]:
        return _heaviest(self.terms, self.weights, k)


@dataclass(eq=False)
class Story:
    """A story as stored: its centroid (term ids and weights: the sum of its members' vectors, cut
    to its heaviest terms; by term id), the terms it is indexed under, and its running summary.
    ``seq``: the state version that last changed it.

    Encoded as two JSON lines, then the centroid: what every candidate's decision reads (with ``k``:
    the centroid's size), the summary (title, entities, outlets, languages: read only for the story
    joined), then the centroid's term ids (``k`` little-endian uint32) and weights (``k`` float32). A
    candidate is read without parsing numbers one by one, and the state's scripts read the first
    line alone. ``summary``: the summary line not read yet (see :meth:`read_summary`)."""

    id: str
    seq: int
    articles: int
    first: float | None  # Unix seconds of its first and last article (None: no dates)
    last: float | None
    title: str
    title_similarity: float  # similarity of the article whose title represents the story
    terms: np.ndarray  # the centroid's term ids
    weights: np.ndarray  # and weights
    indexed: list[int]
    entities: dict[str, int] = field(default_factory=dict)
    outlets: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    years: dict[str, int] = field(default_factory=dict)  # main year of its members -> members
    days: dict[str, int] = field(default_factory=dict)  # day of the year its members mention -> members
    text_years: dict[str, int] = field(default_factory=dict)  # the year a member's text mentions most -> members
    summary: bytes | None = None
    main_year: int | None = -1  # year() as stored with the story (-1: not known, ask year())

    def encode(self) -> bytes:
        if self.summary is not None:
            raise ValueError(f"story {self.id}: encoded before its summary was read")
        head = orjson.dumps({
            "id": self.id, "seq": self.seq, "n": self.articles, "first": self.first, "last": self.last,
            "ts": self.title_similarity, "k": len(self.terms), "p": self.indexed, "y": self.years, "d": self.days,
            "yr": self.year(), "ty": self.text_years})
        summary = orjson.dumps({"title": self.title, "e": self.entities, "o": self.outlets, "l": self.languages})
        return b"".join((head, b"\n", summary, b"\n", self.terms.astype("<u4").tobytes(),
                         self.weights.astype("<f4").tobytes()))

    @classmethod
    def decode(cls, raw: bytes) -> Story:
        return cls.decode_many([raw])[0][0].read_summary()

    @classmethod
    def decode_many(cls, raws: list[bytes]) -> tuple[list[Story], np.ndarray, np.ndarray]:
        """The stories (summaries not read), and all their centroids' terms and weights one after
        the other (each story's own are views into these)."""
        stories, terms, weights = [], [], []
        for raw in raws:
            cut = raw.index(b"\n")
            d = orjson.loads(raw[:cut])
            body = raw.index(b"\n", cut + 1) + 1
            k = d["k"]
            if len(raw) != body + 8 * k:
                raise ValueError(f"story {d['id']}: {len(raw) - body} bytes of centroid for {k} terms")
            terms.append(raw[body:body + 4 * k])
            weights.append(raw[body + 4 * k:])
            stories.append(cls(id=d["id"], seq=d["seq"], articles=d["n"], first=d["first"], last=d["last"],
                               title="", title_similarity=d["ts"], terms=_NO_TERMS, weights=_NO_WEIGHTS,
                               indexed=d["p"], years=d["y"] or {}, days=d["d"] or {}, summary=raw[cut + 1:body - 1],
                               main_year=d.get("yr", -1), text_years=d.get("ty") or {}))
        all_terms = np.frombuffer(b"".join(terms), "<u4").astype(np.uint32)
        all_weights = np.frombuffer(b"".join(weights), "<f4").astype(np.float64)
        at = 0
        for story, part in zip(stories, terms, strict=True):
            k = len(part) // 4
            story.terms, story.weights = all_terms[at:at + k], all_weights[at:at + k]
            at += k
        return stories, all_terms, all_weights

    def read_summary(self) -> Story:
        """This story with its summary read (itself)."""
        if self.summary is not None:
            d = orjson.loads(self.summary)
            self.title, self.entities, self.outlets, self.languages = d["title"], d["e"] or {}, d["o"] or [], d["l"] or []
            self.summary = None
        return self

    def year(self) -> int | None:
        """The main year its members mention most often (ties: the latest)."""
        return int(max(self.years, key=lambda y: (self.years[y], int(y)))) if self.years else None

    def text_year(self) -> int | None:
        """The year its members' texts mention most (each member's own most mentioned year; ties: the latest)."""
        years = self.text_years
        return int(max(years, key=lambda y: (years[y], int(y)))) if years else None


class _TermIds(dict):
    """Term -> its hashed id (xxh3 of its UTF-8, masked), remembered: ``ids[term]``. Two generations:
    when ``TERM_CACHE`` terms are new, they become the old generation (the one before is forgotten),
    and the terms of the old one in use come back into the new one."""

    def __init__(self, mask: int):
        super().__init__()
        self.mask = mask
        self.old: dict[str, int] = {}

    def __missing__(self, term: str) -> int:
        tid = self.old.get(term)
        if tid is None:
            tid = xxhash.xxh3_64_intdigest(term.encode("utf-8", "surrogatepass")) & self.mask
        if len(self) >= TERM_CACHE:
            self.old = dict(self)
            self.clear()
        self[term] = tid
        return tid


class _WordHasher:
    """Hashes of the words (``\\w+``, as ``re`` reads it) of a text, all at once in numpy: the text's
    code points, a table of which are word characters, and per word the polynomial
    ``sum(c_i * B**i)`` modulo 2**64 (from prefix sums: ``(S[end] - S[start]) * B**-start``, B odd so
    invertible), then mixed. No string is made per word and nothing is remembered per word."""

    def __init__(self) -> None:
        every = "".join(map(chr, [*range(0xD800), *range(0xE000, 0x110000)]))
        word = "".join(re.findall(r"\w", every)).encode("utf-32-le")
        self.table = np.zeros(0x110000, dtype=bool)
        self.table[np.frombuffer(word, dtype=np.uint32)] = True
        self.token_chars = self.table.copy()  # what a capitalised token is made of (see CAPITALISED)
        self.token_chars[[ord(c) for c in "'’.-"]] = True
        self.capitals = np.zeros(0x110000, dtype=bool)  # what starts one
        self.capitals[[*range(ord("A"), ord("Z") + 1), *range(0xC0, 0xD7), *range(0xD8, 0xDF)]] = True
        self.powers = np.zeros(0, dtype=np.uint64)
        self.inverses = np.zeros(0, dtype=np.uint64)

    def _grow(self, n: int) -> None:
        size = max(n + 1, 2 * len(self.powers), 4096)
        self.powers, self.inverses = np.ones(size, dtype=np.uint64), np.ones(size, dtype=np.uint64)
        with np.errstate(over="ignore"):  # B**i and B**-i modulo 2**64
            self.powers[1:] = np.cumprod(np.full(size - 1, _HASH_BASE, dtype=np.uint64))
            self.inverses[1:] = np.cumprod(np.full(size - 1, _HASH_INVERSE, dtype=np.uint64))

    def __call__(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The hash (uint64) of each word of ``text``, in order, and where each starts (code points)."""
        try:
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        except UnicodeEncodeError:  # a lone surrogate: not a word character
            codes = np.frombuffer(text.encode("utf-32-le", "replace"), dtype=np.uint32)
        if len(codes) >= len(self.powers):
            self._grow(len(codes))
        inside = np.zeros(len(codes) + 2, dtype=bool)
        inside[1:-1] = self.table[codes]
        edges = np.flatnonzero(inside[1:] != inside[:-1])  # where words start and end
        starts, ends = edges[0::2], edges[1::2]
        sums = np.zeros(len(codes) + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            np.cumsum(codes * self.powers[:len(codes)], out=sums[1:])
            return _mix((sums[ends] - sums[starts]) * self.inverses[starts]), starts


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> _SHIFT)
    x *= _MIX_MULT
    return x ^ (x >> _SHIFT)


@cache
def _word_hasher() -> _WordHasher:
    return _WordHasher()


@cache
def _year_words() -> tuple[np.ndarray, dict[int, int]]:
    """Which low 16 bits the word hashes (``_WordHasher``) of the years ``FIRST_YEAR``-``LAST_YEAR``
    written in digits have (a table of 2**16 flags), and year by hash."""
    years = range(FIRST_YEAR, LAST_YEAR + 1)
    hashes = _word_hasher()("\n".join(map(str, years)))[0]
    low = np.zeros(1 << 16, dtype=bool)
    low[(hashes & _LOW16).astype(np.intp)] = True
    return low, dict(zip(hashes.tolist(), years, strict=True))


def mentioned_years(words: np.ndarray) -> Counter[int]:
    """Year -> how often a text whose word hashes are ``words`` writes it as a word of its own
    ("2008"; not "1950s" nor "FY2008"): a look-up of hashes the features have already, no regex (the
    words whose low bits are a year's are looked up)."""
    low, year_of = _year_words()
    maybe = words[low[(words & _LOW16).astype(np.intp)]].tolist()
    return Counter(year for year in map(year_of.get, maybe) if year is not None)


def _pair_ids(first: np.ndarray, second: np.ndarray, mask: int) -> np.ndarray:
    """Ids of the bigrams (first[i], second[i]) from their words' hashes (uint64 arrays)."""
    with np.errstate(over="ignore"):
        return _mix(first * _PAIR_MULT + second) & np.uint64(mask)


def _most_counted(counts: dict[str, int]) -> list[tuple[str, int]]:
    """(name, count) by count, the largest first (ties: by name); two sorts in C (by name: the names are
    distinct, so the key alone orders them, without comparing tuples)."""
    return sorted(sorted(counts.items(), key=itemgetter(0)), key=itemgetter(1), reverse=True)  # reverse keeps
    #                                                                                             the names' order


def _distinct(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(ids, return_inverse=True)`` (the distinct ids, sorted, and where each of ``ids`` is
    among them) for a 1-d array, without its general-purpose overhead (a third of the time here)."""
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    first = np.empty(len(ordered), dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    where = np.empty(len(ids), dtype=np.intp)
    where[order] = np.cumsum(first) - 1
    return ordered[first], where


def _heaviest(terms: np.ndarray, weights: np.ndarray, k: int) -> list[int]:
    """The ``k`` heaviest term ids, heaviest first (ties: the smaller id)."""
    if k <= 0 or not len(terms):
        return []
    if len(terms) > 2 * k:  # only terms at least as heavy as the k-th heaviest can be among them
        keep = weights >= np.partition(weights, len(weights) - k)[len(weights) - k]
        terms, weights = terms[keep], weights[keep]
    order = np.lexsort((terms, -weights))[:k]
    return terms[order].tolist()


class _Df:
    """Document frequencies of the article's terms, aligned with its sorted ``terms`` (``get``
    answers for any term id: 0 when not one of them)."""

    def __init__(self, terms: np.ndarray, counts: np.ndarray):
        self.terms, self.counts = terms, counts

    def get(self, term: int, default: int = 0) -> int:
        i = int(np.searchsorted(self.terms, term))
        return int(self.counts[i]) if i < len(self.terms) and self.terms[i] == term else default


def capitalised_phrases(text: str) -> list[str]:
    """Sequences of capitalised words: a cheap stand-in for named entities where a record has none."""
    return CAPITALISED.findall(text)


def _fold(name: str) -> str:
    return " ".join(name.casefold().split())


def _day_of_year(day: int, month: int) -> int | None:
    if 1 <= month <= 12 and 1 <= day <= 31:
        return MONTH_STARTS[month - 1] + day
    return None


def mentioned_days(text: str, month_names: bool = False) -> list[int]:
    """Days of the year the text writes as dates: "20/9", "20/9/2023" (day first; month first when
    the second number cannot be a month), "September 20", "20 September" (English or Indonesian)."""
    days = []
    slash = text.find("/")
    while slash > 0:  # a numeric date's first slash comes right after its one or two digits
        start = slash
        while start > 0 and slash - start < 3 and text[start - 1].isdigit():
            start -= 1
        if 0 < slash - start < 3:
            m = NUMERIC_DATE.match(text, start)  # what finditer over the text finds there (its lookbehind sees
            if m is not None:  # the characters before ``start``)
                a, b = int(m.group(1)), int(m.group(2))
                days.append(_day_of_year(a, b) if b <= 12 else _day_of_year(b, a))
        slash = text.find("/", slash + 1)
    if not month_names:
        return [d for d in days if d is not None]
    for m in MONTH_DAY.finditer(text):
        days.append(_day_of_year(int(m.group(2)), MONTHS[m.group(1)[:3].lower()]))
    for m in DAY_MONTH.finditer(text):
        days.append(_day_of_year(int(m.group(1)), MONTHS[m.group(2)[:3].lower()]))
    return [d for d in days if d is not None]


def day_gap(days: tuple[int, ...], story_days: dict[str, int]) -> float | None:
    """Fewest days between a date of the article and one of the story (around the year's end too)."""
    if not days or not story_days:
        return None
    gap = 366.0
    for key in story_days:
        other = int(key)
        for day in days:
            d = abs(day - other)
            gap = min(gap, d, 365 - d)
    return gap


@dataclass(frozen=True)
class JoinModel:
    """The learned join decision: a logistic regression on ``JOIN_FEATURES`` (raw values; the
    weights already undo the training's standardisation) and the probability needed to join."""

    weights: tuple[float, ...]
    bias: float
    probability: float

    def probability_of(self, x: list[float]) -> float:
        z = self.bias + sum(w * v for w, v in zip(self.weights, x, strict=True))
        return 1.0 / (1.0 + math.exp(-z)) if z > -500 else 0.0


#: the features of (article, candidate story) the join model reads, in its order
JOIN_FEATURES = ("cosine", "entity_share", "story_entity_share", "title_share", "year_same", "year_other",
                 "day_near", "day_far", "log_articles", "best_cosine_gap")


@cache
def load_join_model(path: str) -> JoinModel:
    file = Path(path) if Path(path).is_absolute() else JOIN_MODEL_FILE.with_name(path)
    data = orjson.loads(file.read_bytes())
    if tuple(data["features"]) != JOIN_FEATURES:
        raise ValueError(f"{file}: features {data['features']} are not this model's {list(JOIN_FEATURES)}")
    return JoinModel(tuple(float(w) for w in data["weights"]), float(data["bias"]), float(data["probability"]))


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _seconds(when: datetime | None) -> float | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class StoryAssigner:
    """Gives each article its story (see the module's docstring), on one shared ``StoryState``."""

    def __init__(self, options: StoryOptions, state: StoryState):
        self.options = options
        self.state = state
        self._mask = (1 << options.df_bits) - 1
        self._ids = _TermIds(self._mask)
        self._names: dict[str, tuple[str, int]] = {}  # see _name
        self.retries = 0  # decisions made again because another worker committed first

    # --- features ---------------------------------------------------------------------------

    def _term(self, term: str) -> int:
        return self._ids[term]

    def _ids_of(self, text: str) -> np.ndarray:
        """Term ids of the text's words and (with ``bigrams``) its word bigrams, repeated as they come."""
        return self._terms_of(_word_hasher()(text.lower())[0])

    def _terms_of(self, words: np.ndarray) -> np.ndarray:
        mask = np.uint64(self._mask)
        if self.options.bigrams and len(words) > 1:  # "a b"
            return np.concatenate((words & mask, _pair_ids(words[:-1], words[1:], self._mask))).astype(np.uint32)
        return (words & mask).astype(np.uint32)

    def _counts(self, text: str) -> Counter[int]:
        """Term id -> how often it occurs in the text."""
        terms, counts = np.unique(self._ids_of(text), return_counts=True)
        return Counter(dict(zip(terms.tolist(), counts.tolist(), strict=True)))

    def _name(self, name: str) -> tuple[str, int]:
        """A name as compared (folded) and its term id (remembered)."""
        known = self._names.get(name)
        if known is None:
            if len(self._names) >= TERM_CACHE:
                self._names.clear()
            folded = _fold(name)
            known = self._names[name] = (folded, self._term(ENTITY_PREFIX + folded))
        return known

    def features(self, article: Article) -> Features:
        """The article's words and entities, weighted by frequency (not yet by idf). Without
        canonical entities (``article.entities``), capitalised word sequences stand in for them."""
        text = f"{article.title}\n{article.text}"
        title = article.title.lower()  # (lowercase may be longer: "İ")
        lowered = f"{title}\n{article.text.lower()}"
        words, starts = _word_hasher()(lowered)
        years = mentioned_years(words)  # (before ``words`` is reused below)
        cut = int(np.searchsorted(starts, len(title)))  # the title's words start before its end
        text_ids, title_ids = self._terms_of(words[cut:]), self._terms_of(words[:cut])
        if article.entities and self.options.name_words:  # the words of the canonical names
            mentions = self._mentions(article)
            entity_ids, entity_counts = self._name_words(mentions)
        elif article.entities or not self.options.entity_tokens:  # one term per name
            mentions = self._mentions(article) if article.entities else Counter(capitalised_phrases(text))
            entity_ids = np.fromiter((self._name(name)[1] for name in mentions), dtype=np.uint32, count=len(mentions))
            entity_counts = np.fromiter(mentions.values(), dtype=np.float64, count=len(mentions))
        else:  # the stand-in's names: the words of the capitalised phrases, as the text has them
            mentions, entity_ids = self._stand_in(text, lowered, words, starts)
            entity_counts = np.ones(len(entity_ids))
        terms, where = _distinct(np.concatenate((text_ids, title_ids, entity_ids)))
        n_text, n_title = len(text_ids), len(title_ids)
        words = np.bincount(where[:n_text], minlength=len(terms)).astype(np.float64)
        entities = np.bincount(where[n_text + n_title:], weights=entity_counts, minlength=len(terms))
        title = np.zeros(len(terms), dtype=bool)
        title[where[n_text:n_text + n_title]] = True
        for counts in (words, entities):  # count -> 1 + ln(count), 0 stays 0
            present = counts > 0
            counts[present] = 1.0 + np.log(counts[present])
        text_year = max(years, key=lambda y: (years[y], y)) if years else None
        # dated: the year it appeared (years it mentions are often the past's)
        year = article.when.year if article.when is not None else text_year
        if year == text_year and article.when is not None:  # its own year, as most news of a year write it:
            text_year = None  # no sign of which event (year_match)
        days = set(mentioned_days(text, self.options.month_names))
        if article.when is not None:
            days.add(_day_of_year(article.when.day, article.when.month) or 1)
        return Features(terms, words, title, entities, tuple(mentions), year, tuple(sorted(days)), text_year)

    @staticmethod
    def _mentions(article: Article) -> Counter[str]:
        """Canonical name -> its mentions in the article (``mentions``, else once each)."""
        if not article.mentions:
            return Counter(article.entities)
        if len(article.mentions) != len(article.entities):
            raise ValueError(f"article {article.id}: {len(article.mentions)} mention counts for "
                             f"{len(article.entities)} entities")
        mentions: Counter[str] = Counter()
        for name, count in zip(article.entities, article.mentions, strict=True):
            mentions[name] += max(int(count), 1)
        return mentions

    def _name_words(self, mentions: Counter[str]) -> tuple[np.ndarray, np.ndarray]:
        """Entity terms of the words of canonical names (hashed and salted as the stand-in's: an
        article without entities meets them) and, aligned, the mentions of the name each comes from
        (a word is counted once per name; the features add up the names holding it)."""
        names = [name.lower() for name in mentions]
        hashes, starts = _word_hasher()("\n".join(names))
        if not len(hashes):
            return _NO_TERMS, _NO_WEIGHTS
        name_starts = np.cumsum([0] + [len(name) + 1 for name in names[:-1]])
        owner = np.searchsorted(name_starts, starts, side="right") - 1
        terms = (_mix(hashes ^ _ENTITY_SALT) & np.uint64(self._mask)).astype(np.uint32)
        pairs = np.unique(np.stack((owner, terms.astype(np.int64))), axis=1)  # each word once per name
        counts = np.fromiter(mentions.values(), dtype=np.float64, count=len(mentions))
        return pairs[1].astype(np.uint32), counts[pairs[0]]

    def _stand_in(self, text: str, lowered: str, words: np.ndarray, starts: np.ndarray
                  ) -> tuple[Counter[str], np.ndarray]:
        """The stand-in's names in ``text`` (title, line break, text) with how often each is found,
        and their entity terms: a term for each word of a capitalised token (a run of word
        characters, apostrophes, dots and hyphens whose first word starts with a capital), so "Tara
        Reid" and "Reid's" share "reid"; a name is a run of such tokens with only spaces or tabs
        between them (``CAPITALISED``). A word's term is its hash in the text (``words``, starting at
        ``starts`` in ``lowered``) mixed with ``_ENTITY_SALT``. Where lowercasing moved positions
        ("İ"), the names are found with ``CAPITALISED`` and hashed again on their own."""
        mask = np.uint64(self._mask)
        if len(lowered) != len(text):
            mentions = Counter(capitalised_phrases(text))
            hashes = _word_hasher()("\n".join(name.lower() for name in mentions.elements()))[0]
            return mentions, (_mix(hashes ^ _ENTITY_SALT) & mask).astype(np.uint32)
        if not len(starts):
            return Counter(), _NO_TERMS
        hasher = _word_hasher()
        codes = np.frombuffer(text.encode("utf-32-le", "replace"), dtype=np.uint32)
        inside = np.zeros(len(codes) + 2, dtype=bool)
        inside[1:-1] = hasher.token_chars[codes]
        edges = np.flatnonzero(inside[1:] != inside[:-1])
        token_starts, token_ends = edges[0::2], edges[1::2]
        first = np.searchsorted(starts, token_starts)  # each token's first word (len(starts): none after it)
        has_word = first < len(starts)
        first = np.minimum(first, len(starts) - 1)
        capital = has_word & (starts[first] < token_ends) & hasher.capitals[codes[starts[first]]]
        in_name = capital[np.searchsorted(token_starts, starts, side="right") - 1]  # each word's token's
        terms = (_mix(words[in_name] ^ _ENTITY_SALT) & mask).astype(np.uint32)
        names = np.flatnonzero(capital)
        if not len(names):
            return Counter(), terms
        blanks = np.zeros(len(codes) + 1, dtype=np.int64)  # characters that are not a space or a tab, up to each
        np.cumsum((codes != 32) & (codes != 9), out=blanks[1:])
        joined = (names[1:] == names[:-1] + 1) & (blanks[token_starts[names[1:]]] == blanks[token_ends[names[:-1]]])
        begins = starts[first[names]][np.concatenate(([True], ~joined))]
        ends = token_ends[names][np.concatenate((~joined, [True]))]
        return Counter([text[b:e] for b, e in zip(begins.tolist(), ends.tolist(), strict=True)]), terms

    def vector(self, features: Features, df: np.ndarray, docs: int) -> Vector:
        """Unit vector of the article: the word block (title terms weigh ``title_weight`` more) and
        the entity block, each weighted by idf (the article itself counted; ``df`` aligned with
        ``features.terms``; terms whose idf is not above 0 weigh nothing) and normalised, then
        scaled to their shares."""
        o = self.options
        idf = np.log((docs + 2 + o.idf_prior) / (df.astype(np.float64) + 2.0)) + o.idf_offset
        np.maximum(idf, 0.0, out=idf)
        words = (features.words + o.title_weight * features.title) * idf
        entities = features.entities * idf
        words_norm = math.sqrt(float(np.dot(words, words)))
        entities_norm = math.sqrt(float(np.dot(entities, entities)))
        share = o.entity_weight if entities_norm and words_norm else (1.0 if entities_norm else 0.0)
        weights = np.zeros(len(features.terms))
        if words_norm:  # each block normalised, then scaled to its share
            weights += words * (math.sqrt(1.0 - share) / words_norm)
        if entities_norm:
            weights += entities * (math.sqrt(share) / entities_norm)
        return Vector(features.terms, weights)

    # --- decisions --------------------------------------------------------------------------

    def similarities(self, vec: Vector, stories: list[Story], when: float | None, year: int | None = None,
                     days: tuple[int, ...] = (), centroids: tuple[np.ndarray, np.ndarray] | None = None,
                     text_year: int | None = None) -> list[float | None]:
        """Cosine of the article with each story's centroid, decayed by time; None for a story that
        is closed for this article (quiet for ``quiet_days`` before it, or starting that long after).
        ``centroids``: the stories' terms and weights one after the other, when at hand."""
        o = self.options
        if not stories:
            return []
        sizes = [len(story.terms) for story in stories]
        if centroids is None:
            centroids = (np.concatenate([story.terms for story in stories]),
                         np.concatenate([story.weights for story in stories]))
        terms, weights = centroids
        owner = np.repeat(np.arange(len(stories)), sizes)
        norms = np.sqrt(np.bincount(owner, weights=weights * weights, minlength=len(stories))).tolist()
        dots = [0.0] * len(stories)
        if len(vec.terms) and len(terms):
            where = np.searchsorted(vec.terms, terms)
            where[where == len(vec.terms)] = 0
            hit = vec.terms[where] == terms
            dots = np.bincount(owner[hit], weights=weights[hit] * vec.weights[where[hit]],
                               minlength=len(stories)).tolist()
        out: list[float | None] = []
        quiet = o.quiet_days * 86400
        half_life = o.half_life_days * 86400
        by_year = year is not None and o.year_mismatch != 1.0
        by_text_year = text_year is not None and o.year_match != 1.0
        by_day = o.day_mismatch != 1.0 and bool(days)
        for story, dot, norm in zip(stories, dots, norms, strict=True):
            gap = 0.0
            if when is not None and story.last is not None and story.first is not None:
                gap = max(when - story.last, story.first - when, 0.0)
                if gap > quiet:
                    out.append(None)
                    continue
            if not norm:
                out.append(0.0)
                continue
            sim = dot / norm
            if half_life and gap:
                sim *= 0.5 ** (gap / half_life)
            if by_year and story.years:
                story_year = story.year() if story.main_year == -1 else story.main_year
                if story_year is not None and year != story_year:
                    sim *= o.year_mismatch
            if by_text_year and story.text_years and story.text_year() == text_year:
                sim *= o.year_match
            if by_day and story.days:
                day = day_gap(days, story.days)
                if day is not None and day > o.day_window:
                    sim *= o.day_mismatch
            out.append(sim)
        return out

    def idf(self, df: int, docs: int) -> float:
        return math.log((docs + 2 + self.options.idf_prior) / (df + 2)) + self.options.idf_offset

    def join_features(self, features: Features, df: _Df, docs: int,
                      scored: list[tuple[Story, float]]) -> list[list[float]]:
        """``JOIN_FEATURES`` of the article with each (open) candidate story and its cosine."""
        if not scored:
            return []
        keys = dict(map(self._name, features.names))  # name as compared (folded) -> its term
        idf = {t: max(self.idf(df.get(t, 0), docs), 0.0) for t in keys.values()}
        entity_mass = sum(idf.values())
        title_idf = {t: max(self.idf(df.get(t, 0), docs), 0.0) for t in features.terms[features.title].tolist()}
        title_mass = sum(title_idf.values())
        top = max(sim for _, sim in scored)
        rows = []
        for story, sim in scored:
            folded = {_fold(n): c for n, c in story.entities.items()}
            shared = [k for k in keys if k in folded]
            entity_share = sum(idf[keys[k]] for k in shared) / entity_mass if entity_mass else 0.0
            story_total = sum(folded.values())
            story_share = sum(folded[k] for k in shared) / story_total if story_total else 0.0
            story_title = self._counts(story.title)
            title_share = (sum(w for t, w in title_idf.items() if t in story_title) / title_mass
                           if title_mass else 0.0)
            story_year = story.year()
            known = features.year is not None and story_year is not None
            gap = day_gap(features.days, story.days)
            rows.append([
                sim, entity_share, story_share, title_share,
                1.0 if known and features.year == story_year else 0.0,
                1.0 if known and features.year != story_year else 0.0,
                1.0 if gap is not None and gap <= 3 else 0.0,
                1.0 if gap is not None and gap > 3 else 0.0,
                math.log(story.articles) if story.articles > 0 else 0.0,
                sim - top,
            ])
        return rows

    @property
    def join_model(self) -> JoinModel | None:
        return load_join_model(self.options.join_model) if self.options.join_model else None

    def decide(self, article: Article, features: Features, df: _Df, docs: int,
               scored: list[tuple[Story, float]]) -> tuple[Story | None, float | None]:
        """The story the article joins (None: it starts one) among the open candidates and their
        cosines, and the similarity reported: the joined story's, else the best found (None: none)."""
        if not scored:
            return None, None
        best_sim = max(sim for _, sim in scored)
        model = self.join_model
        if model is None:
            o = self.options
            passing = [(sim, -k, story) for k, (story, sim) in enumerate(scored)
                       if sim >= o.threshold * (story.articles ** -o.size_exponent if story.articles > 1 else 1.0)]
            if not passing:
                return None, best_sim
            sim, _, best = max(passing, key=lambda sks: sks[:2])  # the most similar (ties: the first found)
            return best, sim
        needed = self.options.join_probability or model.probability
        rows = self.join_features(features, df, docs, scored)
        p, i = max((model.probability_of(x), -i) for i, x in enumerate(rows))
        if p >= needed:
            return scored[-i][0], scored[-i][1]
        return None, best_sim

    def assign(self, article: Article, features: Features | None = None) -> dict:
        """The article's ``story`` object (JSON-ready): ``id`` (the story's: the id of the article that
        started it), ``status`` (``started`` or ``joined``), ``similarity`` (to the story joined, or
        the best one found when starting; None for a near duplicate joining its original's story,
        or when there was nothing to compare with) and the story's ``summary`` as it stands.
        ``features``: the article's, when computed already (benchmarks reuse them across runs)."""
        features = features or self.features(article)
        when = _seconds(article.when)
        for _ in range(TRIES):
            view = self.state.begin(article.id, features.terms, article.duplicate_of)
            if view.answer is not None:
                return view.answer
            if view.original is not None:  # a near duplicate: its original's story, at once
                answer, change = self._join_original(article, features, when, view.original, view.version,
                                                     view.newest)
            else:
                vec = self.vector(features, view.df, view.docs)
                query = vec.heaviest(self.options.query_terms)
                version, found = self.state.candidates(query, self.options.candidates)
                if version != view.version:
                    self.retries += 1
                    continue
                answer, change = self._decide_new(article, features, when, view.df, view.docs, view.version,
                                                  view.newest, vec, query, found)
            if self.state.commit(view.version, change):
                return answer
            self.retries += 1
        # other workers kept committing first: the batch is tried again later, not dead-lettered
        raise TemporaryFailure(f"story of {article.id}: the state kept changing under {TRIES} tries")

    def assign_many(self, articles: list[Article], features: list[Features] | None = None) -> list[dict]:
        """``assign`` of each article, in order: the same answers. A state that reads and commits for
        several articles at once (``RedisStoryState``) is asked a few times per batch instead of three
        times per article (see ``_Batch``)."""
        features = features or [self.features(article) for article in articles]
        if not hasattr(self.state, "read_many"):
            return [self.assign(article, f) for article, f in zip(articles, features, strict=True)]
        return _Batch(self, articles, features).run()

    def _join_original(self, article: Article, features: Features, when: float | None, original: bytes,
                       version: int, newest: float | None) -> tuple[dict, Change]:
        """A near duplicate joins its original's story (encoded: ``original``) at ``version``."""
        story = Story.decode(original)
        self._add(story, article, features, when, None, version)
        answer = self._answer(story, "joined", None)
        return answer, self._change(article, story, answer, when, newest, [], count_doc=False, original=story.id)

    def _decide_new(self, article: Article, features: Features, when: float | None, df: np.ndarray, docs: int,
                    version: int, newest: float | None, vec: Vector, query: list[int], found: list[bytes]
                    ) -> tuple[dict, Change]:
        """The decision on an article that is no near duplicate: join the best of the candidate stories
        ``found`` (encoded) or start a story, at ``version``."""
        model = self.join_model
        stories, *centroids = Story.decode_many(found)
        if model:
            stories = [story.read_summary() for story in stories]
        sims = (self.similarities(vec, stories, when, centroids=centroids) if model else
                self.similarities(vec, stories, when, features.year, features.days, centroids, features.text_year))
        scored = [(story, sim) for story, sim in zip(stories, sims, strict=True) if sim is not None]
        best, best_sim = self.decide(article, features, _Df(features.terms, df), docs, scored)
        if best is not None:
            story, status = best.read_summary(), "joined"
            old_index = list(best.indexed)
            self._add(story, article, features, when, vec, version, best_sim)
        else:
            story = Story(id=article.id, seq=0, articles=0, first=when, last=when, title=article.title,
                          title_similarity=0.0, terms=_NO_TERMS, weights=_NO_WEIGHTS, indexed=[])
            status, old_index = "started", []
            self._add(story, article, features, when, vec, version)
        answer = self._answer(story, status, None if best_sim is None else round(best_sim, 4))
        return answer, self._change(article, story, answer, when, newest, old_index, count_doc=True,
                                    terms=features.terms, query=query)

    def _add(self, story: Story, article: Article, features: Features, when: float | None,
             vec: Vector | None, version: int, similarity: float | None = None) -> None:
        """Count ``article`` in ``story``: its vector into the centroid (None: leave the centroid),
        dates, title, entities, outlet, language."""
        o = self.options
        story.seq = version + 1
        story.articles += 1
        if when is not None:
            story.first = when if story.first is None else min(story.first, when)
            story.last = when if story.last is None else max(story.last, when)
        if similarity is not None and similarity > story.title_similarity:
            story.title, story.title_similarity = article.title, similarity
        if vec is not None:
            present = vec.weights > 0
            terms, weights = vec.terms[present], vec.weights[present]
            if len(story.terms):  # the centroid's terms (sorted, distinct) plus the article's: the shared ones add up,
                at = np.searchsorted(story.terms, terms)  # the others follow (unsorted: sorted below, once cut)
                np.minimum(at, len(story.terms) - 1, out=at)
                shared = story.terms[at] == terms
                summed = story.weights.astype(np.float64)  # (a copy)
                summed[at[shared]] += weights[shared]
                terms = np.concatenate((story.terms, terms[~shared]))
                weights = np.concatenate((summed, weights[~shared]))
            if len(terms) > o.max_terms:  # only terms at least as heavy as the max_terms-th can stay
                keep = weights >= np.partition(weights, len(weights) - o.max_terms)[len(weights) - o.max_terms]
                terms, weights = terms[keep], weights[keep]
            order = np.lexsort((terms, -weights))[:o.max_terms]  # heaviest first (ties: the smaller id)
            story.indexed = terms[order[:o.index_terms]].tolist()
            order = order[np.argsort(terms[order])]  # kept by term id: candidates' centroids compare faster
            story.terms, story.weights = terms[order], weights[order]
        entities = Counter(story.entities)
        entities.update(features.names)  # (counted in C)
        story.entities = dict(entities)
        for day in features.days:
            story.days[str(day)] = story.days.get(str(day), 0) + 1
        if len(story.days) > o.max_days:
            story.days = dict(sorted(story.days.items(), key=lambda dc: (-dc[1], int(dc[0])))[:o.max_days])
        if features.year is not None:
            story.years[str(features.year)] = story.years.get(str(features.year), 0) + 1
            story.main_year = -1  # year() again
            if len(story.years) > o.max_entities:
                story.years = dict(sorted(story.years.items(), key=lambda yc: (-yc[1], yc[0]))[:o.max_entities])
        if features.text_year is not None:
            key = str(features.text_year)
            story.text_years[key] = story.text_years.get(key, 0) + 1
            if len(story.text_years) > o.max_entities:
                story.text_years = dict(sorted(story.text_years.items(), key=lambda yc: (-yc[1], yc[0]))[:o.max_entities])
        if len(story.entities) > o.max_entities:
            story.entities = dict(_most_counted(story.entities)[:o.max_entities])
        if article.outlet and article.outlet not in story.outlets and len(story.outlets) < o.max_outlets:
            story.outlets.append(article.outlet)
        if article.lang and article.lang not in story.languages and len(story.languages) < o.max_outlets:
            story.languages.append(article.lang)

    def _answer(self, story: Story, status: str, similarity: float | None) -> dict:
        top = _most_counted(story.entities)[:self.options.top_entities]
        return {"id": story.id, "status": status, "similarity": similarity, "summary": {
            "title": story.title, "first_seen": _iso(story.first), "last_seen": _iso(story.last),
            "articles": story.articles, "outlets": list(story.outlets), "languages": list(story.languages),
            "top_entities": [name for name, _ in top]}}

    def _change(self, article: Article, story: Story, answer: dict, when: float | None, newest: float | None,
                old_index: list[int], count_doc: bool, terms: np.ndarray | None = None, query: list[int] | None = None,
                original: str = "") -> Change:
        o = self.options
        if when is not None:
            newest = when if newest is None else max(newest, when)
        new_index = set(story.indexed)
        return Change(
            article_id=article.id, answer=orjson.dumps(answer), story_id=story.id, story=story.encode(),
            last_seen=story.last, index_add=list(story.indexed),
            index_remove=[t for t in old_index if t not in new_index],
            df_terms=terms if count_doc and terms is not None else _NO_TERMS, newest=newest, posting_size=o.posting_size,
            expire_seconds=o.expire_days * 86400, answer_seconds=int(o.answer_days * 86400), query=query or [],
            original=original)


ANSWERED, DUPLICATE, NEW = "answered", "duplicate", "new"  # what an article of a batch is to the state
LOOKAHEAD = 16  # articles whose candidates are found per round trip (those of the next ones, ahead)


class _Batch:
    """``StoryAssigner.assign_many`` on a state that reads and commits for several articles at once
    (``RedisStoryState``), giving the answers ``assign`` gives one by one.

    A pass reads, at one version, every article's answer and its original's story, and brings the
    worker's counters to that version. Whether each article is answered already, a near duplicate or
    new does not depend on the decisions (only on the answers and stories found), so the counters,
    vectors and queries of all of them are computed first, each counting the new articles before it.
    Then the articles are decided in order, locally: each sees the answers and stories the earlier
    ones of the pass gave or changed. A new article's candidates are found by the state after the
    decisions before it are committed (one ``step``: commit, then the candidates of it and of the next
    ``LOOKAHEAD`` new articles); candidates found ahead stay right as long as no decision since
    changed the postings of the article's query terms (the only thing they depend on: a story changed
    is re-indexed under every term it is found by). The version read is checked by every commit, so
    the decisions form the one sequence ``assign`` would give, whatever other workers do; when it
    moved, or a commit deleted stories the later decisions read, or an article turns out other than
    foreseen, the batch goes on with a new pass from the first article not committed."""

    def __init__(self, assigner: StoryAssigner, articles: list[Article], features: list[Features]):
        self.assigner, self.state, self.options = assigner, assigner.state, assigner.options
        self.articles, self.features = articles, features
        self.whens = [_seconds(article.when) for article in articles]
        self.answers: list[dict | None] = [None] * len(articles)

    def run(self) -> list[dict]:
        done, tries = 0, 0
        while done < len(self.articles):
            before = done
            done = self._pass(done)
            if done > before:
                tries = 0
                continue
            self.assigner.retries += 1
            tries += 1
            if tries >= TRIES:
                raise TemporaryFailure(f"story of {self.articles[done].id}: the state kept changing under "
                                       f"{TRIES} tries")
        self.state.save_snapshot_if_due()
        return self.answers  # type: ignore[return-value]

    def _pass(self, start: int) -> int:
        """Decides and commits from ``start`` on; returns how far the answers are final."""
        state, assigner, o = self.state, self.assigner, self.options
        n = len(self.articles)
        rest = self.articles[start:]
        read = state.read_many([a.id for a in rest], [a.duplicate_of for a in rest])
        # foresee: what each article is, and for the new ones their counters, vector and query
        kinds: list[str] = []
        plan: dict[int, tuple[np.ndarray, int, Vector, list[int]]] = {}
        ahead: list[tuple[int, np.ndarray]] = []  # new articles counted ahead in the state's counters
        given: set[str] = set()  # articles given an answer in this pass
        docs = read.docs
        committed = start  # articles before this one have their answers final
        try:
            for j, article in enumerate(rest, start):
                i = j - start
                original = read.originals[i]
                if article.id in given or read.answers[i] is not None:
                    kinds.append(ANSWERED)
                    continue
                given.add(article.id)
                if article.duplicate_of and (article.duplicate_of in given or
                                             (original is not None and original[1] is not None)):
                    kinds.append(DUPLICATE)
                    continue
                kinds.append(NEW)
                features = self.features[j]
                df = state.df.of(features.terms)
                vec = assigner.vector(features, df, docs)
                plan[j] = (df, docs, vec, vec.heaviest(o.query_terms))
                if len(features.terms):
                    state.df.add(features.terms)
                    ahead.append((j, features.terms))
                    docs += 1
            # decide, in order
            version = read.version  # as decided locally (the state's: ``stepped``)
            stepped = read.version
            newest = read.newest
            answers: dict[str, dict] = {}  # article id -> its answer, given in this pass
            stories: dict[str, bytes] = {}  # story id -> the story, as changed in this pass
            gone: set[str] = set()  # stories deleted by this pass's commits
            touched: dict[int, int] = {}  # term id -> the last version that changed its posting
            found: dict[int, tuple[int, list[str]]] = {}  # article -> version its candidates were found at, ids
            bodies: dict[str, bytes | None] = {}  # stories read (unchanged since, unless in ``stories``)
            pending: list[tuple[int, dict, Change | None]] = []  # decided, not committed yet

            def fresh(j: int) -> bool:
                at = found.get(j)
                return at is not None and all(touched.get(t, 0) <= at[0] for t in plan[j][3])

            def step(window: list[int]) -> bool:
                """Commits ``pending``, then finds the candidates of ``window``; False when not all of
                it could be committed (the pass ends at ``committed``)."""
                nonlocal stepped, committed, pending
                changes = [change for _, _, change in pending if change is not None]
                if not changes and not window:
                    done = pending
                else:
                    result = state.step(stepped, changes, [plan[k][3] for k in window], o.candidates)
                    if result.applied < 0:
                        return False
                    stepped = result.version
                    for t in result.gone_terms:
                        touched[t] = stepped
                    gone.update(result.gone_ids)
                    applied, cut = 0, len(pending)
                    for at, (_, _, change) in enumerate(pending):
                        if change is not None:
                            if applied == result.applied:
                                cut = at
                                break
                            applied += 1
                    done = pending[:cut]
                    for k, ids in zip(window, result.candidates, strict=False):
                        found[k] = (stepped, ids)
                    if cut < len(pending):
                        self._finish(done)
                        committed = pending[cut][0]
                        state.counted_ahead(stepped)
                        pending = []
                        return False
                    missing = list(dict.fromkeys(s for k in window for s in found[k][1]
                                                 if s not in bodies and s not in stories))
                    bodies.update(zip(missing, state.stories(missing), strict=True))
                self._finish(done)
                if done:
                    committed = done[-1][0] + 1
                state.counted_ahead(stepped)
                pending = []
                return True

            j = start
            while j < n:
                article, features, when = self.articles[j], self.features[j], self.whens[j]
                i = j - start
                kind, body = NEW, None
                if article.id in answers or read.answers[i] is not None:
                    kind = ANSWERED
                elif article.duplicate_of:
                    sid = (answers[article.duplicate_of]["id"] if article.duplicate_of in answers else
                           read.originals[i][0] if read.originals[i] is not None else None)
                    if sid is not None and sid not in gone:
                        body = stories.get(sid)
                        if body is None and read.originals[i] is not None and read.originals[i][0] == sid:
                            body = read.originals[i][1]
                        if body is not None:
                            kind = DUPLICATE
                if kind != kinds[i]:  # foreseen otherwise: what comes after it was counted wrongly
                    step([])
                    committed = min(committed, j)
                    return committed
                if kind == ANSWERED:
                    answer = answers.get(article.id) or orjson.loads(read.answers[i])
                    pending.append((j, answer, None))
                    j += 1
                    continue
                if kind == DUPLICATE:
                    answer, change = assigner._join_original(article, features, when, body, version, newest)
                else:
                    if not fresh(j):
                        window = [j, *islice((k for k in range(j + 1, n) if kinds[k - start] == NEW and not fresh(k)),
                                             LOOKAHEAD - 1)]
                        if not step(window):
                            return committed
                    df, docs_then, vec, query = plan[j]
                    raws = [stories.get(s) or bodies.get(s) for s in found[j][1] if s not in gone]
                    answer, change = assigner._decide_new(article, features, when, df, docs_then, version, newest,
                                                          vec, query, [raw for raw in raws if raw is not None])
                version += 1
                answers[article.id] = answer
                stories[change.story_id] = change.story
                for t in chain(change.index_add, change.index_remove):
                    touched[t] = version
                newest = change.newest
                pending.append((j, answer, change))
                j += 1
            step([])
            return committed
        finally:  # the new articles not committed are not counted any more (the next pass reads the log)
            for j, terms in ahead:
                if j >= committed:
                    state.df.subtract(terms)

    def _finish(self, entries: list[tuple[int, dict, Change | None]]) -> None:
        for j, answer, _ in entries:
            self.answers[j] = answer
