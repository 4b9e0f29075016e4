"""Metadata of an HTML page from its markup: title, authors, publication date, site name, canonical
URL and declared language.

Read from what publishers declare for machines, most specific first: JSON-LD (schema.org
``NewsArticle`` and friends), Open Graph / article / Dublin Core / Parse.ly ``<meta>`` tags,
``<link rel=canonical>``, ``<html lang>``, then visible markup (``itemprop``, ``rel=author``,
``<time datetime>``, ``<h1>``). When no date is declared, htmldate looks at the page (its fast mode).
This replaces trafilatura's own metadata pass, which costs as much as the text extraction itself.
"""

from __future__ import annotations

import html as htmllib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree
from lxml import html as lxml_html

_TITLE_SUFFIX = re.compile(r"\s+[|\-–—:»·•/]\s+(?:(?!\s[|\-–—:»·•/]\s)[^|])[^|]{1,59}$")
_TITLE_PREFIX = re.compile(r"^[^|\-–—:»·•/]{2,40}\s+[|»·•]\s+")
_SITE_PREFIX = re.compile(r"^[^|\-–—:»·•/]{2,40}\s*[:|»·•\-–—]\s+")  # "Site: Headline" (only when it names the site)
_AUTHOR_SPLIT = re.compile(r"\s*(?:;|,|&|/|\+|\|)\s*|\s+(?:and|And|AND|und|UND|dan|Dan|DAN|serta|y|e|et|i|и|en|og|och)\s+")
_BY = re.compile(r"^(?:(?:analysis|written|posted|reported|published|story|text|words|compiled|publicado|escrito|"
                 r"geschrieben|écrit|ditulis|dilaporkan)\s+(?:by|por|von|par|oleh)|by|von|par|por|oleh|penulis|"
                 r"laporan|reporter|wartawan|pewarta|kontributor|author|authors|autor|autorin|auteur|door|"
                 r"text|texto|testo|текст|автор|written by)\s*[:：]?\s*", re.IGNORECASE)
_EMAIL_HANDLE_URL = re.compile(r"\S+@\S+|@\w+|https?://\S+|www\.\S+")
_PARENS = re.compile(r"\s*[(\[][^)\]]{0,40}[)\]]")
_NAME_CUT = re.compile(r"\s+(?:[|·•]|[-–—]{1,2}|::)\s+|\s+(?:on|am|le|el|em|pada|publiziert|published|updated|posted|"
                       r"aktualisiert|diperbarui)\s+(?=\S*\d|\w+\s+\d)", re.IGNORECASE)
_SENTENCE_DOT = re.compile(r"(?<=[^\W\d_]{3})\.\s+(?=[A-ZÀ-Ý])")  # "Finian Cunningham. Sputnik International"
_WEEKDAY_TAIL = re.compile(r"[\s,]+(?:mon|tues|wednes|thurs|fri|satur|sun)day\s*,?\s*$|[\s,]+(?:senin|selasa|rabu|"
                           r"kamis|jumat|sabtu|minggu)\s*,?\s*$", re.IGNORECASE)
_CREDENTIAL = re.compile(r"^(?:ms|ma|mba|mph|md|phd|ph\.d\.|rd|rdn|ld|cde|np|fnp|rn|do|dds|msc|bsc|ba|bs|cpa|cfa|"
                         r"jd|esq|lmft|cpt|dr|prof)\.?$", re.IGNORECASE)
# words that never belong to a person's name: organisations, desks, agencies, roles, site accounts
NON_PERSON_WORDS = frozenset("""
staff news press presse agency agencia agence agentur bureau team desk editorial editors editor redaktion
redaksi redacción rédaction redazione admin administrator administrador webmaster wire wires services service
reuters afp dpa ap apa sda ansa efe pti ians xinhua bernama antara kyodo yonhap bloomberg associated
magazine media group inc ltd gmbh llc corp corporation company online network tv radio television
times post daily journal herald tribune gazette guardian telegraph newsroom newsdesk contributor contributors
correspondent writer writers reporter reporters columnist producer anchor guest gast tamu гость invité invitado
blog website official department office ministry coordenadoria international internacional national
insider sport sports report reports digital studio studios foundation institute university club council
community partners partner sponsored content feeds feed the publisher redakcja today sumber source quelle
fuente fonte
""".split())
_MONTH_OR_DAY = re.compile(r"^(?:january|february|march|april|june|july|august|september|october|november|december|"
                           r"(?:jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.?|(?:mon|tues|wednes|thurs|fri|satur|sun)day|"
                           r"today|yesterday|updated|published|posted)$", re.IGNORECASE)
