"""A small learned classifier for the lines of a rendered-text page: article or not.

Input: the page split into lines, with the blank lines that set blocks apart (a browser's
innerText puts a blank line around paragraphs and headings, none between menu entries or list
items). Every non-blank line gets features from itself, from its block, from its neighbours and
from the page; two models run one after the other:

Each pass is a small neural network (one hidden layer of ReLU units; the average of five trained
from different seeds, stored as one wider network) on standardised features:

* pass 1 sees the line's own and neighbourhood features;
* pass 2 sees the same plus pass 1's probabilities around the line (windows of 1, 3 and 10 lines)
  and whether the line lies inside the best-scoring contiguous run of pass-1 evidence (Kadane),
  so isolated paragraph-looking lines in a related-articles list fall, and subheads between
  article paragraphs stay.

The model is a JSON file of feature names, standardisation and weights (~170 KB), trained by
``python -m training.clean`` (see there for the data recipe). Prediction is a
handful of numpy operations per page.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.stages.clean.boilerplate import is_boilerplate_lowered, is_credit_or_pager

MODEL_PATH = Path(__file__).with_name("line_model.json")

_SENTENCE_END = frozenset(".!?…。！？")
_CLOSERS = "\"'”’»)]›"
_OPENERS = "\"'“‘«([‹¿¡"
_BULLET_START = frozenset("-–—•·*›»▪►■●0123456789")
_BULLET = re.compile(r"^(?:[-–—•·*›»▪►■●]\s|\d{1,2}[.)]\s)")
_WORD = re.compile(r"\w+")
_NUMERIC_DATE = re.compile(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|(?:19|20)\d{2}-\d{2}-\d{2}|\b\d{1,2}:\d{2}\b")
_DIGIT = re.compile(r"[0-9]")
_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
_NAMED_DATE = re.compile(
    r"\b\d{1,2}\.?\s+(?:jan|feb|mar|apr|mei|may|jun|jul|agu|aug|sep|okt|oct|nov|des|dec|dez|mär|mai)\w*\.?\s+"
    r"(?:19|20)\d{2}\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w*\.?\s+\d{1,2},?\s+(?:19|20)\d{2}\b")
_AGO = re.compile(r"\b\d+\s+(?:minutes?|hours?|days?|menit|jam|hari|stunden?|minuten?|tagen?)\s+(?:ago|lalu|yang lalu)\b")


def _dateish(lowered: str) -> bool:
    """A date, a time or "3 hours ago" in the (lowercased) line."""
    if not _DIGIT.search(lowered):
        return False
    return bool(_NUMERIC_DATE.search(lowered) or (_YEAR.search(lowered) and _NAMED_DATE.search(lowered))
                or (("ago" in lowered or "lalu" in lowered) and _AGO.search(lowered)))
_LINKISH = re.compile(r"https?://|www\.|@\w|\S+@\S+\.\w")
# a word running into a capitalised word without a space ("...Student-AthleteA 24-year-old ...",
# "On The Rise?Violence is ..."): a teaser whose headline and summary were rendered as one line
_GLUE = re.compile(r"(?<=\w)([?!.:\"”’')]?)[A-Z](?:[a-z]|\s(?=\w))")


def _capitalised(word: str) -> bool:
    c = word[0]
    return c.isupper() or c.isdigit() or (c in _OPENERS and word.lstrip(_OPENERS)[:1].isupper())


def teaser_glue(t: str) -> bool:
    """A headline glued to its summary: a word of >= 4 letters (or a number) running into a
    capitalised word, after a title-cased start of 3-25 words (brand names such as "LinkedIn" also
    match; the model weighs the feature with the others)."""
    if len(t) < 20:
        return False
    # cheap test first: a headline is title-cased, so its second or third word is capitalised too
    head = t.split(None, 3)
    if len(head) < 4 or not (_capitalised(head[1]) or _capitalised(head[2])):
        return False
    for m in _GLUE.finditer(t, 0, 240):  # the headline part: 25 words at most
        at = m.start()
        left = t[t.rfind(" ", 0, at) + 1:at]
        if not m.group(1) and not (left[-1].islower() or left[-1].isdigit()):
            continue
        if len(left) < 4 and not left[-1].isdigit():
            continue
        prefix = t[:at].split()
        if not 3 <= len(prefix) <= 25:
            continue
        if sum(1 for w in prefix if w[:1].isupper() or w[:1].isdigit()) >= 0.6 * len(prefix):
            return True
    return False
    for m in _GLUE.finditer(t):
        left = m.group(1)
        if not m.group(2) and not (left[-1].islower() or left[-1].isdigit()):
            continue
        prefix = t[:m.start(3)].split()
        if not 3 <= len(prefix) <= 25:
            continue
        if sum(1 for w in prefix if w[:1].isupper() or w[:1].isdigit()) >= 0.6 * len(prefix):
            return True
    return False

# jusText's stop-word lists of the languages the pipeline meets (its strongest signal: running
# text is full of function words, menus and link lists are not)
STOPLIST_LANGUAGES = (
    "English", "German", "French", "Spanish", "Portuguese", "Italian", "Dutch", "Polish", "Indonesian",
    "Malay", "Czech", "Swedish", "Danish", "Norwegian_Bokmal", "Finnish", "Hungarian", "Romanian",
    "Turkish", "Russian", "Tagalog", "Vietnamese", "Croatian", "Slovak", "Catalan",
)
_STOPWORDS: frozenset[str] | None = None


def stopwords() -> frozenset[str]:
    global _STOPWORDS
    if _STOPWORDS is None:
        import justext

        words: set[str] = set()
        for name in STOPLIST_LANGUAGES:
            words.update(justext.get_stoplist(name))
        _STOPWORDS = frozenset(words)
    return _STOPWORDS


@dataclass
class PageLines:
    """The non-blank lines of a page, with the blank-line structure around them."""

    texts: list[str]
    blank_before: list[bool]
    blank_after: list[bool]
    word_counts: list[int] | None = None  # set by base_features
    boilerplate: list[bool] | None = None  # set by base_features (boilerplate.is_boilerplate per line)
    furniture: list[bool] | None = None  # set by base_features: boilerplate, photo credit or pager
    teasers: list[bool] | None = None  # set by base_features: headline glued to its summary (teaser_glue)

    @classmethod
    def split(cls, raw: str) -> PageLines:
        texts: list[str] = []
        blank_before: list[bool] = []
        blank = True
        for line in raw.splitlines():
            line = line.strip()
            if "  " in line or "\t" in line or "\xa0" in line:
                line = " ".join(line.split())
            if not line:
                blank = True
                continue
            texts.append(line)
            blank_before.append(blank)
            blank = False
        blank_after = blank_before[1:] + [True]
        return cls(texts, blank_before, blank_after)


BASE_FEATURES = [
    "log_words", "log_chars", "closes", "ends_colon", "bullet", "boilerplate", "dateish", "separators",
    "linkish", "copyright", "repeated", "digit_share", "upper_share", "upper_per_word", "punct_per_word",
    "blank_before", "blank_after", "position", "paragraph", "words_1", "words_2_3", "words_4_6",
    "words_7_12", "words_13_25", "words_26_up",
    "prev_log_words", "next_log_words", "prev_closes", "next_closes", "prev_paragraph", "next_paragraph",
    "para_share_2", "para_share_5", "para_share_15", "log_words_3", "short_run", "block_lines",
    "block_words", "before_first_para", "after_last_para", "page_para_share", "page_log_lines",
    "stop_share", "log_stops", "sentences", "rel_words", "stop_share_2", "block_para_share",
    "teaser_glue", "prev_dateish", "next_dateish",
]
STACK_FEATURES = ["p_prev", "p_next", "p_win_1", "p_win_3", "p_win_10", "in_best_run", "run_edge_dist"]


def _window_mean(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean over [i - radius, i + radius], clipped at the page edges."""
    n = len(values)
    csum = np.concatenate(([0.0], np.cumsum(values)))
    idx = np.arange(n)
    lo = np.maximum(idx - radius, 0)
    hi = np.minimum(idx + radius + 1, n)
    return (csum[hi] - csum[lo]) / (hi - lo)


