"""Language stage benchmark.

    .venv/bin/python -m bench.language [--eval-dir ../shared/eval] [--part report|all]
                                       [--runs 3] [--baselines] [--json out.json]

Scores the stage (``LanguageIdentifier`` as configured in config/pipeline.toml) on the lingua test
data: sentences, word pairs, single words, and documents of >= 500 characters built from sentences
of one language (``evaldata.build_documents``). ``--part report`` (default) is the held-out half of
the seeded split (``evaldata.split_lingua``): nothing in it was used to train or calibrate anything.
``--part all`` is the whole file (half of it was used for fitting: optimistic).

Printed per kind: accuracy (``und`` counts as wrong), coverage (share not ``und``), Indonesian and
Malay recall, id->ms and ms->id confusions, expected calibration error (15 equal-width bins, over
the best guess and its confidence, ``und`` included), confident-wrong count (wrong with confidence
>= 0.8), items/s (one process, one thread, median of ``--runs`` timed passes). Then per-language
recall on sentences, the Indonesian NER dev sentences (real Indonesian: share kept Indonesian), the
seeds, and a mixed page (a seed with the English Akismet line inserted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pipeline import config  # noqa: E402
from pipeline.stages.language import LanguageStage  # noqa: E402
from pipeline.stages.language.evaldata import (  # noqa: E402
    KINDS,
    Sample,
    build_documents,
    default_eval_dir,
    lingua_samples,
    ner_sentences,
    split_lingua,
)

ROOT = Path(__file__).resolve().parents[2]
AKISMET = "This site uses Akismet to reduce spam. Learn how your comment data is processed."
CONFIDENT = 0.8

Predictor = Callable[[str], tuple[str, float]]  # text -> (code, confidence)


def expected_calibration_error(confidences: list[float], correct: list[bool], bins: int = 15) -> float:
    total = len(confidences)
    if not total:
        return 0.0
    sums: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for conf, ok in zip(confidences, correct, strict=True):
        b = min(int(conf * bins), bins - 1)
        sums[b][0] += 1
        sums[b][1] += conf
        sums[b][2] += 1.0 if ok else 0.0
    return sum(abs(s[1] - s[2]) for s in sums.values()) / total


def score(predict: Predictor, guess: Predictor, samples: list[Sample], runs: int) -> dict:
    """``predict`` gives the answer (may be und); ``guess`` the best guess and its confidence."""
    texts = [s.text for s in samples]
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        answers = [predict(t) for t in texts]
        timings.append(time.perf_counter() - started)
    guesses = [guess(t) for t in texts]
    correct = [a[0] == s.lang for a, s in zip(answers, samples, strict=True)]
    by_lang: dict[str, list[bool]] = defaultdict(list)
    for ok, s in zip(correct, samples, strict=True):
        by_lang[s.lang].append(ok)
    confusion = Counter((s.lang, a[0]) for a, s in zip(answers, samples, strict=True)
                        if s.lang in ("id", "ms") and a[0] in ("id", "ms") and a[0] != s.lang)
    guess_ok = [g[0] == s.lang for g, s in zip(guesses, samples, strict=True)]
    return {
        "n": len(samples),
        "accuracy": sum(correct) / len(samples),
        "coverage": sum(a[0] != "und" for a in answers) / len(samples),
        "id_recall": _mean(by_lang.get("id", [])),
        "ms_recall": _mean(by_lang.get("ms", [])),
        "id_as_ms": confusion[("id", "ms")],
        "ms_as_id": confusion[("ms", "id")],
        "ece": expected_calibration_error([g[1] for g in guesses], guess_ok),
        "confident_wrong": sum(1 for g, ok in zip(guesses, guess_ok, strict=True)
                               if g[1] >= CONFIDENT and not ok),
        "per_second": len(samples) / statistics.median(timings),
        "per_language": {lang: _mean(v) for lang, v in sorted(by_lang.items())},
    }


def _mean(values: list[bool]) -> float:
    return sum(values) / len(values) if values else float("nan")


# --- systems -----------------------------------------------------------------------------------

def stage_system(stage: LanguageStage) -> tuple[Predictor, Predictor]:
    identifier = stage.identifier

    def predict(text: str) -> tuple[str, float]:
        result = identifier.identify(text)
        return result.code, result.confidence

    def guess(text: str) -> tuple[str, float]:
        result = identifier.identify(text)
        return result.guess, result.confidence

    return predict, guess


def baseline_systems() -> dict[str, Predictor]:
    from pipeline.stages.language.detectors import (
        Cld2Detector,
        Cld3Detector,
        FastTextDetector,
        Py3LangidDetector,
    )

    systems: dict[str, Predictor] = {}
    for detector in (Cld2Detector(), FastTextDetector(), Cld3Detector(), Py3LangidDetector()):
        def predict(text: str, d=detector) -> tuple[str, float]:
            ballot = d.scores(" ".join(text.split()))
            if not ballot:
                return "und", 0.0
            code = max(ballot, key=ballot.get)
            return code, min(1.0, ballot[code])
        systems[detector.name] = predict
    try:
        from lingua import LanguageDetectorBuilder
    except ImportError:
        return systems
    lingua = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode() \
        .with_preloaded_language_models().build()

    def lingua_predict(text: str) -> tuple[str, float]:
        values = lingua.compute_language_confidence_values(text)
        if not values:
            return "und", 0.0
        iso = values[0].language.iso_code_639_1
        return iso.name.lower(), float(values[0].value)

    systems["lingua-low (not a dependency)"] = lingua_predict
    return systems


# --- report ------------------------------------------------------------------------------------

HEADER = (f"{'system':<30} {'kind':<13} {'n':>5} {'acc':>6} {'cover':>6} {'id':>5} {'ms':>5} "
          f"{'id>ms':>5} {'ms>id':>5} {'ECE':>6} {'conf.wrong':>10} {'items/s':>9}")


def row(system: str, kind: str, r: dict) -> str:
    return (f"{system:<30} {kind:<13} {r['n']:>5} {r['accuracy']:>6.3f} {r['coverage']:>6.3f} "
            f"{r['id_recall']:>5.2f} {r['ms_recall']:>5.2f} {r['id_as_ms']:>5} {r['ms_as_id']:>5} "
            f"{r['ece']:>6.3f} {r['confident_wrong']:>10} {r['per_second']:>9,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Language stage benchmark (lingua test data).")
    parser.add_argument("--eval-dir", type=Path, default=default_eval_dir())
    parser.add_argument("--part", choices=("report", "all"), default="report")
    parser.add_argument("--runs", type=int, default=3, help="timed passes per kind (median)")
    parser.add_argument("--baselines", action="store_true", help="also score the single detectors")
    parser.add_argument("--json", type=Path, help="write all figures here")
    args = parser.parse_args(argv)

    samples = lingua_samples(args.eval_dir)
    fit, report = split_lingua(samples)
    part = report if args.part == "report" else samples
    by_kind = {kind: [s for s in part if s.kind == kind] for kind in KINDS}
    by_kind["documents"] = build_documents(part)
    settings = config.load(ROOT / "config" / "pipeline.toml", env=os.environ).stages.language
    stage = LanguageStage(settings)
    print(f"lingua {args.part} part: " + ", ".join(f"{k} {len(v)}" for k, v in by_kind.items())
          + f"; {args.runs} timed runs, median")
    results: dict[str, dict] = {}
    print(HEADER)
    predict, guess = stage_system(stage)
    for kind, items in by_kind.items():
        results[f"stage/{kind}"] = r = score(predict, guess, items, args.runs)
        print(row("stage", kind, r))
    if args.baselines:
        for name, predict_b in baseline_systems().items():
            for kind in ("sentences", "word-pairs", "single-words", "documents"):
                results[f"{name}/{kind}"] = r = score(predict_b, predict_b, by_kind[kind], args.runs)
                print(row(name, kind, r))

    print("\nstage, per-language recall on sentences:")
    per_language = results["stage/sentences"]["per_language"]
    print("  " + "  ".join(f"{lang} {v:.2f}" for lang, v in per_language.items()))

    # whole records through the stage (spans included): docs/s as the worker sees it
    docs = by_kind["documents"]
    timings = []
    for _ in range(args.runs):
        started = time.perf_counter()
        for doc in docs:
            stage.spans(doc.text, stage.identify(doc.text)["code"])
        timings.append(time.perf_counter() - started)
    docs_per_second = len(docs) / statistics.median(timings)
    print(f"\nstage, documents with spans (identify + spans): {docs_per_second:,.0f} docs/s")

    ner = ner_sentences(args.eval_dir, "dev")
    ner_codes = Counter(predict(t)[0] for t in ner)
    print(f"Indonesian NER dev sentences ({len(ner)}, real Indonesian news/Wikipedia): "
          f"id {ner_codes['id'] / len(ner):.3f}; " + ", ".join(f"{c} {n}" for c, n in ner_codes.most_common(6)))

    from pipeline.stages.clean.text_page import extract_text_page

    seeds = sorted((ROOT / "seeds").glob("*.txt"))
    print("seeds (after the clean stage's text-page extraction):")
    seed_texts = []
    for path in seeds:
        text = extract_text_page(path.read_text(encoding="utf-8")).text
        seed_texts.append(text)
        lang = stage.identify(text)
        spans = stage.spans(text, lang["code"])
        print(f"  {path.name}: {lang['code']} {lang['confidence']:.3f} reliable={lang['reliable']} "
              f"spans={[(s['start'], s['end'], s['code']) for s in spans]}")
    if seed_texts:
        lines = seed_texts[0].split("\n")
        lines.insert(len(lines) // 2, AKISMET)
        mixed = "\n".join(lines)
        lang = stage.identify(mixed)
        spans = stage.spans(mixed, lang["code"])
        print(f"  seed 0 + Akismet line at paragraph {len(lines) // 2}: page {lang['code']} "
              f"{lang['confidence']:.3f}; spans={[(s['start'], s['end'], s['code']) for s in spans]}")
    if args.json:
        args.json.write_text(json.dumps({"part": args.part, "results": results,
                                         "docs_per_second_with_spans": docs_per_second,
                                         "ner_dev_id_share": ner_codes["id"] / len(ner)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