DESK_WORDS = frozenset("staff team desk editors reporters writers bureau redaktion redaksi redacción rédaction wire "
                       "services newsroom newsdesk".split())
_GLUED = re.compile(r"(?<=[a-z])(?=(?:January|February|March|April|May|June|July|August|September|October|November|"
                    r"December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec|Monday|Tuesday|Wednesday|Thursday|Friday|"
                    r"Saturday|Sunday|Updated|Published|Posted)\b)|(?<=[A-Z]{2})(?=[A-Z][a-z]{2,})|(?<=[a-z]{2})(?=[A-Z]{2,}\b)")
_NAME_PARTICLES = {"van", "von", "de", "der", "den", "da", "das", "do", "dos", "del", "della", "di", "du", "la",
                   "le", "bin", "binti", "al", "el", "ibn", "y", "e", "ter", "zu", "af", "st.", "mc", "mac"}
_ISO_LIKE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?"
                       r"\s*(Z|[+-]\d{2}:?\d{2})?)?")
_LANG = re.compile(r"^[a-zA-Z]{2,3}(?:[-_][a-zA-Z0-9]{2,8})*$")

ARTICLE_TYPES = {"newsarticle", "article", "reportagenewsarticle", "blogposting", "analysisnewsarticle",
                 "opinionnewsarticle", "backgroundnewsarticle", "socialmediaposting", "webpage", "report",
                 "scholarlyarticle", "techarticle", "liveblogposting", "review", "posting"}
DATE_META = ("article:published_time", "og:published_time", "og:article:published_time", "datepublished",
             "publishdate", "publish-date", "publish_date", "pubdate", "parsely-pub-date", "sailthru.date",
             "dc.date.issued", "dc.date", "dcterms.created", "dcterms.date", "date", "article.published",
             "cxenseparse:recs:publishtime", "originalpublicationdate", "content_publish_date",
             "article:published", "datecreated", "dc.date.created", "release_date", "published_time")
AUTHOR_META = ("author", "article:author", "og:article:author", "parsely-author", "sailthru.author",
               "dc.creator", "dcterms.creator", "byl", "cxenseparse:author", "twitter:creator:name", "authors")
TITLE_META = ("og:title", "twitter:title", "parsely-title", "dc.title", "sailthru.title", "title")
SITE_META = ("og:site_name", "application-name", "twitter:site:name", "publisher", "dc.publisher")


@dataclass
class PageMetadata:
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    published: str | None = None
    site: str | None = None
    canonical_url: str | None = None
    declared_lang: str | None = None


def unescape(text: str | None) -> str | None:
    """HTML entities decoded (twice at most: "&amp;#8217;" is common), no-break spaces as spaces,
    whitespace collapsed."""
    if not text:
        return text
    for _ in range(2):
        if "&" not in text:
            break
        text = htmllib.unescape(text)
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ")).strip()


_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def _squash(text: str) -> str:
    """Lowercase letters and digits only, umlauts spelt out and accents dropped ("Börsen-Zeitung" ->
    "boersenzeitung"), to compare a name with a host."""
    import unicodedata

    text = unicodedata.normalize("NFKD", text.lower().translate(_FOLD))
    return re.sub(r"\W+", "", "".join(ch for ch in text if not unicodedata.combining(ch)))


def _site_keys(*names: str | None) -> list[str]:
    """Comparable keys of a site's name and host: "www.thespacereview.com" -> "thespacereview"."""
    keys = []
    for name in names:
        if not name:
            continue
        name = name.lower().strip()
        if re.match(r"^(?:https?://)?(?:www\.)?[\w-]+(?:\.[\w-]+)+/?$", name):  # a host or URL: its labels
            labels = re.sub(r"^(?:https?://)?(?:www\.)?", "", name).rstrip("/").split(".")[:-1]
            keys += [k for k in (_squash(label) for label in labels) if len(k) >= 3 and k not in _HOST_WORDS]
            continue
        key = _squash(name)
        if len(key) >= 3:
            keys.append(key)
    return keys


