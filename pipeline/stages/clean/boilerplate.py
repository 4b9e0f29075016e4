"""Phrases that mark a line of page text as boilerplate, in the languages the pipeline meets most.

A line is boilerplate when it *starts with* one of ``LEADING`` (a link list, a prompt, a label)
or *contains* one of ``ANYWHERE`` (notices that never belong to an article).
"""

from __future__ import annotations

import re

LEADING = [
    # Indonesian / Malay
    "baca juga", "baca pula", "lihat juga", "simak juga", "tonton juga", "simak video", "baca selengkapnya",
    "selengkapnya", "berita terkait", "artikel terkait", "artikel lainnya", "berita lainnya", "terkini lainnya",
    "berita terkini", "topik", "tag:", "tags", "halaman", "bagikan", "share", "komentar", "kolom komentar",
    "video rekomendasi", "video lainnya", "populer", "terpopuler", "rekomendasi", "editor:", "penulis:",
    "sumber:", "foto:", "ilustrasi", "dapatkan update", "ikuti kami", "ikuti berita", "gabung", "login",
    "daftar", "masuk", "iklan", "advertisement", "scroll to continue", "lanjut baca", "klik di sini",
    "baca artikel", "pilihan editor", "jangan lewatkan", "infografis", "sebelumnya", "berikutnya",
    "close ads", "oke", "update", "berita", "dunia", "video", "indeks", "beranda", "home",
    # English
    "read also", "read more", "see also", "related", "recommended", "more from", "more on this",
    "most read", "most popular", "trending", "advertisement", "sponsored", "subscribe", "sign up",
    "sign in", "log in", "follow us", "share this", "comments", "leave a comment", "be the first to comment",
    "about the author", "photo:", "image:", "credit:", "copyright", "all rights reserved", "next article",
    "previous article", "click here", "watch:", "listen:", "newsletter", "cookie", "privacy policy",
    "terms of use", "skip to", "menu", "search",
    # Other common languages
    "lesen sie auch", "mehr zum thema", "auch interessant", "lire aussi", "à lire aussi", "voir aussi",
    "lee también", "leer más", "ver también", "leia também", "veja também", "leggi anche", "vedi anche",
    "lees ook", "czytaj też", "читайте также", "اقرأ أيضا", "اقرأ أيضًا",
]

ANYWHERE = [
    "this site uses akismet", "learn how your comment data is processed", "all rights reserved",
    "hak cipta dilindungi", "baca berita tanpa iklan", "dilarang mengambil", "cookies to", "cookie policy",
    "your browser does not support", "javascript is disabled", "enable javascript",
    "login untuk memaksimalkan", "bagikan artikel ini", "download aplikasi", "unduh aplikasi",
]

_LEADING_RE = re.compile(
    r"^[\W_]*(?:" + "|".join(re.escape(p) for p in sorted(LEADING, key=len, reverse=True)) + r")(?:\b|(?=\W)|$)",
    re.IGNORECASE,
)
_ANYWHERE_RE = re.compile("|".join(re.escape(p) for p in ANYWHERE), re.IGNORECASE)

# Short one-word section labels are boilerplate only when the whole line is the label; a body
# paragraph may well start with "Berita ..." or "Update ...".
_LABEL_ONLY = {"berita", "dunia", "video", "update", "home", "beranda", "indeks", "menu", "search", "oke",
               "populer", "terpopuler", "rekomendasi", "daftar", "masuk", "login", "share", "bagikan",
               "komentar", "comments", "related", "trending", "iklan", "advertisement", "infografis",
               "sebelumnya", "berikutnya", "topik", "tags", "halaman", "gabung", "selengkapnya"}


def is_boilerplate(line: str) -> bool:
    stripped = line.strip()
    lowered = stripped.lower().rstrip(":.!")
    if _ANYWHERE_RE.search(stripped):
        return True
    match = _LEADING_RE.match(stripped)
    if not match:
        return False
    phrase = match.group(0).strip(" \t:.-").lower()
    if phrase in _LABEL_ONLY:
        return lowered == phrase
    return True
