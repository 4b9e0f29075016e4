"""Which language the entities stage tags a record as, and where that came from.

In order: the language stage's ``lang.code`` (when it is not ``und``), the language the page or the event
declared (``declared_lang``: the HTML ``lang`` attribute, or ``lang`` in an event given to
``pipeline enrich``), else the language detected here with the language stage's identifier (loaded on
first use only: a pipeline with the language stage never needs it). ``und`` when none of them knows.
"""

from __future__ import annotations

import re
import threading
from typing import Any

UNDETERMINED = "und"
_CODE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
# the language stage's configured defaults (config/pipeline.toml [stages.language])
DETECTOR_SETTINGS = {"min_chars": 3, "min_confidence": 0.30, "reliable_confidence": 0.80, "max_chars": 4000,
                     "short_text_words": 2, "short_text_max_confidence": 0.75}


def normalise(code: Any) -> str | None:
    """"pt-BR" -> "pt", "EN" -> "en", {"code": "de"} -> "de"; None for anything else or ``und``."""
    if isinstance(code, dict):
        code = code.get("code")
    if not isinstance(code, str) or not _CODE.match(code.strip()):
        return None
    base = code.strip().lower().replace("_", "-").split("-")[0]
    return None if base in (UNDETERMINED, "mul", "zxx") else base


class LanguageOf:
    """``(code, source)`` for a record: source is ``lang``, ``declared_lang``, ``detected`` or ``none``."""

    def __init__(self) -> None:
        self._identifier = None
        self._lock = threading.Lock()

    def detect(self, text: str) -> str | None:
        if self._identifier is None:
            with self._lock:
                if self._identifier is None:
                    from pipeline.stages.language.identifier import LanguageIdentifier

                    self._identifier = LanguageIdentifier.with_shipped_models(**DETECTOR_SETTINGS)
        return normalise(self._identifier.identify(text).code)

    def __call__(self, record: dict[str, Any]) -> tuple[str | None, str]:
        code = normalise(record.get("lang"))
        if code:
            return code, "lang"
        code = normalise(record.get("declared_lang"))
        if code:
            return code, "declared_lang"
        text = record.get("text") or ""
        code = self.detect(text) if text.strip() else None
        return (code, "detected") if code else (None, "none")
