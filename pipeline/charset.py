"""Turn page bytes into text: byte-order mark, valid UTF-8, the declared charset (HTTP header, then
``<meta>``; ISO-8859-1/ASCII labels read as windows-1252, as browsers do), then detection
(charset_normalizer), with windows-1252 preferred among the Latin single-byte code pages."""

from __future__ import annotations

import base64
import binascii
import codecs
import re

from pipeline.records import UNDECODABLE, BadInput, RawEvent

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:\-]+)""", re.IGNORECASE)
# Browsers read these labels as windows-1252 (WHATWG Encoding Standard); pages rely on it.
_WHATWG_ALIASES = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252",
                   "us-ascii": "cp1252", "ascii": "cp1252", "iso8859-1": "cp1252", "l1": "cp1252"}


# single-byte Latin code pages (codec names as codecs.lookup() gives them)
_LATIN_FAMILY = frozenset(codecs.lookup(n).name for n in (
    "cp1250", "cp1252", "cp1254", "cp1257", "latin_1", "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_9",
    "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "mac_roman", "mac_latin2",
    "mac_iceland", "mac_turkish", "cp850", "cp858", "cp437", "ascii"))


def declared_charset(data: bytes) -> str | None:
    """The charset a page declares in a <meta> tag within its first 4 KB, if Python knows it."""
    match = _META_CHARSET.search(data[:4096])
    if not match:
        return None
    label = match.group(1).decode("ascii", "ignore").lower()
    label = _WHATWG_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_bytes(data: bytes, http_charset: str | None = None) -> tuple[str, str]:
    """Decode page bytes; return ``(text, encoding used)``. Raise ``BadInput`` if nothing fits."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(name, errors="replace"), name
    # Bytes that are valid UTF-8 and not plain ASCII are UTF-8 whatever the page declares:
    # other encodings almost never produce valid multi-byte sequences by accident.
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    for label in (http_charset, declared_charset(data)):
        if not label:
            continue
        label = _WHATWG_ALIASES.get(label.lower(), label.lower())
        try:
            name = codecs.lookup(label).name
            return data.decode(name), name
        except (LookupError, UnicodeDecodeError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(data[:200_000]).best()
    if best is None or best.encoding is None:
        raise BadInput(UNDECODABLE, "could not determine the character encoding of the page")
    name = codecs.lookup(_WHATWG_ALIASES.get(best.encoding.lower(), best.encoding)).name
    if name in _LATIN_FAMILY:
        # Detectors cannot tell the Latin single-byte code pages apart on short Western text
        # (they answer cp1250 or cp1257 for French or German); browsers fall back to
        # windows-1252, and so do we whenever it decodes the bytes.
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            pass
    return data.decode(name, errors="replace"), name


def body_text(event: RawEvent) -> tuple[str, str | None]:
    """The body of an accepted raw event as text, and the encoding it was decoded from (None when
    it came as text): ``html_base64`` is decoded from base64, then its bytes as above (with the
    charset its HTTP answer declared, when the event says)."""
    if event.body_field != "html_base64":
        return event.body, None
    try:
        raw = base64.b64decode(event.body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(UNDECODABLE, f"'html_base64' is not valid base64: {exc}") from None
    return decode_bytes(raw, event.charset)
