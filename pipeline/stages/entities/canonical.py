"""Canonical names and gazetteer ids for entity mentions, whichever tagger found them.

``canonicalise(entities, gaz)`` takes ``{text, label, start, end, ...}`` dicts (our model, a spaCy
pipeline, the rules) and fills ``canonical`` and ``ids``:

1. Institutions of a country: "Kemlu Rusia", "Kementerian Luar Negeri Rusia", "Russia's Foreign
   Ministry" -> "Ministry of Foreign Affairs of Russia" (ids: the country's ISO 3166 code).
2. Gazetteer names (accent- and case-folded): "MOSKWA" -> Moscow (GeoNames 524901), "Perancis" ->
   France (ISO FR), "AS" -> United States, "PBB" -> United Nations; also in scripts without capitals
   ("موسكو", "莫斯科" -> Moscow; ``caseless.py``).
3. People: role words in front are not part of the name ("Presiden Joko Widodo" -> "Joko Widodo"),
   all-capitals names are title-cased, and a surname alone takes the full name mentioned in the same
   document ("Peskov" -> "Dmitry Peskov").
4. Abbreviations defined in the text: "Mahkamah Konstitusi (MK)" -> MK is "Mahkamah Konstitusi" (and the
   mention "Mahkamah Konstitusi (MK)", where a tagger gives it whole, is "Mahkamah Konstitusi").
5. Anything else: the mention text with spaces normalised and leading lower-case words ("kota
   Martakert", "desa Tonashen") left out.
"""

from __future__ import annotations

from typing import Any

from pipeline.stages.entities import caseless
from pipeline.stages.entities.gazetteer import Gazetteer, without_ending, without_short_form
from pipeline.stages.entities.rules import INSTITUTIONS, ROLE_WORDS, _country_prefix

PERSON_SKIP = ROLE_WORDS | {"the", "sang", "si", "mr.", "mrs."}


def institution(text: str, gaz: Gazetteer) -> tuple[str, dict[str, str]] | None:
    """("Ministry of Foreign Affairs of Russia", {"country": "RU"}) for "Kemlu Rusia", else None."""
    titled = " ".join(w[:1].upper() + w[1:] for w in text.split())  # "Kementerian pertahanan Armenia"
    for pattern, template, country_first in INSTITUTIONS:
        m = pattern.fullmatch(text) or pattern.fullmatch(titled)
        if m is None:
            continue
        found = _country_prefix(m.group("c"), gaz, from_end=country_first)
        if found is not None and (country_first or found[0] == m.group("c")):
            country = found[1]
            return template.format(country.canonical), {"country": dict(country.ids).get("iso3166", "")}
    return None


def person_name(text: str) -> str:
    words = text.replace("\n", " ").split()
    while len(words) > 1 and words[0].lower().rstrip(".") in PERSON_SKIP:
        words = words[1:]
    if words and words[-1].endswith(("'s", "’s")):
        words[-1] = words[-1][:-2]
    name = " ".join(words)
    if name.isupper() and len(name) > 4:
        name = " ".join(w.capitalize() for w in words)
    return name


def canonicalise(entities: list[dict[str, Any]], gaz: Gazetteer, text: str | None = None) -> list[dict[str, Any]]:
    """Fill ``canonical`` and ``ids`` of every entity (in place) and return the list. With the
    ``text`` the offsets point into, abbreviations defined in it take their name's canonical form."""
    full_names: dict[str, str] = {}
    for ent in entities:
        surface, _ = without_short_form(" ".join(ent["text"].split()))  # "Mahkamah Konstitusi (MK)": the name
        found = institution(surface, gaz)
        if found is not None:
            ent["canonical"], ent["ids"] = found
            continue
        entry = gaz.get(surface) or caseless.load().names.get(surface) or gaz.get(without_ending(surface))
        if entry is not None and (entry.label == ent["label"] or entry.label == "LOC" and ent["label"] == "ORG"):
            ent["canonical"], ent["ids"] = entry.canonical, dict(entry.ids)
            continue
        if ent["label"] == "PER":
            name = person_name(surface)
            ent["canonical"], ent["ids"] = name, {}
            if " " in name:
                full_names.setdefault(name.split()[-1], name)
        else:
            words = surface.split()
            while len(words) > 1 and words[0].islower():  # "kota Martakert" -> "Martakert"
                words = words[1:]
            ent["canonical"], ent["ids"] = " ".join(words), {}
    for ent in entities:  # a surname alone: the full name of the same document
        if ent["label"] == "PER" and " " not in ent["canonical"] and ent["canonical"] in full_names:
            ent["canonical"] = full_names[ent["canonical"]]
    _abbreviations(entities, text)
    return entities


def _abbreviations(entities: list[dict[str, Any]], text: str | None) -> None:
    """"Partai Persatuan Pembangunan (PPP)": PPP, here and elsewhere in the text, takes the name's
    canonical form (unless the gazetteer knows PPP)."""
    if not text:
        return
    ordered = sorted(entities, key=lambda e: e["start"])
    expansions: dict[str, dict[str, Any]] = {}
    for ent in ordered:  # one mention with its short form: "Mahkamah Konstitusi (MK)"
        short = without_short_form(" ".join(ent["text"].split()))[1]
        if short is not None and short.isupper() and " " in ent["canonical"]:
            expansions.setdefault(short, ent)
    for name, abbr in zip(ordered, ordered[1:], strict=False):
        between = text[name["end"]:abbr["start"]]
        if between.strip() == "(" and text[abbr["end"]:abbr["end"] + 1] == ")" and abbr["text"].isupper() \
                and " " in name["canonical"] and abbr["label"] == name["label"] and not abbr["ids"]:
            expansions.setdefault(abbr["text"], name)
    for ent in entities:
        name = expansions.get(ent["text"])
        if name is not None and not ent["ids"] and ent["label"] == name["label"]:
            ent["canonical"], ent["ids"] = name["canonical"], dict(name["ids"])
