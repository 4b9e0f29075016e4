"""Model mentions checked against a lexicon, for languages that capitalise every noun (German).

A tagger trained without German tags capitalised common nouns as names ("Landtagswahlkampf",
"Millionenstrafe", "Dokumenten") and takes a title into a person's span ("Bundesverkehrsminister Andreas
Scheuer"). A German morphological lexicon tells which capitalised words are common nouns, which are
first names, surnames and places, and which are function words; each model mention is then

* cut to its names: common nouns, function words and lower-case words at either end go ("Uber-Konkurrent
  Lyft" -> "Lyft", "Verstöße der AfD" -> "AfD"); a person's span starts at a known first name
  ("Siemens-Chef Luisa Neubauer" -> "Luisa Neubauer"); an organisation keeps a common noun after a name
  ("Europäischen Union", "Frankfurter Buchmesse");
* dropped when nothing name-like is left ("Kosten der Gratiszeitung", "Vorort");
* relabelled when a single word is only a place or only a person's name in the lexicon ("Elsass" PER ->
  LOC, "Steinmeier" LOC -> PER; organisations are left alone: "Siemens" is also a surname).

A word is a common noun when the lexicon lists the form as a noun and not as a name, or when it ends in
such a noun of at least four letters after a noun or a name ("Landtagswahlkampf", "Google-Schwesterfirma":
German compounds take their head's class). All-capital words (acronyms: "SPD", "WDR") and words the
lexicon does not know count as names.

The lexicon (``lexicons/<lang>.tsv.gz``: form, classes) is made by ``python -m training.lexicons`` from
LanguageTool's German part-of-speech dictionary (``de.danielnaber:german-pos-dict`` on Maven Central,
CC BY-SA 4.0, based on Morphy; ``lexicons/NOTICE``).
"""

from __future__ import annotations

import functools
import gzip
import re
from pathlib import Path

from pipeline.stages.entities.rules import Mention
from pipeline.stages.entities.tokens import TOKEN

LEXICONS = Path(__file__).with_name("lexicons")
NOUN, FUNCTION, PERSON, PLACE, FIRST_NAME, OTHER = "N", "F", "P", "L", "V", "O"
MIN_HEAD = 4  # letters of a compound's head noun
MIN_MODIFIER = 3  # letters before it
MAX_REMEMBERED = 200_000  # word kinds kept between records (about 20 MB at most)

CONJUNCTIONS = frozenset({"und", "oder", "sowie"})
PARTICLES = frozenset({"von", "van", "der", "den", "de", "zu", "vom", "zum", "la", "le", "da", "di", "del", "du",
                       "ten", "ter", "bin", "al", "el"})

# adjective suffixes with an inflection ending: "-lich", "-ig", "-isch", "-haft", "-sam", "-bar" + e/er/es/en/em
ADJECTIVE_ENDING = re.compile(r"(?:lich|ig|isch|haft|sam|bar)(?:e|er|es|en|em)$")
ORG_ADJECTIVE = re.compile(r"(?:e|en|er|es)$")  # an organisation's first word: an adjective's inflection
ARTICLES = frozenset({"der", "die", "das", "dem", "den", "des", "ein", "eine", "einem", "einen", "einer", "eines",
                      "im", "am", "zum", "zur", "vom", "beim", "ins"})
ABBREVIATIONS = frozenset({"St"})  # its full stop is part of the name ("Dr.", "Prof." are tokens with theirs)

LINKS = ("s", "n", "e", "en", "es", "er")  # linking elements of German compounds ("Landtags-wahl")
# heads of compounds that name places and families more often than things ("Altenburg", "Frankenstein")
NAME_HEADS = frozenset({"Burg", "Berg", "Dorf", "Feld", "Stadt", "Heim", "Bach", "Hausen", "Hafen", "Furt", "Wald",
                        "Tal", "Thal", "Stein", "Land", "See", "Hof", "Horn", "Born", "Hagen", "Kirchen", "Münster",
                        "Brunn", "Brunnen", "Rode", "Werder", "Au", "Aue", "Leben", "Stedt", "Städt"})
