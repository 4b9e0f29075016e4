"""Stories: articles about the same real-world event, grouped online as they arrive.

Every article gets one decision when it arrives, never revised (no batch re-clustering):

1. An article delivered again gets the answer it had (answers are kept ``answer_days``).
2. A near duplicate (``duplicate_of`` set by the dedup stage) joins its original's story at once.
3. Otherwise the article becomes a vector: word unigrams and bigrams of its title and text
   (sublinear term frequency, title words weighted ``title_weight`` more) and, in a block of
   their own weighted ``entity_weight``, its canonical entities (language-independent, so they
   link stories across languages; when the record has none, capitalised word sequences stand in
   for them). Terms are hashed into ``2**df_bits`` ids; the inverse document frequency of each
   comes from the stream itself (document frequencies kept in the shared state). It is compared
   by cosine with the centroid (sum of the members' vectors, cut to its ``max_terms`` heaviest
   terms) of a few candidate stories, found through an inverted index from each story's
   ``index_terms`` heaviest terms (the article's ``query_terms`` heaviest terms are looked up).
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
   mentions most) is not the story's, and by ``day_mismatch`` when every date it gives (published,
   or day/month in digits in its text) is more than ``day_window`` days from every date of the
   story. With ``join_model`` set, a logistic regression on a few features of each candidate
   (``JOIN_FEATURES``, weights from ``python -m training.stories``) decides instead.

The decision is made here, in Python, on what the state held at one version; the state commits it
only if nothing was committed since (else everything is read again and decided again), so the
answers are those of one sequence, whatever worker decides which article.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from itertools import repeat
from operator import mul
from pathlib import Path

import orjson
import xxhash

from pipeline.stages.stories.state import Change, StoryState

WORD = re.compile(r"\w+")
#: a capitalised word (Latin letters) and the capitalised words right after it
CAPITALISED = re.compile(r"\b[A-ZÀ-ÖØ-Þ][\w'’.-]*(?:[ \t]+[A-ZÀ-ÖØ-Þ][\w'’.-]*)*")
YEAR = re.compile(r"(?<!\d)(?:19[5-9]\d|20\d\d)(?!\d)")  # a year an article mentions: 1950-2099
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
TERM_CACHE = 1 << 17  # terms whose hashed id is remembered (two generations of this many)


@dataclass(frozen=True)
class StoryOptions:
    """How articles are compared and how long stories and answers live."""

    threshold: float = 0.21  # cosine similarity to the centroid needed to join a story of one article (see size_exponent)
    title_weight: float = 2.5  # added to a term's (sublinear) frequency when it is in the title
    entity_weight: float = 0.5  # share of the vector's squared norm given to the entity block
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
    candidates: int = 16  # stories compared per article (those sharing the most query terms)
    df_bits: int = 22  # terms are hashed into 2**df_bits ids (document frequencies: 4 bytes each)
    max_entities: int = 32  # entity counts kept per story
    top_entities: int = 5  # entities shown in the summary
    max_outlets: int = 32  # outlets and languages kept per story
    year_mismatch: float = 0.7  # similarity factor when the article's main year is not the story's (1: off)
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
    size_exponent: float = 0.2  # a story of n articles is joined from threshold * n ** -size_exponent (0: flat)

    def __post_init__(self) -> None:
        if self.expire_days < self.quiet_days:
            raise ValueError("expire_days must be at least quiet_days (a story is closed before it expires)")
        if not 0.0 <= self.entity_weight <= 1.0:
            raise ValueError("entity_weight is a share of the vector: between 0 and 1")


@dataclass(frozen=True)
class Article:
    """What the stories stage reads of a record. ``when``: published (aware, or UTC; None: unknown);
    ``entities``: canonical entity names; ``duplicate_of``: the dedup stage's original."""

    id: str
    title: str
    text: str
    entities: tuple[str, ...] = ()
    lang: str | None = None
    outlet: str | None = None
    when: datetime | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Features:
    """An article's terms before weighting by idf: term id -> sublinear frequency in the text, the
    terms of the title, entity term id -> sublinear frequency, the entity names it mentions (for
    the story's summary), and the year it mentions most (ties: the latest; None: none)."""

    words: dict[int, float]
    title: frozenset[int]
    entities: dict[int, float]
    names: tuple[str, ...]
    year: int | None = None
    keys: dict[str, int] = field(default_factory=dict)  # entity name as compared (folded) -> term id
    days: tuple[int, ...] = ()  # days of the year the article is dated or mentions


