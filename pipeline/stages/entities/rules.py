"""Rule-based entity tagging that works for any language written in Latin script.

1. Gazetteer: the longest run of tokens whose name is a known country, city, region or
   organisation (case-sensitive for short forms such as "AS", "UN").
2. Ministries: "Kementerian Luar Negeri Rusia", "Kemlu Rusia" -> Ministry of Foreign Affairs of Russia.
3. People: a run of capitalised words that follows a role ("Presiden", "Menteri Luar Negeri",
   "Juru bicara", "President", ...) or a speech verb ("kata Peskov", "said Smith").
4. Consistency: a surname alone ("Peskov") takes the label and canonical name of the full name
   ("Dmitry Peskov") mentioned in the same document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.stages.entities.gazetteer import Entry, Gazetteer, fold

TOKEN = re.compile(r"\w+(?:[.'’]\w+)*", re.UNICODE)
SENTENCE_BREAK = re.compile(r"[.!?;:\n]\s|[\"“”]")

ROLE_WORDS = {
    # Indonesian / Malay
    "presiden", "wapres", "menteri", "menlu", "menhan", "wakil", "juru", "bicara", "jubir", "perdana", "pm",
    "kanselir", "raja", "ratu", "pangeran", "sultan", "sekretaris", "sekjen", "direktur", "ketua", "gubernur",
    "bupati", "walikota", "wali", "jenderal", "kepala", "pemimpin", "duta", "besar", "dubes", "senator",
    "kapten", "kolonel", "letnan", "mayor", "komandan", "panglima", "syekh", "imam", "paus", "uskup", "dr",
    "prof", "pak", "bu", "bapak", "ibu", "tuan", "nyonya", "luar", "negeri", "dalam", "pertahanan",
    "keuangan", "kepresidenan", "utama", "kabinet", "perdana-menteri", "anggota", "pejabat", "profesor",
    "pelatih", "kapolri", "kapolda", "kapolres", "jaksa", "agung", "hakim", "ayatollah", "koresponden",
    "wartawan", "analis", "pengamat", "dosen", "aktivis", "tokoh",
    # English
    "president", "vice", "prime", "minister", "secretary", "spokesman", "spokeswoman", "spokesperson",
    "chancellor", "king", "queen", "prince", "princess", "mr", "mrs", "ms", "general", "governor",
    "director", "chief", "chairman", "chairwoman", "ceo", "pope", "foreign", "defence", "defense",
    "ambassador", "lawmaker", "sen", "rep", "gen", "col", "lt", "capt", "judge", "coach", "analyst",
}
SPEECH_VERBS = {
    "kata", "ujar", "ucap", "tegas", "ungkap", "jelas", "sebut", "tutur", "imbuh", "tambah", "lanjut",
    "said", "says", "told", "added", "according",
}
# Capitalised words that start or name institutions, never people.
NOT_NAMES = {
    "kementerian", "kementrian", "departemen", "pemerintah", "pemerintahan", "parlemen", "majelis", "dewan",
    "komisi", "badan", "lembaga", "partai", "angkatan", "pasukan", "militer", "tentara", "kantor", "istana",
    "ministry", "department", "government", "parliament", "council", "committee", "party", "army", "forces",
    "office", "agency", "police", "polisi", "kepolisian", "universitas", "university", "bank", "pt",
}
CONNECTORS = {"bin", "binti", "van", "von", "de", "da", "al", "el", "der", "di", "la", "le", "ibn", "abu"}
_COUNTRY = r"(?P<c>[A-Z][\w-]+(?:\s[A-Z][\w-]+){0,2})"
# Institutions of a country: "<prefix> <country>" or "<country> <suffix>" -> canonical template.
INSTITUTIONS = [
    (re.compile(r"\b(?:Kementerian Luar Negeri|Kemlu|Kemenlu|Kementerian Hal Ehwal Luar Negeri)\s+" + _COUNTRY),
     "Ministry of Foreign Affairs of {}", False),
    (re.compile(r"\b(?:Kementerian Pertahanan|Kemhan|Kemenhan)\s+" + _COUNTRY), "Ministry of Defence of {}", False),
    (re.compile(r"\b(?:Foreign Ministry|Ministry of Foreign Affairs) of\s+" + _COUNTRY),
     "Ministry of Foreign Affairs of {}", False),
    (re.compile(r"\b(?:Defen[cs]e Ministry|Ministry of Defen[cs]e) of\s+" + _COUNTRY), "Ministry of Defence of {}", False),
    (re.compile(r"\bPemerintah(?:an)?\s+" + _COUNTRY), "Government of {}", False),
    (re.compile(r"\b(?:Government|Parliament) of\s+" + _COUNTRY), "Government of {}", False),
    (re.compile(_COUNTRY + r"(?:'s)?\s+(?:Foreign Ministry|Ministry of Foreign Affairs)\b"),
     "Ministry of Foreign Affairs of {}", True),
]


@dataclass
class Mention:
    start: int
    end: int
    text: str
    label: str
    canonical: str
    ids: dict[str, str] = field(default_factory=dict)
    source: str = "gazetteer"

    def as_dict(self) -> dict:
        return {"text": self.text, "label": self.label, "start": self.start, "end": self.end,
                "canonical": self.canonical, "ids": self.ids, "source": self.source}


def _country_prefix(words: str, gaz: Gazetteer, from_end: bool) -> tuple[str, Entry] | None:
    """The longest run of ``words`` (from its start, or from its end) that names a country."""
    parts = words.split()
    for n in range(len(parts), 0, -1):
        name = " ".join(parts[-n:] if from_end else parts[:n])
        entry = gaz.get(name)
        if entry is not None and entry.kind == "country":
            return name, entry
    return None


def _case_ok(surface: str, key: str) -> bool:
    if not surface[:1].isupper():
        return False
    if len(key.replace(" ", "")) <= 3:
        return surface.isupper()  # "AS", "UN", "EU": only in capitals
    return True


def _entry_mention(start: int, end: int, surface: str, entry: Entry, source: str) -> Mention:
    return Mention(start, end, surface, entry.label, entry.canonical, dict(entry.ids), source)


def tag(text: str, gaz: Gazetteer, common_words: frozenset[str] = frozenset()) -> list[Mention]:
    """Mentions found by the gazetteer and the rules. ``common_words``: lower-case words of the text's
    language ("kita", "bukan"); a one-word name of a smaller city, or another language's name of a big
    one ("Kita" is Quito), that is also one of them is not taken ("Baku" is)."""
    tokens = [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text)]
    taken = [False] * len(tokens)
    mentions: list[Mention] = []

    # 2. institutions first: they contain a country name the gazetteer would take.
    for pattern, template, country_first in INSTITUTIONS:
        for m in pattern.finditer(text):
            found = _country_prefix(m.group("c"), gaz, from_end=country_first)
            if found is None:
                continue
            name, country = found
            if country_first:
                start, end = m.start("c") + m.group("c").rindex(name), m.end()
            else:
                start, end = m.start(), m.start("c") + len(name)
            if any(s < end and start < e for s, e in ((x.start, x.end) for x in mentions)):
                continue
            mentions.append(Mention(start, end, text[start:end], "ORG", template.format(country.canonical),
                                    {"country": dict(country.ids).get("iso3166", "")}, "institution"))
    _mark(tokens, taken, mentions)

    # 1. gazetteer, longest match first.
    i = 0
    while i < len(tokens):
        if taken[i] or not tokens[i][2][:1].isupper():
            i += 1
            continue
        first = fold(tokens[i][2]).split(" ")[0]
        longest = gaz.first_words.get(first, 0)
        if not longest:
            i += 1
            continue
        for n in range(min(longest, len(tokens) - i), 0, -1):
            if any(taken[i:i + n]):
                continue
            start, end = tokens[i][0], tokens[i + n - 1][1]
            surface = text[start:end]
            if "\n" in surface:
                continue
            key = fold(surface)
            entry = gaz.names.get(key)
            if entry and n == 1 and entry.kind == "city" and (_followed_by_name(text, tokens, i, gaz)
                                                              or key in common_words
                                                              and (not entry.major or fold(entry.canonical) != key)):
                continue  # "Vladimir Putin", "Paris Hilton": a first name, not the city; "Kita": "we"
            if entry and _case_ok(surface, key):
                mentions.append(_entry_mention(start, end, surface, entry, "gazetteer"))
                for k in range(i, i + n):
                    taken[k] = True
                i += n
                break
        else:
            i += 1

    # 3. people after a role word or around a speech verb.
    mentions.extend(_people(text, tokens, taken))
    # 4. consistency within the document.
    mentions = _resolve_surnames(text, tokens, taken, mentions)
    mentions.sort(key=lambda m: m.start)
    return mentions


def _followed_by_name(text: str, tokens, i: int, gaz: Gazetteer) -> bool:
    if i + 1 >= len(tokens) or text[tokens[i][1]:tokens[i + 1][0]] != " ":
        return False
    nxt = tokens[i + 1][2]
    return nxt[:1].isupper() and not nxt.isupper() and gaz.get(nxt) is None and nxt.lower() not in ROLE_WORDS


def _mark(tokens, taken, mentions) -> None:
    for mention in mentions:
        for k, (s, e, _) in enumerate(tokens):
            if s >= mention.start and e <= mention.end:
                taken[k] = True


def _boundary_between(text: str, a_end: int, b_start: int) -> bool:
    return bool(SENTENCE_BREAK.search(text[a_end:b_start + 1])) or "," in text[a_end:b_start]


def _people(text: str, tokens, taken) -> list[Mention]:
    found: list[Mention] = []
    n = len(tokens)
    i = 0
    while i < n:
        tok = tokens[i][2]
        if taken[i] or not tok[:1].isupper() or tok.lower() in ROLE_WORDS or tok.lower() in NOT_NAMES \
                or tok.isupper() and len(tok) <= 3:
            i += 1
            continue
        # a run of capitalised tokens (connectors allowed inside), not crossing punctuation
        j = i
        while j + 1 < n and not taken[j + 1] and not _boundary_between(text, tokens[j][1], tokens[j + 1][0]) \
                and (tokens[j + 1][2][:1].isupper() or tokens[j + 1][2].lower() in CONNECTORS) \
                and tokens[j + 1][2].lower() not in ROLE_WORDS and tokens[j + 1][2].lower() not in NOT_NAMES:
            j += 1
        while j > i and tokens[j][2].lower() in CONNECTORS:
            j -= 1
        size = j - i + 1
        if size <= 4 and _person_context(text, tokens, taken, i, j):
            start, end = tokens[i][0], tokens[j][1]
            surface = text[start:end]
            found.append(Mention(start, end, surface, "PER", surface, {}, "rule"))
            for k in range(i, j + 1):
                taken[k] = True
        i = j + 1
    return found


def _person_context(text: str, tokens, taken, i: int, j: int) -> bool:
    # a role word among the 8 tokens before, with nothing but capitalised words, entities and
    # role words in between (same sentence)
    k = i - 1
    steps = 0
    while k >= 0 and steps < 8 and not SENTENCE_BREAK.search(text[tokens[k][1]:tokens[k + 1][0] + 1]):
        word = tokens[k][2]
        if word.lower() in ROLE_WORDS:
            return True
        if not (word[:1].isupper() or taken[k] or word.lower() in CONNECTORS):
            break
        k -= 1
        steps += 1
    # a speech verb right before ("kata Peskov") or right after a comma ("..., kata Peskov")
    if i > 0 and tokens[i - 1][2].lower() in SPEECH_VERBS and j - i <= 3:
        return True
    if j + 1 < len(tokens) and tokens[j + 1][2].lower() in {"said", "says", "told"}:
        return True
    return False


def _resolve_surnames(text: str, tokens, taken, mentions: list[Mention]) -> list[Mention]:
    full_names = {}
    for m in mentions:
        if m.label == "PER" and " " in m.text:
            parts = m.text.split()
            full_names.setdefault(parts[-1], m.canonical)
            full_names.setdefault(m.text, m.canonical)
    out = []
    for m in mentions:
        if m.label == "PER" and m.text in full_names:
            m.canonical = full_names[m.text]
        out.append(m)
    # untagged single tokens equal to a known surname
    for k, (s, e, word) in enumerate(tokens):
        if not taken[k] and word in full_names and word[:1].isupper():
            out.append(Mention(s, e, word, "PER", full_names[word], {}, "consistency"))
            taken[k] = True
    # one surface form, one label: the most frequent label wins
    votes: dict[str, dict[str, int]] = {}
    for m in out:
        votes.setdefault(m.text, {}).setdefault(m.label, 0)
        votes[m.text][m.label] += 1
    for m in out:
        best = max(votes[m.text].items(), key=lambda kv: kv[1])[0]
        m.label = best
    return out