_HOST_WORDS = {"com", "net", "org", "www", "news", "blog", "blogs", "edition", "amp", "m", "mobile"}


def _names_site(text: str, keys: list[str]) -> bool:
    key = _squash(text)
    return bool(key) and any(len(key) >= 3 and (key in k or k in key) for k in keys)


def strip_site_suffix(title: str | None, site: str | None, host: str | None = None) -> str | None:
    """"Headline | Site name" -> "Headline": the tail goes when it looks like the site's name (or
    any tail after " | ", which is how pages append their name); "Site | Headline" or "Site: Headline"
    likewise when the head names the site (its declared name or its host)."""
    if not title:
        return title
    title = unescape(title)
    site_key = re.sub(r"\W+", "", (site or "").lower().removeprefix("www.").split(".")[0])
    keys = _site_keys(site, host)
    match = _SITE_PREFIX.match(title)
    if match and keys and _names_site(match.group(0), keys) and len(title) - match.end() > 8:
        return strip_site_suffix(title[match.end():].strip(), site, host) or title
    match = _TITLE_PREFIX.match(title)
    if match and site_key:
        head_key = re.sub(r"\W+", "", match.group(0).lower())
        if head_key and (head_key in site_key or site_key in head_key):
            return strip_site_suffix(title[match.end():].strip(), site, host) or title
    match = _TITLE_SUFFIX.search(title)
    if match:
        head = title[:match.start()].strip()
        tail = match.group(0).strip(" |-–—:»·•/")
        tail_key = re.sub(r"\W+", "", tail.lower())
        sep = match.group(0).strip()[0]
        names_site = bool(site_key and tail_key and (tail_key in site_key or site_key in tail_key)) \
            or _names_site(tail, keys)
        generic = sep in "|»·•" and len(tail.split()) <= 4 and len(head.split()) > len(tail.split())
        if names_site or re.search(r"\.\w{2,3}$", tail) or generic:
            return strip_site_suffix(head, site, host) or title
    return title


def is_person_name(name: str, site_keys: list[str] = ()) -> bool:
    """Whether a cleaned byline name looks like a person: 1-5 words, no digits, no organisation,
    desk, agency or role word, not the site's own name or a domain, not a lower-case account
    handle ("kevin-r", "jdadmin") or an acronym ("AP", "PTI")."""
    tokens = name.split()
    if not 1 <= len(tokens) <= 5 or re.search(r"\d|@|https?:|\.(?:com|net|org|de|co|id|uk|in|ru|info)\b", name,
                                               re.IGNORECASE):
        return False
    words = {w for t in tokens for w in re.split(r"[-–]", t.lower().strip(".,'’():"))}
    if words & NON_PERSON_WORDS or tokens[0].lower() == "the" or any(_MONTH_OR_DAY.match(t) for t in tokens):
        return False
    if site_keys and _names_site(name, list(site_keys)) and len(_squash(name)) >= 4:
        return False
    latin = re.search(r"[A-Za-zÀ-ÿ]", name) is not None
    if latin:
        if name == name.lower():
            return False  # a handle or a phrase, not a name
        if len(tokens) == 1 and (name.isupper() or len(name) < 3):
            return False  # an acronym: AP, PTI, CNN
        capitalised = sum(1 for t in tokens if t[:1].isupper() or t.lower() in _NAME_PARTICLES or t[:1] in "'’")
        if capitalised < len(tokens) - (1 if len(tokens) >= 4 else 0):
            return False
    return True