@dataclass
class Story:
    """A story as stored: its centroid (term ids and weights), the terms it is indexed under, and
    its running summary. ``seq``: the state version that last changed it."""

    id: str
    seq: int
    articles: int
    first: float | None  # Unix seconds of its first and last article (None: no dates)
    last: float | None
    title: str
    title_similarity: float  # similarity of the article whose title represents the story
    centroid: dict[int, float]
    indexed: list[int]
    entities: dict[str, int] = field(default_factory=dict)
    outlets: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    years: dict[str, int] = field(default_factory=dict)  # main year of its members -> members
    days: dict[str, int] = field(default_factory=dict)  # day of the year its members mention -> members

    def encode(self) -> bytes:
        return orjson.dumps({
            "id": self.id, "seq": self.seq, "n": self.articles, "first": self.first, "last": self.last,
            "title": self.title, "ts": self.title_similarity, "ct": list(self.centroid),
            "cw": list(self.centroid.values()), "p": self.indexed, "e": self.entities, "o": self.outlets,
            "l": self.languages, "y": self.years, "d": self.days})

    @classmethod
    def decode(cls, raw: bytes) -> Story:
        d = orjson.loads(raw)
        return cls(id=d["id"], seq=d["seq"], articles=d["n"], first=d["first"], last=d["last"], title=d["title"],
                   title_similarity=d["ts"], centroid=_centroid(d["ct"], d["cw"]), indexed=d["p"],
                   entities=d["e"] or {}, outlets=d["o"] or [], languages=d["l"] or [], years=d["y"] or {},
                   days=d.get("d") or {})

    def norm(self) -> float:
        return math.sqrt(sum(w * w for w in self.centroid.values()))

    def year(self) -> int | None:
        """The main year its members mention most often (ties: the latest)."""
        return int(max(self.years, key=lambda y: (self.years[y], int(y)))) if self.years else None


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


class _Sublinear(dict):
    """Count -> 1 + ln(count), remembered."""

    def __missing__(self, count: int) -> float:
        value = self[count] = 1.0 + math.log(count)
        return value


_SUBLINEAR = _Sublinear()


class _Idf(dict):
    """Document frequency -> idf term weight ``ln(top / (df + 2)) + offset``, remembered (one article)."""

    def __init__(self, top: float, offset: float):
        super().__init__()
        self.top, self.offset = top, offset

    def __missing__(self, df: int) -> float:
        value = self[df] = math.log(self.top / (df + 2)) + self.offset
        return value


def _centroid(terms: list[int], weights: list[float]) -> dict[int, float]:
    if len(terms) != len(weights):
        raise ValueError(f"a story's centroid has {len(terms)} terms and {len(weights)} weights")
    return dict(zip(terms, weights))  # noqa: B905 (lengths checked: zip's strict costs a third more)


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
    for m in NUMERIC_DATE.finditer(text):
        a, b = int(m.group(1)), int(m.group(2))
        days.append(_day_of_year(a, b) if b <= 12 else _day_of_year(b, a))
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


def _heaviest(weights: dict[int, float], k: int) -> list[int]:
    """The ``k`` heaviest term ids, heaviest first (ties: the smaller id)."""
    if k <= 0:
        return []
    n = len(weights)
    if 2 * k < n:  # only terms at least as heavy as the k-th heaviest weight can be among them
        cut = heapq.nlargest(k, weights.values())[-1] if 8 * k < n else sorted(weights.values(), reverse=True)[k - 1]
        items = [tw for tw in weights.items() if tw[1] >= cut]
    else:
        items = list(weights.items())
    items.sort(key=lambda tw: (-tw[1], tw[0]))
    return [t for t, _ in items[:k]]


