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
    "auch interessant", "lesen sie hier", "zum weiterlesen", "weitere themen", "empfohlene beiträge",
    "weiterlesen", "teilen sie", "teilen mit", "bild anzeigen", "bildquelle", "titelbild:", "beitragsbild:",
    "keine kommentare", "kommentare insgesamt", "quellenangaben", "à lire également", "crédits photos",
    "crédit photo", "vea también", "mira también", "mira:", "puedes ver", "te puede interesar",
    "le puede interesar", "notas relacionadas", "contenido relacionado", "síguenos en", "siguenos en",
    "czytaj także", "zobacz też", "zobacz także", "leia mais", "saiba mais", "also read", "view comments",
    "no comments", "more stories", "related stories", "related articles", "related content", "top stories",
    "editor's picks", "recommended for you", "you may also like", "you might also like", "don't miss",
    "(credit:", "(photo:", "(foto:", "(image:", "photo credit", "image credit", "reporting by",
    "additional reporting by", "editing by", "sign up", "get the latest", "baca selengkapnya",
]

ANYWHERE = [
    "this site uses akismet", "learn how your comment data is processed", "all rights reserved",
    "hak cipta dilindungi", "baca berita tanpa iklan", "dilarang mengambil", "cookies to", "cookie policy",
    "your browser does not support", "javascript is disabled", "enable javascript",
    "login untuk memaksimalkan", "bagikan artikel ini", "download aplikasi", "unduh aplikasi",
    "alle rechte vorbehalten", "tous droits réservés", "todos los derechos reservados",
    "contributed to this report", "subscribe to our newsletter", "sign up for our newsletter",
    "sign up for the", "newsletter delivered", "delivered to your inbox", "to your inbox",
    "follow us on", "follow him on twitter", "follow her on twitter", "on twitter and facebook",
    "on facebook and twitter", "sie sind aktuell nicht eingeloggt", "eingeloggt sein", "müssen sie eingeloggt",
    "zum newsletter anmelden", "abonnieren sie", "suscríbete", "suscribirse", "abonnez-vous",
    "pour lire la suite", "pour accéder en illimité", "chroniony prawem autorskim", "zasady przedruków",
    "this copy is for your personal", "non-commercial use only", "we may receive compensation",
    "may get a share of the sale", "affiliate links", "affiliate-links", "click here to subscribe",
    "ikuti kami di", "ikuti berita", "simak berita", "dapatkan informasi", "klik di sini",
    "we use cookies", "by registering you", "select month", "by clicking", "accept cookies",
]

_LEAD_NOISE = re.compile(r"[\W_]*")  # bullets, brackets, quotes, symbols before the first word
_WORD_RE = re.compile(r"[^\W_]+")


def _strip_lead(text: str) -> str:
    return text[_LEAD_NOISE.match(text).end():]


def _first_word(text: str) -> str:
    match = _WORD_RE.match(text)
    return match.group(0) if match else ""


# LEADING phrases indexed by their first word: a line is checked against the few that can match
_LEADING_BY_WORD: dict[str, list[str]] = {}
for _phrase in sorted({_strip_lead(p.lower()) for p in LEADING}, key=len, reverse=True):
    _LEADING_BY_WORD.setdefault(_first_word(_phrase), []).append(_phrase)


# ANYWHERE phrases indexed by their first word: only phrases whose first word the line has are tried
_ANYWHERE_BY_WORD: dict[str, list[str]] = {}
for _phrase in {p.lower() for p in ANYWHERE}:
    _ANYWHERE_BY_WORD.setdefault(_first_word(_strip_lead(_phrase)), []).append(_phrase)
_ANYWHERE_KEYS = frozenset(_ANYWHERE_BY_WORD)


def has_notice(lowered: str, words: list[str] | None = None) -> bool:
    """Whether a lowercased line (with its words, if already split) contains an ANYWHERE phrase."""
    for word in _ANYWHERE_KEYS.intersection(_WORD_RE.findall(lowered) if words is None else words):
        for phrase in _ANYWHERE_BY_WORD[word]:
            if phrase in lowered:
                return True
    return False


def leading_phrase(line: str, lowered: bool = False) -> str | None:
    """The LEADING phrase the line starts with (after bullets and punctuation), if any."""
    lead = _strip_lead(line if lowered else line.lower())
    for phrase in _LEADING_BY_WORD.get(_first_word(lead), ()):
        if lead.startswith(phrase):
            rest = lead[len(phrase):len(phrase) + 1]
            if not rest or not (rest.isalnum() or rest == "_") or not phrase[-1].isalnum():
                return phrase
    return None


# Short one-word section labels are boilerplate only when the whole line is the label; a body
# paragraph may well start with "Berita ..." or "Update ...".
_LABEL_ONLY = {"berita", "dunia", "video", "update", "home", "beranda", "indeks", "menu", "search", "oke",
               "populer", "terpopuler", "rekomendasi", "daftar", "masuk", "login", "share", "bagikan",
               "komentar", "comments", "related", "trending", "iklan", "advertisement", "infografis",
               "sebelumnya", "berikutnya", "topik", "tags", "halaman", "gabung", "selengkapnya"}