def clean_author(name: str) -> str | None:
    """One byline name without its label ("By", "Text:"), contact details, parenthesised initials
    or sources ("(obe)", "(www.dw.com)"), role or outlet after a dash or bar ("- Staff Writer",
    "| Fox News"), trailing date, and credentials; capitals to title case."""
    name = unescape(name) or ""
    name = _EMAIL_HANDLE_URL.sub(" ", name)
    name = _PARENS.sub(" ", name)
    name = re.sub(r"\s+", " ", name).strip(" ,;|-–—:")
    name = _BY.sub("", name).strip()
    name = _NAME_CUT.split(name, maxsplit=1)[0]
    name = _SENTENCE_DOT.split(name, maxsplit=1)[0]
    from pipeline.stages.clean.dates import find_date

    if any(ch.isdigit() for ch in name):
        found = find_date(name)
        if found:
            name = name[:found[1].start()]
        name = re.split(r"\s\S*\d", name, maxsplit=1)[0]
    name = _WEEKDAY_TAIL.sub("", name)
    name = re.sub(r"(?:\s+(?:on|am|at|le|el|em|pada|um|il|den|à|a las|às))+\s*[,|·•-]*$", "", name.strip(" ,|·•-"))
    tokens = name.split()
    if {t.lower().strip(".,") for t in tokens} & DESK_WORDS:
        return None  # "Science X staff", "Telegraph Sport Desk"
    for i in range(2, len(tokens) - 1):  # "Tom Davies Associated Press", "Kevin McCoy USA TODAY": the outlet goes
        low = tokens[i].lower().strip(".,")
        if low in NON_PERSON_WORDS or (tokens[i].isupper() and len(tokens[i]) >= 2 and not tokens[0].isupper()):
            name = " ".join(tokens[:i])
            break
    name = re.sub(r"\s+", " ", name).strip(" ,;|-–—:·•.") + ("." if re.search(r"\b[A-Z]$", name.strip(" ,;")) else "")
    name = name.rstrip(".") if not re.search(r"\b(?:Jr|Sr|[A-Z])\.$", name) else name
    if not name or len(name) > 60 or _CREDENTIAL.match(name):
        return None
    if not re.search(r"[^\W\d_]", name):
        return None
    if name.isupper() and len(name) > 3 and " " in name:
        name = name.title()
    return name


def split_authors(value: str | list | None, site_keys: list[str] = ()) -> list[str]:
    """A byline ("By A, B and C", "A und B", "A dan B") or a list of names -> the persons in it
    (["A", "B", "C"]); roles, outlets, agencies, credentials and site names are left out."""
    if not value:
        return []
    parts = value if isinstance(value, list) else [value]
    out: list[str] = []
    pieces_seen = 0
    for part in parts:
        if not isinstance(part, str):
            continue
        part = _GLUED.sub(" ", unescape(part) or "")
        if re.search(r"\((?:https?://|www\.)?[\w-]+\.[a-z]{2,}[^)]*\)", part):
            continue  # "Deutsche Welle (www.dw.com)": a publisher naming its site
        from pipeline.stages.clean.dates import find_date

        if any(ch.isdigit() for ch in part):
            found = find_date(part)
            if found:
                part = part[:found[1].start()]
        part = _PARENS.sub(" ", _EMAIL_HANDLE_URL.sub(" ", part))
        part = _BY.sub("", part.strip(" ,;|-–—:"))
        part = _NAME_CUT.split(part, maxsplit=1)[0]
        for piece in _AUTHOR_SPLIT.split(part):
            if piece.strip():
                pieces_seen += 1
            name = clean_author(piece)
            if name and is_person_name(name, site_keys) and name not in out:
                out.append(name)
    if pieces_seen > 1:  # "Victor Tangermann, Futurism", "Reuters, Washington": a lone word is an outlet or a place
        out = [n for n in out if " " in n or not re.search(r"[A-Za-z]", n)]
    return list(dict.fromkeys(out))


def normalise_date(value: str | None) -> str | None:
    """ISO-8601 date or date-time (with its offset when given) from a machine-readable date."""
    if not value or not isinstance(value, str):
        return None
    m = _ISO_LIKE.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second, zone = m.groups()
    try:
        if hour is None:
            return datetime(int(year), int(month), int(day)).date().isoformat()
        text = f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}"
        if zone:
            text += "+00:00" if zone == "Z" else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        return None


def moment_of(iso_value: str) -> datetime:
    """The instant of an ISO date or date-time (UTC when no offset; midnight for a bare date)."""
    dt = datetime.fromisoformat(iso_value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _json_ld_objects(tree) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, list):
            for item in obj:
                walk(item)
        elif isinstance(obj, dict):
            found.append(obj)
            if "@graph" in obj:
                walk(obj["@graph"])

    for script in tree.xpath('//script[@type="application/ld+json"]'):
        raw = (script.text or "").strip()
        if not raw:
            continue
        try:
            walk(json.loads(raw))
        except ValueError:
            continue
    return found