class StoryAssigner:
    """Gives each article its story (see the module's docstring), on one shared ``StoryState``."""

    def __init__(self, options: StoryOptions, state: StoryState):
        self.options = options
        self.state = state
        self._mask = (1 << options.df_bits) - 1
        self._ids = _TermIds(self._mask)
        self.retries = 0  # decisions made again because another worker committed first

    # --- features ---------------------------------------------------------------------------

    def _term(self, term: str) -> int:
        return self._ids[term]

    def _counts(self, text: str) -> Counter[int]:
        words = WORD.findall(text.lower())
        ids = self._ids.__getitem__
        terms = Counter(map(ids, words))
        if self.options.bigrams:  # "a b"
            terms.update(map(ids, map(" ".join, zip(words, words[1:], strict=False))))
        return terms

    def features(self, article: Article) -> Features:
        """The article's words and entities, weighted by frequency (not yet by idf)."""
        counts = self._counts(article.text)
        words = dict(zip(counts, map(_SUBLINEAR.__getitem__, counts.values()), strict=True))  # 1 + ln(count)
        title = frozenset(self._counts(article.title))
        text = f"{article.title}\n{article.text}"
        names = article.entities or tuple(capitalised_phrases(text))
        folded = [_fold(n) for n in names]
        keys = {f: self._term(ENTITY_PREFIX + f) for f in folded}
        counted = Counter(map(keys.__getitem__, folded))
        entities = dict(zip(counted, map(_SUBLINEAR.__getitem__, counted.values()), strict=True))
        if article.when is not None:  # dated: the year it appeared (years it mentions are often the past's)
            year = article.when.year
        else:
            years = Counter(int(y) for y in YEAR.findall(text))
            year = max(years, key=lambda y: (years[y], y)) if years else None
        days = set(mentioned_days(text, self.options.month_names))
        if article.when is not None:
            days.add(_day_of_year(article.when.day, article.when.month) or 1)
        return Features(words, title, entities, tuple(dict.fromkeys(names)), year, keys, tuple(sorted(days)))

    def vector(self, features: Features, df: dict[int, int], docs: int) -> dict[int, float]:
        """Unit vector of the article: the word block and the entity block, each weighted by idf
        (the article itself counted) and normalised, then scaled to their shares."""
        idf = _Idf(docs + 2 + self.options.idf_prior, self.options.idf_offset).__getitem__

        def block(terms: dict[int, float]) -> tuple[dict[int, float], float]:
            """The terms weighted by idf (only those above 0) and their norm (0: none)."""
            weighted = dict(zip(terms, map(mul, terms.values(), map(idf, map(df.get, terms, repeat(0)))),
                                strict=True))
            if weighted and min(weighted.values()) <= 0:
                weighted = {t: w for t, w in weighted.items() if w > 0}
            values = weighted.values()
            return weighted, math.sqrt(sum(map(mul, values, values)))

        words = dict(features.words)
        for t in features.title:
            words[t] = words.get(t, 0.0) + self.options.title_weight
        (words, words_norm), (entities, entities_norm) = block(words), block(features.entities)
        share = self.options.entity_weight if entities_norm and words_norm else (1.0 if entities_norm else 0.0)
        scale = math.sqrt(1.0 - share)  # each block normalised, then scaled to its share
        vec = {t: w / words_norm * scale for t, w in words.items()} if words_norm else {}
        if entities_norm:
            scale = math.sqrt(share)
            for t, w in entities.items():
                vec[t] = vec.get(t, 0.0) + w / entities_norm * scale
        return vec

    # --- decisions --------------------------------------------------------------------------

    def similarity(self, vec: dict[int, float], story: Story, when: float | None, year: int | None = None,
                   days: tuple[int, ...] = ()) -> float | None:
        """Cosine of the article with the story's centroid, decayed by time; None if the story is
        closed for this article (quiet for ``quiet_days`` before it, or starting that long after)."""
        o = self.options
        gap = 0.0
        if when is not None and story.last is not None and story.first is not None:
            gap = max(when - story.last, story.first - when, 0.0)
            if gap > o.quiet_days * 86400:
                return None
        norm = story.norm()
        if not norm:
            return 0.0
        centroid = story.centroid
        if len(centroid) < len(vec):  # walk the smaller of the two (a centroid keeps 200 terms, an article ~800)
            sim = sum(w * vec[t] for t, w in centroid.items() if t in vec) / norm
        else:
            sim = sum(w * centroid[t] for t, w in vec.items() if t in centroid) / norm
        if o.half_life_days and gap:
            sim *= 0.5 ** (gap / (o.half_life_days * 86400))
        story_year = story.year()
        if year is not None and story_year is not None and year != story_year:
            sim *= o.year_mismatch
        if o.day_mismatch != 1.0 and days:
            gap = day_gap(days, story.days)
            if gap is not None and gap > o.day_window:
                sim *= o.day_mismatch
        return sim

    def idf(self, df: int, docs: int) -> float:
        return math.log((docs + 2 + self.options.idf_prior) / (df + 2)) + self.options.idf_offset

    def join_features(self, features: Features, df: dict[int, int], docs: int,
                      scored: list[tuple[Story, float]]) -> list[list[float]]:
        """``JOIN_FEATURES`` of the article with each (open) candidate story and its cosine."""
        if not scored:
            return []
        idf = {t: max(self.idf(df.get(t, 0), docs), 0.0) for t in features.keys.values()}
        entity_mass = sum(idf.values())
        title_idf = {t: max(self.idf(df.get(t, 0), docs), 0.0) for t in features.title}
        title_mass = sum(title_idf.values())
        top = max(sim for _, sim in scored)
        rows = []
        for story, sim in scored:
            folded = {_fold(n): c for n, c in story.entities.items()}
            shared = [k for k in features.keys if k in folded]
            entity_share = sum(idf[features.keys[k]] for k in shared) / entity_mass if entity_mass else 0.0
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

    def entity_words(self, features: Features) -> Features:
        """``features`` with the entity block made of the words of its entity names: each word weighs
        ``1 + ln(mentions of the names holding it)``, so that names sharing a word ("Tara Reid", "Reid")
        share a term. A name's mentions are read back from its term's weight ``1 + ln(mentions)``."""
        counted: Counter[int] = Counter()
        for name, term in features.keys.items():
            mentions = round(math.exp(features.entities.get(term, 1.0) - 1.0))
            for word in WORD.findall(name):
                counted[self._term(ENTITY_PREFIX + word)] += mentions
        return dataclasses.replace(features, entities={t: 1.0 + math.log(c) for t, c in counted.items()})

    @property
    def join_model(self) -> JoinModel | None:
        return load_join_model(self.options.join_model) if self.options.join_model else None

    def decide(self, article: Article, features: Features, df: dict[int, int], docs: int,
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
        if self.options.entity_tokens and not article.entities:  # the stand-in's names: unresolved
            features = self.entity_words(features)
        terms = sorted(set(features.words) | features.title | set(features.entities))
        when = _seconds(article.when)
        for _ in range(TRIES):
            view = self.state.begin(article.id, terms, article.duplicate_of)
            if view.answer is not None:
                return view.answer
            if view.original is not None:  # a near duplicate: its original's story, at once
                story = Story.decode(view.original)
                self._add(story, article, features, when, None, view.version)
                answer = self._answer(story, "joined", None)
                change = self._change(article, story, answer, when, view.newest, [], count_doc=False)
            else:
                vec = self.vector(features, view.df, view.docs)
                query = _heaviest(vec, self.options.query_terms)
                version, found = self.state.candidates(query, self.options.candidates)
                if version != view.version:
                    self.retries += 1
                    continue
                model = self.join_model
                scored = []
                for raw in found:
                    story = Story.decode(raw)
                    sim = (self.similarity(vec, story, when) if model else
                           self.similarity(vec, story, when, features.year, features.days))
                    if sim is not None:
                        scored.append((story, sim))
                best, best_sim = self.decide(article, features, view.df, view.docs, scored)
                if best is not None:
                    story, status = best, "joined"
                    old_index = list(best.indexed)
                    self._add(story, article, features, when, vec, view.version, best_sim)
                else:
                    story = Story(id=article.id, seq=0, articles=0, first=when, last=when, title=article.title,
                                  title_similarity=0.0, centroid={}, indexed=[])
                    status, old_index = "started", []
                    self._add(story, article, features, when, vec, view.version)
                answer = self._answer(story, status, None if best_sim is None else round(best_sim, 4))
                change = self._change(article, story, answer, when, view.newest, old_index, count_doc=True,
                                      terms=terms)
            if self.state.commit(view.version, change):
                return answer
            self.retries += 1
        raise RuntimeError(f"story of {article.id}: the state kept changing under {TRIES} tries")

    def _add(self, story: Story, article: Article, features: Features, when: float | None,
             vec: dict[int, float] | None, version: int, similarity: float | None = None) -> None:
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
            centroid = story.centroid
            for t, w in vec.items():
                centroid[t] = centroid.get(t, 0.0) + w
            if len(centroid) > o.max_terms:
                story.centroid = {t: centroid[t] for t in _heaviest(centroid, o.max_terms)}
            story.indexed = _heaviest(story.centroid, o.index_terms)
        for name in features.names:
            story.entities[name] = story.entities.get(name, 0) + 1
        for day in features.days:
            story.days[str(day)] = story.days.get(str(day), 0) + 1
        if len(story.days) > o.max_days:
            story.days = dict(sorted(story.days.items(), key=lambda dc: (-dc[1], int(dc[0])))[:o.max_days])
        if features.year is not None:
            story.years[str(features.year)] = story.years.get(str(features.year), 0) + 1
            if len(story.years) > o.max_entities:
                story.years = dict(sorted(story.years.items(), key=lambda yc: (-yc[1], yc[0]))[:o.max_entities])
        if len(story.entities) > o.max_entities:
            kept = sorted(story.entities.items(), key=lambda nc: (-nc[1], nc[0]))[:o.max_entities]
            story.entities = dict(kept)
        if article.outlet and article.outlet not in story.outlets and len(story.outlets) < o.max_outlets:
            story.outlets.append(article.outlet)
        if article.lang and article.lang not in story.languages and len(story.languages) < o.max_outlets:
            story.languages.append(article.lang)

    def _answer(self, story: Story, status: str, similarity: float | None) -> dict:
        top = sorted(story.entities.items(), key=lambda nc: (-nc[1], nc[0]))[:self.options.top_entities]
        return {"id": story.id, "status": status, "similarity": similarity, "summary": {
            "title": story.title, "first_seen": _iso(story.first), "last_seen": _iso(story.last),
            "articles": story.articles, "outlets": list(story.outlets), "languages": list(story.languages),
            "top_entities": [name for name, _ in top]}}

    def _change(self, article: Article, story: Story, answer: dict, when: float | None, newest: float | None,
                old_index: list[int], count_doc: bool, terms: list[int] | None = None) -> Change:
        o = self.options
        if when is not None:
            newest = when if newest is None else max(newest, when)
        new_index = set(story.indexed)
        return Change(
            article_id=article.id, answer=orjson.dumps(answer), story_id=story.id, story=story.encode(),
            last_seen=story.last, index_add=list(story.indexed),
            index_remove=[t for t in old_index if t not in new_index],
            df_terms=(terms or []) if count_doc else [], newest=newest, posting_size=o.posting_size,
            expire_seconds=o.expire_days * 86400, answer_seconds=int(o.answer_days * 86400))
