"""Secrets out of everything the pipeline writes.

Passwords and tokens reach the pipeline in connection strings (``--sink postgres:postgresql://
user:pw@host/db``, ``DATABASE_URL``, ``redis://:pw@host``), in settings (``broker.sasl_password``)
and in URLs with a token in the query. ``redact`` masks them in a text by their shape (a URL's
password, ``password=...`` in a libpq string or a log line, ``?token=...``) and by their value:
every secret the process was given is remembered (``remember``, ``remember_settings``) and masked
wherever it appears, so an error message that quotes a password in some other shape is caught
too.

Where it is applied: the console summary, every log line (both formats), the health and status
reasons of a worker, dead letters' ``error`` field, and, as a last net, everything the CLI's
process writes to its standard output and error (``install``: tracebacks included). Payloads of
dead letters are data and stay as they came.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import IO, Any

MASK = "***"
#: a secret shorter than this is not masked by value (it would mask common words and numbers)
_MIN_KNOWN = 4
_SECRET_WORDS = (r"password|passwd|pwd|sasl_password|secret|client_secret|token|access_token|auth_token"
                 r"|api_key|apikey|api-key")
#: scheme://user:password@host (user may be empty: redis://:password@host)
_URL_PASSWORD = re.compile(r"(?P<keep>\b[a-z][a-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<secret>[^\s@/'\"]+)(?=@)", re.I)
#: password=..., "password": "...", token: ... (libpq strings, settings, JSON)
_KEY_VALUE = re.compile(rf"(?P<keep>\b(?:{_SECRET_WORDS})['\"]?\s*[=:]\s*['\"]?)(?P<secret>[^\s'\"&,;}}\]]+)",
                        re.I)
#: ?token=... &key=... &sig=... in URLs
_QUERY = re.compile(rf"(?P<keep>[?&](?:{_SECRET_WORDS}|key|sig|signature|auth)=)(?P<secret>[^&\s#'\"]+)", re.I)
#: environment variables whose values are secrets, and those that may carry one
_SECRET_VALUE_ENV = re.compile(r"PASSWORD|SECRET|TOKEN", re.I)
_SECRET_ENV = re.compile(r"PASSWORD|SECRET|TOKEN|URL|TARGETS|DSN|STORE", re.I)

_known: set[str] = set()
_known_pattern: re.Pattern[str] | None = None


def _mask(match: re.Match[str]) -> str:
    return match.group("keep") + MASK


def redact(text: str) -> str:
    """``text`` with every password and token masked (``***``)."""
    if not text:
        return text
    if _known_pattern is not None:
        text = _known_pattern.sub(MASK, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(_mask, text)
    if "=" in text or ":" in text:
        text = _KEY_VALUE.sub(_mask, text)
    if "?" in text or "&" in text:
        text = _QUERY.sub(_mask, text)
    return text


def secrets_in(text: str) -> set[str]:
    """The secrets ``redact`` would mask by shape in ``text`` (a URL's password, ``password=...``)."""
    found = set()
    for pattern in (_URL_PASSWORD, _KEY_VALUE, _QUERY):
        found.update(m.group("secret") for m in pattern.finditer(text or ""))
    return {s for s in found if s != MASK}


def remember(values: Iterable[str | None]) -> None:
    """Mask these values wherever they appear from now on."""
    global _known_pattern
    new = {v for v in values if v and len(v) >= _MIN_KNOWN and v != MASK} - _known
    if not new:
        return
    _known.update(new)
    # the longest first, so a secret that contains another is masked whole
    _known_pattern = re.compile("|".join(re.escape(v) for v in sorted(_known, key=len, reverse=True)))


def remember_texts(texts: Iterable[str | None]) -> None:
    """Remember the secrets found by shape in these texts (connection strings, sink targets)."""
    secrets: set[str] = set()
    for text in texts:
        secrets |= secrets_in(text or "")
    remember(secrets)


def remember_environment(env: dict[str, str] | None = None) -> None:
    """Secrets in environment variables that hold passwords or connection strings."""
    env = os.environ if env is None else env
    remember(v for k, v in env.items() if _SECRET_VALUE_ENV.search(k))
    remember_texts(v for k, v in env.items() if _SECRET_ENV.search(k))


def remember_settings(settings: Any) -> None:
    """Every secret in the settings: the broker's SASL password, the ingest token, and the
    passwords in sink targets, the PostgreSQL URL and the dedup index's Redis URL."""
    remember([settings.broker.sasl_password])
    remember_texts([*settings.sink.targets, settings.sink.postgres_url, settings.stages.dedup.store])
    remember([settings.ingest.token])  # the bearer token pushers must send


def forget_all() -> None:
    """Forget every remembered secret (tests)."""
    global _known_pattern
    _known.clear()
    _known_pattern = None


class RedactingStream:
    """A text stream that masks secrets in what is written to it and passes the rest through
    (``isatty``, ``fileno``, ``encoding``, ... are the wrapped stream's)."""

    def __init__(self, stream: IO[str]):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    @property
    def wrapped(self) -> IO[str]:
        return self._stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install() -> None:
    """Mask secrets in everything this process writes to ``sys.stdout`` and ``sys.stderr``
    (print, tracebacks, log handlers on these streams); remembers the environment's secrets."""
    remember_environment()
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


__all__ = ["MASK", "RedactingStream", "forget_all", "install", "redact", "remember", "remember_environment",
           "remember_settings", "remember_texts", "secrets_in"]
