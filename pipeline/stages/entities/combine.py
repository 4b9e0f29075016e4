"""The layer around any tagger: gazetteer and rules first, the tagger's spans where they add to them,
headline lines checked, one label per name in a document, and names repeated where they recur.

Order of trust, for overlapping spans:
1. institutions of a country ("Kemlu Rusia") and gazetteer names (countries, cities, regions, known
   organisations): a country is a LOC whatever the tagger thought ("Azerbaijan" as PER or ORG is fixed);
2. the tagger's span, where it does not cut through one of those. A tagger span that holds a gazetteer
   name inside (ORG "Universitas Indonesia", LOC "Gedung DPR", PER "Badrodin Haiti") stays whole if
   its other words are plain words, except a person span that starts with a country ("Turki Recep
   Tayyip Erdogan": the country is split off); "F-16 Turki" or "ARRAHMAHNEWS.COM Kremlin" do not; a
   city's name starting a longer person is a first name ("George Bush"); the tagger's organisation on a
   city's exact name wins in a language the tagger learnt ("Santos", "Benfica": clubs); a known name the
   tagger reads with its glued case ending is the whole word ("NATO-a", "EU-u"); a name with its short
   form in brackets stays one mention where the tagger learnt the language so ("Mahkamah Konstitusi (MK)");
   the tagger's organisation or place that continues a role's title loses the title's words ("Menteri
   Luar Negeri Rusia": Rusia);
3. without a model (``rules`` tagger): the rules' people (after a role word or a speech verb), where
   nothing above overlaps. With a model they are left out (the model finds people better).

A one-word gazetteer place that begins a sentence, that the tagger left out, and whose lower case is a
common word of the text's language is that word, capitalised by its place ("Para" in Portuguese is not
the state of Pará, "Medan" in Swedish is "while", "Reading" and "Nice" in English): it is dropped.

Headline-like lines (short, no closing full stop, most words capitalised: titles, "Baca juga" links) fool both the tagger and the
person rules; there only gazetteer/institution names are kept, plus names the body of the text also
has. Then each name takes one label (the gazetteer's, else the majority), and untagged repeats of a
tagged name, or of a person's surname, are tagged too.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.stages.entities.gazetteer import GLUED_ENDING, WITH_SHORT_FORM, Gazetteer, fold
from pipeline.stages.entities.rules import ROLE_WORDS, Mention
from pipeline.stages.entities.tokens import TOKEN

AUTHORITATIVE = {"gazetteer", "institution"}
HEADLINE_MIN_WORDS = 3
HEADLINE_MAX_WORDS = 25
HEADLINE_CAPITALISED_SHARE = 0.7
SENTENCE_ENDS = ".!?…:;"
OPENERS = "\"'“”„‘’«»‹›([¿¡-–— \t\r\n"  # what may stand between a sentence's end and its first word
SMALL_WORDS = {"di", "dan", "ke", "dari", "yang", "untuk", "dengan", "atau", "of", "the", "and", "in", "on",
               "for", "to", "a", "de", "la", "el", "le", "des", "du", "y", "e", "da", "do", "van", "der"}


@dataclass
class Line:
    start: int
    end: int
    headline: bool


@dataclass
class Combined:
    mentions: list[Mention] = field(default_factory=list)
    dropped_in_headlines: int = 0


def lines(text: str) -> list[Line]:
    out = []
    pos = 0
    for raw in text.split("\n"):
        headline = False
        if not raw.rstrip().endswith((".", "!", "?", ":", '"', "”", ",")):  # a sentence's end: no headline
            words = [w for w in TOKEN.findall(raw) if w[:1].isalpha() and w.lower() not in SMALL_WORDS]
            capitalised = sum(1 for w in words if w[:1].isupper())
            headline = (HEADLINE_MIN_WORDS <= len(words) <= HEADLINE_MAX_WORDS
                        and capitalised / len(words) >= HEADLINE_CAPITALISED_SHARE)
        out.append(Line(pos, pos + len(raw), headline))
        pos += len(raw) + 1
    return out


def _overlaps(a: Mention, b: Mention) -> bool:
    return a.start < b.end and b.start < a.end


def _inside(inner: Mention, outer: Mention) -> bool:
    return outer.start <= inner.start and inner.end <= outer.end


def starts_sentence(text: str, start: int) -> bool:
    """Whether only opening quotes, brackets, dashes and white space stand between ``start`` and the text's
    start or a sentence's end (or a line break)."""
    j = start
    while j > 0 and text[j - 1] in OPENERS:
        if text[j - 1] == "\n":
            return True
        j -= 1
    return j == 0 or text[j - 1] in SENTENCE_ENDS


