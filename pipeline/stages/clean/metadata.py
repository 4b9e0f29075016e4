"""Metadata of an HTML page from its markup: title, authors, publication date, site name, canonical
URL and declared language.

Read from what publishers declare for machines, most specific first: JSON-LD (schema.org
``NewsArticle`` and friends), Open Graph / article / Dublin Core / Parse.ly ``<meta>`` tags,
``<link rel=canonical>``, ``<html lang>``, then visible markup (``itemprop``, ``rel=author``,
``<time datetime>``, ``<h1>``). When no date is declared, htmldate looks at the page (its fast mode).
This replaces trafilatura's own metadata pass, which costs as much as the text extraction itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

_TITLE_SUFFIX = re.compile(r"\s+[|\-–—:»·•/]\s+[^|\-–—:»·•/]{2,60}$")
_TITLE_PREFIX = re.compile(r"^[^|\-–—:»·•/]{2,40}\s+[|»·•]\s+")
_AUTHOR_SPLIT = re.compile(r"\s*(?:;|,|&|\band\b|\bund\b|\bdan\b|\by\b|\bet\b|\|)\s*", re.IGNORECASE)
_BY = re.compile(r"^(?:by|von|par|por|oleh|penulis|reporter|author|autor|auteur)\s*[:：]?\s+", re.IGNORECASE)
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


def strip_site_suffix(title: str | None, site: str | None) -> str | None:
    """"Headline | Site name" -> "Headline": the tail goes when it looks like the site's name (or
    any tail after " | ", which is how pages append their name); "Site | Headline" likewise."""
    if not title:
        return title
    title = re.sub(r"\s+", " ", title).strip()
    site_key = re.sub(r"\W+", "", (site or "").lower().removeprefix("www.").split(".")[0])
    match = _TITLE_PREFIX.match(title)
    if match and site_key:
        head_key = re.sub(r"\W+", "", match.group(0).lower())
        if head_key and (head_key in site_key or site_key in head_key):
            return strip_site_suffix(title[match.end():].strip(), site) or title
    match = _TITLE_SUFFIX.search(title)
    if match:
        head = title[:match.start()].strip()
        tail = match.group(0).strip(" |-–—:»·•/")
        tail_key = re.sub(r"\W+", "", tail.lower())
        sep = match.group(0).strip()[0]
        names_site = bool(site_key and tail_key and (tail_key in site_key or site_key in tail_key))
        generic = sep in "|»·•" and len(tail.split()) <= 4 and len(head.split()) > len(tail.split())
        if names_site or re.search(r"\.\w{2,3}$", tail) or generic:
            return strip_site_suffix(head, site) or title
    return title


def clean_author(name: str) -> str | None:
    name = re.sub(r"\s+", " ", name).strip(" ,;|-–—\u00a0")
    name = _BY.sub("", name).strip()
    if not name or len(name) > 80 or name.startswith(("http://", "https://", "@", "/")) or "@" in name:
        return None
    if not re.search(r"[^\W\d_]", name) or len(name.split()) > 6:
        return None
    return name.title() if name.isupper() and len(name) > 3 else name


def split_authors(value: str | list | None) -> list[str]:
    """A byline ("By A, B and C") or a list of names -> ["A", "B", "C"]."""
    if not value:
        return []
    parts = value if isinstance(value, list) else [value]
    out: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            continue
        part = _BY.sub("", part.strip())
        for piece in _AUTHOR_SPLIT.split(part):
            name = clean_author(piece)
            if name and name not in out:
                out.append(name)
    return out


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
            out.site = names[0].strip()
            break
    if not out.site:
        out.site = next((meta[k] for k in SITE_META if k in meta and not meta[k].startswith("http")), None)
    host = (urlsplit(url).hostname or "") if url else ""
    host = host.removeprefix("www.")

    # title
    title = None
    for obj in articles:
        headline = obj.get("headline") or obj.get("name")
        if isinstance(headline, str) and headline.strip():
            title = headline
            break
    title = title or next((meta[k] for k in TITLE_META if k in meta), None)
    if not title:
        node = tree.find(".//title")
        title = _text(node) if node is not None else None
    if not title:
        h1 = tree.find(".//h1")
        title = _text(h1) if h1 is not None else None
    out.title = strip_site_suffix(title, out.site or host) if title else None

    # authors
    for obj in articles:
        out.authors = split_authors(_ld_names(obj.get("author")) or _ld_names(obj.get("creator")))
        if out.authors:
            break
    if not out.authors:
        for key in AUTHOR_META:
            if key in meta and not meta[key].startswith(("http://", "https://")):
                out.authors = split_authors(meta[key])
                if out.authors:
                    break
    if not out.authors:
        nodes = tree.xpath('//*[@itemprop="author"]//*[@itemprop="name"] | //a[@rel="author"]'
                           ' | //*[@itemprop="author" and not(*)]')
        out.authors = split_authors([_text(n) for n in nodes[:5]])
    if out.site:
        out.authors = [a for a in out.authors if a.lower() != out.site.lower()]

    # publication date
    for obj in articles:
        out.published = normalise_date(obj.get("datePublished")) or normalise_date(obj.get("dateCreated"))
        if out.published:
            break
    if not out.published:
        out.published = next((d for d in (normalise_date(meta.get(k)) for k in DATE_META) if d), None)
    if not out.published:
        for node in tree.xpath('//*[@itemprop="datePublished"] | //time[@datetime][@pubdate]'
                               ' | //article//time[@datetime] | //time[@datetime]')[:3]:
            out.published = normalise_date(node.get("datetime") or node.get("content"))
            if out.published:
                break

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


def fallback_date(tree, url: str | None) -> str | None:
    """htmldate's quick search (URL, common markup, page text) when the page declares no date."""
    try:
        from htmldate import find_date

        found = find_date(tree, extensive_search=False, original_date=True, url=url)
    except Exception:  # htmldate on odd markup: no date rather than no record
        return None
    return normalise_date(found) if found else None


def parse_html(page: str):
    """An lxml tree of the page, parsed the way trafilatura parses it (None when nothing parses)."""
    from trafilatura.utils import load_html

    return load_html(page)