def _shift(values: np.ndarray, by: int, fill: float) -> np.ndarray:
    out = np.full_like(values, fill)
    if by > 0:
        out[by:] = values[:-by]
    elif by < 0:
        out[:by] = values[-by:]
    else:
        out[:] = values
    return out


def _run_lengths(flags: np.ndarray) -> np.ndarray:
    """For each position, the length of the run of consecutive True flags it belongs to (0 if False)."""
    values = flags.tolist()
    n = len(values)
    out = [0] * n
    i = 0
    while i < n:
        if not values[i]:
            i += 1
            continue
        j = i + 1
        while j < n and values[j]:
            j += 1
        out[i:j] = [j - i] * (j - i)
        i = j
    return np.array(out, dtype=np.float64)


def _char_counts(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-case letters, letters and digits per line, for all lines at once (code points in
    numpy; letters outside Latin-1 are counted as letters, which is what the features need)."""
    joined = "\n".join(texts)
    cp = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    upper = ((cp >= 65) & (cp <= 90)) | ((cp >= 0xC0) & (cp <= 0xDE) & (cp != 0xD7))
    letters = upper | ((cp >= 97) & (cp <= 122)) | ((cp >= 0xDF) & (cp != 0xF7) & ((cp < 0x2000) | (cp > 0x2BFF)))
    digits = (cp >= 48) & (cp <= 57)
    starts = np.zeros(len(texts), dtype=np.int64)
    if len(texts) > 1:
        starts[1:] = np.cumsum([len(t) + 1 for t in texts[:-1]])
    return (np.add.reduceat(upper, starts), np.add.reduceat(letters, starts), np.add.reduceat(digits, starts))


LINE_CACHE_SIZE = 200_000  # lines; a stream meets the same menus and footers on every page of a site
_LINE_CACHE: dict[str, tuple[tuple, str, bool]] = {}


def clear_line_cache() -> None:
    _LINE_CACHE.clear()


def _is_stop():
    global _IS_STOP
    if _IS_STOP is None:
        _IS_STOP = stopwords().__contains__
    return _IS_STOP


_IS_STOP = None


def _line_features(t: str) -> tuple[tuple, str, bool]:
    """The features of one line that depend on nothing else (memoised by ``base_features``), the
    lowercased line (the key for repeats within a page) and whether it is a photo credit or pager."""
    low = t.lower()
    words = _WORD.findall(low)
    nw = len(words)
    nc = len(t)
    nstop = sum(map(_is_stop(), words))
    last = t.rstrip(_CLOSERS)[-1:] or t[-1]
    closes = last in _SENTENCE_END
    sentences = t.count(". ") + t.count("? ") + t.count("! ") + closes
    punct = (t.count(",") + t.count(".") + t.count(";")) / (nw or 1)
    return (
        math.log1p(nw), math.log1p(nc), closes, t.endswith(":"), t[0] in _BULLET_START and bool(_BULLET.match(t)),
        is_boilerplate_lowered(low, words) if nw <= 60 else False,
        nc < 200 and _dateish(low),
        ("|" in t) or ("\t" in t) or (" • " in t),
        ("@" in t or "http" in t or "www." in t) and bool(_LINKISH.search(t)), "©" in t,
        min(punct, 2.0), nw >= 10 and closes, nw, nstop / nw if nw else 0.0, math.log1p(nstop),
        math.log1p(sentences), nw >= 6 and teaser_glue(t),
    ), low, nw <= 15 and is_credit_or_pager(t)


def base_features(page: PageLines) -> np.ndarray:
    """Matrix (lines x BASE_FEATURES)."""
    texts = page.texts
    n = len(texts)
    cache = _LINE_CACHE
    if len(cache) > LINE_CACHE_SIZE:
        cache.clear()
    counts: dict[str, int] = {}
    rows = []
    keys = []
    credits = []
    for t in texts:
        hit = cache.get(t)
        if hit is None:
            hit = cache[t] = _line_features(t)
        rows.append(hit[0])
        keys.append(hit[1])
        credits.append(hit[2])
        counts[hit[1]] = counts.get(hit[1], 0) + 1
    line = np.array(rows, dtype=np.float64).reshape(n, 17)
    repeated = np.array([counts[k] > 1 for k in keys], dtype=np.float64)
    upper, letters, digits = _char_counts(texts)
    nw = line[:, 12]
    nc = np.exp(line[:, 1]) - 1.0
    raw = np.column_stack([
        line[:, :10], repeated, digits / nc, upper / np.maximum(letters, 1), np.where(nw > 0, np.minimum(upper / np.maximum(nw, 1), 1.0), 0.0),
        line[:, 10], line[:, 11], nw, line[:, 13], line[:, 14], line[:, 15],
    ])
    page.word_counts = nw.astype(int).tolist()
    page.boilerplate = (line[:, 5] > 0).tolist()
    page.furniture = [b or c for b, c in zip(page.boilerplate, credits, strict=True)]
    page.teasers = (line[:, 16] > 0).tolist()
    log_words = raw[:, 0]
    nw = raw[:, 16]
    closes = raw[:, 2]
    paragraph = raw[:, 15]
    blank_before = np.array(page.blank_before, dtype=np.float64)
    blank_after = np.array(page.blank_after, dtype=np.float64)
    position = np.arange(n) / max(n - 1, 1)
    bins = np.stack([nw <= 1, (nw >= 2) & (nw <= 3), (nw >= 4) & (nw <= 6), (nw >= 7) & (nw <= 12),
                     (nw >= 13) & (nw <= 25), nw >= 26], axis=1).astype(np.float64)
    short = nw <= 6
    short_run = np.log1p(_run_lengths(short))
    # blocks: runs of lines between blank lines
    block_id = np.cumsum(blank_before) - 1
    block_lines = np.bincount(block_id.astype(int))[block_id.astype(int)]
    block_words = np.bincount(block_id.astype(int), weights=nw)[block_id.astype(int)]
    para_idx = np.flatnonzero(paragraph)
    first = para_idx[0] if len(para_idx) else n
    last = para_idx[-1] if len(para_idx) else -1
    idx = np.arange(n)
    before_first = np.clip((first - idx) / 20.0, 0, 3)
    after_last = np.clip((idx - last) / 20.0, 0, 3)
    page_para = np.full(n, paragraph.mean() if n else 0.0)
    page_lines = np.full(n, math.log1p(n))
    return np.column_stack([
        raw[:, :15], blank_before, blank_after, position, paragraph, bins,
        _shift(log_words, 1, 0.0), _shift(log_words, -1, 0.0), _shift(closes, 1, 0.0), _shift(closes, -1, 0.0),
        _shift(paragraph, 1, 0.0), _shift(paragraph, -1, 0.0),
        _window_mean(paragraph, 2), _window_mean(paragraph, 5), _window_mean(paragraph, 15),
        _window_mean(log_words, 3), short_run, np.log1p(block_lines), np.log1p(block_words),
        before_first, after_last, page_para, page_lines,
        raw[:, 17], raw[:, 18], raw[:, 19], nw / max(nw.max(), 1.0), _window_mean(raw[:, 17], 2),
        (np.bincount(block_id.astype(int), weights=paragraph) / np.bincount(block_id.astype(int)))[block_id.astype(int)],
        line[:, 16], _shift(line[:, 6], 1, 0.0), _shift(line[:, 6], -1, 0.0),
    ])


def best_run(scores: np.ndarray) -> tuple[int, int]:
    """[start, end) of the contiguous run with the highest sum (Kadane); (0, 0) if all negative."""
    best, span = 0.0, (0, 0)
    run, start = 0.0, 0
    for i, s in enumerate(scores.tolist()):
        if run <= 0:
            run, start = 0.0, i
        run += s
        if run > best:
            best, span = run, (start, i + 1)
    return span


def stack_features(p1: np.ndarray) -> np.ndarray:
    n = len(p1)
    start, end = best_run(p1 - 0.5)
    idx = np.arange(n)
    inside = ((idx >= start) & (idx < end)).astype(np.float64)
    edge = np.where(inside > 0, 0.0, np.minimum(np.abs(idx - start), np.abs(idx - (end - 1))))
    return np.column_stack([
        _shift(p1, 1, 0.0), _shift(p1, -1, 0.0), _window_mean(p1, 1), _window_mean(p1, 3), _window_mean(p1, 10),
        inside, np.minimum(np.log1p(edge), 4.0),
    ])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(np.minimum(np.maximum(-z, -30.0), 30.0)))


@dataclass
class Perceptron:
    """A one-hidden-layer network on standardised features:
    p = sigmoid(relu(((x - mean) / scale) @ w1 + b1) @ w2 + b2)."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float

    def __post_init__(self) -> None:
        # the standardisation folded into the first layer, in float32 (what predict runs): the
        # same function, one pass over the features fewer, half the memory traffic
        self._w1 = (self.w1 / self.scale[:, None]).astype(np.float32)
        self._b1 = (self.b1 - (self.mean / self.scale) @ self.w1).astype(np.float32)
        self._w2 = self.w2.astype(np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        hidden = x.astype(np.float32) @ self._w1
        hidden += self._b1
        np.maximum(hidden, 0.0, out=hidden)
        return _sigmoid((hidden @ self._w2).astype(np.float64) + self.b2)

    def to_json(self) -> dict:
        def r(a: np.ndarray) -> list:
            return np.round(a, 6).tolist()

        return {"kind": "mlp", "mean": r(self.mean), "scale": r(self.scale), "w1": r(self.w1), "b1": r(self.b1),
                "w2": r(self.w2), "b2": round(self.b2, 6)}

    @classmethod
    def from_json(cls, data: dict) -> Perceptron:
        return cls(np.array(data["mean"]), np.array(data["scale"]), np.array(data["w1"]), np.array(data["b1"]),
                   np.array(data["w2"]), float(data["b2"]))


@dataclass
class LineClassifier:
    first: Perceptron
    second: Perceptron
    threshold: float = 0.5
    meta: dict | None = None

    def probabilities(self, page: PageLines) -> np.ndarray:
        if not page.texts:
            return np.zeros(0)
        x = base_features(page)
        p1 = self.first.predict(x)
        return self.second.predict(np.column_stack([x, stack_features(p1)]))

    def save(self, path: Path) -> None:
        data = {"format": "news-pipeline/line-classifier/1", "base_features": BASE_FEATURES,
                "stack_features": STACK_FEATURES, "threshold": self.threshold,
                "first": self.first.to_json(), "second": self.second.to_json(), "meta": self.meta or {}}
        path.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> LineClassifier:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("base_features") != BASE_FEATURES or data.get("stack_features") != STACK_FEATURES:
            raise ValueError(f"{path}: the model's features differ from this code's; retrain it "
                             "(python -m training.clean)")
        return cls(Perceptron.from_json(data["first"]), Perceptron.from_json(data["second"]),
                   float(data["threshold"]), data.get("meta"))