def _common_word_opening(text: str, m: Mention, model: list[Mention], common: Callable[[str], bool]) -> bool:
    """A gazetteer place of one title-case word at a sentence's start, which the tagger left out and which is a
    common word of the language: "Para", "Medan", "Reading"."""
    return (m.source == "gazetteer" and m.label == "LOC" and m.text.istitle() and m.text.isalpha()
            and common(m.text.lower()) and starts_sentence(text, m.start)
            and not any(_overlaps(m, x) for x in model))


class _Known:
    """The known names (gazetteer, institutions) while the tagger's spans are weighed against them: which
    overlap a span (a binary search over their starts, so a long page with thousands of names and mentions is
    not a product of the two), and which are left once the tagger's longer names took some in. They keep
    their order."""

    def __init__(self, names: list[Mention]):
        self.names = names
        self.order = sorted(range(len(names)), key=lambda i: names[i].start)
        self.starts = [names[i].start for i in self.order]
        self.longest = max((m.end - m.start for m in names), default=0)
        self.index = {id(m): i for i, m in enumerate(names)}
        self.dropped: set[int] = set()  # indices into ``names``

    def overlapping(self, m: Mention) -> list[Mention]:
        lo = bisect.bisect_left(self.starts, m.start - self.longest + 1)
        hi = bisect.bisect_left(self.starts, m.end)
        return [self.names[i] for i in sorted(self.order[lo:hi])
                if i not in self.dropped and _overlaps(m, self.names[i])]

    def drop(self, names: list[Mention]) -> None:
        self.dropped.update(self.index[id(n)] for n in names)

    def left(self) -> list[Mention]:
        return [m for i, m in enumerate(self.names) if i not in self.dropped]


def _first_name(text: str, place: Mention, person: Mention, gaz: Gazetteer) -> bool:
    """A city's name, then a space, at the start of the model's longer person: a first name ("George Bush",
    "Elizabeth A. Burton", "Braga de Macedo"; a country there is split off, and "Sacramento-based
    McClatchy" is no person)."""
    entry = gaz.get(place.text)
    return place.start == person.start and place.end < person.end and text[place.end:place.end + 1] == " " \
        and entry is not None and entry.kind == "city"