# words that name an institution: in an organisation's name they are not a title to cut ("Universität
# Hamburg", "Süddeutsche Zeitung", "Bundesfinanzministerium")
INSTITUTIONS = frozenset({"Universität", "Hochschule", "Akademie", "Stiftung", "Institut", "Klinik", "Klinikum",
                          "Bank", "Ministerium", "Parlament", "Regierung", "Verwaltung", "Gericht", "Gerichtshof",
                          "Landgericht", "Amtsgericht", "Verband", "Verein", "Partei", "Zeitung", "Rundschau", "Post",
                          "Union", "Werke", "Kommission", "Behörde", "Bundesamt", "Landesamt", "Senat", "Museum",
                          "Theater", "Orchester", "Gymnasium", "Schule", "Bahn", "Versicherung", "Kammer"})

WORD_BEFORE = re.compile(r"(\w+)\W*$")
LOCATIVES = frozenset({"in", "aus", "bei"})
STATE_PREFIXES = ("Bundes", "Landes", "Europa", "Staats", "Kantons")

# token kinds
_NAME, _NOUN, _FUNCTION, _LOWER, _ADJECTIVE, _COMPOUND = range(6)


class NounLexicon:
    def __init__(self, lang: str, classes: dict[str, str]):
        self.name = f"lexicon:{lang}"
        self.classes = classes
        self._kinds: dict[str, int] = {}

    def _compound_noun(self, word: str) -> bool:
        """Ends in a common noun: of five letters or more after any three ("Landtagswahlkampf",
        "Gratiszeitung"), of four after a known word, a linking "s" or "n" allowed ("Umsatzplus")."""
        for i in range(MIN_MODIFIER, len(word) - MIN_HEAD + 1):
            if not word[i].isalpha():
                continue
            head = word[i].upper() + word[i + 1:]
            c = self.classes.get(head, "")
            if NOUN not in c or PERSON in c or PLACE in c or OTHER in c:
                continue
            if head in NAME_HEADS:
                return False  # "Altenburg", "Nordirland", "Frankenstein": how places and families are named
            if len(head) > MIN_HEAD:
                return True
            modifier = word[:i].rstrip("-")
            if self._known(modifier) or any(modifier.endswith(link) and self._known(modifier[:-len(link)])
                                            for link in LINKS) or self._compound_noun(modifier):
                return True  # "Umsatzplus"; "Apfelschaumwein": "Wein" after "Apfelschaum", itself a compound
        return False

    def _known(self, word: str) -> bool:
        c = self.classes.get(word, "")
        return NOUN in c or PERSON in c or PLACE in c or OTHER in c

    def kind(self, word: str) -> int:
        """The word's kind (``_NAME``, ``_NOUN``, ...), remembered: the same words come back page after page."""
        found = self._kinds.get(word)
        if found is None:
            if len(self._kinds) >= MAX_REMEMBERED:
                self._kinds.clear()
            found = self._kinds[word] = self._kind(word)
        return found

    def _kind(self, word: str) -> int:
        if not word[:1].isupper():
            return _LOWER
        letters = [ch for ch in word if ch.isalpha()]
        if len(letters) >= 2 and all(ch.isupper() for ch in letters):
            return _NAME  # an acronym
        c = self.classes.get(word, "")
        if PERSON in c or PLACE in c or OTHER in c:
            return _NAME  # also "Facebook", "Lufthansa", "Audi": nouns too in the lexicon
        if FUNCTION in self.classes.get(word.lower(), "") and NOUN not in c:
            return _FUNCTION
        if word.endswith("er") and PLACE in self.classes.get(word[:-2], ""):
            return _ADJECTIVE  # "Kieler", "Schweizer": of a place, not a name
        if ADJECTIVE_ENDING.search(word):
            return _ADJECTIVE  # "Ärztlicher", "Anrüchiges", "Europäischen" (at a sentence's start, in a name)
        if NOUN in c:
            return _NOUN
        if "-" in word:
            head = word.rsplit("-", 1)[1]
            return _NOUN if head[:1].isupper() and self.kind(head) in (_NOUN, _COMPOUND) else _NAME
        if self._compound_noun(word):
            return _COMPOUND
        return _NAME

    def refine(self, text: str, mentions: list[Mention]) -> list[Mention]:
        # a word the text writes after a first name is a surname all through the text ("Lindemann")
        surnames = set()
        for m in mentions:
            if m.label == "PER":
                words = TOKEN.findall(m.text)
                surnames.update(w for v, w in zip(words, words[1:], strict=False)
                                if FIRST_NAME in self.classes.get(v, "") and self.kind(w) != _FUNCTION)
        out = []
        before: dict[str, list[str]] = {}  # the word before each occurrence, per one-word person (a page names some 100 times)
        for m in mentions:
            kept = self._refine(text, m, surnames)
            if kept is None:
                continue
            kept = self._extend(text, kept)
            if out and kept.start < out[-1].end:
                continue  # "Galler" inside "St. Galler"
            if kept.label == "PER" and " " not in kept.text and kept.text not in surnames \
                    and not {PERSON, PLACE} & set(self.classes.get(kept.text, "")):
                # a word the text puts after an article is a common noun, not a person ("der Halle")
                found = before.get(kept.text)
                if found is None:
                    found = before[kept.text] = self._words_before(text, kept.text)
                if any(w in ARTICLES for w in found):
                    continue
                if found and all(w in LOCATIVES for w in found):
                    # "in Lenzburg", "aus Wendeburg" wherever the text names it: a place, whatever the model said
                    kept = Mention(kept.start, kept.end, kept.text, "LOC", kept.canonical, dict(kept.ids),
                                   kept.source)
            out.append(kept)
        return out

    @staticmethod
    def _words_before(text: str, word: str) -> list[str]:
        """The word (lower-case; "" for none) right before each whole-word occurrence of ``word``."""
        out = []
        at = text.find(word)
        while at >= 0:
            end = at + len(word)
            if (at == 0 or not text[at - 1].isalnum()) and (end == len(text) or not text[end].isalnum()):
                hit = WORD_BEFORE.search(text, max(0, at - 40), at)
                out.append(hit.group(1).lower() if hit else "")
            at = text.find(word, end)
        return out

    @staticmethod
    def _institution(words: list[str], kinds: list[int]) -> bool:
        """An organisation named by an institution word: "Universität Hamburg", "Süddeutschen Zeitung",
        "Bundesfinanzministerium" (capitalised words only)."""
        if any(k in (_LOWER, _FUNCTION) for k in kinds):
            return False
        if len(words) > 1:
            return words[0] in INSTITUTIONS or words[-1] in INSTITUTIONS
        word = words[0]
        return word.startswith(STATE_PREFIXES) and any(word.endswith(i.lower()) for i in INSTITUTIONS)

    def _extend(self, text: str, m: Mention) -> Mention:
        """"St" -> "St. Gallen", "Philipp H" -> "Philipp H.", "Ansgar" -> "Ansgar Weltermann"."""
        words = TOKEN.findall(m.text)
        last = words[-1] if words else ""
        end = m.end
        if text.startswith(".", end) and (last in ABBREVIATIONS or m.label == "PER" and len(last) == 1
                                          and last.isupper() and len(words) > 1):
            end += 1
            if last in ABBREVIATIONS:
                nxt = TOKEN.match(text, end + 1) if text.startswith(" ", end) else None
                if nxt is not None and nxt.group()[:1].isupper():
                    end = nxt.end()
        elif m.label == "PER" and len(words) == 1 and FIRST_NAME in self.classes.get(last, "") \
                and text.startswith(" ", end):
            nxt = TOKEN.match(text, end + 1)
            if nxt is not None and self.kind(nxt.group()) in (_NAME, _NOUN, _COMPOUND):
                end = nxt.end()  # a capitalised word after a first name is the surname
        if end == m.end:
            return m
        return Mention(m.start, end, text[m.start:end], m.label, m.canonical, dict(m.ids), m.source)

    def may_name(self, tokens) -> bool:
        """Whether a sentence (tokens with ``.text``) has a word that could start or be part of a name the
        checks would keep: an unknown or known name, an acronym, an adjective, an institution word. A
        sentence whose capitalised words are all common nouns and function words has none: what a model
        found there would be dropped."""
        for t in tokens:
            word = t.text
            if word[:1].isupper() and (word in INSTITUTIONS or self.kind(word) in (_NAME, _ADJECTIVE)):
                return True
        return False

    def without_function_words(self, mentions: list[Mention]) -> list[Mention]:
        """The rules' mentions less single function words ("Dabei" is also a town's name)."""
        return [m for m in mentions if " " in m.text or FUNCTION not in self.classes.get(m.text.lower(), "")]

    def _refine(self, text: str, m: Mention, surnames: set[str]) -> Mention | None:
        words = [(w.group(), w.start() + m.start, w.end() + m.start) for w in TOKEN.finditer(m.text)]
        if not words:
            return None
        kinds = [_NAME if w in surnames else self.kind(w) for w, _, _ in words]
        # a word that only looks like a compound noun is a surname after a name ("Ansgar Weltermann")
        kinds = [_NAME if k == _COMPOUND and m.label == "PER" and j and kinds[j - 1] == _NAME
                 else _NOUN if k == _COMPOUND else k for j, k in enumerate(kinds)]
        if m.label == "PER":
            firsts = [i for i, (w, _, _) in enumerate(words) if FIRST_NAME in self.classes.get(w, "")
                      and i + 1 < len(words) and words[i + 1][0][:1].isupper()]
            if firsts:
                i = firsts[0]
                words, kinds = words[i:], kinds[i:]
        # a conjunction inside splits two names: keep the first ("Kaeser und Siemens"); a person's name
        # ends at a lower-case word other than a particle ("Lutz S. aus Kiel")
        for j, (w, _, _) in enumerate(words):
            if j and kinds[j] == _LOWER and (w in CONJUNCTIONS or m.label == "PER" and w not in PARTICLES):
                words, kinds = words[:j], kinds[:j]
                break
        if m.label == "ORG" and words and self._institution([w for w, _, _ in words], kinds):
            start, end = words[0][1], words[-1][2]
            if (start, end) == (m.start, m.end):
                return m
            return Mention(start, end, text[start:end], m.label, m.canonical, dict(m.ids), m.source)
        lo, hi = 0, len(words)
        while lo < hi and kinds[lo] in (_NOUN, _FUNCTION, _LOWER):
            lo += 1
        trailing = (_FUNCTION, _LOWER) if m.label == "ORG" else (_NOUN, _FUNCTION, _LOWER, _ADJECTIVE)
        while hi > lo and kinds[hi - 1] in trailing:
            hi -= 1
        if m.label == "ORG":
            # "... der Partei": a lower-case word and nouns after it are not part of the name
            for j in range(lo + 1, hi):
                if kinds[j] == _LOWER and all(k in (_NOUN, _LOWER, _FUNCTION) for k in kinds[j:hi]):
                    hi = j
                    break
        if lo >= hi:
            return None
        core = kinds[lo:hi]
        if _NAME not in core and not (m.label == "ORG" and len(core) > 1 and (
                core[0] == _ADJECTIVE or ORG_ADJECTIVE.search(words[lo][0]) and _LOWER not in core)):
            return None  # "Frankfurter Buchmesse", "Europäischen Union", "Deutsche Post" stay
        start, end = words[lo][1], words[hi - 1][2]
        label = m.label
        if (start, end) != (m.start, m.end) and hi - lo in (2, 3) and FIRST_NAME in self.classes.get(words[lo][0], "") \
                and all(k == _NAME for k in kinds[lo:hi]):
            label = "PER"  # "Fall Alice Weidel" (ORG) -> "Alice Weidel"
        if hi - lo == 1:
            c = self.classes.get(words[lo][0], "")
            if label == "PER" and PLACE in c and PERSON not in c:
                label = "LOC"
            elif label == "LOC" and PERSON in c and PLACE not in c:
                label = "PER"
        if (start, end, label) == (m.start, m.end, m.label):
            return m
        return Mention(start, end, text[start:end], label, m.canonical, dict(m.ids), m.source)


def code_of(lang: str) -> str:
    return lang.split("-")[0].split("_")[0].lower()


@functools.cache
def load(code: str) -> NounLexicon | None:
    """The lexicon of a base language code ("de"), or None when there is none."""
    path = LEXICONS / f"{code}.tsv.gz"
    if not path.is_file():
        return None
    classes: dict[str, str] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            form, _, kinds = line.rstrip("\n").partition("\t")
            classes[form] = kinds
    return NounLexicon(code, classes)


def load_all() -> dict[str, NounLexicon]:
    """Every lexicon shipped, by language code."""
    found = {path.name.split(".")[0] for path in LEXICONS.glob("*.tsv.gz")}
    return {code: lexicon for code in sorted(found) if (lexicon := load(code)) is not None}