def _types(obj: dict[str, Any]) -> set[str]:
    kind = obj.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {k.lower() for k in kinds if isinstance(k, str)}


def _ld_names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        name = value.get("name")
        return [name] if isinstance(name, str) else []
    if isinstance(value, list):
        return [n for item in value for n in _ld_names(item)]
    return []


def _meta_tags(tree) -> dict[str, str]:
    """name/property/itemprop (lowercased) -> first non-empty content."""
    tags: dict[str, str] = {}
    for meta in tree.iter("meta"):
        content = meta.get("content")
        if not content or not content.strip():
            continue
        for attr in ("property", "name", "itemprop", "http-equiv"):
            key = meta.get(attr)
            if key:
                tags.setdefault(key.strip().lower(), content.strip())
    return tags


def _text(el) -> str:
    return re.sub(r"\s+", " ", el.text_content()).strip()


_WORD_RE = re.compile(r"\w+", re.UNICODE)
_SKIP_ANCESTORS = re.compile(r"(?:^|[\s_-])(?:comments?|related|widget|sidebar|footer|recirc|promo|newsletter|trending|"
                             r"popular|teaser|rail|nav|navigation|menu|more)(?:$|[\s_-])", re.IGNORECASE)
_BYLINE_CLASS = re.compile(r"byline|by-line|author|writer|contributor|credit-name|reporter", re.IGNORECASE)
_NOT_BYLINE_CLASS = re.compile(r"comment|avatar|bio|desc|about|excerpt|gear|follow|social|share|image|photo|"
                               r"caption|widget", re.IGNORECASE)
_BYLINE_TEXT = re.compile(r"^(?:(?:analysis|written|posted|reported|text|words|story|publicado|escrito|ditulis)\s+"
                          r"(?:by|por|von|par|oleh)|by|von|par|por|oleh|penulis|laporan|reporter|wartawan|"
                          r"text|texto|текст|автор|autor|auteur|door)\b\s*[:：]?\s*\S", re.IGNORECASE)
TITLE_MATCH = 0.6   # share of the shorter title's words the visible headline and a declared title share


def _words_of(text: str) -> list[str]:
    return [w.casefold() for w in _WORD_RE.findall(text)]


def title_similarity(a: str, b: str) -> float:
    """Share of the shorter title's words that the other has (1.0 when one contains the other)."""
    wa, wb = _words_of(a), _words_of(b)
    if not wa or not wb:
        return 0.0
    shorter, longer = (wa, set(wb)) if len(wa) <= len(wb) else (wb, set(wa))
    return sum(1 for w in shorter if w in longer) / len(shorter)


def _visible_headings(tree) -> list:
    """<h1> elements with text, outside navigation and page chrome (at most 8)."""
    out = []
    for h in tree.iter("h1"):
        text = _text(h)
        if text and len(text) <= 300:
            out.append(h)
            if len(out) >= 8:
                break
    return out


def choose_title(declared: list[str], headings: list[str], site_keys: list[str]) -> str | None:
    """The headline a reader sees: the visible <h1> that matches what the page declares (JSON-LD
    headline, og:title, <title>, all without the site's name); else the first declared title; else
    the first <h1> that is not the site's name."""
    best, best_sim = None, 0.0
    for text in headings:
        if _names_site(text, site_keys) and len(_words_of(text)) <= 4:
            continue  # the site's logo or name in an h1
        sim = max((title_similarity(text, d) for d in declared), default=0.0)
        if sim > best_sim + 1e-9:
            best, best_sim = text, sim
    if best is not None and best_sim >= TITLE_MATCH and len(_words_of(best)) >= 2:
        return best
    if declared:
        return declared[0]
    for text in headings:
        if not _names_site(text, site_keys) and len(_words_of(text)) >= 3:
            return text
    return None


def _skipped(el) -> bool:
    """Inside comments, related lists, widgets, navigation or the footer."""
    node = el
    for _ in range(12):
        if node is None or node.tag in ("body", "html"):
            return False
        attrs = f"{node.get('class', '')} {node.get('id', '')}"
        if node.tag in ("footer", "nav", "aside") or (attrs.strip() and _SKIP_ANCESTORS.search(attrs)):
            return True
        node = node.getparent()
    return False