def combine(text: str, model: list[Mention], rules: list[Mention], gaz: Gazetteer,
            statistical: bool = True, common: Callable[[str], bool] | None = None,
            trusted: bool = False, short_forms: frozenset[str] = frozenset(),
            place_heads: frozenset[str] = frozenset()) -> Combined:
    """Merged mentions (labels resolved, canonical names not yet filled). ``statistical``: a model
    tagged ``model``; the rules' people (role words, speech verbs) are then left out: the model finds
    people better, and the surnames are repeated below either way. ``common``: whether a lower-case word
    is a common word of the text's language (with a model: see the module's note on sentence openings).
    ``trusted``: the model learnt the text's language; its organisation on a city's name then wins.
    ``short_forms``: the labels whose names the model learnt (in the text's language) with their short form
    in brackets inside ("Mahkamah Konstitusi (MK)"): such a name and its short form become one mention.
    ``place_heads``: words that begin places' names where the tagger learnt the language ("Kabupaten", "Desa"):
    such a word and the capitalised words after it are a place ("Kabupaten Rembang")."""
    if short_forms:
        model = _with_short_forms(text, model, short_forms)
    model = [kept for m in model if (kept := _without_title_words(text, m)) is not None]
    if place_heads:
        model = _with_place_heads(text, model, place_heads, [r for r in rules if r.source in AUTHORITATIVE])
    fixed = [m for m in rules if m.source in AUTHORITATIVE
             and not (statistical and common is not None and _common_word_opening(text, m, model, common))]
    known = _Known(fixed)
    kept: list[Mention] = []
    for m in model:
        clashes = known.overlapping(m)
        if not clashes:
            kept.append(m)
            continue
        if len(clashes) == 1 and clashes[0].start == m.start and clashes[0].end < m.end \
                and GLUED_ENDING.fullmatch(text, clashes[0].end, m.end):
            # "NATO-a", "EU-u", "Microsoft's": the known name with its case ending, as one word
            f = clashes[0]
            kept.append(Mention(f.start, m.end, text[f.start:m.end], f.label, f.canonical, dict(f.ids), f.source))
            known.drop([f])
            continue
        if m.label in short_forms and all(_inside(f, m) for f in clashes) \
                and WITH_SHORT_FORM.fullmatch(text, m.start, m.end):
            # "Mahkamah Konstitusi (MK)": a name with its short form, one mention where the tagger learnt
            # the language that way (Indonesian news); the UNER languages' annotation gives two
            kept.append(m)
            known.drop(clashes)
            continue
        if m.label == "PER" and all(f.source == "gazetteer" and f.label == "LOC" and _inside(f, m)
                                    and (f.start > m.start or _first_name(text, f, m, gaz)) for f in clashes):
            # "Badrodin Haiti", "Hilton Paris": a place name inside a person's name (not an organisation:
            # "ARRAHMAHNEWS.COM Kremlin" is a byline and the Kremlin); "George Bush", "Sydney Smith": a city's
            # name as a first name
            kept.append(m)
            known.drop(clashes)
            continue
        entry = gaz.get(m.text)
        if m.label == "PER" and len(clashes) == 1 and (clashes[0].start, clashes[0].end) == (m.start, m.end) \
                and entry is not None and entry.kind == "city" \
                and (fold(entry.canonical) != fold(m.text) or not entry.major):
            # the model's person over a one-word city alias ("Vena" is also Vienna) or a city of under a
            # million people ("Bush" is also Būsh, Egypt)
            kept.append(m)
            known.drop(clashes)
            continue
        if m.label == "ORG" and trusted and len(clashes) == 1 \
                and (clashes[0].start, clashes[0].end) == (m.start, m.end) and entry is not None and entry.kind == "city":
            # the model's organisation on a city's exact name, in a language it learnt: a club ("Santos venceu",
            # "Benfica"); a country stays a place
            kept.append(m)
            known.drop(clashes)
            continue
        if m.label == "PER":
            # "Turki Recep Tayyip Erdogan": keep the person after the country
            last = max(f.end for f in clashes)
            rest = TOKEN.search(text, last, m.end)
            if all(f.start >= m.start for f in clashes) and clashes[0].start == m.start and rest is not None \
                    and rest.group()[:1].isupper():
                kept.append(Mention(rest.start(), m.end, text[rest.start():m.end], "PER", "", {}, m.source))
            continue
        if all(_inside(f, m) and (f.start, f.end) != (m.start, m.end) for f in clashes) \
                and _name_words(text, m, clashes):
            kept.append(m)  # "Universitas Indonesia", "Gedung DPR": the longer name wins
            known.drop(clashes)
            continue
        # the tagger's span cuts through a known name, or is one: the known name wins
    merged = known.left() + kept
    if not statistical:
        for m in rules:
            if m.source not in AUTHORITATIVE and not any(_overlaps(m, k) for k in merged):
                merged.append(m)

    # headline lines: only names that are known, or that the body also has
    line_list = lines(text)
    headline_spans = sorted((ln.start, ln.end) for ln in line_list if ln.headline)  # lines do not overlap
    result = Combined()
    # a text of headline-like lines only (a title, a list of names) has no body to check them against
    has_body = any(not ln.headline and len(TOKEN.findall(text, ln.start, ln.end)) >= HEADLINE_MIN_WORDS
                   for ln in line_list)
    if headline_spans and has_body:
        headline_starts = [s for s, _ in headline_spans]

        def in_headline(m: Mention) -> bool:
            at = bisect.bisect_right(headline_starts, m.start) - 1
            return at >= 0 and m.start < headline_spans[at][1]

        body_names = {fold(m.text) for m in merged if not in_headline(m)}
        filtered = []
        for m in merged:
            if in_headline(m) and m.source not in AUTHORITATIVE and fold(m.text) not in body_names:
                result.dropped_in_headlines += 1
                continue
            filtered.append(m)
        merged = filtered

    merged = _one_label_per_name(merged)
    merged += _repeats(text, merged, gaz)
    merged.sort(key=lambda m: m.start)
    result.mentions = merged
    return result


