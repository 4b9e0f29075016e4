"""Turn page bytes into text: byte-order mark, then the declared charset, then detection."""

from __future__ import annotations

import codecs
import re

from pipeline.records import UNDECODABLE, BadInput

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
    name = _WHATWG_ALIASES.get(best.encoding.lower(), best.encoding)
    return data.decode(name, errors="replace"), name