_LABEL_ONLY = re.compile(r"^(?:(?:written|posted|reported|text|words|story|publicado|escrito|ditulis)\s+(?:by|por|von|par|oleh)|"
                         r"by|von|par|por|oleh|penulis|laporan|reporter|wartawan|author|autor|auteur|text|texto|"
                         r"текст|автор|door)\s*[:：]?$", re.IGNORECASE)
_CONNECTOR = re.compile(r"^(?:,|&|and|und|dan|y|et|e|и)$", re.IGNORECASE)
_DATE_WORDS = re.compile(r"^(?:published|updated|posted|publiziert|aktualisiert|diterbitkan|dipublikasikan)\b",
                         re.IGNORECASE)


# compiled once: an XPath given as a string to .xpath() is compiled again at every call
_SHOWN_TEXTS = etree.XPath("descendant::text()[not(ancestor::script) and not(ancestor::style)]")
_OWN_TEXT = etree.XPath("text()")
_TEXTS_BEFORE = etree.XPath("preceding::text()[not(ancestor::script) and not(ancestor::style)]"
                            "[normalize-space()][position() <= 4]")


def _texts_after(el, limit: int = 40) -> list[str]:
    """The first ``limit`` non-empty texts that follow ``el`` in the document (its tail, then the
    following elements' texts; scripts and styles skipped), without walking the whole document."""
    texts: list[str] = []

    def add(text: str | None) -> bool:
        if text and text.strip():
            texts.append(re.sub(r"\s+", " ", text).strip())
        return len(texts) >= limit

    if add(el.tail):
        return texts
    node = el
    while node is not None:
        for sib in node.itersiblings():
            if isinstance(sib.tag, str) and sib.tag not in ("script", "style", "noscript"):
                for text in (_SHOWN_TEXTS(sib) if len(sib) else _OWN_TEXT(sib)):
                    if add(text):
                        return texts
            if add(sib.tail):
                return texts
        node = node.getparent()
        if node is not None and add(node.tail):
            return texts
    return texts


def _dated(text: str) -> bool:
    from pipeline.stages.clean.dates import find_date

    return bool(_DATE_WORDS.match(text) or find_date(text))


def byline_after_headline(headline_el, site_keys: list[str]) -> tuple[list[str], bool]:
    """A byline among the first texts after the headline: "By" and the names after it, a "By ..."
    text (strong: True), or a text of names right before a date ("Dan Evon" / "Published 18 November
    2019"; weak: False)."""
    texts = _texts_after(headline_el)
    for i, text in enumerate(texts):
        if i >= 3 and len(text.split()) > 40:
            break  # the article has begun
        line = None
        if _LABEL_ONLY.match(text):
            parts = []
            for nxt in texts[i + 1:i + 6]:
                if _dated(nxt) or len(nxt.split()) > 12 or nxt in parts:
                    break
                parts.append(nxt)
            line = " ".join(parts)
        elif _BYLINE_TEXT.match(text) and len(text.split()) <= 20:
            parts = [text]
            for nxt in texts[i + 1:i + 5]:
                if _CONNECTOR.match(nxt) or (parts and _CONNECTOR.match(parts[-1])):
                    parts.append(nxt)
                else:
                    break
            line = " ".join(parts)
        elif i < 8 and len(text.split()) <= 8 and any(_dated(t) for t in texts[i + 1:i + 3]) \
                and not re.search(r"[>»/|]", " ".join(texts[max(0, i - 1):i])):
            names = split_authors(text, site_keys)
            if names and all(2 <= len(n.split()) <= 3 for n in names):
                return names, False
        if line:
            names = split_authors(line.replace(" , ", ", "), site_keys)
            if names:
                return names, True
    return [], False


def visible_byline(tree, headline_el, site_keys: list[str]) -> list[str]:
    """Authors from what the reader sees: a byline among the first texts after the headline, else
    the first byline/author element (by class, itemprop or rel) outside comments and widgets."""
    if headline_el is not None:
        names, _ = byline_after_headline(headline_el, site_keys)
        if names:
            return names
    for n, el in enumerate(tree.iter()):
        if n >= 5000:
            break
        if not isinstance(el.tag, str):
            continue
        attrs = f"{el.get('class', '')} {el.get('id', '')} {el.get('itemprop', '')} {el.get('rel', '')}"
        if len(attrs) <= 3 or not _BYLINE_CLASS.search(attrs) or _NOT_BYLINE_CLASS.search(attrs):
            continue
        text = _text(el)
        if not text or len(text) > 120 or _skipped(el):
            continue
        names = split_authors(text, site_keys)
        if names:
            return names
    return []


