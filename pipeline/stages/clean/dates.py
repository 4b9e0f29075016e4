"""Find publication dates in short lines of page text (Indonesian, Malay, English and more).

Handles the forms news sites print near a headline, for example::

    RABU, 20 SEPTEMBER 2023 | 06:12 WIB | LAPORAN: RENI ERINA
    Kompas.com - 01/10/2020, 15:32 WIB
    Senin, 25 November 2024 | 18:57
    September 20, 2023 10:15 AM EDT
    2023-09-20T06:12:00+07:00

A date later than the fetch time is never returned.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

MONTHS = {
    # Indonesian / Malay
    "januari": 1, "februari": 2, "pebruari": 2, "maret": 3, "mac": 3, "april": 4, "mei": 5,
    "juni": 6, "jun": 6, "juli": 7, "julai": 7, "agustus": 8, "ogos": 8, "agu": 8, "agt": 8,
    "september": 9, "oktober": 10, "okt": 10, "november": 11, "nopember": 11, "desember": 12,
    "disember": 12, "des": 12,
    # English
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "apr": 4, "may": 5,
    "june": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "sept": 9, "sep": 9, "october": 10,
    "oct": 10, "nov": 11, "december": 12, "dec": 12,
    # German, French, Spanish, Portuguese, Italian, Dutch (common spellings)
    "januar": 1, "februar": 2, "märz": 3, "maerz": 3, "dezember": 12,
    "janvier": 1, "février": 2, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6,
    "juillet": 7, "août": 8, "aout": 8, "septembre": 9, "octobre": 10, "novembre": 11,
    "décembre": 12, "decembre": 12,
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
    "janeiro": 1, "fevereiro": 2, "março": 3, "maio": 5, "junho": 6, "julho": 7, "setembro": 9,
    "outubro": 10, "dezembro": 12,
    "gennaio": 1, "febbraio": 2, "aprile": 4, "maggio": 5, "giugno": 6, "luglio": 7, "settembre": 9,
    "ottobre": 10, "dicembre": 12,
    "maart": 3, "augustus": 8,
    # Russian (genitive, as in dates)
    "января": 1, "февраля": 2, "марта": 3, "апреля": 4, "мая": 5, "июня": 6, "июля": 7, "августа": 8,
    "сентября": 9, "октября": 10, "ноября": 11, "декабря": 12,
}

ZONES = {
    "wib": 7, "wita": 8, "wit": 9, "myt": 8, "sgt": 8, "pht": 8, "ict": 7, "jst": 9, "kst": 9,
    "utc": 0, "gmt": 0, "z": 0, "cet": 1, "cest": 2, "bst": 1, "eet": 2, "eest": 3, "msk": 3,
    "ist": 5.5, "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6, "pst": -8, "pdt": -7,
    "aest": 10, "aedt": 11,
}

_MONTH_RE = "|".join(sorted((re.escape(m) for m in MONTHS), key=len, reverse=True))
_TIME = r"(?:(?:pukul|jam|at|um|à|a las|às|alle)\s+)?(?P<h>\d{1,2})[:.](?P<mi>\d{2})(?:[:.](?P<s>\d{2}))?\s*(?P<ampm>[ap]\.?m\.?)?"
_ZONE = r"(?:\s*(?P<zone>WIB|WITA|WIT|MYT|SGT|UTC|GMT|CEST|CET|BST|EEST|EET|MSK|IST|EDT|EST|CDT|CST|MDT|MST|PDT|PST|AEST|AEDT)\b)?(?:\s*(?P<off>[+-]\d{1,2}(?::?\d{2})?))?"

_DIGIT = re.compile(r"\d")
_PATTERNS = [
    # 2023-09-20T06:12:00+07:00 / 2023-09-20 06:12
    re.compile(r"\b(?P<y>(?:19|20)\d{2})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?:[T ](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?(?:\.\d+)?(?P<iso_off>Z|[+-]\d{2}:?\d{2})?)?", re.I),
    # 20 September 2023 [| 06:12 WIB]
    re.compile(rf"\b(?P<d>\d{{1,2}})\.?\s+(?:de\s+)?(?P<mon>{_MONTH_RE})\.?,?\s+(?:de\s+)?(?P<y>(?:19|20)\d{{2}})(?:\b|(?=\d{{1,2}}:))(?:[,|\s\-–—]*{_TIME}{_ZONE})?", re.I),
    # September 20, 2023 [10:15 AM EDT] (also "Nov 19 20197:05 AM", year and time run together)
    re.compile(rf"\b(?P<mon>{_MONTH_RE})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>(?:19|20)\d{{2}})(?:\b|(?=\d{{1,2}}:))(?:[,|\s\-–—]*{_TIME}{_ZONE})?", re.I),
    # 01/10/2020, 15:32 WIB (day first, as nearly everywhere outside the US; month first when the
    # first number cannot be a month: 11/19/2019)
    re.compile(rf"\b(?P<d>\d{{1,2}})[/.](?P<m>\d{{1,2}})[/.](?P<y>(?:19|20)\d{{2}})\b(?:[,|\s\-–—]*{_TIME}{_ZONE})?", re.I),
    # 2016.12.01 / 2016/12/01
    re.compile(rf"\b(?P<y>(?:19|20)\d{{2}})[/.](?P<m>\d{{1,2}})[/.](?P<d>\d{{1,2}})\b(?:[,|\s\-–—]*{_TIME}{_ZONE})?", re.I),
]


def _offset(match: re.Match[str]) -> timezone | None:
    groups = match.groupdict()
    if groups.get("iso_off"):
        raw = groups["iso_off"]
        if raw.upper() == "Z":
            return UTC
        sign = -1 if raw[0] == "-" else 1
        digits = raw[1:].replace(":", "")
        return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0)))
    if groups.get("off"):
        raw = groups["off"]
        sign = -1 if raw[0] == "-" else 1
        digits = raw[1:].replace(":", "")
        hours = int(digits[:-2] if len(digits) > 2 else digits)
        minutes = int(digits[-2:]) if len(digits) > 2 else 0
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    if groups.get("zone"):
        hours = ZONES[groups["zone"].lower()]
        return timezone(timedelta(hours=hours))
    return None


def find_date(line: str, not_after: datetime | None = None) -> tuple[str, re.Match[str]] | None:
    """The first plausible date in ``line`` as ISO-8601 (date, or date-time when a time is given)."""
    if not _DIGIT.search(line):
        return None  # every form has digits: skip the expensive patterns
    for pattern in _PATTERNS:
        for match in pattern.finditer(line):
            g = match.groupdict()
            try:
                year = int(g["y"])
                month = int(g["m"]) if g.get("m") else MONTHS[g["mon"].lower().rstrip(".")]
                day = int(g["d"])
                if g.get("m") and month > 12 >= day:
                    day, month = month, day  # 11/19/2019: the US order
                if g.get("h") is not None:
                    hour, minute = int(g["h"]), int(g["mi"])
                    second = int(g["s"] or 0)
                    ampm = (g.get("ampm") or "").lower().replace(".", "")
                    if ampm == "pm" and hour < 12:
                        hour += 12
                    elif ampm == "am" and hour == 12:
                        hour = 0
                    tz = _offset(match)
                    dt = datetime(year, month, day, hour, minute, second, tzinfo=tz)
                    value = dt.isoformat()
                    moment = dt if tz else dt.replace(tzinfo=UTC)
                else:
                    dt = datetime(year, month, day)
                    value = dt.date().isoformat()
                    moment = dt.replace(tzinfo=UTC)
            except (KeyError, ValueError):
                continue
            if not_after is not None and moment - timedelta(hours=14) > not_after:
                continue  # a "date" after the page was fetched is not its publication date
            return value, match
    return None