def _without_title_words(text: str, m: Mention) -> Mention | None:
    """An organisation or place that continues a role's title is the rest after the title's words:
    "(Menteri) Luar Negeri Rusia" is "Rusia", the minister's country, not an organisation; None when
    nothing is left."""
    if m.label == "PER":
        return m
    before = TOKEN.findall(text, max(0, m.start - 40), m.start)
    if not before or before[-1].lower() not in ROLE_WORDS or text[m.start - 1:m.start] not in (" ", ""):
        return m
    words = list(TOKEN.finditer(text, m.start, m.end))
    n = 0
    while n < len(words) and words[n].group().lower() in ROLE_WORDS:
        n += 1
    if n == 0:
        return m
    if n == len(words):
        return None
    start = words[n].start()
    return Mention(start, m.end, text[start:m.end], m.label, m.canonical, dict(m.ids), m.source)


NAME_AFTER_HEAD = re.compile(r"[ ]+(?P<word>[^\W\d_][\w'’-]*(?:\.[^\W\d_][\w'’-]*)*|\d+)")


def _with_place_heads(text: str, model: list[Mention], heads: frozenset[str], known: list[Mention]) -> list[Mention]:
    """A head word ("Kabupaten", "Pulau") that no mention of the tagger holds and that starts no known name
    ("Amerika Serikat"), and the capitalised words (and numbers) after it, up to a mention of the tagger that
    is no place or a second known name: a place, which takes the tagger's places in it ("Kabupaten [Rembang]",
    "Desa Gondang"). The tagger's mentions do not overlap one another, so each question is a binary search:
    a long page with many heads and names costs no more than a pass over it."""
    if not any(h in text for h in heads):
        return model
    model = sorted(model, key=lambda m: m.start)
    starts = [m.start for m in model]
    ends = [m.end for m in model]  # in order too: the mentions do not overlap
    known = sorted(known, key=lambda k: k.start)
    known_starts = [k.start for k in known]
    reach, furthest = [], -1  # the furthest end of the known names up to each
    for k in known:
        furthest = max(furthest, k.end)
        reach.append(furthest)

    def tagger_mention_at(start: int, end: int) -> int | None:
        """The index of the first tagger mention overlapping [start, end), if any."""
        i = bisect.bisect_right(ends, start)
        return i if i < len(model) and model[i].start < end else None

    places: list[Mention] = []
    taken: set[int] = set()  # the tagger's mentions a place took in
    for found in TOKEN.finditer(text):
        start = found.start()
        if found.group() not in heads or places and start < places[-1].end \
                or tagger_mention_at(start, start + 1) is not None:
            continue
        k = bisect.bisect_right(known_starts, start) - 1
        if k >= 0 and reach[k] > start:
            continue
        end, names = found.end(), 0
        while (word := NAME_AFTER_HEAD.match(text, end)) is not None:
            first = text[word.start("word")]
            if first.isdigit():  # a number inside the name ("SD Negeri 1 Putri Hijau"), not after it ("Muria 9 km")
                after = NAME_AFTER_HEAD.match(text, word.end())
                if after is None or not text[after.start("word")].isupper():
                    break
            elif not first.isupper():
                break
            at = tagger_mention_at(word.start(), word.end())
            if at is not None and model[at].label != "LOC":
                break
            if names:  # a second known name starting in this word ends the place
                k = bisect.bisect_right(known_starts, word.start())
                if k < len(known) and known_starts[k] < word.end():
                    break
            names += 1
            end = word.end()
        if not names:
            continue
        first_in = bisect.bisect_right(ends, start)
        last_in = bisect.bisect_left(starts, end)
        inside = range(first_in, last_in)
        if inside:
            end = max(end, model[last_in - 1].end)  # a place of the tagger's that goes on
        taken.update(inside)
        places.append(Mention(start, end, text[start:end], "LOC", "", {}, "model"))
    if not places:
        return model
    return sorted([m for i, m in enumerate(model) if i not in taken] + places, key=lambda m: m.start)