def _shown_day_fits(shown: str, declared: str) -> bool:
    """Whether the day a page shows may be the local day of the date its markup declares: one day
    apart from a date or a time without a zone; for a UTC instant, the other day it falls on in
    some zone (UTC-12 to UTC+14). A declared date with another offset gives its local day already, so a
    different day shown near the headline is something else (a photo caption, the masthead's date)."""
    try:
        day = datetime.fromisoformat(shown[:10]).date()
        if len(declared) <= 10:  # a date only: perhaps the UTC day of a local one
            return abs((day - datetime.fromisoformat(declared).date()).days) == 1
        instant = datetime.fromisoformat(declared.replace("Z", "+00:00"))
    except ValueError:
        return False
    if instant.utcoffset() is None:  # a local time of an unknown zone
        return abs((day - instant.date()).days) == 1
    if instant.utcoffset() != timedelta(0):
        return False
    earliest, latest = (instant - timedelta(hours=12)).date(), (instant + timedelta(hours=14)).date()
    return earliest <= day <= latest and day != instant.date()


def _usable_date(value: str | None) -> str | None:
    date = normalise_date(value)
    return date if date and 1995 <= int(date[:4]) <= 2100 else None


def page_metadata(tree, url: str | None) -> PageMetadata:
    """Everything the page declares about itself. ``tree`` is an lxml HTML tree (not modified)."""
    meta = _meta_tags(tree)
    articles = [o for o in _json_ld_objects(tree) if _types(o) & ARTICLE_TYPES]
    articles.sort(key=lambda o: "webpage" in _types(o))  # a real article before a generic page
    out = PageMetadata()

    # site name
    for obj in articles:
        names = _ld_names(obj.get("publisher"))
        if names:
            out.site = unescape(names[0].strip())
            break
    if not out.site:
        out.site = unescape(next((meta[k] for k in SITE_META if k in meta and not meta[k].startswith("http")), None))
    host = (urlsplit(url).hostname or "") if url else ""
    host = host.removeprefix("www.")
    site_keys = _site_keys(out.site, host)

    # title: the visible headline when it matches a declared one
    declared = []
    for obj in articles:
        headline = obj.get("headline") or obj.get("name")
        if isinstance(headline, str) and headline.strip():
            declared.append(headline)
            break
    declared += [meta[k] for k in TITLE_META if k in meta]
    node = tree.find(".//title")
    if node is not None and _text(node):
        declared.append(_text(node))
    declared = [t for t in (strip_site_suffix(d, out.site, host) for d in declared) if t]
    declared = list(dict.fromkeys(declared))
    heading_els = _visible_headings(tree)
    headings = [unescape(_text(h)) for h in heading_els]
    out.title = choose_title(declared, headings, site_keys)
    headline_el = next((h for h, t in zip(heading_els, headings, strict=True) if t == out.title), None)

    # authors: persons from JSON-LD, <meta>, the visible byline; publishers, desks and agencies left out
    structured: list[str] = []
    for obj in articles:
        people = obj.get("author") or obj.get("creator")
        items = people if isinstance(people, list) else [people]
        names = [n for item in items
                 if not (isinstance(item, dict) and _types(item) & {"organization", "newsmediaorganization"})
                 for n in _ld_names(item)]
        structured = split_authors(names, site_keys)
        if structured:
            break
    if not structured:
        for key in AUTHOR_META:
            if key in meta and not meta[key].startswith(("http://", "https://")):
                structured = split_authors(meta[key], site_keys)
                if structured:
                    break
    under_headline, strong = byline_after_headline(headline_el, site_keys) if headline_el is not None else ([], False)
    seen = under_headline or visible_byline(tree, None, site_keys)
    if strong or (seen and (not structured or set(seen) & set(structured))):
        out.authors = seen  # what the reader sees, complete when the markup names only the first author
    else:
        out.authors = structured or seen
    if out.site:
        out.authors = [a for a in out.authors if a.lower() != out.site.lower()]

    # publication date
    for obj in articles:
        out.published = _usable_date(obj.get("datePublished")) or _usable_date(obj.get("dateCreated"))
        if out.published:
            break
    if not out.published:
        out.published = next((d for d in (_usable_date(meta.get(k)) for k in DATE_META) if d), None)
    if not out.published:
        for node in tree.xpath('//*[@itemprop="datePublished"] | //time[@datetime][@pubdate]'
                               ' | //article//time[@datetime] | //time[@datetime]')[:3]:
            out.published = _usable_date(node.get("datetime") or node.get("content"))
            if out.published:
                break
    if headline_el is not None:
        shown = dateline_near(headline_el)
        if shown and (not out.published or _shown_day_fits(shown, out.published)):
            out.published = shown  # the day the reader sees, not the UTC day of the markup

    # canonical URL and declared language
    canonical = tree.xpath('//link[@rel="canonical"]/@href')
    href = (canonical[0].strip() if canonical else None) or meta.get("og:url")
    if href:
        out.canonical_url = urljoin(url, href) if url else href
    if not (out.canonical_url or "").startswith(("http://", "https://")):
        out.canonical_url = url
    root = tree.getroottree().getroot()
    lang = root.get("lang") or root.get("xml:lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang") \
        or meta.get("content-language") or meta.get("og:locale") or meta.get("language")
    if lang:
        lang = lang.split(",")[0].strip().replace("_", "-")
        out.declared_lang = lang if _LANG.match(lang) else None
    return out