def is_boilerplate(line: str) -> bool:
    lowered = line.strip().lower()
    return is_boilerplate_lowered(lowered)


def is_boilerplate_lowered(lowered: str, words: list[str] | None = None) -> bool:
    """``is_boilerplate`` for a stripped, lowercased line (and its words, when the caller has them)."""
    if has_notice(lowered, words):
        return True
    if words and "_" not in words[0] and words[0] not in _LEADING_BY_WORD and lowered[:1].isalnum():
        return False  # the line starts with a word no LEADING phrase starts with (the common case)
    phrase = leading_phrase(lowered, lowered=True)
    if phrase is None:
        return False
    phrase = phrase.strip(" \t:.-")
    if phrase in _LABEL_ONLY:
        return _strip_lead(lowered).rstrip(":.!") == phrase
    return True


# the labels a photo credit or a pager starts with: the regexes below and the cheap pre-test share them
_CREDIT_LABELS = ("foto", "fotos", "photo", "photos", "bild", "image", "credit", "credits", "gambar", "sumber foto",
                  "ilustrasi")
_PAGER_LABELS = ("halaman", "page", "seite", "página", "pagina", "strona")
_PHOTO_CREDIT = re.compile(
    r"(?:^|\s)(?:©|\(c\)|copyright\s*:?)\s*[\w .,&/'’-]{2,60}$"
    rf"|^\(?(?:{'|'.join(_CREDIT_LABELS)})\s*[:/]\s*\S",
    re.IGNORECASE)
_PAGER = re.compile(rf"^(?:{'|'.join(_PAGER_LABELS)})\s*:?\s*(?:\d+\s*(?:[-/|,]|of|dari|von|de)?\s*)+"
                    r"(?:selanjutnya|next|berikutnya|weiter|»|>)?\s*$|^(?:\d+\s+){2,}\d+\s*$|"
                    r"^(?:halaman|page|seite)\s+(?:selanjutnya|berikutnya|next|weiter)\b", re.IGNORECASE)
_CREDIT_OR_PAGER_STARTS = ("(", *_CREDIT_LABELS, *_PAGER_LABELS)


def is_credit_or_pager(line: str) -> bool:
    """A photo credit ("Foto: ANTARA/...", "© AFP / NAME") or a pager ("Halaman: 1 2 3"), in a
    line of at most 15 words."""
    stripped = line.strip()
    lowered = stripped[:12].lower()
    # cheap test first: a credit holds a copyright sign or starts with its label, a pager with its
    # label or a number
    if not (lowered.startswith(_CREDIT_OR_PAGER_STARTS) or lowered[:1].isdigit() or "©" in stripped
            or "(c)" in stripped or "(C)" in stripped or "opyright" in stripped or "OPYRIGHT" in stripped):
        return False
    if len(stripped.split()) > 15:
        return False
    return bool(_PHOTO_CREDIT.search(stripped) or _PAGER.match(stripped))


# Where the comments begin: a comment-section heading, a comment form, or a commenter's byline
_COMMENTS_START = re.compile(
    r"^[\[(]?\s*\d+\s+(?:comments?|kommentare?|komentar|commentaires?|comentarios?|comentários?|responses?|"
    r"replies|reactions?)\b"
    r"|^(?:top(?:\s+rated)?|latest|newest|oldest|best|featured|readers?'?|most\s+(?:popular|liked|recent)|show|"
    r"view(?:\s+all)?(?:\s+\d+)?|load|see(?:\s+all)?)\s+comments?\s*(?:\(\d+\))?:?$"
    r"|^(?:komentar\s+pembaca|lihat\s+(?:semua\s+)?komentar|kommentare\s+anzeigen)\b"
    r"|^(?:comments|kommentare|commentaires|comentarios|comentários|responses|replies|reactions|"
    r"thoughts on .{1,80})\s*(?:\(\d+\))?\s*:?$"
    r"|^(?:leave a (?:reply|comment)|add a comment|post a comment|join the (?:discussion|conversation)|"
    r"tulis komentar|berikan komentar|kirim komentar|schreibe einen kommentar|kommentar schreiben|"
    r"laisser un commentaire|deja un comentario|deixe um comentário)\b"
    r"|^.{2,60}\s+(?:on|am)\s+.{4,40}\d{1,2}:\d{2}\s*(?:am|pm)?\s+(?:said|says|wrote|schrieb|menulis):?$"
    r"|^.{2,60}\s+(?:said|says|wrote|schrieb|menulis):$",
    re.IGNORECASE)


# a cheap test before the full pattern: one of these must be in the (lowercased) line
_COMMENT_HINTS = ("comment", "komment", "koment", "comentar", "comentár", "respons", "repl", "reaction",
                  "thoughts on", "said", "says", "wrote", "schrieb", "menulis", "discussion", "conversation")


def starts_comments(line: str) -> bool:
    """A line after which a page shows its readers' comments, not the article."""
    if len(line) >= 160:
        return False
    lowered = line.lower()
    return any(h in lowered for h in _COMMENT_HINTS) and _COMMENTS_START.match(line.strip()) is not None