def _with_short_forms(text: str, model: list[Mention], labels: frozenset[str]) -> list[Mention]:
    """The model's name of several words and its short form right after it in brackets, of the same label
    (one of ``labels``), as one mention: "Partai Persatuan Pembangunan (PPP)" (our tokens split the brackets
    off); a span that ends inside the brackets takes the closing one."""
    out: list[Mention] = []
    ordered = sorted(model, key=lambda m: m.start)
    i = 0
    while i < len(ordered):
        m = ordered[i]
        if m.label not in labels:
            out.append(m)
            i += 1
            continue
        if text[m.end:m.end + 1] == ")" and WITH_SHORT_FORM.fullmatch(text, m.start, m.end + 1):
            # the model's span ends inside the brackets: "PT Pertamina (Persero"
            out.append(Mention(m.start, m.end + 1, text[m.start:m.end + 1], m.label, m.canonical, dict(m.ids), m.source))
            i += 1
            continue
        if i + 1 < len(ordered):
            short = ordered[i + 1]
            if short.label == m.label and " " in m.text and text[m.end:short.start].lstrip(" ") == "(" \
                    and text[short.end:short.end + 1] == ")" and WITH_SHORT_FORM.fullmatch(text, m.start, short.end + 1):
                out.append(Mention(m.start, short.end + 1, text[m.start:short.end + 1], m.label, m.canonical,
                                   dict(m.ids), m.source))
                i += 2
                continue
        out.append(m)
        i += 1
    return out


NAME_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def _name_words(text: str, outer: Mention, inner: list[Mention]) -> bool:
    """The words of ``outer`` outside the known names are plain words ("Universitas", "Gedung"),
    not a dateline ("ARRAHMAHNEWS.COM Kremlin") or a model number ("F-16 Turki")."""
    pos, rest = outer.start, []
    for f in sorted(inner, key=lambda x: x.start):
        rest.append(text[pos:f.start])
        pos = f.end
    rest.append(text[pos:outer.end])
    words = " ".join(rest).split()
    return bool(words) and all(NAME_WORD.fullmatch(w) and not (w.isupper() and len(w) > 5) for w in words)


def _one_label_per_name(mentions: list[Mention]) -> list[Mention]:
    votes: dict[str, Counter] = defaultdict(Counter)
    known: dict[str, str] = {}
    for m in mentions:
        key = fold(m.text)
        votes[key][m.label] += 1
        if m.source in AUTHORITATIVE:
            known[key] = m.label
    for m in mentions:
        key = fold(m.text)
        m.label = known.get(key) or max(votes[key].items(), key=lambda kv: (kv[1], kv[0] == m.label))[0]
    return mentions


def _repeats(text: str, mentions: list[Mention], gaz: Gazetteer) -> list[Mention]:
    """Untagged occurrences of names tagged elsewhere in the document, and surnames of people."""
    names: dict[str, str] = {}
    for m in mentions:
        if len(m.text) >= 3 and m.text[:1].isupper() and "\n" not in m.text:
            names.setdefault(m.text, m.label)
            if m.label == "PER" and " " in m.text:
                surname = m.text.split()[-1]
                if len(surname) >= 3 and surname[:1].isupper() and gaz.get(surname) is None:
                    names.setdefault(surname, "PER")
    if not names:
        return []
    taken = sorted((m.start, m.end) for m in mentions)
    # A hit overlaps a mention when some mention starts before the hit ends and ends after it
    # starts. The hits come in order, apart, so one sweep does (a long page has thousands of both):
    # the furthest end of the mentions that start before the hit's end. A hit added ends before the
    # next one starts: no later hit overlaps it.
    added = []
    i, furthest = 0, -1
    for s, e in _hits(text, names):
        while i < len(taken) and taken[i][0] < e:
            furthest = max(furthest, taken[i][1])
            i += 1
        if furthest > s:
            continue
        added.append(Mention(s, e, text[s:e], names[text[s:e]], "", {}, "consistency"))
    return added


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_-"


def _hits(text: str, names) -> list[tuple[int, int]]:
    """Where the ``names`` occur in ``text`` as whole words (no letter, digit, _ or - on either side),
    left to right without overlaps, the longest name where several start at one place: what one
    regular expression of the names, longest first, would find, without compiling one per document
    (that took 5 % of the stage on rendered pages)."""
    found: dict[int, int] = {}
    find, size = text.find, len(text)
    for name in names:
        n = len(name)
        at = find(name)
        while at >= 0:
            end = at + n
            if (at == 0 or not _word_char(text[at - 1])) and (end == size or not _word_char(text[end])) \
                    and end > found.get(at, -1):
                found[at] = end
            at = find(name, at + 1)
    hits, last = [], 0
    for at in sorted(found):
        if at >= last:
            hits.append((at, found[at]))
            last = found[at]
    return hits