def dateline_near(headline_el) -> str | None:
    """A date printed in the short texts right after the headline, else right before it
    ("Nov 18, 2019 at 9:24 pm ET", "Von ... publiziert am 30. Juli 2018")."""
    from pipeline.stages.clean.dates import find_date

    for i, text in enumerate(_texts_after(headline_el, limit=20)):
        if i >= 3 and len(text.split()) > 25:
            break
        if len(text.split()) <= 25:
            found = find_date(text)
            if found:
                return found[0]
    before = _TEXTS_BEFORE(headline_el)
    for text in before:  # nearest first
        text = re.sub(r"\s+", " ", text).strip()
        if len(text.split()) <= 25:
            found = find_date(text)
            if found:
                return found[0]
    return None


def fallback_date(tree, url: str | None) -> str | None:
    """htmldate's quick search (URL, common markup, page text) when the page declares no date."""
    try:
        from htmldate import find_date

        found = find_date(tree, extensive_search=False, original_date=True, url=url)
    except Exception:  # htmldate on odd markup: no date rather than no record
        return None
    return normalise_date(found) if found else None


# trafilatura's parser settings. Every element is an lxml.html HtmlElement, chosen in C: lxml.html's
# own parser picks each element's class in a Python method, called for every element any code
# touches (~4 million calls over the 1,171 pages of the shared HTML sets). Same trafilatura output and
# metadata on every one of those pages, ~5 % less CPU in the child (bench/clean/README.md, issue 20).
_PARSER = lxml_html.HTMLParser(collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True,
                               remove_pis=True)
_PARSER.set_element_class_lookup(etree.ElementDefaultClassLookup(
    element=lxml_html.HtmlElement, comment=lxml_html.HtmlComment, pi=lxml_html.HtmlProcessingInstruction,
    entity=lxml_html.HtmlEntity))


def parse_html(page: str):
    """An lxml tree of the page, read as trafilatura reads it (its repairs of faulty markup, its
    parser settings, the page as UTF-8 bytes when lxml refuses the string), or None when it is not
    HTML (a fragment of at most one element without an ``html`` tag near its start)."""
    from trafilatura.utils import repair_faulty_html

    beginning = page[:50].lower()
    page = repair_faulty_html(page, beginning)
    try:
        tree = lxml_html.fromstring(page, parser=_PARSER)
    except ValueError:  # a string that declares its encoding
        tree = None
    except etree.LxmlError:
        tree = None
    if tree is None or len(tree) < 1:
        try:
            tree = lxml_html.fromstring(page.encode("utf-8", "surrogatepass"), parser=_PARSER)
        except (ValueError, etree.LxmlError):
            tree = None
    if tree is not None and "html" not in beginning and len(tree) < 2:
        return None
    return tree
