"""Language stage: the language of the cleaned text, with a confidence.

First version: py3langid (a compact Naive Bayes model over byte n-grams that ships with the
package, 97 languages) with normalised probabilities. ``und`` when the text is too short.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.config import LanguageSettings
from pipeline.stages.base import Context, Stage

UNDETERMINED = "und"


class LanguageStage(Stage):
    name = "language"

    def __init__(self, settings: LanguageSettings):
        super().__init__()
        self.settings = settings
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        self._identifier = LanguageIdentifier.from_modelpath(os.path.join(MODEL_DIR, MODEL_FILE),
                                                            norm_probs=True)

    def identify(self, text: str) -> dict[str, Any]:
        stripped = " ".join(text.split())
        if len(stripped) < self.settings.min_chars:
            return {"code": UNDETERMINED, "confidence": 0.0, "reliable": False, "alternatives": []}
        ranked = self._identifier.rank(stripped)[:3]
        code, confidence = ranked[0]
        confidence = float(confidence)
        return {
            "code": code,
            "confidence": round(confidence, 4),
            "reliable": confidence >= self.settings.reliable_confidence,
            "alternatives": [{"code": c, "score": round(float(p), 4)} for c, p in ranked],
        }

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        record["lang"] = self.identify(record.get("text") or "")
        self.stats.extra[f"lang_{record['lang']['code']}"] += 1
        return record
